//! Beijing time. China has used UTC+8 without daylight saving since 1991, so a fixed offset is
//! exact for every timestamp this system handles.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Timelike, Utc};

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

/// A Beijing calendar month, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    /// The year.
    pub year: i32,
    /// 1–12.
    pub month: u32,
}

impl Month {
    /// The Beijing month containing `t`.
    pub fn of(t: DateTime<Utc>) -> Month {
        let d = beijing_date(t);
        Month { year: d.year(), month: d.month() }
    }

    /// Parses `YYYY-MM` (years 1949–9999).
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let (year, month) = (y.parse::<i32>().ok()?, m.parse::<u32>().ok()?);
        ((1949..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Month { year, month })
    }

    /// The month before.
    pub fn previous(self) -> Month {
        if self.month == 1 {
            Month { year: self.year - 1, month: 12 }
        } else {
            Month { year: self.year, month: self.month - 1 }
        }
    }

    /// The month after.
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month { year: self.year + 1, month: 1 }
        } else {
            Month { year: self.year, month: self.month + 1 }
        }
    }

    /// The instant the month begins (Beijing midnight of its first day).
    pub fn start(self) -> DateTime<Utc> {
        date_start(NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a parsed month has a first day"))
    }

    /// `[start, start of the next month)`.
    pub fn range(self) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.start(), self.next().start())
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
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

    #[test]
    fn months_are_beijing_months() {
        // 2026-10-31 17:00 UTC is already 2026-11-01 01:00 in Beijing.
        let t = Utc.with_ymd_and_hms(2026, 10, 31, 17, 0, 0).unwrap();
        let m = Month::of(t);
        assert_eq!(m.to_string(), "2026-11");
        assert_eq!(m.start(), Utc.with_ymd_and_hms(2026, 10, 31, 16, 0, 0).unwrap());
        assert_eq!(m.range().1, Utc.with_ymd_and_hms(2026, 11, 30, 16, 0, 0).unwrap());
        assert_eq!(m.previous().to_string(), "2026-10");
        assert_eq!(Month::parse("2026-01").unwrap().previous().to_string(), "2025-12");
        assert_eq!(Month::parse("2026-12").unwrap().next().to_string(), "2027-01");
        assert_eq!(Month::parse("2026-13"), None);
        assert_eq!(Month::parse("2026-1"), None);
        assert_eq!(Month::parse("26-01"), None);
    }
}
