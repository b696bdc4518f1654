//! The monthly performance report (绩效考核): per department, hall and staff member, the month's
//! ratings, 好评率, bad reviews, work orders rectified on time and appeals upheld — as XLSX (one
//! sheet per level) or CSV (one level), from `GET /api/v1/reports/monthly` and
//! `hcp report monthly`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hcp_domain::export::reads_as_formula;
use hcp_domain::report::{self, ReportLevel, ReportRow, COLUMNS};
use hcp_domain::time::Month;
use hcp_domain::{Reach, SatisfactionPolicy, Scope};
use hcp_http::{ApiError, ApiQuery, Caller, Problem};
use hcp_store::Store;
use rust_xlsxwriter::{Format, Workbook, XlsxError};
use serde::Deserialize;

use crate::BoardState;

/// The report's levels with their rows.
pub type Report = Vec<(ReportLevel, Vec<ReportRow>)>;

/// Builds the report of `month` as of `now` (the current month counts up to now).
pub async fn build(
    store: &Store,
    policy: SatisfactionPolicy,
    month: Month,
    now: DateTime<Utc>,
) -> Result<Report, hcp_store::Error> {
    let (from, to) = month.range();
    let mut out = Vec::new();
    for level in ReportLevel::ALL {
        let rows = store.report_units(level, from, to, now).await?;
        out.push((level, rows.into_iter().map(|f| ReportRow::from_facts(f, policy)).collect()));
    }
    Ok(out)
}

/// The report as an XLSX workbook: a sheet per level, a header row, rates as percentages.
pub fn xlsx(month: Month, report: &Report) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let percent = Format::new().set_num_format("0.0%");
    let quoted = Format::new().set_quote_prefix();
    for (level, rows) in report {
        let sheet = book.add_worksheet();
        sheet.set_name(format!("{}{}", level.title_zh(), month))?;
        for (c, title) in COLUMNS.iter().enumerate() {
            sheet.write_string_with_format(0, c as u16, *title, &bold)?;
        }
        sheet.set_column_width(1, 24)?;
        for (i, r) in rows.iter().enumerate() {
            let row = i as u32 + 1;
            for (c, text) in [&r.id, &r.name].into_iter().enumerate() {
                // A string cell is never evaluated, but one a user edits or re-saves as CSV could
                // be: text that reads as a formula carries Excel's quote prefix (shown as typed).
                if reads_as_formula(text) {
                    sheet.write_string_with_format(row, c as u16, text, &quoted)?;
                } else {
                    sheet.write_string(row, c as u16, text)?;
                }
            }
            let counts = [r.ratings, r.good, r.bad];
            for (c, n) in counts.iter().enumerate() {
                sheet.write_number(row, 2 + c as u16, *n as f64)?;
            }
            if let Some(rate) = r.satisfaction_rate {
                sheet.write_number_with_format(row, 5, rate, &percent)?;
            }
            let orders = [r.work_orders, r.rectified_on_time, r.rectified_late, r.overdue_open];
            for (c, n) in orders.iter().enumerate() {
                sheet.write_number(row, 6 + c as u16, *n as f64)?;
            }
            if let Some(rate) = r.on_time_rate {
                sheet.write_number_with_format(row, 10, rate, &percent)?;
            }
            sheet.write_number(row, 11, r.appeals_upheld as f64)?;
        }
    }
    book.save_to_buffer()
}

/// Query of `GET /api/v1/reports/monthly`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// `YYYY-MM` (Beijing time).
    pub month: String,
    /// `xlsx` (default: every level, a sheet each) or `csv` (one level).
    pub format: Option<String>,
    /// With `csv`: `department` (default), `hall` or `staff`.
    pub level: Option<String>,
}

/// The monthly performance report of departments, halls and staff within the caller's reach (a
/// supervisor's region, a handler's department and its staff; everything for admins and auditors).
#[utoipa::path(
    get,
    path = "/api/v1/reports/monthly",
    tag = "stats",
    params(ReportParams),
    responses(
        (status = 200, description = "The report",
         content(("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), ("text/csv; charset=utf-8"))),
        (status = 422, description = "Bad month, format or level", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn monthly(
    State(state): State<BoardState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ReportParams>,
) -> Result<Response, ApiError> {
    let month = Month::parse(&q.month)
        .ok_or_else(|| ApiError::field("month", "invalid", "月份格式须为 YYYY-MM", "month must be YYYY-MM"))?;
    let now = Utc::now();
    if month.start() > now {
        return Err(ApiError::field("month", "future", "该月尚未开始", "the month has not begun"));
    }
    let format = q.format.as_deref().unwrap_or("xlsx");
    let level = match q.level.as_deref() {
        None => ReportLevel::Department,
        Some(l) => ReportLevel::parse(l).ok_or_else(|| {
            ApiError::field(
                "level",
                "invalid",
                "层级须为 department、hall 或 staff",
                "level must be department, hall or staff",
            )
        })?,
    };
    let mut report = build(&state.store, state.policy, month, now).await?;
    let reach = caller.reach()?;
    if reach != Reach::All {
        for (level, rows) in &mut report {
            let scope = match level {
                ReportLevel::Department => Scope::Department,
                ReportLevel::Hall => Scope::Hall,
                ReportLevel::Staff => Scope::Staff,
            };
            let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            let mine = state.store.within_reach(scope, &ids, &reach).await?;
            rows.retain(|r| mine.contains(&r.id));
        }
    }
    let name = |ext: &str| format!("attachment; filename=\"hcp-report-{month}.{ext}\"");
    match format {
        "xlsx" => {
            let bytes = xlsx(month, &report).map_err(|e| ApiError::Internal(format!("xlsx: {e}")))?;
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
                    ),
                    (header::CONTENT_DISPOSITION, name("xlsx")),
                ],
                bytes,
            )
                .into_response())
        }
        "csv" => {
            let rows = report.iter().find(|(l, _)| *l == level).map(|(_, r)| r.as_slice()).unwrap_or_default();
            let text = format!("\u{feff}{}", report::csv(rows));
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"hcp-report-{month}-{}.csv\"", level.as_str()),
                    ),
                ],
                text,
            )
                .into_response())
        }
        _ => Err(ApiError::field("format", "invalid", "格式须为 xlsx 或 csv", "format must be xlsx or csv")),
    }
}
