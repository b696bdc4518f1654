//! Every serialized `RatingSubmitted` must validate against `schemas/rating-submitted.v1.json`,
//! and the schema must refuse what the domain refuses.

use chrono::{TimeZone, Utc};
use hcp_domain::{Channel, PiiCipher, RaterIdentity, RaterInput, RatingInput, Stage};
use uuid::Uuid;

fn load(name: &str) -> jsonschema::Validator {
    let path = format!("{}/../../schemas/{name}", env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options().should_validate_formats(true).build(&schema).expect("schema compiles")
}

/// Keeps a serialized event for the second validator (tests/schemas/check.py, run by the test
/// command with `HCP_SCHEMA_SAMPLES` set): one directory per schema, one file per event.
fn keep_sample(schema: &str, n: usize, event: &serde_json::Value) {
    let Some(dir) = std::env::var_os("HCP_SCHEMA_SAMPLES") else { return };
    let dir = std::path::Path::new(&dir).join(schema);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{n:04}.json")), serde_json::to_vec_pretty(event).unwrap()).unwrap();
}

fn validator() -> jsonschema::Validator {
    load("rating-submitted.v1.json")
}

#[test]
fn every_channel_stage_grade_combination_validates() {
    let v = validator();
    let now = Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap();
    let cipher = PiiCipher::from_spec("t1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=").unwrap();
    let mut checked = 0;
    for channel in Channel::ALL {
        for &stage in channel.allowed_stages() {
            for grade in 1..=5 {
                for optional in [false, true] {
                    let input = RatingInput {
                        channel: Some(channel.as_str().into()),
                        stage: Some(stage.as_str().into()),
                        service_record_no: Some(format!("REC-{checked}")),
                        service_item_code: optional.then(|| "11440300MB2C92385R4442010001000".into()),
                        department_id: optional.then(|| "D01".into()),
                        hall_id: optional.then(|| "H01".into()),
                        window_id: optional.then(|| "W01".into()),
                        staff_id: optional.then(|| "S01".into()),
                        device_id: optional.then(|| "DEV-1".into()),
                        grade: Some(grade),
                        tags: (grade <= 2 || optional).then(|| vec!["attitude".into()]),
                        dimensions: (optional && channel != Channel::SystemDefault)
                            .then(|| [("service_attitude".into(), grade), ("efficiency".into(), 6 - grade)].into()),
                        comment: optional.then(|| "窗口人员态度很好".into()),
                        rated_at: None,
                        assess_number: Some(if optional { 2 } else { 1 }),
                        rater: optional.then(|| RaterInput {
                            user_prop: Some(1),
                            name: Some("张三".into()),
                            phone: Some("13812341234".into()),
                            id_number: Some("11010519491231002X".into()),
                        }),
                    };
                    let seal = |prop: u8, id: &RaterIdentity| cipher.seal(prop, id, [5; 12]);
                    let event = input.validate_with(Uuid::now_v7(), now, Some(&seal)).expect("valid input");
                    let json = serde_json::to_value(&event).unwrap();
                    let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
                    assert!(errors.is_empty(), "{json}: {errors:?}");
                    keep_sample("rating-submitted.v1", checked, &json);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, Channel::ALL.iter().map(|c| c.allowed_stages().len()).sum::<usize>() * 10);
    let _ = Stage::ALL;
}

#[test]
fn schema_refuses_what_the_domain_refuses() {
    let v = validator();
    let good = serde_json::json!({
        "rating_id": "019aa5f0-0000-7000-8000-000000000001",
        "channel": "window_evaluator", "stage": "pickup", "service_record_no": "R1",
        "grade": 4, "rated_at": "2026-11-20T08:00:00Z", "received_at": "2026-11-20T08:00:01Z", "assess_number": 1
    });
    assert!(v.is_valid(&good));
    let mut with_dimensions = good.clone();
    with_dimensions["dimensions"] = serde_json::json!({"service_attitude": 5, "efficiency": 1});
    assert!(v.is_valid(&with_dimensions), "dimension grades are an optional v1 field");
    for (field, bad) in [
        ("grade", serde_json::json!(6)),
        ("grade", serde_json::json!(0)),
        ("channel", serde_json::json!("fax")),
        ("assess_number", serde_json::json!(3)),
        ("service_record_no", serde_json::json!("")),
        ("service_record_no", serde_json::json!("R 1")),
        ("service_record_no", serde_json::json!("R\u{7}1")),
        ("service_record_no", serde_json::json!("R\u{85}1")),
        ("rating_id", serde_json::json!("not-a-uuid")),
        ("unexpected", serde_json::json!(1)),
        ("dimensions", serde_json::json!({"service_attitude": 6})),
        ("dimensions", serde_json::json!({"service_attitude": 0})),
        ("dimensions", serde_json::json!({"服务态度": 5})),
        ("dimensions", serde_json::json!({"service_attitude": "5"})),
        ("dimensions", serde_json::Value::Object((0..11).map(|i| (format!("d{i}"), 4.into())).collect())),
    ] {
        let mut e = good.clone();
        e[field] = bad;
        assert!(!v.is_valid(&e), "{field} should be refused");
    }
}

/// Every attribution outcome — complete, flagged, with responsibilities of every basis —
/// serializes to an event valid against `schemas/rating-attributed.v1.json`.
#[test]
fn attributed_events_validate() {
    use hcp_domain::{attribute, DirectoryData, RatingAttributed};
    let v = load("rating-attributed.v1.json");
    let submitted = validator();
    let now = Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap();
    let data: DirectoryData = serde_json::from_value(serde_json::json!({
        "regions": [{"code": "440300", "name": "示范市"}],
        "departments": [{"id": "D1", "uscc": "91440300708461136T", "name": "甲局", "region_code": "440300"}],
        "halls": [{"id": "H1", "name": "大厅", "region_code": "440300"}],
        "windows": [{"id": "W1", "hall_id": "H1", "name": "1号窗", "role": "both", "department_ids": ["D1"]}],
        "staff": [{"id": "S1", "name": "张三", "department_id": "D1"}],
        "service_items": [{"code": "I1", "name": "事项", "department_id": "D1"}],
        "tags": [
            {"code": "attitude_poor", "name": "态度差", "class": "conduct", "negative": true},
            {"code": "too_slow", "name": "太慢", "class": "process", "negative": true},
            {"code": "system_fault", "name": "系统故障", "class": "platform", "negative": true}
        ]
    }))
    .unwrap();
    let dir = hcp_domain::Directory::new(3, data);
    let mut checked = 0;
    for channel in Channel::ALL {
        for &stage in channel.allowed_stages() {
            for (window, grade, tags) in [
                (Some("W1"), 1, vec!["attitude_poor", "too_slow", "system_fault"]),
                (Some("W404"), 2, vec![]),
                (None, 5, vec![]),
            ] {
                let input = RatingInput {
                    channel: Some(channel.as_str().into()),
                    stage: Some(stage.as_str().into()),
                    service_record_no: Some(format!("REC-{checked}")),
                    service_item_code: Some("I1".into()),
                    window_id: window.map(String::from),
                    staff_id: Some("S1".into()),
                    grade: Some(grade),
                    tags: Some(tags.iter().map(|t| t.to_string()).collect()),
                    comment: Some("文字".into()),
                    ..Default::default()
                };
                let rating = input.validate(Uuid::now_v7(), now).expect("valid input");
                let attribution = attribute(&dir, &rating, now);
                let event =
                    RatingAttributed { rating, attribution, attributed_at: now, reattributed: checked % 2 == 0 };
                let json = serde_json::to_value(&event).unwrap();
                let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
                assert!(errors.is_empty(), "{json}: {errors:?}");
                assert!(submitted.is_valid(&json["rating"]));
                keep_sample("rating-attributed.v1", checked, &json);
                let back: RatingAttributed = serde_json::from_value(json).unwrap();
                assert_eq!(back.rating, event.rating);
                checked += 1;
            }
        }
    }
    assert!(checked > 30);
}
