//! The national / provincial rating record (docs/domain.md §3) and its two wire forms, JSON lines and
//! CSV. The mapping from the internal model is documented in `docs/export.md`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::time::beijing;

/// The field names, in CSV column order.
pub const FIELDS: [&str; 15] = [
    "projectNo",
    "taskCode",
    "taskName",
    "deptCode",
    "deptName",
    "areaCode",
    "pf",
    "satisfaction",
    "evalDetail",
    "writingEvaluation",
    "assessTime",
    "assessNumber",
    "userProp",
    "userName",
    "proManager",
];

/// Each channel's `pf` code in the provincial feed: the national codes
/// ([`Channel::national_pf`]), and for the 12345 hotline, which has none, a code the province
/// chooses. Set by `HCP_EXPORT_PF` (`hotline=2`, `hotline=none` to leave hotline ratings out, or
/// any `channel=code` to override a national one); the default puts the hotline in as 2
/// (移动端: the caller rates on their phone after the call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfMap(Vec<(Channel, Option<u8>)>);

impl Default for PfMap {
    fn default() -> Self {
        PfMap::parse(PfMap::DEFAULT).expect("the default mapping parses")
    }
}

impl PfMap {
    /// The documented default (`HCP_EXPORT_PF`).
    pub const DEFAULT: &'static str = "hotline=2";

    /// The national codes with `spec`'s overrides: comma-separated `channel=code`, code 1–7 or
    /// `none` (left out of the feed).
    pub fn parse(spec: &str) -> Result<PfMap, String> {
        let mut map: Vec<(Channel, Option<u8>)> = Channel::ALL.iter().map(|c| (*c, c.national_pf())).collect();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, code) = part.split_once('=').ok_or_else(|| format!("`{part}` is not channel=code"))?;
            let channel = Channel::parse(name.trim()).ok_or_else(|| format!("unknown channel `{}`", name.trim()))?;
            let code = match code.trim() {
                "none" => None,
                n => Some(
                    n.parse::<u8>()
                        .ok()
                        .filter(|c| (1..=7).contains(c))
                        .ok_or_else(|| format!("the pf of {} must be 1–7 or none, not `{n}`", channel.as_str()))?,
                ),
            };
            for entry in map.iter_mut().filter(|(c, _)| *c == channel) {
                entry.1 = code;
            }
        }
        Ok(PfMap(map))
    }

    /// The code of `channel`; `None`: not in the feed.
    pub fn pf(&self, channel: Channel) -> Option<u8> {
        self.0.iter().find(|(c, _)| *c == channel).and_then(|(_, code)| *code)
    }
}

/// One rating as the national platform names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NationalRecord {
    /// 办件编号 (service record number).
    pub project_no: String,
    /// 事项编码; empty when the rating named no service item.
    pub task_code: String,
    /// 事项名称.
    pub task_name: String,
    /// The responsible department's 18-character unified social credit code.
    pub dept_code: String,
    /// Its name.
    pub dept_name: String,
    /// 行政区划 code (the hall's region for hall service, else the department's).
    pub area_code: String,
    /// Channel code 1–7 ([`Channel::national_pf`]).
    pub pf: u8,
    /// 1–5.
    pub satisfaction: u8,
    /// Tag codes, then the dimension grades as `code:grade` in code order, comma-separated
    /// (`rude,slow_process,attitude:2,guide:4`; see [`eval_detail`]).
    pub eval_detail: String,
    /// The rater's text.
    pub writing_evaluation: String,
    /// `yyyy-MM-dd HH:mm:ss`, Beijing time.
    pub assess_time: String,
    /// 1 first rating, 2 follow-up.
    pub assess_number: u8,
    /// 1 person, 2 legal person.
    pub user_prop: u8,
    /// The rater's name, masked (`张*`) or empty: the export carries no more than staff see.
    pub user_name: String,
    /// The responsible staff member's name (empty when none was attributed).
    pub pro_manager: String,
}

