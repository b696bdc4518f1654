//! The monthly performance report (绩效考核, docs/domain.md §6): per department, hall and staff member,
//! the month's ratings and satisfaction with how its bad reviews were handled. Appealed-and-upheld
//! ratings do not count (they are out of the aggregates) and are reported on their own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::export::csv_row;
use crate::stats::{GradeCounts, SatisfactionPolicy};

/// Which units a report lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportLevel {
    /// 区域: every region of the tree (市, 区, 街道 …), each with the ones below it.
    Region,
    /// 部门.
    Department,
    /// 大厅.
    Hall,
    /// 工作人员.
    Staff,
}

impl ReportLevel {
    /// Every level, in report order.
    pub const ALL: [ReportLevel; 4] =
        [ReportLevel::Region, ReportLevel::Department, ReportLevel::Hall, ReportLevel::Staff];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportLevel::Region => "region",
            ReportLevel::Department => "department",
            ReportLevel::Hall => "hall",
            ReportLevel::Staff => "staff",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<ReportLevel> {
        ReportLevel::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The sheet / section title.
    pub fn title_zh(self) -> &'static str {
        match self {
            ReportLevel::Region => "区域",
            ReportLevel::Department => "部门",
            ReportLevel::Hall => "大厅",
            ReportLevel::Staff => "工作人员",
        }
    }
}

/// What the store counts for one unit in the month.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitFacts {
    /// Unit id.
    pub id: String,
    /// Its name in the directory (the id when it is no longer there).
    pub name: String,
    /// Counted ratings per grade.
    pub counts: GradeCounts,
    /// Work orders opened in the month (bad ratings attributed to the unit).
    pub work_orders: i64,
    /// Of those, rectified by their rectification deadline.
    pub rectified_on_time: i64,
    /// Rectified after the deadline.
    pub rectified_late: i64,
    /// Not rectified and past the deadline when the report was made.
    pub overdue_open: i64,
    /// Appeals upheld (the rating no longer counts).
    pub appeals_upheld: i64,
    /// Of its orders, how the verification (核实) came out, per cause.
    pub verified: VerifiedCounts,
    /// Counted grades per evaluation dimension (code), for the unit in the month.
    pub dimensions: BTreeMap<String, GradeCounts>,
}

/// An evaluation dimension the report has columns for: its code and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportDimension {
    /// Code.
    pub code: String,
    /// zh-CN name (the code when the catalogue no longer has it).
    pub name: String,
}

/// One dimension of one unit: how many graded it, and its 好评率 under the same policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DimensionCell {
    /// Grades given.
    pub ratings: i64,
    /// Good grades ÷ grades, `None` without grades.
    pub satisfaction_rate: Option<f64>,
}

/// Bad reviews verified (核实) per outcome: 属实 per cause, and 不属实. A staff member's
/// accountability counts `conduct` only (Shenzhen: "经核实确因窗口服务问题……的工作人员,要建立教育、
/// 约谈和问责机制"); a department's `process` ones are listed for 论证.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifiedCounts {
    /// 属实, 窗口服务 / 12345 咨询服务 (a person's conduct).
    pub conduct: i64,
    /// 属实, 内容、流程 (the department's rules or process).
    pub process: i64,
    /// 属实, the platform.
    pub platform: i64,
    /// 不属实.
    pub unfounded: i64,
}

