//! The working-day calendar tables.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use hcp_domain::WorkCalendar;

use crate::{Error, Store};

impl Store {
    /// Replaces the years of `calendar` (their exceptional days) in one transaction; other
    /// years stay. `sources` names the notice of each year.
    pub async fn import_calendar(&self, calendar: &WorkCalendar, sources: &BTreeMap<i32, String>) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        for year in calendar.years() {
            let source = sources.get(&year).cloned().unwrap_or_default();
            sqlx::query(
                "INSERT INTO calendar_years (year, source) VALUES ($1, $2)
                 ON CONFLICT (year) DO UPDATE SET source = EXCLUDED.source, imported_at = now()",
            )
            .bind(year)
            .bind(&source)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM calendar_days WHERE year = $1").bind(year).execute(&mut *tx).await?;
            let (holidays, workdays) = calendar.days_of(year);
            let kinds: Vec<&str> =
                holidays.iter().map(|_| "holiday").chain(workdays.iter().map(|_| "workday")).collect();
            let days: Vec<NaiveDate> = holidays.into_iter().chain(workdays).collect();
            sqlx::query("INSERT INTO calendar_days (day, kind, year) SELECT d, k, $3 FROM UNNEST($1::date[], $2::text[]) AS t(d, k)")
                .bind(&days)
                .bind(&kinds)
                .bind(year)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// The stored calendar (empty when none was imported: every deadline is then provisional).
    pub async fn load_calendar(&self) -> Result<WorkCalendar, Error> {
        let years: Vec<i32> = sqlx::query_scalar("SELECT year FROM calendar_years").fetch_all(&self.pool).await?;
        let days: Vec<(NaiveDate, String)> =
            sqlx::query_as("SELECT day, kind FROM calendar_days").fetch_all(&self.pool).await?;
        let holidays = days.iter().filter(|(_, k)| k == "holiday").map(|(d, _)| *d);
        let workdays = days.iter().filter(|(_, k)| k == "workday").map(|(d, _)| *d);
        Ok(WorkCalendar::from_days(years, holidays, workdays))
    }
}
