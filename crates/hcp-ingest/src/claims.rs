//! Group claims: the claims and accepts of concurrent single-rating requests go to PostgreSQL
//! together, one statement set per group instead of one per request.
//!
//! A request hands its keys to the queue and awaits its own answer. A few workers take turns at
//! the queue: each takes everything waiting (up to [`MAX_GROUP`] keys), runs one
//! [`Store::claim_ratings`] (or one [`Store::accept_claims`]) for the group, and hands each
//! request its share — while the next worker gathers the next group. An idle request waits for no
//! one (a group of one goes at once); under load the round trips per rating fall with the group
//! size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hcp_http::ApiError;
use hcp_store::{Claim, Store};
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use crate::metrics;

/// Most keys in one group.
pub const MAX_GROUP: usize = 512;
/// Groups in flight at once.
const WORKERS: usize = 4;

/// One (service record, stage, assess number, rating id) to claim.
pub type ClaimKey = (String, String, i16, Uuid);

/// Why a group failed, for each of its requests.
#[derive(Debug, Clone)]
struct GroupError {
    unavailable: bool,
    message: String,
}

impl From<sqlx::Error> for GroupError {
    fn from(e: sqlx::Error) -> Self {
        GroupError { unavailable: hcp_http::database_unavailable(&e), message: e.to_string() }
    }
}

impl From<GroupError> for ApiError {
    fn from(e: GroupError) -> Self {
        if e.unavailable {
            ApiError::DatabaseUnavailable(e.message)
        } else {
            ApiError::Internal(e.message)
        }
    }
}

enum Job {
    Claim(Vec<ClaimKey>, oneshot::Sender<Result<Vec<Claim>, GroupError>>),
    Accept(Vec<Uuid>, oneshot::Sender<Result<(), GroupError>>),
}

impl Job {
    fn len(&self) -> usize {
        match self {
            Job::Claim(k, _) => k.len(),
            Job::Accept(ids, _) => ids.len(),
        }
    }
}

/// The queue in front of the claim table (cheap to clone; the workers stop when the last clone
/// is dropped).
#[derive(Clone)]
pub struct ClaimQueue {
    jobs: mpsc::UnboundedSender<Job>,
    stats: Arc<GroupStats>,
}

/// What the queue sent to PostgreSQL.
#[derive(Debug, Default)]
pub struct GroupStats {
    /// Claim statement sets (one per group).
    pub claim_groups: AtomicU64,
    /// Keys claimed through them.
    pub claimed_keys: AtomicU64,
}

impl std::fmt::Debug for ClaimQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimQueue").finish_non_exhaustive()
    }
}

impl ClaimQueue {
    /// Starts the workers (on the current tokio runtime).
    pub fn start(store: Store, takeover_after: Duration) -> ClaimQueue {
        let (jobs, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let stats = Arc::new(GroupStats::default());
        for _ in 0..WORKERS {
            tokio::spawn(work(store.clone(), takeover_after, rx.clone(), stats.clone()));
        }
        ClaimQueue { jobs, stats }
    }

    /// What this queue sent to PostgreSQL so far.
    pub fn stats(&self) -> &GroupStats {
        &self.stats
    }

    /// Claims `keys` (see [`Store::claim_ratings`]), in input order.
    pub async fn claim(&self, keys: Vec<ClaimKey>) -> Result<Vec<Claim>, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(Job::Claim(keys, tx)).map_err(|_| stopped())?;
        Ok(rx.await.map_err(|_| stopped())??)
    }

    /// Marks the claims of produced ratings accepted (see [`Store::accept_claims`]).
    pub async fn accept(&self, rating_ids: Vec<Uuid>) -> Result<(), ApiError> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(Job::Accept(rating_ids, tx)).map_err(|_| stopped())?;
        Ok(rx.await.map_err(|_| stopped())??)
    }
}

fn stopped() -> ApiError {
    ApiError::Internal("the claim queue has stopped".into())
}

/// One worker: take a group from the queue (holding the queue only while gathering), run it.
async fn work(
    store: Store,
    takeover_after: Duration,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    stats: Arc<GroupStats>,
) {
    loop {
        let (mut claims, mut accepts) = (Vec::new(), Vec::new());
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut size = first.len();
            push(first, &mut claims, &mut accepts);
            while size < MAX_GROUP {
                match rx.try_recv() {
                    Ok(job) => {
                        size += job.len();
                        push(job, &mut claims, &mut accepts);
                    }
                    Err(_) => break,
                }
            }
        }
        if !claims.is_empty() {
            let keys: usize = claims.iter().map(|(k, _)| k.len()).sum();
            stats.claim_groups.fetch_add(1, Ordering::Relaxed);
            stats.claimed_keys.fetch_add(keys as u64, Ordering::Relaxed);
            metrics::CLAIM_GROUP_KEYS.with_label_values(&["claim"]).observe(keys as f64);
            claim_group(&store, takeover_after, claims).await;
        }
        if !accepts.is_empty() {
            let ids: usize = accepts.iter().map(|(ids, _)| ids.len()).sum();
            metrics::CLAIM_GROUP_KEYS.with_label_values(&["accept"]).observe(ids as f64);
            accept_group(&store, accepts).await;
        }
    }
}

type ClaimJob = (Vec<ClaimKey>, oneshot::Sender<Result<Vec<Claim>, GroupError>>);
type AcceptJob = (Vec<Uuid>, oneshot::Sender<Result<(), GroupError>>);

fn push(job: Job, claims: &mut Vec<ClaimJob>, accepts: &mut Vec<AcceptJob>) {
    match job {
        Job::Claim(k, tx) => claims.push((k, tx)),
        Job::Accept(ids, tx) => accepts.push((ids, tx)),
    }
}

/// One claim for the whole group; each request gets its own keys' outcomes back.
async fn claim_group(store: &Store, takeover_after: Duration, jobs: Vec<ClaimJob>) {
    let keys: Vec<ClaimKey> = jobs.iter().flat_map(|(k, _)| k.iter().cloned()).collect();
    match store.claim_ratings(&keys, takeover_after).await {
        Ok(claims) => {
            let mut claims = claims.into_iter();
            for (keys, tx) in jobs {
                let _ = tx.send(Ok(claims.by_ref().take(keys.len()).collect()));
            }
        }
        Err(e) => {
            let e = GroupError::from(e);
            for (_, tx) in jobs {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}

/// One accept for the whole group.
async fn accept_group(store: &Store, jobs: Vec<AcceptJob>) {
    let mut ids: Vec<Uuid> = jobs.iter().flat_map(|(ids, _)| ids.iter().copied()).collect();
    ids.sort();
    let result = store.accept_claims(&ids).await.map_err(GroupError::from);
    for (_, tx) in jobs {
        let _ = tx.send(result.clone());
    }
}
