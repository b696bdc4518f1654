//! The national / provincial export: ratings of a date range with the national field names
//! (`hcp_domain::export`), as JSON lines or CSV, streamed page by page (`GET
//! /api/v1/export/ratings` and `hcp export ratings`). Mapping: `docs/export.md`.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::{self, Stream, StreamExt};
use hcp_domain::export::{csv_header, NationalRecord, PfMap};
use hcp_domain::time::date_start;
use hcp_http::{ApiError, ApiQuery, Problem};
use hcp_store::{ExportCursor, Store};
use serde::Deserialize;

use crate::BoardState;

/// Longest range one export may cover, in days.
pub const MAX_EXPORT_DAYS: i64 = 366;
/// Ratings read per database round trip.
const PAGE: i64 = 2_000;

/// The two wire forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One JSON object per line (`application/x-ndjson`).
    Jsonl,
    /// RFC 4180 CSV with a header line and a UTF-8 byte-order mark (so spreadsheet software
    /// reads the Chinese text as UTF-8).
    Csv,
}

impl ExportFormat {
    /// Parses `jsonl` or `csv`.
    pub fn parse(s: &str) -> Option<ExportFormat> {
        match s {
            "jsonl" => Some(ExportFormat::Jsonl),
            "csv" => Some(ExportFormat::Csv),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        }
    }
}

/// Query of `GET /api/v1/export/ratings`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// First day (Beijing date, `YYYY-MM-DD`), inclusive.
    pub from: NaiveDate,
    /// Last day, inclusive (at most 366 days after `from`).
    pub to: NaiveDate,
    /// `jsonl` (default) or `csv`.
    pub format: Option<ExportFormat>,
}

/// The instants `[from, to)` of a range of Beijing dates, both inclusive; checked.
pub fn date_range(from: NaiveDate, to: NaiveDate) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    if to < from {
        return Err(ApiError::field("to", "before_from", "结束日期早于开始日期", "to is before from"));
    }
    if (to - from).num_days() >= MAX_EXPORT_DAYS {
        return Err(ApiError::field(
            "to",
            "range_too_long",
            format!("导出范围不得超过 {MAX_EXPORT_DAYS} 天"),
            format!("an export covers at most {MAX_EXPORT_DAYS} days"),
        ));
    }
    let end =
        to.succ_opt().ok_or_else(|| ApiError::field("to", "out_of_range", "日期超出范围", "date out of range"))?;
    Ok((date_start(from), date_start(end)))
}

/// The export as text chunks (the header first for CSV), one chunk per page of ratings, with
/// each channel's `pf` from `pfs` (a channel it leaves out is not exported).
pub fn export_stream(
    store: Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    format: ExportFormat,
    pfs: PfMap,
) -> impl Stream<Item = Result<String, hcp_store::Error>> + Send + 'static {
    let header = match format {
        ExportFormat::Csv => Some(format!("\u{feff}{}", csv_header())),
        ExportFormat::Jsonl => None,
    };
    let pages = stream::unfold(Some(None::<ExportCursor>), move |cursor| {
        let store = store.clone();
        let pfs = pfs.clone();
        async move {
            let cursor = cursor?;
            match store.export_page(from, to, cursor, PAGE).await {
                Err(e) => Some((Err(e), None)),
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = (rows.len() as i64 == PAGE).then(|| rows.last().map(|(c, _)| *c));
                    let mut chunk = String::new();
                    for record in
                        rows.into_iter().filter_map(|(_, f)| f).filter_map(|f| NationalRecord::from_facts(f, &pfs))
                    {
                        chunk.push_str(&match format {
                            ExportFormat::Jsonl => record.json_line(),
                            ExportFormat::Csv => record.csv_line(),
                        });
                    }
                    Some((Ok(chunk), next))
                }
            }
        }
    });
    stream::iter(header.map(Ok)).chain(pages)
}

/// Ratings of a date range with the national field names, as JSON lines or CSV.
#[utoipa::path(
    get,
    path = "/api/v1/export/ratings",
    tag = "stats",
    params(ExportParams),
    responses(
        (status = 200, description = "The ratings, oldest first; 12345 hotline ratings (no national channel code) are left out",
         content(("application/x-ndjson"), ("text/csv; charset=utf-8"))),
        (status = 422, description = "Bad range", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ratings(
    State(state): State<BoardState>,
    ApiQuery(q): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let (from, to) = date_range(q.from, q.to)?;
    let format = q.format.unwrap_or(ExportFormat::Jsonl);
    let name = format!("attachment; filename=\"hcp-ratings-{}-{}.{}\"", q.from, q.to, format.extension());
    let body = Body::from_stream(export_stream(state.store.clone(), from, to, format, state.export_pf.clone()));
    Ok(([(header::CONTENT_TYPE, format.content_type().to_owned()), (header::CONTENT_DISPOSITION, name)], body)
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_beijing_days_and_bounded() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let (from, to) = date_range(d("2026-10-01"), d("2026-10-31")).unwrap();
        assert_eq!(from.to_rfc3339(), "2026-09-30T16:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-10-31T16:00:00+00:00");
        assert!(date_range(d("2026-10-02"), d("2026-10-01")).is_err());
        assert!(date_range(d("2025-01-01"), d("2025-12-31")).is_ok());
        assert!(date_range(d("2024-01-01"), d("2025-01-01")).is_err());
    }
}
