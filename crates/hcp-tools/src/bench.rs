//! `hcp bench`: hcp against the raw ceilings, measured in one run on the same broker and database.
//!
//! Ceilings: raw rdkafka produce and consume of the very records hcp produces, PostgreSQL
//! `COPY` of the same rating rows, and a bare axum JSON endpoint under the same load generator
//! (`hcp loadgen`, run as a separate process). A baseline: the naive design (no Kafka; per rating
//! one transaction with one INSERT and one upsert per aggregate row). hcp: the aggregator (its own
//! process, peak RSS sampled) from a pre-filled topic to committed ratings, aggregates and work
//! orders; single and batch `POST`; the latency from 202 to visible in the statistics and on an
//! open board stream under background load; the board query over everything stored (optionally
//! after `--history` older ratings).

use std::time::{Duration, Instant};

use anyhow::Context;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{Datelike, Utc};
use futures::stream::{FuturesUnordered, StreamExt};
use hcp_domain::RatingSubmitted;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::Timeout;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::loadgen::LoadReport;
use hcp_server::{server, ComponentName, Components, Config};

use crate::demo;

/// Sizes of one bench run (the `hcp bench` options).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Records for the Kafka / COPY / aggregator measurements.
    #[arg(long, default_value_t = 50_000)]
    pub messages: usize,
    /// Requests for each HTTP measurement.
    #[arg(long, default_value_t = 20_000)]
    pub requests: u64,
    /// HTTP requests in flight.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Partitions of the bench topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Ratings per request of the batch-ingest measurement.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Ratings written by the naive design (one transaction each).
    #[arg(long, default_value_t = 5_000)]
    pub naive: usize,
    /// Background load (ratings/s) while the 202 → visible latency is probed.
    #[arg(long, default_value_t = 1_000)]
    pub e2e_rate: u64,
    /// Seconds of that background load.
    #[arg(long, default_value_t = 12)]
    pub e2e_seconds: u64,
    /// Send that background load in batches of this many ratings (`POST /api/v1/ratings/batch`,
    /// `--e2e-rate / N` requests a second) instead of one rating per request.
    #[arg(long)]
    pub e2e_batch: Option<usize>,
    /// Older ratings inserted before timing the board query (e.g. 10000000).
    #[arg(long, default_value_t = 0)]
    pub history: u64,
    /// Stop after the aggregator (its ceilings, the naive design and the aggregator only): the
    /// quick loop for work on the consume → store path.
    #[arg(long)]
    pub aggregator_only: bool,
    /// Rounds of the aggregator and its ceilings (each figure is the median round).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
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
    /// What this row is compared with.
    pub compare: Compare,
}

/// How a row relates to another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Compare {
    /// A ceiling itself.
    None,
    /// The baseline itself.
    IsBaseline,
    /// A share of the ceiling at this index.
    Ceiling(usize),
    /// A multiple of the baseline at this index.
    Baseline(usize),
    /// A latency figure (no rate).
    Latency,
}