impl VerifiedCounts {
    /// All founded ones (属实).
    pub fn founded(&self) -> i64 {
        self.conduct + self.process + self.platform
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    /// Unit id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Valid ratings.
    pub ratings: i64,
    /// 好评 under the policy.
    pub good: i64,
    /// 差评 (1–2).
    pub bad: i64,
    /// 好评率, `None` without ratings.
    pub satisfaction_rate: Option<f64>,
    /// Work orders opened.
    pub work_orders: i64,
    /// Rectified on time.
    pub rectified_on_time: i64,
    /// Rectified late.
    pub rectified_late: i64,
    /// Open past the deadline.
    pub overdue_open: i64,
    /// 按时整改率 = on time / (on time + late + overdue open); `None` when nothing was due.
    pub on_time_rate: Option<f64>,
    /// Appeals upheld.
    pub appeals_upheld: i64,
    /// Verification outcomes of its orders, per cause.
    pub verified: VerifiedCounts,
    /// Per evaluation dimension (code) graded for the unit.
    pub dimensions: BTreeMap<String, DimensionCell>,
}

impl ReportRow {
    /// The row of `f` under `policy`.
    pub fn from_facts(f: UnitFacts, policy: SatisfactionPolicy) -> ReportRow {
        let s = f.counts.summary(policy);
        let due = f.rectified_on_time + f.rectified_late + f.overdue_open;
        ReportRow {
            id: f.id,
            name: f.name,
            ratings: s.total,
            good: s.good,
            bad: s.bad,
            satisfaction_rate: s.satisfaction_rate,
            work_orders: f.work_orders,
            rectified_on_time: f.rectified_on_time,
            rectified_late: f.rectified_late,
            overdue_open: f.overdue_open,
            on_time_rate: (due > 0).then(|| f.rectified_on_time as f64 / due as f64),
            appeals_upheld: f.appeals_upheld,
            verified: f.verified,
            dimensions: f
                .dimensions
                .iter()
                .map(|(code, c)| {
                    let s = c.summary(policy);
                    (code.clone(), DimensionCell { ratings: s.total, satisfaction_rate: s.satisfaction_rate })
                })
                .collect(),
        }
    }
}

/// The titles of the two columns of `d` that follow [`COLUMNS`]: its grades and its 好评率.
pub fn dimension_columns(d: &ReportDimension) -> [String; 2] {
    [format!("{}评价数 {}.ratings", d.name, d.code), format!("{}好评率 {}.satisfaction_rate", d.name, d.code)]
}

/// Column titles, zh-CN with the English name.
pub const COLUMNS: [&str; 16] = [
    "编号 id",
    "名称 name",
    "评价数 ratings",
    "好评 good",
    "差评 bad",
    "好评率 satisfaction_rate",
    "差评工单 work_orders",
    "按时整改 rectified_on_time",
    "超时整改 rectified_late",
    "逾期未整改 overdue_open",
    "按时整改率 on_time_rate",
    "申诉成立 appeals_upheld",
    "核实属实·窗口服务 verified_conduct",
    "核实属实·内容流程 verified_process",
    "核实属实·平台 verified_platform",
    "核实不属实 verified_unfounded",
];

/// A rate as a fraction with four decimals (empty when undefined), for CSV.
fn rate(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.4}")).unwrap_or_default()
}

/// The report of one level as CSV (header line first, CRLF, RFC 4180): [`COLUMNS`], then two
/// columns per dimension of `dims` ([`dimension_columns`]; a unit nobody graded on it has 0 and
/// an empty rate).
pub fn csv(rows: &[ReportRow], dims: &[ReportDimension]) -> String {
    let mut header: Vec<String> = COLUMNS.map(String::from).to_vec();
    header.extend(dims.iter().flat_map(dimension_columns));
    let mut out = csv_row(&header);
    for r in rows {
        let mut cells = vec![
            r.id.clone(),
            r.name.clone(),
            r.ratings.to_string(),
            r.good.to_string(),
            r.bad.to_string(),
            rate(r.satisfaction_rate),
            r.work_orders.to_string(),
            r.rectified_on_time.to_string(),
            r.rectified_late.to_string(),
            r.overdue_open.to_string(),
            rate(r.on_time_rate),
            r.appeals_upheld.to_string(),
            r.verified.conduct.to_string(),
            r.verified.process.to_string(),
            r.verified.platform.to_string(),
            r.verified.unfounded.to_string(),
        ];
        for d in dims {
            let cell = r.dimensions.get(&d.code);
            cells.push(cell.map_or(0, |c| c.ratings).to_string());
            cells.push(rate(cell.and_then(|c| c.satisfaction_rate)));
        }
        out.push_str(&csv_row(&cells));
    }
    out
}

