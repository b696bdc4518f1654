//! `hcp loadgen`: posts realistic ratings over HTTP and reports throughput and latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::Mutex;

use crate::demo;

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Target, e.g. `http://127.0.0.1:8080/api/v1/ratings`.
    pub url: String,
    /// Requests in total.
    pub requests: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Target rate per second; `None` sends as fast as answers come.
    pub rate: Option<u64>,
    /// Prefix of the generated record numbers (unique per run).
    pub record_prefix: String,
    /// Ratings per request: `None` posts one rating per request to `url`; `Some(n)` posts
    /// `{"ratings": [n ratings]}` (the batch endpoint) and counts the items it accepted.
    pub batch: Option<usize>,
}

/// What came back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoadReport {
    /// Requests sent.
    pub sent: u64,
    /// Ratings accepted: 2xx answers, or a batch's `accepted` items.
    pub ok: u64,
    /// Ratings not accepted: non-2xx answers, transport errors, a batch's other items.
    pub failed: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Median latency of a request.
    pub p50: Duration,
    /// 99th percentile latency of a request.
    pub p99: Duration,
}

impl LoadReport {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} requests, ratings ok {} failed {} in {:.2}s = {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
            self.sent,
            self.ok,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3
        )
    }
}

/// Sends `opts.requests` bodies made by `body(seq)`; the generic core of loadgen and bench.
pub async fn run_with<F>(opts: &LoadOptions, body: F) -> anyhow::Result<LoadReport>
where
    F: Fn(u64) -> Vec<u8> + Send + Sync + 'static,
{
    let client = reqwest::Client::builder().pool_max_idle_per_host(opts.concurrency).build()?;
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let body = Arc::new(body);
    let started = Instant::now();
    let interval = opts.rate.map(|r| Duration::from_secs_f64(opts.concurrency as f64 / r.max(1) as f64));
    let mut workers = Vec::new();
    for _ in 0..opts.concurrency {
        let (client, next, ok, failed, hist, body, opts) =
            (client.clone(), next.clone(), ok.clone(), failed.clone(), hist.clone(), body.clone(), opts.clone());
        workers.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds are valid");
            let mut tick = interval.map(tokio::time::interval);
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= opts.requests {
                    break;
                }
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let t0 = Instant::now();
                let res =
                    client.post(&opts.url).header("content-type", "application/json").body(body(seq)).send().await;
                let (good, bad) = match (res, opts.batch) {
                    (Ok(r), None) if r.status().is_success() => (1, 0),
                    (Ok(r), Some(n)) if r.status().is_success() => {
                        let accepted = r.json::<serde_json::Value>().await.ok().and_then(|v| v["accepted"].as_u64());
                        let accepted = accepted.unwrap_or(0);
                        (accepted, n as u64 - accepted.min(n as u64))
                    }
                    (_, batch) => (0, batch.unwrap_or(1) as u64),
                };
                let _ = local.record(t0.elapsed().as_micros().max(1) as u64);
                ok.fetch_add(good, Ordering::Relaxed);
                failed.fetch_add(bad, Ordering::Relaxed);
            }
            let _ = hist.lock().await.add(&local);
        }));
    }
    for w in workers {
        w.await?;
    }
    let elapsed = started.elapsed();
    let h = hist.lock().await;
    Ok(LoadReport {
        sent: opts.requests,
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        elapsed,
        p50: Duration::from_micros(h.value_at_quantile(0.5)),
        p99: Duration::from_micros(h.value_at_quantile(0.99)),
    })
}

/// Posts realistic demo ratings to `opts.url`, one per request or `opts.batch` per request.
pub async fn run(opts: &LoadOptions) -> anyhow::Result<LoadReport> {
    let prefix = opts.record_prefix.clone();
    let batch = opts.batch;
    run_with(opts, move |seq| {
        let one = |n: u64| {
            let mut rng = SmallRng::seed_from_u64(n);
            demo::random_input(&mut rng, format!("{prefix}{n:08}"), None)
        };
        match batch {
            None => serde_json::to_vec(&one(seq)),
            Some(n) => {
                let first = seq * n as u64;
                let ratings: Vec<_> = (first..first + n as u64).map(one).collect();
                serde_json::to_vec(&serde_json::json!({ "ratings": ratings }))
            }
        }
        .expect("inputs serialize")
    })
    .await
}
