//! Dead letters: a record the aggregator cannot take goes to `hcp.rating.dlq.v1` with its reason
//! and origin, the pipeline moves on, `hcp dlq list` shows it, and `hcp dlq replay` sends dead
//! letters back after a fix (named ones, or `--all` once each).

use std::time::Duration;

use hcp_bus::{DeadLetter, RatingProducer, RATING_DLQ_SCHEMA};
use hcp_tests::{wait_until, TestApp};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_goes_to_the_dead_letter_topic_and_a_fixed_letter_replays_once() {
    let mut app = TestApp::start().await;
    app.start_aggregator();
    let producer = RatingProducer::new(&app.kafka(), &app.config.topics()).unwrap();
    producer.publish_raw("POISON-1", b"{not json").await.unwrap();
    for i in 0..2 {
        let r = app
            .post_rating(
                &json!({"channel": "app", "stage": "online", "service_record_no": format!("DLQ-{i}"), "grade": 4}),
            )
            .await;
        assert_eq!(r.status(), 202);
    }
    let store = app.store.clone();
    wait_until(Duration::from_secs(60), "2 ratings stored", || async { store.count_ratings().await.unwrap() == 2 })
        .await;
    app.wait_caught_up(Duration::from_secs(30)).await;

    let dlq = app.config.topics().rating_dlq;
    let letters = app.read_records(dlq.clone(), 1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].0, b"POISON-1");
    let letter: DeadLetter = serde_json::from_slice(&letters[0].1).unwrap();
    assert_eq!(letter.payload.as_deref(), Some("{not json"));
    assert_eq!(letter.source_topic, app.topic());
    assert!(!letter.reason.is_empty());
    let schema: Value = serde_json::from_str(include_str!("../schemas/rating-dlq.v1.json")).unwrap();
    let validator = jsonschema::options().should_validate_formats(true).build(&schema).unwrap();
    assert!(validator.is_valid(&serde_json::from_slice::<Value>(&letters[0].1).unwrap()));

    // A letter refused by an older aggregator whose body is a valid rating (as after a fix).
    let event = hcp_domain::RatingInput {
        channel: Some("app".into()),
        stage: Some("online".into()),
        service_record_no: Some("DLQ-FIXED".into()),
        grade: Some(5),
        ..Default::default()
    }
    .validate(uuid::Uuid::now_v7(), chrono::Utc::now())
    .unwrap();
    let fixed = DeadLetter {
        reason: "unknown field (older aggregator)".into(),
        source_topic: app.topic(),
        source_partition: 0,
        source_offset: 999,
        payload: Some(serde_json::to_string(&event).unwrap()),
        payload_base64: None,
        rejected_at: chrono::Utc::now(),
    };
    producer.publish_to(&dlq, RATING_DLQ_SCHEMA, "DLQ-FIXED", &serde_json::to_vec(&fixed).unwrap()).await.unwrap();

    let (ok, listed, err) = app.run_hcp(&["dlq", "list"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    let fixed_at = lines.iter().find(|l| l.contains("DLQ-FIXED")).unwrap().split('\t').next().unwrap().to_owned();
    assert!(lines.iter().any(|l| l.contains("{not json")));

    let (ok, out, err) = app.run_hcp(&["dlq", "replay", &fixed_at]);
    assert!(ok, "{err}");
    assert_eq!(out, "replayed 1");
    wait_until(Duration::from_secs(60), "the replayed rating stored", || async {
        store.count_ratings().await.unwrap() == 3
    })
    .await;
    // --all replays each letter once: both now (the fixed one again changes nothing), then only
    // the poison's new letter.
    assert_eq!(app.run_hcp(&["dlq", "replay", "--all"]).1, "replayed 2");
    app.wait_caught_up(Duration::from_secs(60)).await;
    assert_eq!(app.store.count_ratings().await.unwrap(), 3);
    let letters = app.read_records(dlq, 3).await;
    assert_eq!(letters.len(), 3, "the poison was refused again");
    assert_eq!(app.run_hcp(&["dlq", "replay", "--all"]).1, "replayed 1");
    app.stop_aggregator().await;
}