impl Row {
    fn rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }

    fn new(name: impl Into<String>, items: u64, elapsed: Duration, note: impl Into<String>, compare: Compare) -> Row {
        Row { name: name.into(), items, elapsed, note: note.into(), compare }
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
    cfg.rate_limit_per_ip = u32::MAX / 2;
    (cfg.rate_limit_device, cfg.rate_limit_integration, cfg.rate_limit_platform) =
        (u32::MAX / 2, u32::MAX / 2, u32::MAX / 2);
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
    raw_produce(&producer, &topics.rating_submitted, &bodies, 20_000).await?;
    let produce_row = rows.len();
    rows.push(Row::new(
        "raw rdkafka produce (acks=all, idempotent)".to_string(),
        bodies.len() as u64,
        t.elapsed(),
        "",
        Compare::None,
    ));

    // 1b. Raw produce with only as many records in flight as the HTTP load has requests (each
    //     request waits for its own acknowledgement): the ceiling of "202 only after the ack".
    //     (A scratch topic of its own, so the aggregator's topic holds each record once.)
    let scratch = format!("{}.ack-latency", topics.rating_submitted);
    hcp_bus::create_topics(&kafka, &[scratch.as_str()], opts.partitions, 1).await?;
    let t = Instant::now();
    let latency_bound = &bodies[..(opts.requests as usize).min(bodies.len())];
    raw_produce(&producer, &scratch, latency_bound, opts.concurrency).await?;
    let acked_row = rows.len();
    rows.push(Row::new(
        format!("raw rdkafka produce, {} in flight", opts.concurrency),
        latency_bound.len() as u64,
        t.elapsed(),
        "a request's ack round trip bounds single POSTs",
        Compare::None,
    ));

    // 2–5. The aggregator against its ceilings, `--rounds` times (single runs on a shared
    //      2-core machine move by ±15 %): per round a raw consume with its own consumer group, a
    //      COPY, and the aggregator on its own database and group. The table shows each figure's
    //      median round; the aggregator's per-round shares of consume + COPY are in its note.
    //      The naive design (the baseline) runs once, after the first COPY.
    let db_name = format!("hcp_bench_{run_id}");
    let store = bench_database(&cfg.database_url, &db_name).await?;
    let db_url = with_database(&cfg.database_url, &db_name);
    let snapshot = store.load_directory().await?;
    // Every figure depends on it: the table says what the cluster ran with.
    let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(store.pool()).await?;
    let mut rounds: Vec<Round> = Vec::new();
    let mut naive_time = None;
    let naive_events = &events[..opts.naive.min(events.len())];
    for round in 0..opts.rounds.max(1) {
        let consume = raw_consume(&kafka, &topics.rating_submitted, opts.partitions, bodies.len(), &run_id, round)?;
        let copy = copy_ratings(&store, &events, &snapshot).await?;
        if naive_time.is_none() {
            // No Kafka, a transaction per rating with one INSERT and one upsert per aggregate row
            // it counts in (the same rows the aggregator touches), 8 connections.
            naive_time = Some(naive_design(&store, naive_events, &snapshot).await?);
        }
        // The first round fills the bench database (the later measurements read it); the others
        // get a database of their own, dropped afterwards.
        let (agg_store, agg_db) = if round == 0 {
            (store.clone(), db_name.clone())
        } else {
            let name = format!("{db_name}_r{round}");
            (bench_database(&cfg.database_url, &name).await?, name)
        };
        let agg = run_aggregator(&cfg, &agg_store, &agg_db, &topics, bodies.len(), &run_id, round).await?;
        if round > 0 {
            agg_store.pool().close().await;
            drop_database(&store, &agg_db).await?;
        }
        eprintln!(
            "round {}: consume {:.2} s, COPY {:.2} s, aggregator {:.2} s ({:.0} % of consume + COPY)",
            round + 1,
            consume.as_secs_f64(),
            copy.as_secs_f64(),
            agg.elapsed.as_secs_f64(),
            100.0 * (consume + copy).as_secs_f64() / agg.elapsed.as_secs_f64()
        );
        rounds.push(Round { consume, copy, agg });
    }
    let median = |f: &dyn Fn(&Round) -> Duration| {
        let mut v: Vec<Duration> = rounds.iter().map(f).collect();
        v.sort();
        v[v.len() / 2]
    };
    let n = events.len() as u64;
    let consume_row = rows.len();
    rows.push(Row::new("raw rdkafka consume", n, median(&|r| r.consume), "", Compare::None));
    let copy_row = rows.len();
    rows.push(Row::new("PostgreSQL COPY of rating rows", n, median(&|r| r.copy), "", Compare::None));
    let serial_row = rows.len();
    rows.push(Row::new(
        "raw consume + COPY (one after the other)",
        n,
        median(&|r| r.consume + r.copy),
        "the aggregator's combined ceiling",
        Compare::None,
    ));
    // What the aggregator moves besides: one attributed event per rating (about twice these
    // records' size), which the target's ceiling leaves out. A lower bound of the whole work.
    let whole_row = rows.len();
    rows.push(Row::new(
        "raw consume + COPY + raw produce (one after the other)",
        n,
        median(&|r| r.consume + r.copy) + rows[produce_row].elapsed,
        "the aggregator also publishes every rating (not in the target's ceiling)",
        Compare::None,
    ));
    let naive_row = rows.len();
    rows.push(Row::new(
        "naive design (INSERT + UPDATE per aggregate row, per rating, 8 connections)",
        naive_events.len() as u64,
        naive_time.unwrap_or_default(),
        format!("PostgreSQL fsync {fsync}"),
        Compare::IsBaseline,
    ));
    let agg_time = median(&|r| r.agg.elapsed);
    let first = &rounds[0].agg;
    let peak_rss_mib = rounds.iter().map(|r| r.agg.peak_rss_kib).max().unwrap_or(0) as f64 / 1024.0;
    let shares: Vec<String> = rounds
        .iter()
        .map(|r| format!("{:.0} %", 100.0 * (r.consume + r.copy).as_secs_f64() / r.agg.elapsed.as_secs_f64()))
        .collect();
    let stored = first.stored;
    let agg_name = "hcp aggregator (own process; topic → ratings, aggregates, work orders)";
    let rss = format!("peak RSS {peak_rss_mib:.0} MiB, {} work orders", first.orders);
    let agg_row = rows.len();
    rows.push(Row::new(agg_name, stored, agg_time, format!("vs raw consume; {rss}"), Compare::Ceiling(consume_row)));
    rows.push(Row::new("hcp aggregator vs COPY", stored, agg_time, "vs COPY", Compare::Ceiling(copy_row)));
    rows.push(Row::new(
        "hcp aggregator vs raw consume + COPY",
        stored,
        agg_time,
        format!("target ≥ 50 %; by round: {}", shares.join(", ")),
        Compare::Ceiling(serial_row),
    ));
    rows.push(Row::new(
        "hcp aggregator vs raw consume + COPY + produce",
        stored,
        agg_time,
        "the whole work's lower bound",
        Compare::Ceiling(whole_row),
    ));
    rows.push(Row::new(
        "hcp aggregator vs the naive design",
        stored,
        agg_time,
        "target ≥ ×10",
        Compare::Baseline(naive_row),
    ));
    if opts.aggregator_only {
        return Ok(rows);
    }

    // 6. Bare axum JSON endpoint under the same load generator (HTTP ceiling), load from its
    //    own process.
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
    let load = |url: String, path: &str, prefix: &str| Load {
        url,
        path: path.into(),
        requests: opts.requests,
        concurrency: opts.concurrency,
        rate: None,
        batch: None,
        prefix: format!("{prefix}{run_id}-"),
        keys: None,
    };
    let r = load(format!("http://{echo_addr}"), "/echo", "ECHO").run().await?;
    echo_token.cancel();
    let echo_row = rows.len();
    rows.push(Row::new("bare axum JSON endpoint", r.ok, r.elapsed, latency(&r), Compare::None));

    // 7. hcp ingest: validate, claim the stage, publish with acks=all, answer 202 — single and batch.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let ingest_only = Components::only(&[ComponentName::Ingest]);
    let mut ingest_cfg = cfg.clone();
    ingest_cfg.database_url = db_url.clone();
    // The claim table as a running system has it: large (a claim per rating ever accepted) and
    // analysed. A table created seconds ago and filled during the measurement is planned as
    // empty (sequential scans, until autovacuum's next analyse a minute later), which no
    // deployment past its first minute sees.
    let past = (opts.requests * 10).max(200_000);
    sqlx::query(
        "INSERT INTO rating_claims (service_record_no, stage, assess_number, rating_id, state, claimed_at)
         SELECT 'PAST-' || g, 'online', 1, gen_random_uuid(), 'accepted', now() - interval '1 day'
           FROM generate_series(1, $1::bigint) g",
    )
    .bind(past as i64)
    .execute(store.pool())
    .await?;
    sqlx::query("ANALYZE rating_claims").execute(store.pool()).await?;
    let srv = server::spawn(ingest_cfg, ingest_only, listener).await?;
    // With a channel key on every rating (the gate checks it, binds device and window), as
    // production clients send them.
    let keys = issue_keys(&store, &run_id).await?;
    let r = Load { keys: Some(keys.clone()), ..load(srv.url(), "/api/v1/ratings", "BENCH") }.run().await;
    let _ = std::fs::remove_file(&keys);
    let r = r?;
    rows.push(Row::new(
        "hcp POST /api/v1/ratings (202 after broker ack)",
        r.ok,
        r.elapsed,
        format!("{}, failed {}{}; target ≥ 50 %", latency(&r), r.failed, failures(&r)),
        Compare::Ceiling(echo_row),
    ));
    rows.push(Row::new(
        format!("hcp POST vs raw produce, {} in flight", opts.concurrency),
        r.ok,
        r.elapsed,
        "the same acks=all round trip per rating",
        Compare::Ceiling(acked_row),
    ));
    let batch = Load {
        requests: (opts.messages / opts.batch_size.max(1)).max(1) as u64,
        concurrency: 8,
        batch: Some(opts.batch_size),
        ..load(srv.url(), "/api/v1/ratings/batch", "BATCH")
    };
    let r = batch.run().await?;
    srv.stop().await?;
    rows.push(Row::new(
        format!("hcp POST /api/v1/ratings/batch ({} per request)", opts.batch_size),
        r.ok,
        r.elapsed,
        format!("{} per request, failed {}; vs raw produce", latency(&r), r.failed),
        Compare::Ceiling(produce_row),
    ));

    // 8. Accepted → visible, under background load: in the statistics, and on an open board stream.
    rows.extend(end_to_end(&cfg, &store, &db_url, opts, &run_id).await?);

    // 9. The board query over everything stored (and older history, if asked).
    if opts.history > 0 {
        let t = Instant::now();
        insert_history(&store, opts.history).await?;
        eprintln!("inserted {} older ratings in {:.1} s", opts.history, t.elapsed().as_secs_f64());
        // 10. The aggregator again, now over everything stored: as many new records as before
        //     (new record numbers and ids, from a topic of their own), into this database.
        let mut late_cfg = cfg.clone();
        late_cfg.topic_prefix = format!("bench{run_id}-late.");
        late_cfg.aggregator_group = format!("bench-agg-{run_id}-late");
        let late_topics = late_cfg.topics();
        hcp_bus::create_topics(&kafka, &late_topics.all(), opts.partitions, 1).await?;
        let late_bodies: Vec<(String, Vec<u8>)> = demo::day_of_ratings(opts.messages, Utc::now(), 8)
            .into_iter()
            .map(|mut e| {
                e.service_record_no = format!("LATE{run_id}{}", e.service_record_no);
                (e.service_record_no.clone(), serde_json::to_vec(&e).expect("serializes"))
            })
            .collect();
        raw_produce(&producer, &late_topics.rating_submitted, &late_bodies, 20_000).await?;
        let before = store.count_ratings().await?;
        let late = run_aggregator(&late_cfg, &store, &db_name, &late_topics, late_bodies.len(), &run_id, 99).await?;
        rows.push(Row::new(
            "hcp aggregator over the stored volume",
            late.stored - before as u64,
            late.elapsed,
            format!(
                "{before} ratings stored before it; peak RSS {:.0} MiB; vs the aggregator on an empty table (target ≥ 90 %)",
                late.peak_rss_kib as f64 / 1024.0
            ),
            Compare::Ceiling(agg_row),
        ));
    }
    rows.extend(board_query(&cfg, &store, &db_url).await?);
    store.pool().close().await;
    Ok(rows)
}

