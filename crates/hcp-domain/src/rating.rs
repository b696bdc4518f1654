//! The rating: what a client submits ([`RatingInput`]) and the event ingest publishes
//! ([`RatingSubmitted`], contract `schemas/rating-submitted.v1.json`).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::pii::{RaterIdentity, RaterInput, SealedRater};
use crate::{Channel, FieldError, Grade, Stage, ValidationErrors};

/// Seals a rater's identity (user_prop, identity) — [`crate::PiiCipher::seal`] with a fresh nonce.
pub type Sealer<'a> = &'a dyn Fn(u8, &RaterIdentity) -> SealedRater;

/// Schema id of [`RatingSubmitted`], carried in the `hcp-schema` Kafka header.
pub const RATING_SUBMITTED_SCHEMA: &str = "hcp.rating.submitted.v1";

/// Longest service record number / directory id we accept.
pub const MAX_ID_CHARS: usize = 64;
/// Longest free-text comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 1000;
/// Most tags on one rating.
pub const MAX_TAGS: usize = 10;
/// Longest tag code.
pub const MAX_TAG_CHARS: usize = 32;
/// Most dimension grades on one rating.
pub const MAX_DIMENSIONS: usize = 10;
/// How far a client clock may run ahead of ours.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);
/// Oldest rating accepted (an offline terminal replaying its queue).
pub const MAX_RATING_AGE: Duration = Duration::days(30);

/// Whether `code` is a well-formed tag or dimension code: 1 to [`MAX_TAG_CHARS`] ASCII letters,
/// digits, `_`, `.` or `-` (so a comma or colon never appears in one: `evalDetail` joins them).
pub fn is_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_TAG_CHARS
        && code.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// 首评 or 追评 (`assessNumber` 1 / 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum AssessNumber {
    /// The first rating of a (service record, stage).
    First,
    /// The one follow-up rating (追评), which replaces the first in statistics.
    FollowUp,
}

impl AssessNumber {
    /// 1 or 2.
    pub fn value(self) -> u8 {
        match self {
            AssessNumber::First => 1,
            AssessNumber::FollowUp => 2,
        }
    }
}

impl TryFrom<u8> for AssessNumber {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, String> {
        match v {
            1 => Ok(AssessNumber::First),
            2 => Ok(AssessNumber::FollowUp),
            _ => Err(format!("assess_number must be 1 or 2, got {v}")),
        }
    }
}

impl From<AssessNumber> for u8 {
    fn from(a: AssessNumber) -> u8 {
        a.value()
    }
}

/// A rating as a channel client posts it. Loosely typed on purpose: [`RatingInput::validate`]
/// reports every failing field at once, in Chinese and English.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RatingInput {
    /// Channel wire name, e.g. `window_evaluator`.
    #[cfg_attr(feature = "openapi", schema(example = "window_evaluator", required = true))]
    pub channel: Option<String>,
    /// Stage wire name: `acceptance`, `pickup`, `online` or `hotline`.
    #[cfg_attr(feature = "openapi", schema(example = "acceptance", required = true))]
    pub stage: Option<String>,
    /// 办件编号 (national `projectNo`).
    #[cfg_attr(feature = "openapi", schema(example = "SZ20261122000123", required = true))]
    pub service_record_no: Option<String>,
    /// 事项编码 (national `taskCode`).
    pub service_item_code: Option<String>,
    /// Department id as the client reported it.
    pub department_id: Option<String>,
    /// Service hall id as reported.
    pub hall_id: Option<String>,
    /// Window id as reported.
    pub window_id: Option<String>,
    /// Staff id as reported (`proManager`).
    pub staff_id: Option<String>,
    /// Device id as reported.
    pub device_id: Option<String>,
    /// 1..=5: 5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 5, example = 5, required = true))]
    pub grade: Option<i64>,
    /// Tag codes (`evalDetail`).
    pub tags: Option<Vec<String>>,
    /// Optional grades per evaluation dimension (评价维度), beside the overall grade: dimension
    /// code → 1..=5, at most 10, each from the directory's dimension catalogue and offered on
    /// the rating's channel (`docs/domain.md` §2).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<std::collections::BTreeMap<String, i64>>,
        example = json!({"attitude": 5, "efficiency": 4})))]
    pub dimensions: Option<BTreeMap<String, i64>>,
    /// Free text (`writingEvaluation`).
    pub comment: Option<String>,
    /// When the rater rated; defaults to the time ingest received it.
    pub rated_at: Option<DateTime<FixedOffset>>,
    /// 1 (first) or 2 (follow-up); default 1.
    pub assess_number: Option<i64>,
    /// The rater's identity, if given: sealed by ingest before it leaves the request.
    pub rater: Option<RaterInput>,
}

