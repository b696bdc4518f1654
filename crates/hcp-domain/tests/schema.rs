//! Every serialized `RatingSubmitted` must validate against `schemas/rating-submitted.v1.json`,
//! and the schema must refuse what the domain refuses.

use chrono::{TimeZone, Utc};
use hcp_domain::{Channel, RatingInput, Stage};
use uuid::Uuid;

fn validator() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/rating-submitted.v1.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options().should_validate_formats(true).build(&schema).expect("schema compiles")
}

#[test]
fn every_channel_stage_grade_combination_validates() {
    let v = validator();
    let now = Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap();
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
                        comment: optional.then(|| "窗口人员态度很好".into()),
                        rated_at: None,
                        assess_number: Some(if optional { 2 } else { 1 }),
                    };
                    let event = input.validate(Uuid::now_v7(), now).expect("valid input");
                    let json = serde_json::to_value(&event).unwrap();
                    let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
                    assert!(errors.is_empty(), "{json}: {errors:?}");
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
    for (field, bad) in [
        ("grade", serde_json::json!(6)),
        ("grade", serde_json::json!(0)),
        ("channel", serde_json::json!("fax")),
        ("assess_number", serde_json::json!(3)),
        ("service_record_no", serde_json::json!("")),
        ("rating_id", serde_json::json!("not-a-uuid")),
        ("unexpected", serde_json::json!(1)),
    ] {
        let mut e = good.clone();
        e[field] = bad;
        assert!(!v.is_valid(&e), "{field} should be refused");
    }
}