/// A load run of `hcp loadgen` in its own process.
struct Load {
    url: String,
    path: String,
    requests: u64,
    concurrency: usize,
    rate: Option<u64>,
    batch: Option<usize>,
    prefix: String,
    /// A `--keys` file: single ratings go with channel keys, as in production.
    keys: Option<std::path::PathBuf>,
}

impl Load {
    fn command(&self) -> anyhow::Result<tokio::process::Command> {
        let mut c = tokio::process::Command::new(std::env::current_exe()?);
        c.args(["loadgen", "--json", "--url", &self.url, "--path", &self.path, "--prefix", &self.prefix]);
        c.args(["--requests", &self.requests.to_string(), "--concurrency", &self.concurrency.to_string()]);
        if let Some(r) = self.rate {
            c.args(["--rate", &r.to_string()]);
        }
        if let Some(b) = self.batch {
            c.args(["--batch", &b.to_string()]);
        }
        if let Some(k) = &self.keys {
            c.arg("--keys").arg(k);
        }
        c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::inherit()).kill_on_drop(true);
        Ok(c)
    }

    async fn run(&self) -> anyhow::Result<LoadReport> {
        let out = self.command()?.output().await.context("running hcp loadgen")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().rev().find(|l| l.starts_with('{')).context("hcp loadgen printed no report")?;
        Ok(serde_json::from_str(line)?)
    }
}

