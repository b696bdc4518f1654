//! `hcp bench`: hcp against the raw ceilings, measured in one run on the same broker and database.
//!
//! Ceilings: raw rdkafka produce and consume of the very records hcp produces, PostgreSQL
//! `COPY` of the same rating rows, and a bare axum JSON endpoint under the same load generator.
//! hcp: single-rating `POST` through ingest (acknowledged by the broker), and the aggregator
//! from a pre-filled topic to committed ratings, aggregates and positions.

use std::time::{Duration, Instant};

use anyhow::Context;
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use futures::stream::{FuturesUnordered, StreamExt};
use hcp_aggregator::AggregatorConfig;
use hcp_domain::RatingSubmitted;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::Timeout;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::loadgen::{self, LoadOptions};
use crate::{demo, server, Components, Config};

/// Sizes of one bench run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Records for the Kafka, COPY and aggregator measurements.
    pub messages: usize,
    /// HTTP requests for each HTTP measurement.
    pub requests: u64,
    /// HTTP requests in flight.
    pub concurrency: usize,
    /// Partitions of the bench topic.
    pub partitions: i32,
}

/// One line of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Items processed.
    pub items: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Extra detail (latency).
    pub note: String,
    /// Index of the ceiling row this is compared with.
    pub ceiling: Option<usize>,
}