/// A founded bad review whose verified cause is the department's content or process, listed in
/// the department's monthly report for 论证 / reform (Shenzhen: "对经核实确因行政部门依法行使职权的
/// 内容、流程问题获得差评意见较多的部门,要及时论证、倒逼改革").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessReviewRow {
    /// The responsible department.
    pub department_id: String,
    /// Its name.
    pub department_name: String,
    /// The work order's number.
    pub order_no: i64,
    /// When it was verified (Beijing time, `yyyy-MM-dd HH:mm:ss`).
    pub verified_at: String,
    /// The service item (事项) rated, if known.
    pub service_item: String,
    /// The grade (1–2).
    pub grade: i16,
    /// The rating's tag codes, comma-separated.
    pub tags: String,
    /// The rater's words.
    pub text: String,
    /// The handler's verification note.
    pub verify_note: String,
    /// 流程论证 measures recorded so far, `;`-separated.
    pub reviews: String,
}

/// Column titles of the 论证 list.
pub const PROCESS_REVIEW_COLUMNS: [&str; 10] = [
    "部门编号 department_id",
    "部门 department_name",
    "工单号 order_no",
    "核实时间 verified_at",
    "事项 service_item",
    "评价等级 grade",
    "标签 tags",
    "评价内容 text",
    "核实说明 verify_note",
    "论证记录 reviews",
];

impl ProcessReviewRow {
    /// The row's cells, in [`PROCESS_REVIEW_COLUMNS`] order.
    pub fn cells(&self) -> [String; 10] {
        [
            self.department_id.clone(),
            self.department_name.clone(),
            self.order_no.to_string(),
            self.verified_at.clone(),
            self.service_item.clone(),
            self.grade.to_string(),
            self.tags.clone(),
            self.text.clone(),
            self.verify_note.clone(),
            self.reviews.clone(),
        ]
    }
}

/// The 论证 list as CSV (header line first, CRLF, RFC 4180).
pub fn process_review_csv(rows: &[ProcessReviewRow]) -> String {
    let mut out = csv_row(&PROCESS_REVIEW_COLUMNS.map(String::from));
    for r in rows {
        out.push_str(&csv_row(&r.cells()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_csv() {
        let row = ReportRow::from_facts(
            UnitFacts {
                id: "D1".into(),
                name: "市\"公安\"局".into(),
                counts: GradeCounts([1, 1, 1, 0, 5]),
                work_orders: 3,
                rectified_on_time: 1,
                rectified_late: 1,
                overdue_open: 0,
                appeals_upheld: 1,
                verified: VerifiedCounts { conduct: 2, process: 1, platform: 0, unfounded: 1 },
                dimensions: [
                    ("attitude".into(), GradeCounts([0, 1, 0, 2, 1])),
                    ("guide".into(), GradeCounts::default()),
                ]
                .into(),
            },
            SatisfactionPolicy::ThreeIsGood,
        );
        assert_eq!((row.ratings, row.good, row.bad), (8, 6, 2));
        assert_eq!(row.on_time_rate, Some(0.5));
        assert_eq!(row.dimensions["attitude"], DimensionCell { ratings: 4, satisfaction_rate: Some(0.75) });
        let text = csv(std::slice::from_ref(&row), &[]);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0].split(',').count(), 16);
        assert_eq!(lines[1], "D1,\"市\"\"公安\"\"局\",8,6,2,0.7500,3,1,1,0,0.5000,1,2,1,0,1");
        // Two columns per dimension, in the order given; a dimension nobody graded is 0 and empty.
        let dims = [
            ReportDimension { code: "attitude".into(), name: "服务态度".into() },
            ReportDimension { code: "speed".into(), name: "办事效率".into() },
        ];
        let text = csv(&[row], &dims);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(lines[0].ends_with(
            ",服务态度评价数 attitude.ratings,服务态度好评率 attitude.satisfaction_rate,\
             办事效率评价数 speed.ratings,办事效率好评率 speed.satisfaction_rate"
        ));
        assert!(lines[1].ends_with(",0,1,4,0.7500,0,"), "{}", lines[1]);
        let none =
            ReportRow::from_facts(UnitFacts { id: "S".into(), ..Default::default() }, SatisfactionPolicy::ThreeIsGood);
        assert_eq!((none.satisfaction_rate, none.on_time_rate), (None, None));
    }
}