/// `, by status {…}` when requests failed.
fn failures(r: &LoadReport) -> String {
    if r.failures.is_empty() {
        String::new()
    } else {
        format!(" (by status {:?})", r.failures)
    }
}

fn latency(r: &LoadReport) -> String {
    format!("p50 {:.2} ms, p99 {:.2} ms", ms(r.p50), ms(r.p99))
}

/// Issues a device key for every demo window evaluator and an integration key for every channel
/// that takes one, and writes them to a `--keys` file (owner-only) for `hcp loadgen`.
async fn issue_keys(store: &hcp_store::Store, run_id: &str) -> anyhow::Result<std::path::PathBuf> {
    let mut keys = crate::loadgen::LoadKeys::default();
    let issue = async |kind: &str, channel: &str, device: Option<&str>| -> anyhow::Result<String> {
        let (key_id, token, secret_sha256) = hcp_http::auth::new_channel_key();
        let c = hcp_store::Credential {
            key_id,
            kind: kind.into(),
            channel: channel.into(),
            device_id: device.map(Into::into),
            hall_id: None,
            window_id: None,
            name: format!("bench {run_id}"),
            created_at: Utc::now(),
            revoked_at: None,
            last_used_at: None,
            rate_limit: None,
            secret_sha256,
        };
        store.create_credential(&c).await?;
        Ok(token)
    };
    for d in demo::DIRECTORY.devices.iter().filter(|d| d.kind == hcp_domain::directory::DeviceKind::Evaluator) {
        let token = issue("device", "window_evaluator", Some(&d.id)).await?;
        keys.devices.insert(d.id.clone(), token);
    }
    for channel in ["app", "web", "mini_program", "hotline"] {
        let token = issue("integration", channel, None).await?;
        keys.channels.insert(channel.into(), token);
    }
    let path = std::env::temp_dir().join(format!("hcp-bench-keys-{run_id}.json"));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        f.write_all(&serde_json::to_vec(&keys)?)?;
    }
    Ok(path)
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Resident set size of a process (Linux), in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    proc_status(pid, "VmRSS:")
}

/// Peak resident set size of a process (Linux), in KiB.
fn peak_rss(pid: u32) -> Option<u64> {
    proc_status(pid, "VmHWM:")
}

fn proc_status(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Stops a child with SIGTERM (graceful), then waits.
fn terminate(child: &mut std::process::Child) -> anyhow::Result<()> {
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    child.wait()?;
    Ok(())
}

/// The naive design: per rating, one transaction with an INSERT of the rating and one upsert per
/// aggregate row (hour and day bucket of every scope it counts in), on 8 connections.
async fn naive_design(
    store: &hcp_store::Store,
    events: &[RatingSubmitted],
    directory: &hcp_domain::Directory,
) -> anyhow::Result<Duration> {
    sqlx::query("CREATE TABLE naive_ratings (LIKE ratings INCLUDING ALL)").execute(store.pool()).await?;
    sqlx::query("CREATE TABLE naive_aggregates (LIKE rating_aggregates INCLUDING ALL)").execute(store.pool()).await?;
    let work: Vec<(RatingSubmitted, Vec<String>)> =
        events.iter().map(|e| (e.clone(), hcp_domain::attribute(directory, e, e.rated_at).scope_keys())).collect();
    let work = std::sync::Arc::new(work);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (pool, work, next) = (store.pool().clone(), work.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((e, scopes)) = work.get(i) else { return Ok::<_, sqlx::Error>(()) };
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO naive_ratings (rating_id, service_record_no, stage, assess_number, channel, grade,
                                                tags, rated_at, received_at, source_topic, source_partition,
                                                source_offset, agg_scopes)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'naive', 0, $10, $11)",
                )
                .bind(e.rating_id)
                .bind(&e.service_record_no)
                .bind(e.stage.as_str())
                .bind(e.assess_number.value() as i16)
                .bind(e.channel.as_str())
                .bind(e.grade.value() as i16)
                .bind(&e.tags)
                .bind(e.rated_at)
                .bind(e.received_at)
                .bind(i as i64)
                .bind(scopes)
                .execute(&mut *tx)
                .await?;
                let n = format!("n{}", e.grade.value());
                for key in scopes {
                    let (scope, id) = key.split_once(':').unwrap_or((key, ""));
                    for (width, bucket) in [
                        ("hour", hcp_domain::time::hour_start(e.rated_at)),
                        ("day", hcp_domain::time::day_start(e.rated_at)),
                    ] {
                        sqlx::query(&format!(
                            "INSERT INTO naive_aggregates (scope, scope_id, width, bucket_start, {n}) VALUES ($1, $2, $3, $4, 1)
                             ON CONFLICT (scope, scope_id, width, bucket_start) DO UPDATE SET {n} = naive_aggregates.{n} + 1"
                        ))
                        .bind(scope)
                        .bind(id)
                        .bind(width)
                        .bind(bucket)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(t.elapsed())
}

/// One round of the aggregator's measurements.
struct Round {
    consume: Duration,
    copy: Duration,
    agg: AggregatorRun,
}

/// One aggregator process from the pre-filled topic to its last committed position.
struct AggregatorRun {
    elapsed: Duration,
    peak_rss_kib: u64,
    stored: u64,
    orders: i64,
}

/// A fresh database with the migrations and the demo directory (rostered yesterday and today).
async fn bench_database(url: &str, name: &str) -> anyhow::Result<hcp_store::Store> {
    let store = hcp_store::create_fresh_database(url, name, 8).await.context("creating a bench database")?;
    let mut directory = demo::DIRECTORY.clone();
    let now = Utc::now();
    directory.roster = [demo::roster_for_day(now - chrono::Duration::days(1)), demo::roster_for_day(now)].concat();
    store.import_directory(&directory).await.context("importing the demo directory")?;
    Ok(store)
}

/// Drops a database this run made (from another database's connection).
async fn drop_database(store: &hcp_store::Store, name: &str) -> anyhow::Result<()> {
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(store.pool()).await?;
    Ok(())
}

/// Raw rdkafka consume of the first `count` records of `topic`, with the aggregator's consumer
/// settings and a consumer group of this round's own.
fn raw_consume(
    kafka: &hcp_bus::KafkaConfig,
    topic: &str,
    partitions: i32,
    count: usize,
    run_id: &str,
    round: usize,
) -> anyhow::Result<Duration> {
    let consumer: BaseConsumer = kafka.consumer(&format!("bench-raw-{run_id}-{round}")).create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let t = Instant::now();
    let mut seen = 0usize;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen < count && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            m?;
            seen += 1;
        }
    }
    anyhow::ensure!(seen == count, "raw consume read {seen} of {count} records");
    Ok(t.elapsed())
}