/// The internal facts one record is built from.
#[derive(Debug, Clone)]
pub struct ExportFacts {
    /// Service record number.
    pub service_record_no: String,
    /// Item code and name.
    pub service_item: Option<(String, String)>,
    /// Responsible department: credit code and name.
    pub department: Option<(String, String)>,
    /// Region code of the hall, or of the department.
    pub area_code: Option<String>,
    /// The channel.
    pub channel: Channel,
    /// 1–5.
    pub grade: u8,
    /// Tag codes.
    pub tags: Vec<String>,
    /// Dimension grades (code, 1–5), in code order.
    pub dimensions: Vec<(String, u8)>,
    /// Text.
    pub comment: Option<String>,
    /// When rated.
    pub rated_at: DateTime<Utc>,
    /// 1 or 2.
    pub assess_number: u8,
    /// 1 or 2 when an identity was given.
    pub user_prop: Option<u8>,
    /// Masked name.
    pub name_masked: Option<String>,
    /// Responsible staff member's name.
    pub staff_name: Option<String>,
}

/// The `evalDetail` field: the tag codes as before, then each dimension grade as `code:grade`,
/// comma-separated. Codes are `[A-Za-z0-9_.-]`, so an item with a `:` is a dimension grade and
/// one without is a tag; a rating without dimension grades reads exactly as before.
pub fn eval_detail(tags: &[String], dimensions: &[(String, u8)]) -> String {
    tags.iter()
        .cloned()
        .chain(dimensions.iter().map(|(code, grade)| format!("{code}:{grade}")))
        .collect::<Vec<_>>()
        .join(",")
}

impl NationalRecord {
    /// The record of `f`; `None` for a channel `pfs` leaves out of the feed.
    pub fn from_facts(f: ExportFacts, pfs: &PfMap) -> Option<NationalRecord> {
        let pf = pfs.pf(f.channel)?;
        let (task_code, task_name) = f.service_item.unwrap_or_default();
        let (dept_code, dept_name) = f.department.unwrap_or_default();
        Some(NationalRecord {
            project_no: f.service_record_no,
            task_code,
            task_name,
            dept_code,
            dept_name,
            area_code: f.area_code.unwrap_or_default(),
            pf,
            satisfaction: f.grade,
            eval_detail: eval_detail(&f.tags, &f.dimensions),
            writing_evaluation: f.comment.unwrap_or_default(),
            assess_time: f.rated_at.with_timezone(&beijing()).format("%Y-%m-%d %H:%M:%S").to_string(),
            assess_number: f.assess_number,
            user_prop: f.user_prop.unwrap_or(1),
            user_name: f.name_masked.unwrap_or_default(),
            pro_manager: f.staff_name.unwrap_or_default(),
        })
    }

    /// The values in [`FIELDS`] order.
    fn values(&self) -> [String; 15] {
        [
            self.project_no.clone(),
            self.task_code.clone(),
            self.task_name.clone(),
            self.dept_code.clone(),
            self.dept_name.clone(),
            self.area_code.clone(),
            self.pf.to_string(),
            self.satisfaction.to_string(),
            self.eval_detail.clone(),
            self.writing_evaluation.clone(),
            self.assess_time.clone(),
            self.assess_number.to_string(),
            self.user_prop.to_string(),
            self.user_name.clone(),
            self.pro_manager.clone(),
        ]
    }

    /// One CSV line (RFC 4180: fields with a comma, quote or line break are quoted, quotes
    /// doubled; CRLF ends the line). A field starting with `=`, `+`, `-` or `@` gets a leading
    /// `'` so that a spreadsheet does not run a citizen's text as a formula.
    pub fn csv_line(&self) -> String {
        csv_row(&self.values())
    }

    /// One JSON line (with `\n`).
    pub fn json_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a record serializes");
        s.push('\n');
        s
    }
}

/// The CSV header line.
pub fn csv_header() -> String {
    csv_row(&FIELDS.map(String::from))
}

