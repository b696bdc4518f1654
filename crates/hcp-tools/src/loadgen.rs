//! `hcp loadgen`: posts realistic ratings over HTTP and reports throughput and latency.

use std::collections::HashMap;
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
    /// Channel keys to send single ratings with, as production clients do (`None`: no key,
    /// which only an ingest with `HCP_INGEST_AUTH=optional` accepts).
    pub keys: Option<LoadKeys>,
}

/// The channel keys a load sends with: each window evaluator's device key, and integration keys
/// by channel (`hcp bench` issues them; `hcp loadgen --keys FILE` reads them as JSON).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LoadKeys {
    /// Device id → its key.
    pub devices: HashMap<String, String>,
    /// Channel → an integration key of it (`app`, `web`, `mini_program`, `hotline`).
    pub channels: HashMap<String, String>,
}

impl LoadKeys {
    /// The key for `input`, fitting the input to it: a rating made at a window (its device
    /// named; QR-code ratings there too) is sent as that window's evaluator; a rating of a
    /// channel without keys of its own (SMS) as the app's. A rating moved to another channel
    /// drops its dimension grades (each channel offers its own dimensions).
    pub fn fit(&self, input: &mut hcp_domain::RatingInput) -> Option<String> {
        let moved_to = |input: &mut hcp_domain::RatingInput, channel: &str| {
            if input.channel.as_deref() != Some(channel) {
                input.channel = Some(channel.into());
                input.dimensions = None;
            }
        };
        if let Some(key) = input.device_id.as_ref().and_then(|d| self.devices.get(d)).cloned() {
            moved_to(input, "window_evaluator");
            return Some(key);
        }
        let channel = input.channel.as_deref().unwrap_or("app");
        if let Some(key) = self.channels.get(channel) {
            return Some(key.clone());
        }
        moved_to(input, "app");
        input.device_id = None;
        self.channels.get("app").cloned()
    }
}

/// One request's body and the key it is sent with.
pub type Request = (Vec<u8>, Option<String>);

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
    /// Failed requests by HTTP status (`transport` when no answer came).
    #[serde(default)]
    pub failures: std::collections::BTreeMap<String, u64>,
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
        )?;
        if !self.failures.is_empty() {
            write!(f, ", failures by status {:?}", self.failures)?;
        }
        Ok(())
    }
}

/// Sends `opts.requests` requests made by `request(seq)`; the generic core of loadgen and bench.
pub async fn run_with<F>(opts: &LoadOptions, request: F) -> anyhow::Result<LoadReport>
where
    F: Fn(u64) -> Request + Send + Sync + 'static,
{
    let client = reqwest::Client::builder().pool_max_idle_per_host(opts.concurrency).build()?;
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?));
    let failures = Arc::new(Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    let request = Arc::new(request);
    let started = Instant::now();
    let interval = opts.rate.map(|r| Duration::from_secs_f64(opts.concurrency as f64 / r.max(1) as f64));
    let mut workers = Vec::new();
    for _ in 0..opts.concurrency {
        let (client, next, ok, failed, hist, request, opts) =
            (client.clone(), next.clone(), ok.clone(), failed.clone(), hist.clone(), request.clone(), opts.clone());
        let failures = failures.clone();
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
                let (body, key) = request(seq);
                let t0 = Instant::now();
                let mut req = client.post(&opts.url).header("content-type", "application/json").body(body);
                if let Some(key) = key {
                    req = req.bearer_auth(key);
                }
                let res = req.send().await;
                let (good, bad) = match (res, opts.batch) {
                    (Ok(r), None) if r.status().is_success() => (1, 0),
                    (Ok(r), Some(n)) if r.status().is_success() => {
                        let accepted = r.json::<serde_json::Value>().await.ok().and_then(|v| v["accepted"].as_u64());
                        let accepted = accepted.unwrap_or(0);
                        (accepted, n as u64 - accepted.min(n as u64))
                    }
                    (res, batch) => {
                        let why = res.map_or_else(|_| "transport".to_owned(), |r| r.status().as_u16().to_string());
                        *failures.lock().await.entry(why).or_default() += 1;
                        (0, batch.unwrap_or(1) as u64)
                    }
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
    let failures = failures.lock().await.clone();
    Ok(LoadReport {
        sent: opts.requests,
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        elapsed,
        p50: Duration::from_micros(h.value_at_quantile(0.5)),
        p99: Duration::from_micros(h.value_at_quantile(0.99)),
        failures,
    })
}

/// Posts realistic demo ratings to `opts.url`, one per request or `opts.batch` per request.
pub async fn run(opts: &LoadOptions) -> anyhow::Result<LoadReport> {
    let prefix = opts.record_prefix.clone();
    let batch = opts.batch;
    let keys = opts.keys.clone();
    run_with(opts, move |seq| {
        let one = |n: u64| {
            let mut rng = SmallRng::seed_from_u64(n);
            demo::random_input(&mut rng, format!("{prefix}{n:08}"), None)
        };
        match batch {
            None => {
                let mut input = one(seq);
                let key = keys.as_ref().and_then(|k| k.fit(&mut input));
                (serde_json::to_vec(&input).expect("inputs serialize"), key)
            }
            Some(n) => {
                let first = seq * n as u64;
                let ratings: Vec<_> = (first..first + n as u64).map(one).collect();
                (serde_json::to_vec(&serde_json::json!({ "ratings": ratings })).expect("inputs serialize"), None)
            }
        }
    })
    .await
}
