//! Issue 26: `ratings` partitioned by Beijing month (migration 26), the uniqueness in
//! `rating_keys`, the months ahead kept by the binary, `hcp ratings archive`, and the planner
//! statistics of a partition that fills fast.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use hcp_domain::time::Month;
use hcp_tests::{wait_until, TestApp};

/// A batch of `events` as the store takes it, read from partition 0 in order, attributed against
/// the (empty) directory, so that each counts in the province's rollups.
async fn batch(app: &TestApp, events: &[&hcp_domain::RatingSubmitted]) -> hcp_store::Batch {
    let directory = app.store.load_directory().await.unwrap();
    hcp_store::Batch {
        group_id: "partition-test".into(),
        topic: "partition-test".into(),
        ratings: events
            .iter()
            .enumerate()
            .map(|(i, e)| hcp_store::StoredRating {
                event: (*e).clone(),
                attribution: hcp_domain::attribute(&directory, e, e.rated_at),
                partition: 0,
                offset: i as i64,
                integrity_flags: Vec::new(),
            })
            .collect(),
        ..Default::default()
    }
}

/// Every month from the one before now's to three after it.
fn expected_months(now: DateTime<Utc>) -> Vec<Month> {
    let mut m = Month::of(now).previous();
    (0..5)
        .map(|_| {
            let this = m;
            m = m.next();
            this
        })
        .collect()
}

/// Every rollup row, for comparing before and after.
async fn rollups(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT x FROM (SELECT format('agg %s %s %s %s %s %s %s %s %s', scope, scope_id, width, bucket_start, n1, n2, n3, n4, n5) AS x
                          FROM rating_aggregates
                        UNION ALL
                        SELECT format('split %s', s) FROM rating_splits s
                        UNION ALL
                        SELECT format('dim %s', d) FROM rating_dimension_aggregates d) t ORDER BY x",
    )
    .fetch_all(app.store.pool())
    .await
    .unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(app.store.pool()).await.unwrap()
}

/// A fresh database has the partitions of last month to three months ahead; `hcp migrate` and
/// the aggregator's task `partitions` create a missing one again at startup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_exist_from_last_month_to_three_ahead_and_the_binary_recreates_them() {
    let app = TestApp::start().await;
    let now = Utc::now();
    let expected = expected_months(now);
    let months: BTreeSet<Month> = app.store.rating_partition_months().await.unwrap().into_iter().collect();
    assert!(expected.iter().all(|m| months.contains(m)), "{months:?} lacks some of {expected:?}");
    assert_eq!(count(&app, "SELECT count(*) FROM pg_class WHERE relname = 'ratings_default'").await, 1);

    // The furthest month dropped (empty): `hcp migrate` makes it again, and says so.
    let last = *expected.last().unwrap();
    let drop_last = format!("DROP TABLE {}", hcp_store::partition_name(last));
    sqlx::query(&drop_last).execute(app.store.pool()).await.unwrap();
    let (ok, out, err) = app.run_hcp(&["migrate"]);
    assert!(ok, "hcp migrate: {err}");
    assert!(out.contains(&format!("ratings partition of {last} created")), "{out}");
    let (ok, out, _) = app.run_hcp(&["migrate"]);
    assert!(ok && !out.contains("created"), "a second run creates nothing: {out}");
    assert_payload_unsampled(&app).await;

    // So does the aggregator component when it starts.
    sqlx::query(&drop_last).execute(app.store.pool()).await.unwrap();
    let log = std::env::temp_dir().join(format!("hcp-partitions-{}.log", app.db_name));
    let mut aggregator = app.spawn_serve("aggregator", None, &log);
    wait_until(Duration::from_secs(30), "the aggregator to create the partition again", || async {
        app.store.rating_partition_months().await.unwrap().contains(&last)
    })
    .await;
    aggregator.terminate();
    assert_payload_unsampled(&app).await;
    // Idempotent: nothing to create now.
    assert_eq!(app.store.ensure_rating_partitions(now, hcp_store::MONTHS_AHEAD).await.unwrap(), vec![]);
}