/// Produces `records` to `topic` with raw rdkafka, at most `in_flight` awaiting their
/// acknowledgement at once; fails on the first record the broker refuses.
async fn raw_produce(
    producer: &FutureProducer,
    topic: &str,
    records: &[(String, Vec<u8>)],
    in_flight: usize,
) -> anyhow::Result<()> {
    let mut pending = FuturesUnordered::new();
    for (key, body) in records {
        pending.push(
            producer.send(FutureRecord::to(topic).key(key).payload(body), Timeout::After(Duration::from_secs(30))),
        );
        if pending.len() >= in_flight {
            if let Some(r) = pending.next().await {
                r.map_err(|(e, _)| e)?;
            }
        }
    }
    while let Some(r) = pending.next().await {
        r.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// The aggregator as its own process (`hcp serve --components aggregator`) on database `db`
/// with a consumer group of this round's own, timed from its start until the positions it
/// stored cover `count` records; peak RSS sampled from `/proc`. Its log (RUST_LOG as given to
/// the bench) goes to a file, so batch timings can be read.
async fn run_aggregator(
    cfg: &Config,
    store: &hcp_store::Store,
    db: &str,
    topics: &hcp_bus::Topics,
    count: usize,
    run_id: &str,
    round: usize,
) -> anyhow::Result<AggregatorRun> {
    let group = format!("{}-{round}", cfg.aggregator_group);
    let log_path = std::env::temp_dir().join(format!("hcp-bench-aggregator-{run_id}-{}.log", round + 1));
    let log = std::fs::File::create(&log_path).context("creating the aggregator's log file")?;
    eprintln!("aggregator log: {}", log_path.display());
    let mut agg = std::process::Command::new(std::env::current_exe()?)
        .args(["serve", "--components", "aggregator"])
        .env("HCP_ENV", "development")
        .env("DATABASE_URL", with_database(&cfg.database_url, db))
        .env("HCP_TOPIC_PREFIX", &cfg.topic_prefix)
        .env("HCP_AGGREGATOR_GROUP", &group)
        .env("HCP_HTTP_ADDR", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the aggregator process")?;
    let t = Instant::now();
    let mut peak_rss_kib = 0u64;
    loop {
        peak_rss_kib = peak_rss_kib.max(rss_kib(agg.id()).unwrap_or(0));
        let done: i64 = store.positions(&group, &topics.rating_submitted).await?.iter().map(|(_, o)| o).sum();
        if done as usize >= count || t.elapsed() > Duration::from_secs(600) {
            break;
        }
        anyhow::ensure!(agg.try_wait()?.is_none(), "the aggregator process exited early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = t.elapsed();
    peak_rss_kib = peak_rss_kib.max(peak_rss(agg.id()).unwrap_or(0));
    terminate(&mut agg)?;
    let stored = store.count_ratings().await? as u64;
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM work_orders").fetch_one(store.pool()).await?;
    Ok(AggregatorRun { elapsed, peak_rss_kib, stored, orders })
}

/// An operator session on a running server (the account is made in the bench database).
async fn admin_session(store: &hcp_store::Store, url: &str) -> anyhow::Result<String> {
    let password = format!("bench-{}", uuid::Uuid::now_v7());
    store
        .upsert_account(&hcp_store::Account {
            username: "bench-admin".into(),
            display_name: "压测管理员".into(),
            role: "admin".into(),
            department_id: None,
            region_code: None,
            staff_id: None,
            disabled: false,
            password_hash: hcp_http::auth::hash_password(&password),
        })
        .await?;
    let r = reqwest::Client::new()
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "bench-admin", "password": password}))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 200, "bench login: {}", r.status());
    Ok(r.json::<serde_json::Value>().await?["token"].as_str().context("token")?.to_owned())
}

/// Latency from 202 to visible, for probe ratings posted while `hcp loadgen` (its own process)
/// sends `e2e_rate` ratings/s to a full server (ingest, aggregator, board): in the statistics
/// (the probe's rating record answers, which happens in the transaction that counts it) and on
/// an open board stream (the first `snapshot` whose today's total covers what the statistics
/// showed at that moment — an upper bound).
async fn end_to_end(
    cfg: &Config,
    store: &hcp_store::Store,
    db_url: &str,
    opts: &BenchOptions,
    run_id: &str,
) -> anyhow::Result<Vec<Row>> {
    let mut full = cfg.clone();
    full.database_url = db_url.to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let srv = server::spawn(full, Components::all(), listener).await?;
    let result = probe(cfg, store, &srv.url(), opts, run_id).await;
    srv.stop().await?;
    result
}

async fn probe(
    cfg: &Config,
    store: &hcp_store::Store,
    url: &str,
    opts: &BenchOptions,
    run_id: &str,
) -> anyhow::Result<Vec<Row>> {
    let url = url.to_owned();
    // Start from a caught-up aggregator (the ingest measurements left records behind).
    let (kafka, topic) = (cfg.kafka(), cfg.topics().rating_submitted);
    let high: i64 =
        tokio::task::spawn_blocking(move || hcp_bus::fetch_high_watermarks(&kafka, &topic, Duration::from_secs(10)))
            .await??
            .values()
            .sum();
    let t = Instant::now();
    while store
        .positions(&cfg.aggregator_group, &cfg.topics().rating_submitted)
        .await?
        .iter()
        .map(|(_, o)| o)
        .sum::<i64>()
        < high
    {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(900),
            "the aggregator did not catch up with the ingested backlog"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("aggregator caught up with the ingest backlog in {:.1} s", t.elapsed().as_secs_f64());
    let token = admin_session(store, &url).await?;
    let client = reqwest::Client::new();

    // The board stream, collected as (arrival, today's total).
    let seen: std::sync::Arc<std::sync::Mutex<Vec<(Instant, i64)>>> = Default::default();
    let mut stream = client.get(format!("{url}/api/v1/board/stream")).bearer_auth(&token).send().await?;
    anyhow::ensure!(stream.status() == 200, "board stream: {}", stream.status());
    let collector = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = stream.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                        if let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim_start()) {
                            let total = v["today"]["total"].as_i64().unwrap_or(0);
                            seen.lock().expect("board events").push((Instant::now(), total));
                        }
                    }
                }
            }
        })
    };

    let per_request = opts.e2e_batch.unwrap_or(1).max(1) as u64;
    let background = Load {
        url: url.clone(),
        path: if opts.e2e_batch.is_some() { "/api/v1/ratings/batch" } else { "/api/v1/ratings" }.into(),
        requests: opts.e2e_rate * opts.e2e_seconds / per_request,
        concurrency: if opts.e2e_batch.is_some() { 8 } else { 64 },
        rate: Some((opts.e2e_rate / per_request).max(1)),
        batch: opts.e2e_batch,
        prefix: format!("E2E{run_id}-"),
        keys: None,
    };
    let load = background.command()?.spawn().context("starting hcp loadgen")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let probes = 40u64;
    let gap = Duration::from_millis(((opts.e2e_seconds.saturating_sub(2)) * 1000 / probes).max(20));
    let mut to_stats = Vec::new();
    let mut to_board = Vec::new();
    for i in 0..probes {
        let mut rng = <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(1_000_000 + i);
        let body = demo::random_input(&mut rng, format!("PROBE{run_id}-{i:04}"), None);
        let r = client.post(format!("{url}/api/v1/ratings")).json(&body).send().await?;
        let accepted = Instant::now();
        anyhow::ensure!(r.status() == 202, "probe {i}: {}", r.status());
        let id = r.json::<serde_json::Value>().await?["rating_id"].as_str().context("rating_id")?.to_owned();
        let visible = loop {
            let s = client.get(format!("{url}/api/v1/ratings/{id}")).bearer_auth(&token).send().await?.status();
            if s == 200 {
                break Instant::now();
            }
            anyhow::ensure!(accepted.elapsed() < Duration::from_secs(60), "probe {i} never became visible");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        to_stats.push(visible - accepted);
        let summary: serde_json::Value =
            client.get(format!("{url}/api/v1/stats/summary")).bearer_auth(&token).send().await?.json().await?;
        let total = summary["total"].as_i64().unwrap_or(i64::MAX);
        let shown = loop {
            let hit = seen
                .lock()
                .expect("board events")
                .iter()
                .find(|(at, t)| *at >= accepted && *t >= total)
                .map(|(at, _)| *at);
            if let Some(at) = hit {
                break at;
            }
            anyhow::ensure!(accepted.elapsed() < Duration::from_secs(60), "probe {i} never reached the board");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        to_board.push(shown.saturating_duration_since(accepted));
        tokio::time::sleep(gap.saturating_sub(accepted.elapsed())).await;
    }
    let out = load.wait_with_output().await?;
    collector.abort();
    let report: LoadReport = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout).lines().rev().find(|l| l.starts_with('{')).context("loadgen report")?,
    )?;
    let background_note = format!(
        "{} probes while loadgen sent {:.0}/s{} (p99 of its POSTs {:.1} ms)",
        probes,
        report.rate(),
        opts.e2e_batch.map(|n| format!(" in batches of {n}")).unwrap_or_default(),
        ms(report.p99)
    );
    let pct = |v: &mut Vec<Duration>, q: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * q).round() as usize]
    };
    let (s50, s99) = (pct(&mut to_stats, 0.5), pct(&mut to_stats, 0.99));
    let (b50, b99) = (pct(&mut to_board, 0.5), pct(&mut to_board, 0.99));
    Ok(vec![
        Row::new(
            "202 → visible in /api/v1/stats",
            probes,
            s99,
            format!("p50 {:.0} ms, p99 {:.0} ms; {background_note}; target p99 < 1 s", ms(s50), ms(s99)),
            Compare::Latency,
        ),
        Row::new(
            "202 → on an open board stream (SSE)",
            probes,
            b99,
            format!("p50 {:.0} ms, p99 {:.0} ms (upper bound)", ms(b50), ms(b99)),
            Compare::Latency,
        ),
    ])
}

