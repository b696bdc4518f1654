//! The official working-day calendar (docs/domain.md §5): statutory holidays are off, the make-up
//! working days (调休, usually a Saturday or Sunday) are on, everything else follows
//! Monday–Friday. The calendar is data (`deploy/calendar/*.json`, one section per year from the
//! State Council's yearly notice); a date in a year it does not cover falls back to
//! Monday–Friday and the result says so (`provisional`, `missing_years`), never panics.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::time;

/// One year of the calendar, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarYear {
    /// Where the dates come from (the notice).
    pub source: String,
    /// Days off: single dates `2025-10-01` or inclusive ranges `2025-10-01..2025-10-08`.
    pub holidays: Vec<String>,
    /// Make-up working days (调休上班).
    pub workdays: Vec<String>,
}

/// A calendar file: `{"description": …, "years": {"2025": CalendarYear, …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarFile {
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The years, by number.
    pub years: BTreeMap<String, CalendarYear>,
}

/// The working-day calendar over the years it covers.
#[derive(Debug, Clone, Default)]
pub struct WorkCalendar {
    years: BTreeSet<i32>,
    holidays: HashSet<NaiveDate>,
    workdays: HashSet<NaiveDate>,
}

/// A deadline: the end of the Nth working day after the opening day, Beijing time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deadline {
    /// The Nth working day.
    pub date: NaiveDate,
    /// When it ends: the following Beijing midnight.
    pub due_at: DateTime<Utc>,
    /// Whether a year on the way is not in the calendar (Monday–Friday assumed there).
    pub provisional: bool,
    /// The years the calendar needs to make this deadline exact.
    pub missing_years: Vec<i32>,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|e| format!("'{s}' is not a YYYY-MM-DD date: {e}"))
}

fn expand(entry: &str) -> Result<Vec<NaiveDate>, String> {
    match entry.split_once("..") {
        None => Ok(vec![parse_date(entry)?]),
        Some((a, b)) => {
            let (a, b) = (parse_date(a)?, parse_date(b)?);
            if b < a || b - a > Duration::days(31) {
                return Err(format!("range '{entry}' must run forwards and span at most a month"));
            }
            Ok(a.iter_days().take_while(|d| *d <= b).collect())
        }
    }
}