/// Every partition of `ratings`, the ones made since the migrations included, keeps no
/// statistics of the payload columns (an ANALYZE skips them).
async fn assert_payload_unsampled(app: &TestApp) {
    let sampled: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.inhrelid::regclass::text, a.attname::text
           FROM pg_inherits i JOIN pg_attribute a ON a.attrelid = i.inhrelid
          WHERE i.inhparent = 'ratings'::regclass AND a.attname = ANY($1) AND a.attstattarget <> 0",
    )
    .bind(hcp_store::UNSAMPLED_COLUMNS.to_vec())
    .fetch_all(app.store.pool())
    .await
    .unwrap();
    assert_eq!(sampled, vec![], "payload columns with statistics");
    let partitions = count(app, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'ratings'::regclass").await;
    assert!(partitions >= 6, "{partitions} partitions");
}

/// A rating of a month without a partition is caught by the DEFAULT partition and moved into its
/// month's partition once that is ensured; a rating of this month lands in this month's. The
/// same rating again, or another in a taken slot, inserts and counts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratings_land_in_their_month_and_duplicates_are_still_refused() {
    let app = TestApp::start().await;
    let old_at = Utc.with_ymd_and_hms(2025, 2, 28, 16, 30, 0).unwrap(); // 2025-03-01 00:30 in Beijing
    let old = hcp_tests::online_rating_at("PART-OLD", 4, old_at);
    let now = hcp_tests::online_rating_at("PART-NOW", 5, Utc::now());
    let outcome = app.store.apply_batch(&batch(&app, &[&old, &now]).await).await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (2, 0));
    assert_eq!(app.store.rating_partition_of(old.rating_id).await.unwrap().as_deref(), Some("ratings_default"));
    let this_month = hcp_store::partition_name(Month::of(now.rated_at));
    assert_eq!(app.store.rating_partition_of(now.rating_id).await.unwrap(), Some(this_month));

    let created = app.store.ensure_rating_partitions(Utc::now(), hcp_store::MONTHS_AHEAD).await.unwrap();
    assert_eq!(created, vec![Month::parse("2025-03").unwrap()]);
    assert_eq!(app.store.rating_partition_of(old.rating_id).await.unwrap().as_deref(), Some("ratings_p202503"));
    assert_eq!(count(&app, "SELECT count(*) FROM ratings_default").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM ratings_p202503").await, 1);

    let before = rollups(&app).await;
    // Redelivered, and a second rating of a taken slot (in the old month and in this one).
    let taken_old = hcp_tests::online_rating_at("PART-OLD", 1, old_at + chrono::Duration::hours(1));
    let taken_now = hcp_tests::online_rating_at("PART-NOW", 2, Utc::now());
    let outcome = app.store.apply_batch(&batch(&app, &[&old, &now, &taken_old, &taken_now]).await).await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates, outcome.aggregate_rows), (0, 4, 0));
    // Twice within one batch: stored once.
    let twice = hcp_tests::online_rating_at("PART-TWICE", 3, Utc::now());
    let outcome = app.store.apply_batch(&batch(&app, &[&twice, &twice]).await).await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (1, 1));
    assert_eq!(count(&app, "SELECT count(*) FROM ratings").await, 3);
    assert_eq!(count(&app, "SELECT count(*) FROM rating_keys").await, 3);
    assert_ne!(rollups(&app).await, before, "the new rating counted");
    app.assert_rollups_match_ratings().await;
}