/// `n` older ratings (35 to 400 days ago, grade and channel varied), straight into `ratings`;
/// then the rollup rows of that year as if every unit, reach, channel, stage and tag seen so far
/// had been rated in every hour of it (the most rollup rows a year can leave, however many
/// ratings it had): the board reads rollups only, so these, not `n`, are what it must cope with.
async fn insert_history(store: &hcp_store::Store, n: u64) -> anyhow::Result<()> {
    // The history's months get their partitions first, so its rows go straight to them.
    let now = chrono::Utc::now();
    let first = hcp_domain::time::Month::of(now - chrono::Duration::days(401));
    store.ensure_rating_partitions_since(first, now, hcp_store::MONTHS_AHEAD).await?;
    let chunk = 1_000_000u64;
    let mut done = 0u64;
    while done < n {
        let upto = (done + chunk).min(n);
        // Each with its key, as the aggregator stores a rating.
        sqlx::query(
            "WITH r AS (
             INSERT INTO ratings (rating_id, service_record_no, stage, assess_number, channel, grade, tags, rated_at,
                                  received_at, source_topic, source_partition, source_offset, agg_scopes)
             SELECT gen_random_uuid(), 'HIST-' || g, 'acceptance', 1,
                    (ARRAY['window_evaluator','app','web','qr_code'])[1 + g % 4], 1 + g % 5,
                    CASE WHEN g % 5 < 2 THEN ARRAY['long_wait'] ELSE '{}'::text[] END,
                    now() - interval '35 days' - (g % 365) * interval '1 day' - (g % 86400) * interval '1 second',
                    now() - interval '35 days' - (g % 365) * interval '1 day',
                    'history', 0, g, ARRAY['all:all', 'region:449900']
               FROM generate_series($1::int8, $2::int8) g
             RETURNING rating_id, service_record_no, stage, assess_number, rated_at)
             INSERT INTO rating_keys (rating_id, service_record_no, stage, assess_number, rated_at)
             SELECT * FROM r",
        )
        .bind(done as i64 + 1)
        .bind(upto as i64)
        .execute(store.pool())
        .await?;
        done = upto;
    }
    // Beijing midnight 400 days ago to 35 days ago, an hour or a day at a time.
    let span = "generate_series(date_trunc('day', now() AT TIME ZONE INTERVAL '08:00') AT TIME ZONE INTERVAL '08:00'
                                - interval '400 days',
                                date_trunc('day', now() AT TIME ZONE INTERVAL '08:00') AT TIME ZONE INTERVAL '08:00'
                                - interval '35 days', $1::interval)";
    let counts = "(h % 3), (h % 2), (h % 4), 3 + h % 7, 10 + h % 11";
    for (width, step) in [("hour", "1 hour"), ("day", "1 day")] {
        sqlx::query(&format!(
            "INSERT INTO rating_aggregates (scope, scope_id, width, bucket_start, n1, n2, n3, n4, n5)
             SELECT scope, scope_id, '{width}', t, {counts}
               FROM (SELECT DISTINCT scope, scope_id FROM rating_aggregates) u
              CROSS JOIN {span} AS t
              CROSS JOIN LATERAL (SELECT abs(hashtext(scope_id || t::text)) AS h) x
             ON CONFLICT DO NOTHING"
        ))
        .bind(step)
        .execute(store.pool())
        .await?;
    }
    sqlx::query(&format!(
        "INSERT INTO rating_splits (reach, day_start, dimension, value, n1, n2, n3, n4, n5)
         SELECT reach, t, dimension, value, {counts}
           FROM (SELECT DISTINCT reach, dimension, value FROM rating_splits) u
          CROSS JOIN {span} AS t
          CROSS JOIN LATERAL (SELECT abs(hashtext(reach || value || t::text)) AS h) x
         ON CONFLICT DO NOTHING"
    ))
    .bind("1 day")
    .execute(store.pool())
    .await?;
    sqlx::query("ANALYZE ratings, rating_aggregates, rating_splits").execute(store.pool()).await?;
    Ok(())
}