/// The event on `hcp.rating.submitted.v1`: a validated rating with its ingest-assigned id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RatingSubmitted {
    /// UUIDv7 assigned at ingest.
    pub rating_id: Uuid,
    /// Where the rating came from.
    pub channel: Channel,
    /// Which stage it rates.
    pub stage: Stage,
    /// 办件编号; the Kafka key.
    pub service_record_no: String,
    /// 事项编码.
    #[serde(default)]
    pub service_item_code: Option<String>,
    /// Department id as reported.
    #[serde(default)]
    pub department_id: Option<String>,
    /// Hall id as reported.
    #[serde(default)]
    pub hall_id: Option<String>,
    /// Window id as reported.
    #[serde(default)]
    pub window_id: Option<String>,
    /// Staff id as reported.
    #[serde(default)]
    pub staff_id: Option<String>,
    /// Device id as reported.
    #[serde(default)]
    pub device_id: Option<String>,
    /// The grade.
    #[cfg_attr(feature = "openapi", schema(value_type = u8, minimum = 1, maximum = 5))]
    pub grade: Grade,
    /// Tag codes.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Grades per evaluation dimension (code → grade); optional in v1: absent when none was
    /// given, so events without it decode as before and readers written before it still read
    /// events that carry none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, u8>))]
    pub dimensions: BTreeMap<String, Grade>,
    /// Free text.
    #[serde(default)]
    pub comment: Option<String>,
    /// When the rater rated.
    pub rated_at: DateTime<Utc>,
    /// When ingest received it.
    pub received_at: DateTime<Utc>,
    /// First rating or follow-up.
    #[cfg_attr(feature = "openapi", schema(value_type = u8, minimum = 1, maximum = 2))]
    pub assess_number: AssessNumber,
    /// The rater's identity, masked and sealed (AES-256-GCM); absent when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rater: Option<SealedRater>,
}

fn err(field: &str, code: &'static str, zh: String, en: String) -> FieldError {
    FieldError::new(field, code, zh, en)
}

fn required(field: &str) -> FieldError {
    err(field, "required", format!("缺少必填字段 {field}"), format!("{field} is required"))
}

/// A citizen's comment as stored: surrounding whitespace trimmed, line breaks kept as `\n`,
/// every other control character (NUL, escape sequences, a leading TAB or CR that spreadsheets
/// read as a formula) removed.
fn clean_comment(comment: &str) -> String {
    let kept: String = comment.chars().filter(|&c| c == '\n' || !c.is_control()).collect();
    kept.trim().to_owned()
}

fn check_id(errors: &mut Vec<FieldError>, field: &str, value: Option<&str>) {
    let Some(v) = value else { return };
    let n = v.chars().count();
    if n == 0 || n > MAX_ID_CHARS {
        errors.push(err(
            field,
            "length",
            format!("{field} 长度须为 1 到 {MAX_ID_CHARS} 个字符"),
            format!("{field} must be 1 to {MAX_ID_CHARS} characters"),
        ));
    } else if v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        errors.push(err(
            field,
            "format",
            format!("{field} 不能包含空白或控制字符"),
            format!("{field} must not contain whitespace or control characters"),
        ));
    }
}