/// Whether a spreadsheet would read `text` as a formula: it starts with `=`, `+`, `-`, `@`, TAB
/// or CR (CSV injection, OWASP).
pub fn reads_as_formula(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// Text for a CSV cell, defused: text that [`reads_as_formula`] gets a leading `'`, which
/// spreadsheets show as text and do not evaluate.
pub fn spreadsheet_text(text: &str) -> std::borrow::Cow<'_, str> {
    if reads_as_formula(text) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

pub(crate) fn csv_row(values: &[String]) -> String {
    let mut line = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let v = spreadsheet_text(v);
        if v.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&v.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(&v);
        }
    }
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn facts() -> ExportFacts {
        ExportFacts {
            service_record_no: "SZ-1".into(),
            service_item: Some(("11440300MB2C92385R4442010001000".into(), "户口迁移".into())),
            department: Some(("11440300MB2C92385R".into(), "市公安局".into())),
            area_code: Some("440304".into()),
            channel: Channel::WindowEvaluator,
            grade: 2,
            tags: vec!["rude".into(), "slow_process".into()],
            dimensions: vec![],
            comment: Some("等了\"很久\",还说=1+1".into()),
            rated_at: Utc.with_ymd_and_hms(2026, 10, 31, 17, 5, 9).unwrap(),
            assess_number: 1,
            user_prop: None,
            name_masked: Some("张*".into()),
            staff_name: Some("陈一".into()),
        }
    }

    #[test]
    fn fields_and_formats() {
        let r = NationalRecord::from_facts(facts(), &PfMap::default()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.json_line()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = FIELDS.to_vec();
        expected.sort();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort();
        assert_eq!(keys_sorted, expected);
        assert_eq!(v["assessTime"], "2026-11-01 01:05:09", "Beijing time");
        assert_eq!(v["pf"], 4);
        assert_eq!(v["evalDetail"], "rude,slow_process");
        assert_eq!(v["userProp"], 1, "a person unless said otherwise");
        assert_eq!(
            r.csv_line(),
            "SZ-1,11440300MB2C92385R4442010001000,户口迁移,11440300MB2C92385R,市公安局,440304,4,2,\
             \"rude,slow_process\",\"等了\"\"很久\"\",还说=1+1\",2026-11-01 01:05:09,1,1,张*,陈一\r\n"
        );
        assert_eq!(csv_header().trim_end().split(',').collect::<Vec<_>>(), FIELDS);
    }

    #[test]
    fn dimension_grades_follow_the_tags_in_eval_detail() {
        let mut f = facts();
        f.dimensions = vec![("attitude".into(), 2), ("efficiency".into(), 4)];
        let r = NationalRecord::from_facts(f.clone(), &PfMap::default()).unwrap();
        assert_eq!(r.eval_detail, "rude,slow_process,attitude:2,efficiency:4");
        assert!(r.csv_line().contains(",\"rude,slow_process,attitude:2,efficiency:4\","));
        f.tags.clear();
        assert_eq!(NationalRecord::from_facts(f, &PfMap::default()).unwrap().eval_detail, "attitude:2,efficiency:4");
        assert_eq!(eval_detail(&[], &[]), "");
        // Without dimension grades the field is the tag list it always was.
        assert_eq!(eval_detail(&["rude".into()], &[]), "rude");
    }

    #[test]
    fn formulas_are_defused() {
        let mut f = facts();
        f.comment = Some("=HYPERLINK(\"x\")".into());
        assert!(NationalRecord::from_facts(f, &PfMap::default())
            .unwrap()
            .csv_line()
            .contains(",\"'=HYPERLINK(\"\"x\"\")\","));
        for lead in ["=", "+", "-", "@", "\t", "\r"] {
            assert_eq!(spreadsheet_text(&format!("{lead}1+1")), format!("'{lead}1+1"), "{lead:?}");
            let row = csv_row(&[format!("{lead}cmd|' /C calc'!A0"), "x".into()]);
            assert!(row.starts_with("'") || row.starts_with("\"'"), "{row:?}");
        }
        assert_eq!(spreadsheet_text("市公安局"), "市公安局");
        assert_eq!(spreadsheet_text("1-2"), "1-2");
    }

    #[test]
    fn the_hotline_is_in_the_feed_with_the_provinces_code() {
        let hotline = || ExportFacts { channel: Channel::Hotline, ..facts() };
        assert_eq!(NationalRecord::from_facts(hotline(), &PfMap::default()).unwrap().pf, 2);
        let six = PfMap::parse("hotline=6").unwrap();
        assert_eq!(NationalRecord::from_facts(hotline(), &six).unwrap().pf, 6);
        assert_eq!(NationalRecord::from_facts(hotline(), &PfMap::parse("hotline=none").unwrap()), None);
        // National codes stay unless overridden.
        for c in Channel::ALL.into_iter().filter(|c| *c != Channel::Hotline) {
            assert_eq!(six.pf(c), c.national_pf(), "{c:?}");
        }
        assert_eq!(PfMap::parse("app=1").unwrap().pf(Channel::App), Some(1));
        assert_eq!(PfMap::parse("").unwrap().pf(Channel::Hotline), None, "no override: the national table");
        for bad in ["hotline", "hotline=8", "hotline=0", "fax=1", "hotline=x"] {
            assert!(PfMap::parse(bad).is_err(), "{bad}");
        }
    }
}