/// 50 sequential `GET /api/v1/board` (the whole system, the widest reach) on a fresh server.
async fn board_query(cfg: &Config, store: &hcp_store::Store, db_url: &str) -> anyhow::Result<Vec<Row>> {
    let mut read_cfg = cfg.clone();
    read_cfg.database_url = db_url.to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    // The board, statistics, export and reports; work orders; the sessions for the login.
    let readers = Components::only(&[ComponentName::Sessions, ComponentName::Board, ComponentName::Workorders]);
    let srv = server::spawn(read_cfg, readers, listener).await?;
    let token = admin_session(store, &srv.url()).await?;
    let client = reqwest::Client::new();
    let today = Utc::now().with_timezone(&hcp_domain::time::beijing()).date_naive();
    let month = today.format("%Y-%m").to_string();
    let stored = store.count_ratings().await?;
    let (aggregate_rows, split_rows, orders): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM rating_aggregates), (SELECT count(*) FROM rating_splits),
                (SELECT count(*) FROM work_orders)",
    )
    .fetch_one(store.pool())
    .await?;
    // (what, path, times, whether only the first body chunk counts, target)
    let reads = [
        ("GET /api/v1/board (whole system)", "/api/v1/board".to_string(), 50, false, "target < 50 ms"),
        (
            "GET /api/v1/stats/ranking (departments, this month)",
            format!(
                "/api/v1/stats/ranking?scope=department&from={}T00:00:00%2B08:00",
                today.with_day(1).unwrap_or(today)
            ),
            50,
            false,
            "target < 200 ms",
        ),
        ("GET /api/v1/work-orders (first page)", "/api/v1/work-orders".to_string(), 50, false, "target < 200 ms"),
        (
            "GET /api/v1/export/ratings (first chunk, last 30 days)",
            format!("/api/v1/export/ratings?from={}&to={today}", today - chrono::Duration::days(29)),
            20,
            true,
            "target < 200 ms",
        ),
        (
            "GET /api/v1/reports/monthly (this month, xlsx)",
            format!("/api/v1/reports/monthly?month={month}"),
            20,
            false,
            "target < 200 ms",
        ),
    ];
    let mut rows = Vec::new();
    for (name, path, n, first_chunk, target) in reads {
        let mut times = Vec::new();
        let t = Instant::now();
        for _ in 0..n {
            let t0 = Instant::now();
            let mut r = client.get(format!("{}{path}", srv.url())).bearer_auth(&token).send().await?;
            anyhow::ensure!(r.status() == 200, "{path}: {}", r.status());
            if first_chunk {
                r.chunk().await?;
                times.push(t0.elapsed());
                drop(r);
            } else {
                r.bytes().await?;
                times.push(t0.elapsed());
            }
        }
        let elapsed = t.elapsed();
        times.sort();
        let at = |q: f64| ms(times[((times.len() as f64 * q).ceil() as usize).saturating_sub(1)]);
        rows.push(Row::new(
            name,
            n as u64,
            elapsed,
            format!(
                "p50 {:.1} ms, p99 {:.1} ms over {stored} stored ratings ({aggregate_rows} aggregate, {split_rows} \
                 split rows, {orders} work orders); {target}",
                at(0.5),
                at(0.99)
            ),
            Compare::Latency,
        ));
    }
    srv.stop().await?;
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
    // A temporary table lives as long as the pooled connection: a later round may get it again.
    sqlx::query("DROP TABLE IF EXISTS copy_ceiling").execute(&mut *conn).await?;
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
    let mut copy = conn
        .copy_in_raw(
            "COPY copy_ceiling (rating_id, service_record_no, stage, assess_number, channel, service_item_code,
                               department_id, hall_id, window_id, staff_id, device_id, grade, tags, comment,
                               rated_at, received_at, stored_at, superseded_by, source_topic, source_partition,
                               source_offset, attr_department_id, attr_hall_id, attr_window_id, attr_staff_id,
                               attribution, attribution_flags, agg_scopes, directory_version, attributed_at)
             FROM STDIN WITH (FORMAT csv)",
        )
        .await?;
    copy.send(csv.as_bytes()).await?;
    copy.finish().await?;
    Ok(t.elapsed())
}

/// Prints the table with rates and ratios to the ceilings (a share) and baselines (a multiple).
pub fn print(rows: &[Row]) {
    println!("| measurement | items | seconds | per second | ratio | note |");
    println!("|---|---:|---:|---:|---:|---|");
    for r in rows {
        let (rate, ratio) = match r.compare {
            Compare::None => (format!("{:.0}", r.rate()), "ceiling".to_string()),
            Compare::IsBaseline => (format!("{:.0}", r.rate()), "baseline".to_string()),
            Compare::Ceiling(c) => (format!("{:.0}", r.rate()), format!("{:.0} %", 100.0 * r.rate() / rows[c].rate())),
            Compare::Baseline(c) => (format!("{:.0}", r.rate()), format!("×{:.1}", r.rate() / rows[c].rate())),
            Compare::Latency => ("—".to_string(), "—".to_string()),
        };
        println!("| {} | {} | {:.2} | {rate} | {ratio} | {} |", r.name, r.items, r.elapsed.as_secs_f64(), r.note);
    }
}
