//! The working-day calendar's admin endpoints: which years are loaded, add or replace a year
//! (when the State Council publishes the next one), and compute a deadline by hand.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use hcp_domain::calendar::{CalendarFile, CalendarYear};
use hcp_domain::{FieldError, ValidationErrors, WorkCalendar};
use hcp_http::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};
use prometheus::{register_int_counter_vec, IntCounterVec};
use serde::{Deserialize, Serialize};

use crate::DirectoryState;

/// `hcp_calendar_provisional_deadlines_total{year}`: deadlines computed past the calendar's data.
pub static PROVISIONAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "hcp_calendar_provisional_deadlines_total",
        "Deadlines computed with Monday-Friday because the calendar lacks a year",
        &["year"]
    )
    .expect("metric registers once")
});

/// The calendar years loaded.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CalendarYears {
    /// Covered years, ascending.
    pub years: Vec<i32>,
}

/// The years the stored calendar covers.
#[utoipa::path(get, path = "/api/v1/calendar/years", tag = "calendar",
    responses((status = 200, description = "Covered years", body = CalendarYears)))]
pub async fn years(State(state): State<DirectoryState>) -> Result<Json<CalendarYears>, ApiError> {
    Ok(Json(CalendarYears { years: state.store.load_calendar().await?.years() }))
}

/// A year as the admin sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct YearInput {
    /// The notice the dates come from.
    pub source: String,
    /// Days off: `YYYY-MM-DD` or inclusive ranges `YYYY-MM-DD..YYYY-MM-DD`.
    pub holidays: Vec<String>,
    /// Make-up working days (调休上班), weekend dates.
    pub workdays: Vec<String>,
}

/// Add or replace one year of the calendar (e.g. when next year's notice is published). The year
/// is checked whole (dates in the year, ranges forwards, make-up days on weekends) and replaces
/// the stored one in one transaction.
#[utoipa::path(put, path = "/api/v1/calendar/years/{year}", tag = "calendar",
    params(("year" = i32, Path, description = "The year")),
    request_body = YearInput,
    responses(
        (status = 200, description = "Stored; the covered years", body = CalendarYears),
        (status = 422, description = "A date is wrong", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_year(
    State(state): State<DirectoryState>,
    ApiPath(year): ApiPath<i32>,
    ApiJson(input): ApiJson<YearInput>,
) -> Result<Json<CalendarYears>, ApiError> {
    if !(1949..=9999).contains(&year) {
        return Err(ApiError::field("year", "out_of_range", "年份须在 1949 到 9999 之间", "year must be 1949 to 9999"));
    }
    let file = CalendarFile {
        description: String::new(),
        years: BTreeMap::from([(
            year.to_string(),
            CalendarYear { source: input.source.clone(), holidays: input.holidays, workdays: input.workdays },
        )]),
    };
    let calendar = WorkCalendar::from_file(&file).map_err(|errors| {
        ApiError::Validation(ValidationErrors(
            errors.into_iter().map(|e| FieldError::new("holidays", "invalid_date", e.clone(), e)).collect(),
        ))
    })?;
    state.store.import_calendar(&calendar, &BTreeMap::from([(year, input.source)])).await?;
    tracing::info!(year, "calendar year stored");
    years(State(state)).await
}

/// Query of the deadline calculator.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadlineParams {
    /// The opening day, YYYY-MM-DD.
    pub date: NaiveDate,
    /// Working days, 0–3650.
    pub n: u32,
}

/// A computed deadline.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadlineAnswer {
    /// The Nth working day after `date`.
    pub date: NaiveDate,
    /// When it ends (the next Beijing midnight).
    pub due_at: DateTime<Utc>,
    /// Whether a year on the way is missing from the calendar (Monday–Friday assumed).
    pub provisional: bool,
    /// The years the calendar needs.
    pub missing_years: Vec<i32>,
}

/// The end of the Nth working day after a date, on the stored calendar.
#[utoipa::path(get, path = "/api/v1/calendar/add-working-days", tag = "calendar",
    params(DeadlineParams),
    responses(
        (status = 200, description = "The deadline", body = DeadlineAnswer),
        (status = 400, description = "Bad parameters", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn add_working_days(
    State(state): State<DirectoryState>,
    ApiQuery(p): ApiQuery<DeadlineParams>,
) -> Result<Json<DeadlineAnswer>, ApiError> {
    if p.n > 3650 {
        return Err(ApiError::InvalidQuery("n 须在 0 到 3650 之间".into()));
    }
    let calendar = state.store.load_calendar().await?;
    let d = calendar.add_working_days(p.date, p.n).ok_or_else(|| ApiError::InvalidQuery("日期超出范围".into()))?;
    for y in &d.missing_years {
        PROVISIONAL.with_label_values(&[&y.to_string()]).inc();
        tracing::warn!(year = y, "calendar needs year {y}: deadline computed with Monday-Friday");
    }
    Ok(Json(DeadlineAnswer {
        date: d.date,
        due_at: d.due_at,
        provisional: d.provisional,
        missing_years: d.missing_years,
    }))
}
