//! Public disclosure (评价结果公开, docs/domain.md §6): satisfaction per department for the last full
//! month and the current one, for anyone, as JSON and as a zh-CN page. Department aggregates
//! only: no staff, no raters, nothing below a department.

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use hcp_domain::time::Month;
use hcp_domain::Summary;
use hcp_http::{ApiError, Problem};
use serde::{Deserialize, Serialize};

use crate::BoardState;

/// How long a browser or proxy may reuse the disclosure (it changes with every rating, but the
/// public does not need it to the second, and the cache shields the database).
const CACHE_CONTROL: &str = "public, max-age=60";

/// One department's results for a month.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DepartmentResult {
    /// Department id.
    pub department_id: String,
    /// Its name.
    pub name: String,
    /// Valid ratings (upheld appeals are not counted).
    pub total: i64,
    /// 好评 under the satisfaction policy.
    pub good: i64,
    /// 差评 (grades 1–2).
    pub bad: i64,
    /// 好评率, null without ratings.
    pub satisfaction_rate: Option<f64>,
}

/// One month of the disclosure.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MonthResults {
    /// `YYYY-MM` (Beijing time).
    pub month: String,
    /// Start of the month.
    pub from: DateTime<Utc>,
    /// End of what is counted: the month's end, or now for the current month.
    pub to: DateTime<Utc>,
    /// Whether the month is over.
    pub complete: bool,
    /// Every department of the directory, by 好评率 (highest first), then ratings, then id;
    /// departments without ratings last.
    pub departments: Vec<DepartmentResult>,
}

/// The disclosure: last full month, then the current one.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicResults {
    /// Whether 基本满意 counts as good (`three_is_good`) or neutral (`three_is_neutral`).
    pub policy: String,
    /// The months.
    pub months: Vec<MonthResults>,
}

/// Satisfaction per department, last full month and current month (no login).
#[utoipa::path(
    get,
    path = "/api/v1/public/satisfaction",
    tag = "stats",
    responses(
        (status = 200, description = "Per-department results", body = PublicResults),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn satisfaction(State(state): State<BoardState>) -> Result<Response, ApiError> {
    let results = results(&state, Utc::now()).await?;
    Ok(([(header::CACHE_CONTROL, CACHE_CONTROL)], Json(results)).into_response())
}

/// The disclosure page `/public` (zh-CN, rendered on the server, no script).
pub async fn page(State(state): State<BoardState>) -> Result<Response, ApiError> {
    let results = results(&state, Utc::now()).await?;
    Ok(([(header::CACHE_CONTROL, CACHE_CONTROL)], Html(render(&results))).into_response())
}

async fn results(state: &BoardState, now: DateTime<Utc>) -> Result<PublicResults, ApiError> {
    let current = Month::of(now);
    let mut months = Vec::new();
    for month in [current.previous(), current] {
        let (from, end) = month.range();
        let complete = end <= now;
        // Day buckets: the current month counts up to the end of today.
        let to = if complete { end } else { hcp_domain::time::day_start(now) + chrono::Duration::days(1) };
        let rows = state.store.department_counts(from, to).await?;
        let mut departments: Vec<DepartmentResult> = rows
            .into_iter()
            .map(|(department_id, name, counts)| {
                let Summary { total, good, bad, satisfaction_rate, .. } = counts.summary(state.policy);
                DepartmentResult { department_id, name, total, good, bad, satisfaction_rate }
            })
            .collect();
        departments.sort_by(|a, b| {
            let rate = |d: &DepartmentResult| d.satisfaction_rate.unwrap_or(-1.0);
            rate(b).total_cmp(&rate(a)).then(b.total.cmp(&a.total)).then(a.department_id.cmp(&b.department_id))
        });
        months.push(MonthResults { month: month.to_string(), from, to: to.min(now.max(from)), complete, departments });
    }
    let policy = match state.policy {
        hcp_domain::SatisfactionPolicy::ThreeIsGood => "three_is_good",
        hcp_domain::SatisfactionPolicy::ThreeIsNeutral => "three_is_neutral",
    };
    Ok(PublicResults { policy: policy.into(), months })
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn percent(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_else(|| "—".into())
}

fn render(r: &PublicResults) -> String {
    let mut sections = String::new();
    for m in &r.months {
        let (y, mo) = m.month.split_once('-').unwrap_or((&m.month, ""));
        let heading = if m.complete {
            format!("{y} 年 {} 月", mo.trim_start_matches('0'))
        } else {
            let as_of = m.to.with_timezone(&hcp_domain::time::beijing()).format("%Y-%m-%d %H:%M");
            format!("{y} 年 {} 月(截至 {as_of})", mo.trim_start_matches('0'))
        };
        let mut rows = String::new();
        for (i, d) in m.departments.iter().enumerate() {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>\n",
                i + 1,
                esc(&d.name),
                d.total,
                d.good,
                d.bad,
                percent(d.satisfaction_rate)
            ));
        }
        sections.push_str(&format!(
            "<section data-month=\"{}\"><h2>{heading}</h2>\n<table><thead><tr><th>序号</th><th>部门</th>\
             <th>评价数</th><th>好评</th><th>差评</th><th>好评率</th></tr></thead>\n<tbody>\n{rows}</tbody></table></section>\n",
            esc(&m.month)
        ));
    }
    let three = if r.policy == "three_is_neutral" {
        "“基本满意”不计入好评"
    } else {
        "“基本满意”计入好评"
    };
    format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>政务服务“好差评”结果公开</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 0 auto; max-width: 960px; padding: 16px; color: #1f2933; }}
h1 {{ font-size: 24px; color: #b71c1c; }} h2 {{ font-size: 18px; margin-top: 28px; }}
table {{ border-collapse: collapse; width: 100%; font-size: 15px; }}
th, td {{ border: 1px solid #d9dee3; padding: 6px 10px; text-align: left; }}
th {{ background: #f3f5f7; }} td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
p.note {{ color: #52606d; font-size: 13px; }}
</style></head>
<body><h1>政务服务“好差评”结果公开</h1>
<p class="note">按部门公开评价结果:好评率 = 好评数 ÷ 有效评价数,{three};经申诉核实不予计入的评价已剔除。数据每分钟更新。
Satisfaction per department (JSON: <a href="/api/v1/public/satisfaction">/api/v1/public/satisfaction</a>).</p>
{sections}</body></html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_names_and_shows_dashes_without_ratings() {
        let r = PublicResults {
            policy: "three_is_good".into(),
            months: vec![MonthResults {
                month: "2026-10".into(),
                from: Utc::now(),
                to: Utc::now(),
                complete: true,
                departments: vec![
                    DepartmentResult {
                        department_id: "D1".into(),
                        name: "<市>税务局".into(),
                        total: 3,
                        good: 2,
                        bad: 1,
                        satisfaction_rate: Some(2.0 / 3.0),
                    },
                    DepartmentResult {
                        department_id: "D2".into(),
                        name: "人社局".into(),
                        total: 0,
                        good: 0,
                        bad: 0,
                        satisfaction_rate: None,
                    },
                ],
            }],
        };
        let html = render(&r);
        assert!(html.contains(
            "<td>&lt;市&gt;税务局</td><td class=n>3</td><td class=n>2</td><td class=n>1</td><td class=n>66.7%</td>"
        ));
        assert!(
            html.contains("<td>人社局</td><td class=n>0</td><td class=n>0</td><td class=n>0</td><td class=n>—</td>")
        );
        assert!(html.contains("2026 年 10 月"));
    }
}