impl Row {
    fn rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs every measurement and returns the table.
pub async fn run(config: &Config, opts: &BenchOptions) -> anyhow::Result<Vec<Row>> {
    let run_id = Utc::now().format("%Y%m%d%H%M%S").to_string();
    let mut cfg = config.clone();
    cfg.topic_prefix = format!("bench{run_id}.");
    cfg.aggregator_group = format!("bench-agg-{run_id}");
    // The load generator posts without channel keys (the gate's claims still run).
    cfg.ingest_auth_required = false;
    let kafka = cfg.kafka();
    let topics = cfg.topics();
    hcp_bus::create_topics(&kafka, &topics.all(), opts.partitions, 1).await.context("creating bench topics")?;
    let events = demo::day_of_ratings(opts.messages, Utc::now(), 7);
    let bodies: Vec<(String, Vec<u8>)> =
        events.iter().map(|e| (e.service_record_no.clone(), serde_json::to_vec(e).expect("serializes"))).collect();
    let mut rows = Vec::new();

    // 1. Raw produce of the same records (ceiling for ingest's Kafka side).
    let producer: FutureProducer = kafka.producer().create()?;
    let t = Instant::now();
    let mut inflight = FuturesUnordered::new();
    for (key, body) in &bodies {
        inflight.push(producer.send(
            FutureRecord::to(&topics.rating_submitted).key(key).payload(body),
            Timeout::After(Duration::from_secs(30)),
        ));
        if inflight.len() >= 20_000 {
            if let Some(r) = inflight.next().await {
                r.map_err(|(e, _)| e)?;
            }
        }
    }
    while let Some(r) = inflight.next().await {
        r.map_err(|(e, _)| e)?;
    }
    rows.push(Row {
        name: format!("raw rdkafka produce (acks=all, idempotence {})", if kafka.idempotence { "on" } else { "off" }),
        items: bodies.len() as u64,
        elapsed: t.elapsed(),
        note: String::new(),
        ceiling: None,
    });

    // 2. Raw consume of them.
    let consumer: BaseConsumer = kafka.consumer(&format!("bench-raw-{run_id}")).create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..opts.partitions {
        tpl.add_partition_offset(&topics.rating_submitted, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let t = Instant::now();
    let mut seen = 0usize;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen < bodies.len() && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            m?;
            seen += 1;
        }
    }
    rows.push(Row {
        name: "raw rdkafka consume".into(),
        items: seen as u64,
        elapsed: t.elapsed(),
        note: String::new(),
        ceiling: None,
    });
    drop(consumer);

    // 3. PostgreSQL COPY of the same rating rows.
    let db_name = format!("hcp_bench_{run_id}");
    let store =
        hcp_store::create_fresh_database(&cfg.database_url, &db_name, 8).await.context("creating bench database")?;
    let mut directory = demo::DIRECTORY.clone();
    let now = Utc::now();
    directory.roster = [demo::roster_for_day(now - chrono::Duration::days(1)), demo::roster_for_day(now)].concat();
    store.import_directory(&directory).await.context("importing the demo directory")?;
    let snapshot = store.load_directory().await?;
    let copy = copy_ratings(&store, &events, &snapshot).await?;
    rows.push(Row {
        name: "PostgreSQL COPY of rating rows".into(),
        items: events.len() as u64,
        elapsed: copy,
        note: String::new(),
        ceiling: None,
    });

    // 4. hcp aggregator: pre-filled topic → attributed against the demo directory → committed
    //    ratings + aggregates + positions, attributed events published.
    let token = CancellationToken::new();
    let mut agg_cfg = AggregatorConfig::new(kafka.clone(), topics.clone());
    agg_cfg.group_id = cfg.aggregator_group.clone();
    let t = Instant::now();
    let agg = tokio::spawn(hcp_aggregator::run(agg_cfg, store.clone(), token.clone()));
    loop {
        let done: i64 =
            store.positions(&cfg.aggregator_group, &topics.rating_submitted).await?.iter().map(|(_, o)| o).sum();
        if done as usize >= bodies.len() || t.elapsed() > Duration::from_secs(600) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let agg_time = t.elapsed();
    token.cancel();
    agg.await??;
    let stored = store.count_ratings().await?;
    rows.push(Row {
        name: "hcp aggregator (topic → PostgreSQL, one tx per batch)".into(),
        items: stored as u64,
        elapsed: agg_time,
        note: "vs raw consume".into(),
        ceiling: Some(1),
    });
    rows.push(Row {
        name: "hcp aggregator vs COPY".into(),
        items: stored as u64,
        elapsed: agg_time,
        note: "vs COPY".into(),
        ceiling: Some(2),
    });

    // 5. Bare axum JSON endpoint under the same load generator (HTTP ceiling).
    let echo = TcpListener::bind("127.0.0.1:0").await?;
    let echo_addr = echo.local_addr()?;
    let echo_token = CancellationToken::new();
    let echo_stop = echo_token.clone();
    tokio::spawn(async move {
        let app = Router::new().route(
            "/echo",
            post(|Json(v): Json<serde_json::Value>| async move {
                (axum::http::StatusCode::ACCEPTED, Json(serde_json::json!({ "rating_id": v["service_record_no"] })))
            }),
        );
        axum::serve(echo, app).with_graceful_shutdown(echo_stop.cancelled_owned()).await
    });
    let load = |url: String, prefix: &str| LoadOptions {
        url,
        requests: opts.requests,
        concurrency: opts.concurrency,
        rate: None,
        record_prefix: format!("{prefix}{run_id}-"),
    };
    let r = loadgen::run(&load(format!("http://{echo_addr}/echo"), "ECHO")).await?;
    echo_token.cancel();
    let echo_row = rows.len();
    rows.push(Row {
        name: "bare axum JSON endpoint".into(),
        items: r.ok,
        elapsed: r.elapsed,
        note: format!("p50 {:.2} ms, p99 {:.2} ms", ms(r.p50), ms(r.p99)),
        ceiling: None,
    });

    // 6. hcp ingest: validate, publish with acks=all, answer 202.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let srv = server::spawn(
        cfg.clone(),
        Components { ingest: true, aggregator: false, board: false, directory: false, workorders: false },
        listener,
    )
    .await?;
    let r = loadgen::run(&load(format!("{}/api/v1/ratings", srv.url()), "BENCH")).await?;
    srv.stop().await?;
    rows.push(Row {
        name: "hcp POST /api/v1/ratings (202 after broker ack)".into(),
        items: r.ok,
        elapsed: r.elapsed,
        note: format!("p50 {:.2} ms, p99 {:.2} ms, failed {}", ms(r.p50), ms(r.p99), r.failed),
        ceiling: Some(echo_row),
    });
    rows.push(Row {
        name: "hcp POST vs raw produce".into(),
        items: r.ok,
        elapsed: r.elapsed,
        note: "vs raw produce".into(),
        ceiling: Some(0),
    });
    store.pool().close().await;
    Ok(rows)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The COPY ceiling writes the same rows the aggregator stores, attribution snapshot included
/// (computed here beforehand, so only the write is timed).
async fn copy_ratings(
    store: &hcp_store::Store,
    events: &[RatingSubmitted],
    directory: &hcp_domain::Directory,
) -> anyhow::Result<Duration> {
    let mut conn = store.pool().acquire().await?;
    sqlx::query("CREATE TEMP TABLE copy_ceiling (LIKE ratings INCLUDING DEFAULTS)").execute(&mut *conn).await?;
    let mut csv = String::with_capacity(events.len() * 1200);
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for (i, e) in events.iter().enumerate() {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let a = hcp_domain::attribute(directory, e, e.rated_at);
        let flags: Vec<&str> = a.flags.iter().map(|f| f.as_str()).collect();
        let scopes: Vec<String> = a.scope_keys().iter().map(|k| format!("\"{k}\"")).collect();
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},\"{{{}}}\",\"{}\",{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            e.rating_id,
            e.service_record_no,
            e.stage.as_str(),
            e.assess_number.value(),
            e.channel.as_str(),
            opt(&e.service_item_code),
            opt(&e.department_id),
            opt(&e.hall_id),
            opt(&e.window_id),
            opt(&e.staff_id),
            opt(&e.device_id),
            e.grade.value(),
            e.tags.join(","),
            opt(&e.comment).replace('"', "\"\""),
            e.rated_at.to_rfc3339(),
            e.received_at.to_rfc3339(),
            Utc::now().to_rfc3339(),
            "",
            "bench",
            0,
            i,
            opt(&a.department_id),
            opt(&a.hall_id),
            opt(&a.window_id),
            opt(&a.staff_id),
            quote(&serde_json::to_string(&a)?),
            quote(&format!("{{{}}}", flags.join(","))),
            quote(&format!("{{{}}}", scopes.join(","))),
            a.directory_version,
            Utc::now().to_rfc3339(),
        ));
    }
    let t = Instant::now();
    let mut copy = conn.copy_in_raw("COPY copy_ceiling FROM STDIN WITH (FORMAT csv)").await?;
    copy.send(csv.as_bytes()).await?;
    copy.finish().await?;
    Ok(t.elapsed())
}

/// Prints the table with rates and ratios to the ceilings.
pub fn print(rows: &[Row]) {
    println!("| measurement | items | seconds | per second | ratio to ceiling | note |");
    println!("|---|---:|---:|---:|---:|---|");
    for r in rows {
        let ratio = r
            .ceiling
            .map(|c| format!("{:.0} %", 100.0 * r.rate() / rows[c].rate()))
            .unwrap_or_else(|| "ceiling".into());
        println!(
            "| {} | {} | {:.2} | {:.0} | {} | {} |",
            r.name,
            r.items,
            r.elapsed.as_secs_f64(),
            r.rate(),
            ratio,
            r.note
        );
    }
}