/// `hcp ratings archive` writes an old month's ratings (the national export and every column),
/// drops its partition and leaves the rollups and keys: the statistics stay, a duplicate of an
/// archived rating is still refused, and `hcp export ratings --from-archive` reads the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_writes_the_month_drops_its_partition_and_keeps_the_counts() {
    let app = TestApp::start().await;
    let march = |day, hour| Utc.with_ymd_and_hms(2025, 3, day, hour, 0, 0).unwrap();
    let a = hcp_tests::online_rating_at("ARCH-A", 5, march(3, 2));
    let b = hcp_tests::online_rating_at("ARCH-B", 3, march(15, 8));
    let c = hcp_tests::online_rating_at("ARCH-C", 4, march(31, 15)); // 23:00 on the 31st in Beijing
    let april = hcp_tests::online_rating_at("ARCH-APRIL", 5, march(31, 16)); // 2025-04-01 00:00 in Beijing
    let outcome = app.store.apply_batch(&batch(&app, &[&a, &b, &c, &april]).await).await.unwrap();
    assert_eq!(outcome.inserted, 4);
    app.store.ensure_rating_partitions(Utc::now(), hcp_store::MONTHS_AHEAD).await.unwrap();
    assert_eq!(count(&app, "SELECT count(*) FROM ratings_p202503").await, 3);
    assert_eq!(count(&app, "SELECT count(*) FROM ratings_p202504").await, 1);
    let before = rollups(&app).await;
    assert!(!before.is_empty());

    let dir = std::env::temp_dir().join(format!("hcp-archive-{}", app.db_name));
    let out = dir.to_str().unwrap();
    let (ok, stdout, stderr) = app.run_hcp(&["ratings", "archive", "--before", "2025-04", "--out", out]);
    assert!(ok, "archive: {stderr}");
    assert!(stdout.contains("2025-03: 3"), "{stdout}");

    // The export file: exactly the month's three ratings, oldest first.
    let export = std::fs::read_to_string(dir.join("ratings-2025-03.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let records_of: Vec<&str> = records.iter().map(|r| r["projectNo"].as_str().unwrap()).collect();
    assert_eq!(records_of, ["ARCH-A", "ARCH-B", "ARCH-C"]);
    assert_eq!(records[2]["assessTime"], "2025-03-31 23:00:00");
    // The full rows: every column of the same three.
    let rows = std::fs::read_to_string(dir.join("ratings-2025-03.rows.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = rows.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: Vec<String> = rows.iter().map(|r| r["rating_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, [a.rating_id, b.rating_id, c.rating_id].map(|id| id.to_string()));
    assert_eq!(rows[0]["source_topic"], "partition-test");
    assert_eq!(rows[1]["grade"], 3);

    // The partition is gone, April's stays; rollups and keys are unchanged.
    assert_eq!(count(&app, "SELECT count(*) FROM pg_class WHERE relname = 'ratings_p202503'").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM ratings").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM rating_keys").await, 4);
    assert_eq!(rollups(&app).await, before);

    // A redelivered archived rating, or another of its slot, is not stored or counted again.
    let taken = hcp_tests::online_rating_at("ARCH-B", 1, march(20, 3));
    let outcome = app.store.apply_batch(&batch(&app, &[&a, &b, &taken]).await).await.unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates, outcome.aggregate_rows), (0, 3, 0));
    assert_eq!(count(&app, "SELECT count(*) FROM ratings_default").await, 0);
    assert_eq!(rollups(&app).await, before);

    // The export reads the archive: the same records, as JSON lines or CSV.
    let file = dir.join("ratings-2025-03.jsonl");
    let (ok, jsonl, stderr) = app.run_hcp(&["export", "ratings", "--from-archive", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert_eq!(jsonl, export.trim_end());
    let (ok, csv, stderr) =
        app.run_hcp(&["export", "ratings", "--from-archive", file.to_str().unwrap(), "--format", "csv"]);
    assert!(ok, "{stderr}");
    assert_eq!(csv.lines().count(), 4, "header and three records: {csv}");
    assert!(csv.lines().nth(3).unwrap().starts_with("ARCH-C,"), "{csv}");
    // The rows file is not an export file: said so, no panic.
    let rows_file = dir.join("ratings-2025-03.rows.jsonl");
    let (ok, _, stderr) = app.run_hcp(&["export", "ratings", "--from-archive", rows_file.to_str().unwrap()]);
    assert!(!ok && stderr.contains("not a national export record"), "{stderr}");

    // Archiving again finds nothing before April to do and overwrites nothing.
    let (ok, stdout, stderr) = app.run_hcp(&["ratings", "archive", "--before", "2025-04", "--out", out]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("no month partition before 2025-04"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The current month, a future one, and a month ratings may still arrive for are refused, and
/// nothing is archived then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_the_current_month_or_a_recent_one_is_refused() {
    let app = TestApp::start().await;
    let now = Utc::now();
    let rated = hcp_tests::online_rating_at("REFUSE-NOW", 4, now);
    app.store.apply_batch(&batch(&app, &[&rated]).await).await.unwrap();
    let months_before = app.store.rating_partition_months().await.unwrap();
    let dir = std::env::temp_dir().join(format!("hcp-refused-{}", app.db_name));
    let out = dir.to_str().unwrap();

    let next = Month::of(now).next().to_string();
    let (ok, _, stderr) = app.run_hcp(&["ratings", "archive", "--before", &next, "--out", out]);
    assert!(!ok, "the current month is refused");
    assert!(stderr.contains("the current month and future months cannot be archived"), "{stderr}");

    // `--before` this month reaches last month, which ended less than 31 days ago.
    let current = Month::of(now).to_string();
    let (ok, _, stderr) = app.run_hcp(&["ratings", "archive", "--before", &current, "--out", out]);
    assert!(!ok, "last month is refused");
    assert!(stderr.contains("ratings of it may still arrive"), "{stderr}");

    let (ok, _, stderr) = app.run_hcp(&["ratings", "archive", "--before", "2025-13", "--out", out]);
    assert!(!ok && stderr.contains("is not a month YYYY-MM"), "{stderr}");

    assert_eq!(app.store.rating_partition_months().await.unwrap(), months_before);
    assert_eq!(count(&app, "SELECT count(*) FROM ratings").await, 1);
    assert!(!dir.exists(), "no file written");
}

/// A month with a work order still open is refused (an upheld appeal would need its rating);
/// once the order is closed, the month is archived and the order stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_with_an_open_work_order_is_refused_until_it_closes() {
    let app = TestApp::start().await;
    let bad = hcp_tests::online_rating_at("OPEN-1", 1, Utc.with_ymd_and_hms(2025, 5, 10, 2, 0, 0).unwrap());
    app.store.apply_batch(&batch(&app, &[&bad]).await).await.unwrap();
    app.store.ensure_rating_partitions(Utc::now(), hcp_store::MONTHS_AHEAD).await.unwrap();
    sqlx::query(
        "INSERT INTO work_orders (order_id, rating_id, state, basis, grade, opened_at, contact_due_at, rectify_due_at)
         VALUES ($1, $2, 'opened', 'unassigned', 1, $3, $3, $3)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(bad.rating_id)
    .bind(bad.received_at)
    .execute(app.store.pool())
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("hcp-open-{}", app.db_name));
    let out = dir.to_str().unwrap();
    let (ok, _, stderr) = app.run_hcp(&["ratings", "archive", "--before", "2025-06", "--out", out]);
    assert!(!ok, "an open order holds the month back");
    assert!(stderr.contains("2025-05: 1 个工单未办结") && stderr.contains("1 work orders still open"), "{stderr}");
    assert_eq!(count(&app, "SELECT count(*) FROM ratings_p202505").await, 1);

    sqlx::query("UPDATE work_orders SET state = 'closed', closed_at = now()").execute(app.store.pool()).await.unwrap();
    let (ok, stdout, stderr) = app.run_hcp(&["ratings", "archive", "--before", "2025-06", "--out", out]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("2025-05: 1"), "{stdout}");
    assert_eq!(count(&app, "SELECT count(*) FROM pg_class WHERE relname = 'ratings_p202505'").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM work_orders").await, 1, "the order stays");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `n` ratings of `at`'s month numbered from `first`, straight into `ratings` and `rating_keys`.
async fn fill(app: &TestApp, at: DateTime<Utc>, first: i64, n: i64) {
    sqlx::query(
        "WITH r AS (
         INSERT INTO ratings (rating_id, service_record_no, stage, assess_number, channel, grade, tags, rated_at,
                              received_at, source_topic, source_partition, source_offset, agg_scopes)
         SELECT gen_random_uuid(), 'FILL-' || g, 'online', 1, 'app', 1 + g % 5, '{}'::text[], $3, $3,
                'fill', 0, g, ARRAY['all:all']
           FROM generate_series($1::int8, $2::int8) g
         RETURNING rating_id, service_record_no, stage, assess_number, rated_at)
         INSERT INTO rating_keys (rating_id, service_record_no, stage, assess_number, rated_at) SELECT * FROM r",
    )
    .bind(first)
    .bind(first + n - 1)
    .bind(at)
    .execute(app.store.pool())
    .await
    .unwrap();
}

/// (rows changed since the last analysis, manual analyses so far) of `table`, as the statistics
/// system reports them.
async fn analysis(app: &TestApp, table: &str) -> (i64, i64) {
    sqlx::query_as("SELECT n_mod_since_analyze, analyze_count FROM pg_stat_user_tables WHERE relname = $1")
        .bind(table)
        .fetch_one(app.store.pool())
        .await
        .unwrap()
}

/// A table that fills fast (a new month's partition, `rating_keys`) is analysed within seconds
/// of growing, not at autovacuum's next visit a minute later; one that changed little since its
/// last analysis is left to autovacuum. The aggregator does it by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_that_grew_are_analysed_by_the_aggregator_and_others_are_left_alone() {
    let app = TestApp::start().await;
    let at = Utc::now();
    let partition = hcp_store::partition_name(Month::of(at));
    // The migration analysed every table once.
    let (_, base) = analysis(&app, &partition).await;
    let reported = |changed: i64| {
        let (app, partition) = (&app, partition.clone());
        async move { analysis(app, &partition).await.0 >= changed }
    };
    fill(&app, at, 1, 10_000).await;
    wait_until(Duration::from_secs(30), "the inserts reported", || reported(10_000)).await;
    let analysed = app.store.analyze_grown_tables(1_000).await.unwrap();
    for table in [format!("public.{partition}"), "public.rating_keys".to_owned()] {
        assert!(analysed.contains(&table), "{table} not in {analysed:?}");
    }
    assert_eq!(analysis(&app, &partition).await, (0, base + 1));
    let rows = format!("SELECT reltuples::int8 FROM pg_class WHERE relname = '{partition}'");
    assert_eq!(count(&app, &rows).await, 10_000);

    // 9 000 more: over the minimum, but the table has not doubled since its analysis.
    fill(&app, at, 10_001, 9_000).await;
    wait_until(Duration::from_secs(30), "the inserts reported", || reported(9_000)).await;
    let analysed = app.store.analyze_grown_tables(1_000).await.unwrap();
    assert!(!analysed.iter().any(|t| t.ends_with(&partition) || t.ends_with("rating_keys")), "{analysed:?}");
    assert_eq!(analysis(&app, &partition).await, (9_000, base + 1));

    // 1 500 more: it has, and the aggregator's task analyses it (only a manual ANALYZE counts in
    // `analyze_count`, so this is not autovacuum).
    fill(&app, at, 19_001, 1_500).await;
    wait_until(Duration::from_secs(30), "the inserts reported", || reported(10_500)).await;
    let log = std::env::temp_dir().join(format!("hcp-statistics-{}.log", app.db_name));
    let mut aggregator = app.spawn_serve("aggregator", None, &log);
    wait_until(Duration::from_secs(30), "the aggregator to analyse the partition", || async {
        analysis(&app, &partition).await == (0, base + 2)
    })
    .await;
    aggregator.terminate();
    assert_eq!(count(&app, &rows).await, 20_500);
}