impl RatingInput {
    /// Validates the input and turns it into the event, with `rating_id` and `received_at`
    /// assigned by ingest. Reports every failing field.
    pub fn validate(self, rating_id: Uuid, received_at: DateTime<Utc>) -> Result<RatingSubmitted, ValidationErrors> {
        self.validate_with(rating_id, received_at, None)
    }

    /// [`RatingInput::validate`], sealing the rater's identity with `seal` (user_prop, identity).
    /// Without a sealer an identity is refused (it is never stored in clear).
    pub fn validate_with(
        mut self,
        rating_id: Uuid,
        received_at: DateTime<Utc>,
        seal: Option<Sealer<'_>>,
    ) -> Result<RatingSubmitted, ValidationErrors> {
        let mut errors = Vec::new();
        let rater = match (self.rater.take(), seal) {
            (None, _) => None,
            (Some(_), None) => {
                errors.push(err(
                    "rater",
                    "not_accepted",
                    "本服务未配置个人信息加密密钥,不能接收评价人身份信息".into(),
                    "this service has no encryption key for personal data and cannot accept a rater identity".into(),
                ));
                None
            }
            (Some(input), Some(seal)) => match input.check() {
                Ok((prop, identity)) => Some(seal(prop, &identity)),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            },
        };
        let channel = match self.channel.as_deref() {
            None => {
                errors.push(required("channel"));
                None
            }
            Some(s) => Channel::parse(s).or_else(|| {
                let allowed: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
                errors.push(err(
                    "channel",
                    "unknown_value",
                    format!("未知的评价渠道 “{s}”,可选值:{}", allowed.join("、")),
                    format!("unknown channel '{s}', expected one of: {}", allowed.join(", ")),
                ));
                None
            }),
        };
        let stage = match self.stage.as_deref() {
            None => {
                errors.push(required("stage"));
                None
            }
            Some(s) => Stage::parse(s).or_else(|| {
                errors.push(err(
                    "stage",
                    "unknown_value",
                    format!("未知的评价环节 “{s}”,可选值:acceptance、pickup、online、hotline"),
                    format!("unknown stage '{s}', expected one of: acceptance, pickup, online, hotline"),
                ));
                None
            }),
        };
        if self.service_record_no.is_none() {
            errors.push(required("service_record_no"));
        }
        let grade = match self.grade {
            None => {
                errors.push(required("grade"));
                None
            }
            Some(g) => u8::try_from(g).ok().and_then(Grade::new).or_else(|| {
                errors.push(err(
                    "grade",
                    "out_of_range",
                    format!("评价等级须为 1 到 5 的整数(5 非常满意 … 1 非常不满意),收到 {g}"),
                    format!("grade must be an integer from 1 to 5, got {g}"),
                ));
                None
            }),
        };
        let assess_number = match self.assess_number {
            None => Some(AssessNumber::First),
            Some(n) => u8::try_from(n).ok().and_then(|n| AssessNumber::try_from(n).ok()).or_else(|| {
                errors.push(err(
                    "assess_number",
                    "out_of_range",
                    format!("评价次数须为 1(首评)或 2(追评),收到 {n}"),
                    format!("assess_number must be 1 (first) or 2 (follow-up), got {n}"),
                ));
                None
            }),
        };
        let mut dimensions = BTreeMap::new();
        for (code, g) in self.dimensions.take().unwrap_or_default() {
            match u8::try_from(g).ok().and_then(Grade::new) {
                Some(grade) => {
                    dimensions.insert(code, grade);
                }
                None => errors.push(err(
                    &format!("dimensions.{code}"),
                    "out_of_range",
                    format!("维度评价等级须为 1 到 5 的整数,收到 {g}"),
                    format!("a dimension grade must be an integer from 1 to 5, got {g}"),
                )),
            }
        }
        let rated_at = self.rated_at.map(|t| t.with_timezone(&Utc)).unwrap_or(received_at);
        if rated_at > received_at + MAX_CLOCK_SKEW {
            errors.push(err(
                "rated_at",
                "in_future",
                "评价时间不能晚于当前时间".into(),
                "rated_at must not be in the future".into(),
            ));
        } else if rated_at < received_at - MAX_RATING_AGE {
            errors.push(err(
                "rated_at",
                "too_old",
                format!("评价时间不能早于 {} 天前", MAX_RATING_AGE.num_days()),
                format!("rated_at must be within the last {} days", MAX_RATING_AGE.num_days()),
            ));
        }
        let (Some(channel), Some(stage), Some(service_record_no), Some(grade), Some(assess_number)) =
            (channel, stage, self.service_record_no, grade, assess_number)
        else {
            // Field-level checks that do not need the typed event still run, so the client sees all.
            check_id(&mut errors, "service_item_code", self.service_item_code.as_deref());
            return Err(ValidationErrors(errors));
        };
        let event = RatingSubmitted {
            rating_id,
            channel,
            stage,
            service_record_no,
            service_item_code: self.service_item_code,
            department_id: self.department_id,
            hall_id: self.hall_id,
            window_id: self.window_id,
            staff_id: self.staff_id,
            device_id: self.device_id,
            grade,
            tags: self.tags.unwrap_or_default(),
            dimensions,
            comment: self.comment.as_deref().map(clean_comment).filter(|c| !c.is_empty()),
            rated_at,
            received_at,
            assess_number,
            rater,
        };
        if let Err(ValidationErrors(more)) = event.check() {
            errors.extend(more);
        }
        if errors.is_empty() {
            Ok(event)
        } else {
            Err(ValidationErrors(errors))
        }
    }
}

