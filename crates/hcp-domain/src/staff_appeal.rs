//! A window staff member's appeal of their own bad review (docs/domain.md §5.4). Shenzhen: "绩效考核
//! 综合考虑'好差评'数据与'差评'整改回应情况,既起到'好差评'约束作用,又保障部门与窗口工作人员申诉权力。"
//!
//! The staff member a bad rating is attributed to may appeal it once, with reasons and references
//! to evidence, whatever the work order's progress; the order's department or region reviews
//! (复核) it. Upheld, the rating leaves the statistics exactly as an upheld order appeal does, and
//! an order still open ends ([`crate::OrderState::after_staff_appeal_upheld`]).

use serde::{Deserialize, Serialize};

use crate::error::{FieldError, ValidationErrors};

/// Most evidence references an appeal carries.
pub const MAX_ATTACHMENTS: usize = 10;
/// Longest evidence reference, in characters.
pub const MAX_ATTACHMENT_CHARS: usize = 500;
/// Longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// Where an appeal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AppealStatus {
    /// Waiting for review (待复核).
    Pending,
    /// 申诉成立: the rating no longer counts.
    Upheld,
    /// 申诉不成立: the rating counts.
    Rejected,
}

impl AppealStatus {
    /// Wire name (also the stored value).
    pub fn as_str(self) -> &'static str {
        match self {
            AppealStatus::Pending => "pending",
            AppealStatus::Upheld => "upheld",
            AppealStatus::Rejected => "rejected",
        }
    }
}

/// What a staff member files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppealInput {
    /// Why the review is wrong, malicious or not theirs (1–1000 characters once trimmed).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1000))]
    pub reason: String,
    /// References to evidence kept elsewhere: a file id, a recording's number, a URL (at most 10,
    /// each 1–500 characters).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 10))]
    pub attachments: Vec<String>,
}

/// A checked appeal: the reason and references trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appeal {
    /// The reason.
    pub reason: String,
    /// The references.
    pub attachments: Vec<String>,
}

impl AppealInput {
    /// Checks every field, naming each failure in Chinese and English.
    pub fn validate(self) -> Result<Appeal, ValidationErrors> {
        let mut errors = Vec::new();
        let reason = self.reason.trim().to_owned();
        if reason.is_empty() {
            errors.push(FieldError::new("reason", "required", "须填写申诉理由", "the reason is required"));
        } else if reason.chars().count() > MAX_REASON_CHARS {
            errors.push(FieldError::new(
                "reason",
                "too_long",
                format!("申诉理由不能超过 {MAX_REASON_CHARS} 字"),
                format!("the reason must be at most {MAX_REASON_CHARS} characters"),
            ));
        }
        if self.attachments.len() > MAX_ATTACHMENTS {
            errors.push(FieldError::new(
                "attachments",
                "too_many",
                format!("附件引用最多 {MAX_ATTACHMENTS} 个"),
                format!("at most {MAX_ATTACHMENTS} attachment references"),
            ));
        }
        let mut attachments = Vec::with_capacity(self.attachments.len());
        for (i, a) in self.attachments.iter().enumerate() {
            let a = a.trim();
            if a.is_empty() || a.chars().count() > MAX_ATTACHMENT_CHARS || a.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    format!("attachments[{i}]"),
                    "invalid",
                    format!("附件引用须为 1–{MAX_ATTACHMENT_CHARS} 个字符且不含控制字符"),
                    format!(
                        "an attachment reference is 1–{MAX_ATTACHMENT_CHARS} characters without control characters"
                    ),
                ));
            } else {
                attachments.push(a.to_owned());
            }
        }
        if reason.chars().any(|c| c == '\0') {
            errors.push(FieldError::new(
                "reason",
                "invalid",
                "申诉理由含有非法字符",
                "the reason holds a NUL character",
            ));
        }
        if errors.is_empty() {
            Ok(Appeal { reason, attachments })
        } else {
            Err(ValidationErrors(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrderState;

    fn input(reason: &str, attachments: &[&str]) -> AppealInput {
        AppealInput { reason: reason.into(), attachments: attachments.iter().map(|a| (*a).to_owned()).collect() }
    }

    #[test]
    fn an_appeal_needs_a_reason_and_at_most_ten_sound_references() {
        let ok = input("  评价人办理的是另一窗口的业务  ", &[" 录像 2026-12-05 10:02 "]).validate().unwrap();
        assert_eq!(ok.reason, "评价人办理的是另一窗口的业务");
        assert_eq!(ok.attachments, ["录像 2026-12-05 10:02"]);
        let fields = |e: ValidationErrors| e.0.iter().map(|f| f.field.clone()).collect::<Vec<_>>();
        assert_eq!(fields(input(" ", &[]).validate().unwrap_err()), ["reason"]);
        assert_eq!(fields(input(&"长".repeat(1001), &[]).validate().unwrap_err()), ["reason"]);
        assert!(input(&"长".repeat(1000), &[]).validate().is_ok());
        assert_eq!(fields(input("r", &["a"; 11]).validate().unwrap_err()), ["attachments"]);
        assert_eq!(
            fields(input("r", &["a", "", "b\nc"]).validate().unwrap_err()),
            ["attachments[1]", "attachments[2]"]
        );
        assert_eq!(fields(input("r\0", &[]).validate().unwrap_err()), ["reason"]);
    }

    #[test]
    fn an_upheld_staff_appeal_ends_an_open_order_and_leaves_an_ended_one() {
        for s in OrderState::ALL {
            let after = s.after_staff_appeal_upheld();
            if s.is_terminal() {
                assert_eq!(after, None, "{s:?}");
            } else {
                assert_eq!(after, Some(OrderState::AppealUpheld), "{s:?}");
            }
        }
    }
}
