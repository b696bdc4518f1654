//! 我的业务 (docs/domain.md §2.1). Shenzhen: "通过在广东政务服务网、粤省事小程序、'i深圳'APP中内置'我的
//! 业务'模块,方便评价人在合适的时间、合适的地点进行评价,减少引导评价的情况发生。"
//!
//! A platform names the citizen a service record belongs to by its own user id (kept only as a
//! keyed digest) and lists that citizen's stages still open for rating; the citizen rates them
//! later, on the platform, through the normal path. A stage stays open until it is rated or its
//! region's default-rating days have passed (then the default 基本满意 applies, as everywhere).

use chrono::{DateTime, Duration, Utc};

use crate::error::FieldError;

/// Longest platform user id, in characters.
pub const MAX_USER_ID_CHARS: usize = 128;

/// Checks a platform's user id: 1–128 characters, no control character.
pub fn check_user_id(field: &str, id: &str) -> Result<(), FieldError> {
    let n = id.chars().count();
    if (1..=MAX_USER_ID_CHARS).contains(&n) && !id.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "invalid",
            format!("平台用户标识须为 1–{MAX_USER_ID_CHARS} 个字符,不含控制字符"),
            format!("the platform user id must be 1–{MAX_USER_ID_CHARS} characters without control characters"),
        ))
    }
}

/// Until when a stage that happened at `at` can be rated by the citizen: its region's
/// default-rating days later (`None`: the region gives no default, the stage stays open).
pub fn open_until(at: DateTime<Utc>, default_rating_days: Option<u32>) -> Option<DateTime<Utc>> {
    default_rating_days.map(|d| at + Duration::days(i64::from(d)))
}

/// Whether an unrated stage is still the citizen's to rate at `now`.
pub fn still_open(at: DateTime<Utc>, default_rating_days: Option<u32>, now: DateTime<Utc>) -> bool {
    at <= now && open_until(at, default_rating_days).is_none_or(|until| now < until)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_is_open_from_when_it_happened_until_the_default_takes_over() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T02:00:00Z").unwrap().to_utc();
        assert_eq!(open_until(at, Some(7)), Some(at + Duration::days(7)));
        assert!(still_open(at, Some(7), at));
        assert!(still_open(at, Some(7), at + Duration::days(7) - Duration::seconds(1)));
        assert!(!still_open(at, Some(7), at + Duration::days(7)), "the default rating applies from then");
        assert!(!still_open(at, Some(7), at - Duration::seconds(1)), "not before it happened");
        assert!(still_open(at, None, at + Duration::days(400)), "a region without defaults keeps it open");
    }

    #[test]
    fn a_user_id_is_short_printable_text() {
        assert!(check_user_id("platform_user_id", "wx-openid_o6_bmjrPTlm6_2sgVt7hMZOPfL2M").is_ok());
        assert!(check_user_id("platform_user_id", "").is_err());
        assert!(check_user_id("platform_user_id", &"x".repeat(129)).is_err());
        assert!(check_user_id("platform_user_id", "a\u{0}b").is_err());
        assert_eq!(check_user_id("u", "").unwrap_err().field, "u");
    }
}