impl RatingSubmitted {
    /// Checks the invariants every event must hold, whoever produced it: lengths, tag format,
    /// channel/stage agreement, and that a 差评 carries evidence (docs/domain.md §2).
    pub fn check(&self) -> Result<(), ValidationErrors> {
        let mut errors = Vec::new();
        check_id(&mut errors, "service_record_no", Some(&self.service_record_no));
        for (field, v) in [
            ("service_item_code", &self.service_item_code),
            ("department_id", &self.department_id),
            ("hall_id", &self.hall_id),
            ("window_id", &self.window_id),
            ("staff_id", &self.staff_id),
            ("device_id", &self.device_id),
        ] {
            check_id(&mut errors, field, v.as_deref());
        }
        if !self.channel.allowed_stages().contains(&self.stage) {
            errors.push(err(
                "stage",
                "channel_mismatch",
                format!("渠道 {} 不能评价 {} 环节", self.channel.label_zh(), self.stage.label_zh()),
                format!("channel {} cannot rate stage {}", self.channel.as_str(), self.stage.as_str()),
            ));
        }
        if self.tags.len() > MAX_TAGS {
            errors.push(err("tags", "too_many", format!("标签最多 {MAX_TAGS} 个"), format!("at most {MAX_TAGS} tags")));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if !is_code(tag) {
                errors.push(err(
                    &format!("tags[{i}]"),
                    "format",
                    format!("标签编码须为 1 到 {MAX_TAG_CHARS} 位字母、数字、下划线、点或连字符"),
                    format!("tag codes are 1 to {MAX_TAG_CHARS} letters, digits, '_', '.' or '-'"),
                ));
            }
        }
        if self.dimensions.len() > MAX_DIMENSIONS {
            errors.push(err(
                "dimensions",
                "too_many",
                format!("维度评价最多 {MAX_DIMENSIONS} 项"),
                format!("at most {MAX_DIMENSIONS} dimension grades"),
            ));
        }
        for code in self.dimensions.keys().filter(|c| !is_code(c)) {
            errors.push(err(
                "dimensions",
                "format",
                format!("维度编码 {code:?} 不合规:须为 1 到 {MAX_TAG_CHARS} 位字母、数字、下划线、点或连字符"),
                format!("dimension code {code:?}: codes are 1 to {MAX_TAG_CHARS} letters, digits, '_', '.' or '-'"),
            ));
        }
        if self.channel == Channel::SystemDefault && !self.dimensions.is_empty() {
            errors.push(err(
                "dimensions",
                "not_accepted",
                "系统默认评价不含维度评价".into(),
                "a system default rating grades no dimension".into(),
            ));
        }
        if let Some(c) = &self.comment {
            if c.chars().count() > MAX_COMMENT_CHARS {
                errors.push(err(
                    "comment",
                    "too_long",
                    format!("文字评价最多 {MAX_COMMENT_CHARS} 字"),
                    format!("comment must be at most {MAX_COMMENT_CHARS} characters"),
                ));
            }
        }
        if self.grade.is_bad()
            && self.tags.is_empty()
            && self.comment.is_none()
            && self.channel != Channel::SystemDefault
        {
            errors.push(err(
                "tags",
                "evidence_required",
                "差评(不满意、非常不满意)须至少选择一个标签或填写文字评价".into(),
                "a bad review (grade 1 or 2) needs at least one tag or a comment".into(),
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(errors))
        }
    }

    /// Decodes an event from its JSON bytes and checks its invariants.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let event: RatingSubmitted = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON event: {e}"))?;
        event.check().map_err(|e| format!("invalid event: {}", e.fields().join(", ")))?;
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 2, 0, 0).unwrap()
    }

    fn good_input() -> RatingInput {
        RatingInput {
            channel: Some("window_evaluator".into()),
            stage: Some("acceptance".into()),
            service_record_no: Some("SZ-2026-000001".into()),
            department_id: Some("D01".into()),
            window_id: Some("W01".into()),
            grade: Some(5),
            ..Default::default()
        }
    }

    #[test]
    fn valid_input_becomes_event_with_defaults() {
        let id = Uuid::now_v7();
        let e = good_input().validate(id, now()).unwrap();
        assert_eq!(e.rating_id, id);
        assert_eq!(e.rated_at, now());
        assert_eq!(e.assess_number, AssessNumber::First);
        assert_eq!(e.grade.value(), 5);
    }

    #[test]
    fn every_failing_field_is_reported() {
        let input = RatingInput { channel: Some("fax".into()), grade: Some(6), ..Default::default() };
        let e = input.validate(Uuid::now_v7(), now()).unwrap_err();
        assert_eq!(e.fields(), vec!["channel", "stage", "service_record_no", "grade"]);
        assert!(e.0[0].message.contains("未知的评价渠道"));
    }

    #[test]
    fn table_of_rejections() {
        type Case = (&'static str, fn(&mut RatingInput), &'static str, &'static str);
        let cases: Vec<Case> = vec![
            ("grade 0", |i| i.grade = Some(0), "grade", "out_of_range"),
            ("grade 6", |i| i.grade = Some(6), "grade", "out_of_range"),
            ("no record", |i| i.service_record_no = None, "service_record_no", "required"),
            ("empty record", |i| i.service_record_no = Some(String::new()), "service_record_no", "length"),
            ("record with space", |i| i.service_record_no = Some("A B".into()), "service_record_no", "format"),
            ("long comment", |i| i.comment = Some("差".repeat(1001)), "comment", "too_long"),
            (
                "blank comment is no evidence",
                |i| {
                    i.grade = Some(2);
                    i.comment = Some(" \t\r\n\u{3000}\u{0} ".into());
                },
                "tags",
                "evidence_required",
            ),
            ("bad without evidence", |i| i.grade = Some(2), "tags", "evidence_required"),
            ("bad tag", |i| i.tags = Some(vec!["态度 差".into()]), "tags[0]", "format"),
            ("hotline at window", |i| i.stage = Some("hotline".into()), "stage", "channel_mismatch"),
            ("assess 3", |i| i.assess_number = Some(3), "assess_number", "out_of_range"),
            (
                "dimension grade 0",
                |i| i.dimensions = Some([("attitude".into(), 0)].into()),
                "dimensions.attitude",
                "out_of_range",
            ),
            (
                "dimension grade 6",
                |i| i.dimensions = Some([("attitude".into(), 6)].into()),
                "dimensions.attitude",
                "out_of_range",
            ),
            ("dimension code", |i| i.dimensions = Some([("服务 态度".into(), 5)].into()), "dimensions", "format"),
            (
                "too many dimensions",
                |i| i.dimensions = Some((0..11).map(|n| (format!("d{n}"), 4)).collect()),
                "dimensions",
                "too_many",
            ),
            (
                "default rating with dimensions",
                |i| {
                    i.channel = Some("system_default".into());
                    i.dimensions = Some([("attitude".into(), 3)].into());
                },
                "dimensions",
                "not_accepted",
            ),
            ("future", |i| i.rated_at = Some((now() + Duration::hours(1)).fixed_offset()), "rated_at", "in_future"),
            ("too old", |i| i.rated_at = Some((now() - Duration::days(31)).fixed_offset()), "rated_at", "too_old"),
        ];
        for (name, mutate, field, code) in cases {
            let mut input = good_input();
            mutate(&mut input);
            let errs = input.validate(Uuid::now_v7(), now()).expect_err(name);
            assert_eq!(errs.0.len(), 1, "{name}: {errs:?}");
            assert_eq!((errs.0[0].field.as_str(), errs.0[0].code), (field, code), "{name}");
        }
    }

    #[test]
    fn bad_review_with_a_tag_or_text_is_accepted() {
        let mut input = good_input();
        input.grade = Some(1);
        input.tags = Some(vec!["attitude".into()]);
        assert!(input.clone().validate(Uuid::now_v7(), now()).is_ok());
        input.tags = None;
        input.comment = Some("等了两个小时".into());
        assert!(input.validate(Uuid::now_v7(), now()).is_ok());
    }

    #[test]
    fn comments_are_trimmed_and_stripped_of_control_characters() {
        let mut input = good_input();
        input.comment = Some("\t=1+1\r\n 等了\u{0}两个\u{1b}[31m小时\r\n第二行 \u{3000}".into());
        let e = input.validate(Uuid::now_v7(), now()).unwrap();
        assert_eq!(e.comment.as_deref(), Some("=1+1\n 等了两个[31m小时\n第二行"));
    }

    #[test]
    fn dimension_grades_are_optional_and_need_no_evidence() {
        let mut input = good_input();
        input.dimensions = Some([("attitude".into(), 1), ("efficiency".into(), 5)].into());
        let e = input.validate(Uuid::now_v7(), now()).unwrap();
        let got: Vec<(&str, u8)> = e.dimensions.iter().map(|(c, g)| (c.as_str(), g.value())).collect();
        assert_eq!(got, vec![("attitude", 1), ("efficiency", 5)]);
        // A low dimension grade under a good overall grade is no 差评: no evidence is needed.
        assert!(!e.grade.is_bad());
        let none = good_input().validate(Uuid::now_v7(), now()).unwrap();
        assert!(none.dimensions.is_empty());
    }

    #[test]
    fn events_without_dimensions_decode_and_carry_no_dimensions_field() {
        let e = good_input().validate(Uuid::now_v7(), now()).unwrap();
        let v = serde_json::to_value(&e).unwrap();
        assert!(v.get("dimensions").is_none(), "an event without dimension grades is the v1 event as before");
        let mut with = good_input();
        with.dimensions = Some([("attitude".into(), 4)].into());
        let e = with.validate(Uuid::now_v7(), now()).unwrap();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["dimensions"], serde_json::json!({"attitude": 4}));
        assert_eq!(RatingSubmitted::decode(&serde_json::to_vec(&v).unwrap()).unwrap(), e);
    }

    #[test]
    fn event_json_round_trips_and_decode_rechecks() {
        let e = good_input().validate(Uuid::now_v7(), now()).unwrap();
        let bytes = serde_json::to_vec(&e).unwrap();
        assert_eq!(RatingSubmitted::decode(&bytes).unwrap(), e);
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["grade"] = 9.into();
        assert!(RatingSubmitted::decode(&serde_json::to_vec(&v).unwrap()).is_err());
        assert!(RatingSubmitted::decode(b"{not json").is_err());
    }
}
