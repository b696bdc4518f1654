//! The monthly performance report (绩效考核): per department, hall and staff member, the month's
//! ratings, 好评率, bad reviews, work orders rectified on time and appeals upheld — as XLSX (one
//! sheet per level) or CSV (one level), from `GET /api/v1/reports/monthly` and
//! `hcp report monthly`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hcp_domain::export::reads_as_formula;
use hcp_domain::report::{
    self, dimension_columns, ProcessReviewRow, ReportDimension, ReportLevel, ReportRow, COLUMNS, PROCESS_REVIEW_COLUMNS,
};
use hcp_domain::time::Month;
use hcp_domain::{Reach, SatisfactionPolicy, Scope};
use hcp_http::{ApiError, ApiQuery, Caller, Problem};
use hcp_store::Store;
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};
use serde::Deserialize;

use crate::BoardState;

/// The monthly report: each level with its rows, and the departments' founded process-cause bad
/// reviews for 论证.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Each level with its rows, in [`ReportLevel::ALL`] order.
    pub levels: Vec<(ReportLevel, Vec<ReportRow>)>,
    /// 待论证差评: founded process-cause bad reviews verified in the month, by department.
    pub process_review: Vec<ProcessReviewRow>,
    /// The evaluation dimensions graded in the month: two columns each after [`COLUMNS`], on
    /// every level.
    pub dimensions: Vec<ReportDimension>,
}

/// The CSV sheet named by `level`: a level's rows or the 论证 list.
pub const PROCESS_REVIEW_SHEET: &str = "process_review";

impl Report {
    /// One sheet as CSV with a byte-order mark: a level (`department`, `hall`, `staff`) or
    /// `process_review`; `None` for another name.
    pub fn csv(&self, sheet: &str) -> Option<String> {
        let text = if sheet == PROCESS_REVIEW_SHEET {
            report::process_review_csv(&self.process_review)
        } else {
            let level = ReportLevel::parse(sheet)?;
            let rows = self.levels.iter().find(|(l, _)| *l == level).map(|(_, r)| r.as_slice()).unwrap_or_default();
            report::csv(rows, &self.dimensions)
        };
        Some(format!("\u{feff}{text}"))
    }

    /// Rows per sheet, for a summary line.
    pub fn sizes(&self) -> Vec<String> {
        let mut out: Vec<String> = self.levels.iter().map(|(l, r)| format!("{} {}", l.title_zh(), r.len())).collect();
        out.push(format!("待论证差评 {}", self.process_review.len()));
        out
    }
}

/// Builds the report of `month` as of `now` (the current month counts up to now).
pub async fn build(
    store: &Store,
    policy: SatisfactionPolicy,
    month: Month,
    now: DateTime<Utc>,
) -> Result<Report, hcp_store::Error> {
    let (from, to) = month.range();
    let mut levels = Vec::new();
    for level in ReportLevel::ALL {
        let rows = store.report_units(level, from, to, now).await?;
        levels.push((level, rows.into_iter().map(|f| ReportRow::from_facts(f, policy)).collect()));
    }
    let process_review = store.process_review_list(from, to.min(now)).await?;
    Ok(Report { levels, process_review, dimensions: store.report_dimensions(from, to).await? })
}

/// Writes `text` at (`row`, `col`), with Excel's quote prefix when it reads as a formula: a string
/// cell is never evaluated, but one a user edits or re-saves as CSV could be.
fn write_text(sheet: &mut Worksheet, row: u32, col: u16, text: &str, quoted: &Format) -> Result<(), XlsxError> {
    if reads_as_formula(text) {
        sheet.write_string_with_format(row, col, text, quoted)?;
    } else {
        sheet.write_string(row, col, text)?;
    }
    Ok(())
}