impl WorkCalendar {
    /// Builds the calendar from a file, checking every year: dates parse and fall in their
    /// year, no date is both a holiday and a make-up day, and make-up days fall on weekends.
    /// Every problem is reported, prefixed with its year.
    pub fn from_file(file: &CalendarFile) -> Result<Self, Vec<String>> {
        let mut cal = WorkCalendar::default();
        let mut errors = Vec::new();
        for (name, y) in &file.years {
            let Ok(year) = name.parse::<i32>() else {
                errors.push(format!("'{name}' is not a year"));
                continue;
            };
            let mut add = |entries: &[String], into: &mut HashSet<NaiveDate>, what: &str| {
                for e in entries {
                    match expand(e) {
                        Err(msg) => errors.push(format!("{year} {what}: {msg}")),
                        Ok(days) => {
                            for d in days {
                                if d.year() != year {
                                    errors.push(format!("{year} {what}: {d} is not in {year}"));
                                }
                                into.insert(d);
                            }
                        }
                    }
                }
            };
            add(&y.holidays, &mut cal.holidays, "holidays");
            add(&y.workdays, &mut cal.workdays, "workdays");
            cal.years.insert(year);
        }
        for d in cal.workdays.intersection(&cal.holidays) {
            errors.push(format!("{}: {d} is both a holiday and a make-up working day", d.year()));
        }
        for d in &cal.workdays {
            if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                errors.push(format!("{}: make-up working day {d} is a {:?}, not a weekend day", d.year(), d.weekday()));
            }
        }
        errors.sort();
        if errors.is_empty() {
            Ok(cal)
        } else {
            Err(errors)
        }
    }

    /// Builds the calendar from stored rows: the covered years and the exceptional days.
    pub fn from_days(
        years: impl IntoIterator<Item = i32>,
        holidays: impl IntoIterator<Item = NaiveDate>,
        workdays: impl IntoIterator<Item = NaiveDate>,
    ) -> Self {
        WorkCalendar {
            years: years.into_iter().collect(),
            holidays: holidays.into_iter().collect(),
            workdays: workdays.into_iter().collect(),
        }
    }

    /// The exceptional days of `year`: (holidays, make-up working days), sorted.
    pub fn days_of(&self, year: i32) -> (Vec<NaiveDate>, Vec<NaiveDate>) {
        let of = |set: &HashSet<NaiveDate>| {
            let mut v: Vec<NaiveDate> = set.iter().copied().filter(|d| d.year() == year).collect();
            v.sort();
            v
        };
        (of(&self.holidays), of(&self.workdays))
    }

    /// Parses and checks a calendar file's JSON text.
    pub fn from_json(text: &str) -> Result<Self, Vec<String>> {
        let file: CalendarFile = serde_json::from_str(text).map_err(|e| vec![format!("not a calendar file: {e}")])?;
        Self::from_file(&file)
    }

    /// The years covered.
    pub fn years(&self) -> Vec<i32> {
        self.years.iter().copied().collect()
    }

    /// Whether `year` is covered.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains(&year)
    }

    /// Whether `date` is a working day (Monday–Friday outside covered years).
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.workdays.contains(&date) {
            return true;
        }
        if self.holidays.contains(&date) {
            return false;
        }
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The end of the `n`th working day after `opened` (the opening day itself does not count).
    /// `None` only when the date would leave chrono's range.
    pub fn add_working_days(&self, opened: NaiveDate, n: u32) -> Option<Deadline> {
        let mut missing = BTreeSet::new();
        let mut note = |d: NaiveDate| {
            if !self.covers(d.year()) {
                missing.insert(d.year());
            }
        };
        let mut date = opened;
        note(date);
        let mut counted = 0;
        while counted < n {
            date = date.succ_opt()?;
            note(date);
            if self.is_working_day(date) {
                counted += 1;
            }
        }
        let due_at = time::date_start(date.succ_opt()?);
        let missing_years: Vec<i32> = missing.into_iter().collect();
        Some(Deadline { date, due_at, provisional: !missing_years.is_empty(), missing_years })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal() -> WorkCalendar {
        let text = include_str!("../../../deploy/calendar/cn-workdays-2020-2026.json");
        WorkCalendar::from_json(text).expect("the bundled calendar is valid")
    }

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    #[test]
    fn the_bundled_calendar_covers_2020_to_2026() {
        assert_eq!(cal().years(), (2020..=2026).collect::<Vec<_>>());
    }

    #[test]
    fn table_of_known_deadlines() {
        let c = cal();
        // (opened, working days, due date, why)
        let cases = [
            ("2025-09-30", 3, "2025-10-11", "National Day 10-01..10-08 off, Saturday 10-11 is a make-up day"),
            ("2025-09-26", 1, "2025-09-28", "Sunday 09-28 is a make-up day"),
            ("2025-09-26", 10, "2025-10-16", "09-28, 09-29, 09-30, 10-09, 10-10, 10-11, 10-13 … 10-16"),
            ("2026-02-13", 1, "2026-02-14", "Saturday 02-14 is a make-up day before Spring Festival"),
            ("2026-02-14", 1, "2026-02-24", "Spring Festival 02-15..02-23"),
            ("2026-11-20", 3, "2026-11-25", "an ordinary Friday: Mon, Tue, Wed"),
            ("2020-01-23", 1, "2020-02-03", "2020 Spring Festival extended to 02-02"),
            ("2024-04-30", 1, "2024-05-06", "Labour Day 05-01..05-05"),
            ("2023-12-29", 1, "2024-01-02", "New Year 2024-01-01 across the year boundary"),
            ("2025-06-03", 0, "2025-06-03", "zero days: the opening day itself"),
        ];
        for (opened, n, due, why) in cases {
            let dl = c.add_working_days(d(opened), n).unwrap();
            assert_eq!(dl.date, d(due), "{opened} + {n}: {why}");
            assert!(!dl.provisional, "{opened} + {n}");
            assert_eq!(dl.due_at, time::date_start(d(due) + Duration::days(1)), "ends at the next Beijing midnight");
        }
    }

    #[test]
    fn a_year_not_covered_gives_a_provisional_deadline_without_panicking() {
        let dl = cal().add_working_days(d("2026-12-30"), 10).unwrap();
        assert!(dl.provisional);
        assert_eq!(dl.missing_years, vec![2027]);
        // Monday–Friday assumed in 2027 (12-31 Thu counts in 2026): Jan 1 (Fri) … Jan 13 (Wed).
        assert_eq!(dl.date, d("2027-01-13"));
        let empty = WorkCalendar::default();
        assert_eq!(empty.add_working_days(d("2030-01-04"), 1).unwrap().missing_years, vec![2030]);
        assert!(empty.add_working_days(NaiveDate::MAX, 1).is_none());
    }

    #[test]
    fn bad_calendar_files_are_refused_with_every_reason() {
        let text = r#"{"years": {"2027": {"source": "x", "holidays": ["2027-02-30", "2026-12-31", "2027-10-08..2027-10-01"],
                       "workdays": ["2027-01-04", "2027-10-09"]},
                       "20x7": {"source": "x", "holidays": [], "workdays": []}}}"#;
        let errors = WorkCalendar::from_json(text).unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors.iter().any(|e| e.contains("2027-02-30")));
        assert!(errors.iter().any(|e| e.contains("2026-12-31 is not in 2027")));
        assert!(errors.iter().any(|e| e.contains("must run forwards")));
        assert!(errors.iter().any(|e| e.contains("2027-01-04 is a Mon")));
        assert!(errors.iter().any(|e| e.contains("'20x7' is not a year")));
    }
}
