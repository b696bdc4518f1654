//! Beijing time. China has used UTC+8 without daylight saving since 1991, so a fixed offset is
//! exact for every timestamp this system handles.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Timelike, Utc};

/// UTC+08:00, Asia/Shanghai.
pub fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

/// The start of the Beijing hour containing `t`.
pub fn hour_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let local = t.with_timezone(&beijing());
    let floored = local
        .with_minute(0)
        .and_then(|l| l.with_second(0))
        .and_then(|l| l.with_nanosecond(0))
        .expect("zeroing minutes is always valid");
    floored.with_timezone(&Utc)
}

/// The Beijing calendar date of `t`.
pub fn beijing_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&beijing()).date_naive()
}

/// The start of the Beijing calendar day containing `t`.
pub fn day_start(t: DateTime<Utc>) -> DateTime<Utc> {
    date_start(t.with_timezone(&beijing()).date_naive())
}

/// The instant a Beijing calendar date begins.
pub fn date_start(date: NaiveDate) -> DateTime<Utc> {
    beijing()
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .single()
        .expect("a fixed offset has no gaps")
        .with_timezone(&Utc)
}

/// Rounds `t` up to the next Beijing hour boundary (unchanged when already on one).
pub fn hour_ceil(t: DateTime<Utc>) -> DateTime<Utc> {
    let s = hour_start(t);
    if s == t {
        s
    } else {
        s + Duration::hours(1)
    }
}

/// Whether `t` falls exactly on a Beijing midnight.
pub fn is_day_aligned(t: DateTime<Utc>) -> bool {
    day_start(t) == t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_beijing_not_utc() {
        // 2026-11-20 23:30 UTC is 2026-11-21 07:30 in Beijing.
        let t = Utc.with_ymd_and_hms(2026, 11, 20, 23, 30, 0).unwrap();
        assert_eq!(hour_start(t), Utc.with_ymd_and_hms(2026, 11, 20, 23, 0, 0).unwrap());
        assert_eq!(day_start(t), Utc.with_ymd_and_hms(2026, 11, 20, 16, 0, 0).unwrap());
        assert!(is_day_aligned(day_start(t)));
        assert!(!is_day_aligned(t));
        assert_eq!(hour_ceil(t), Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap());
        assert_eq!(hour_ceil(hour_start(t)), hour_start(t));
    }
}