/// The report as an XLSX workbook: a sheet per level, a header row, rates as percentages.
pub fn xlsx(month: Month, report: &Report) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let percent = Format::new().set_num_format("0.0%");
    let quoted = Format::new().set_quote_prefix();
    for (level, rows) in &report.levels {
        let sheet = book.add_worksheet();
        sheet.set_name(format!("{}{}", level.title_zh(), month))?;
        for (c, title) in COLUMNS.iter().enumerate() {
            sheet.write_string_with_format(0, c as u16, *title, &bold)?;
        }
        for (i, d) in report.dimensions.iter().enumerate() {
            for (j, title) in dimension_columns(d).iter().enumerate() {
                sheet.write_string_with_format(0, (COLUMNS.len() + 2 * i + j) as u16, title, &bold)?;
            }
        }
        sheet.set_column_width(1, 24)?;
        for (i, r) in rows.iter().enumerate() {
            let row = i as u32 + 1;
            for (c, text) in [&r.id, &r.name].into_iter().enumerate() {
                write_text(sheet, row, c as u16, text, &quoted)?;
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
            let verified =
                [r.appeals_upheld, r.verified.conduct, r.verified.process, r.verified.platform, r.verified.unfounded];
            for (c, n) in verified.iter().enumerate() {
                sheet.write_number(row, 11 + c as u16, *n as f64)?;
            }
            for (i, d) in report.dimensions.iter().enumerate() {
                let col = (COLUMNS.len() + 2 * i) as u16;
                let cell = r.dimensions.get(&d.code);
                sheet.write_number(row, col, cell.map_or(0, |c| c.ratings) as f64)?;
                if let Some(rate) = cell.and_then(|c| c.satisfaction_rate) {
                    sheet.write_number_with_format(row, col + 1, rate, &percent)?;
                }
            }
        }
    }
    let sheet = book.add_worksheet();
    sheet.set_name(format!("待论证差评{month}"))?;
    for (c, title) in PROCESS_REVIEW_COLUMNS.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, *title, &bold)?;
    }
    for (i, r) in report.process_review.iter().enumerate() {
        let row = i as u32 + 1;
        for (c, text) in r.cells().iter().enumerate() {
            match c {
                2 => sheet.write_number(row, 2, r.order_no as f64).map(|_| ())?,
                5 => sheet.write_number(row, 5, f64::from(r.grade)).map(|_| ())?,
                _ => write_text(sheet, row, c as u16, text, &quoted)?,
            }
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
    /// With `csv`: `department` (default), `region`, `hall`, `staff` or `process_review` (待论证差评: founded
    /// process-cause bad reviews verified in the month).
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
    let level = q.level.as_deref().unwrap_or("department");
    if ReportLevel::parse(level).is_none() && level != PROCESS_REVIEW_SHEET {
        return Err(ApiError::field(
            "level",
            "invalid",
            "层级须为 region、department、hall、staff 或 process_review",
            "level must be region, department, hall, staff or process_review",
        ));
    }
    let mut report = build(&state.store, state.policy, month, now).await?;
    let reach = caller.reach()?;
    if reach != Reach::All {
        for (level, rows) in &mut report.levels {
            let scope = match level {
                ReportLevel::Department => Scope::Department,
                ReportLevel::Hall => Scope::Hall,
                ReportLevel::Staff => Scope::Staff,
                ReportLevel::Region => Scope::Region,
            };
            let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            let mine = state.store.within_reach(scope, &ids, &reach).await?;
            rows.retain(|r| mine.contains(&r.id));
        }
        let ids: Vec<String> = report.process_review.iter().map(|r| r.department_id.clone()).collect();
        let mine = state.store.within_reach(Scope::Department, &ids, &reach).await?;
        report.process_review.retain(|r| mine.contains(&r.department_id));
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
            let text = report.csv(level).unwrap_or_default();
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, format!("attachment; filename=\"hcp-report-{month}-{level}.csv\"")),
                ],
                text,
            )
                .into_response())
        }
        _ => Err(ApiError::field("format", "invalid", "格式须为 xlsx 或 csv", "format must be xlsx or csv")),
    }
}
