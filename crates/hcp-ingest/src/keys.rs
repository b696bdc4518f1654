//! Channel keys kept in memory: a key is checked on every rating, and reading it from
//! PostgreSQL each time was one round trip per request.
//!
//! Freshness rests on PostgreSQL announcing every change that alters what a key may do
//! ([`hcp_store::CREDENTIAL_CHANNEL`], raised by triggers on `credentials` and `devices`): the
//! listener drops the changed key (or every key, for a device change) as the notification
//! arrives, so a revocation is honoured by every replica at once. Nothing is trusted that the
//! listener could have missed:
//! - while the listener is not connected (before its first connection, after a loss), every
//!   look-up reads the database and nothing is kept;
//! - a connected listener is trusted only once a ping it sent itself came back: behind a
//!   transaction-pooling PgBouncer notifications do not reach it, and then nothing is kept;
//! - a look-up that began before a change was announced does not keep what it read (a
//!   generation counter, bumped by every notification and every loss);
//! - a change committed through this process's own store (a revocation, a new rate limit)
//!   drops every entry at the next look-up, without waiting for its notification
//!   ([`hcp_store::local_credential_changes`]);
//! - an entry is read again after [`KeyCache::MAX_AGE`] whatever was announced.
//!
//! Unknown keys are never kept (a flood of made-up keys cannot grow the map).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hcp_http::ApiError;
use hcp_store::{Credential, Store};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::metrics;

/// Channel keys in memory (cheap to clone; the listener stops with the last clone).
#[derive(Clone)]
pub struct KeyCache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    entries: Mutex<HashMap<String, Entry>>,
    /// Bumped by every notification and every loss of the listener.
    generation: AtomicU64,
    /// Whether the listener is connected and listening.
    live: AtomicBool,
    /// Stops the listener when the cache is dropped.
    _stop: DropGuard,
}

/// One kept key.
struct Entry {
    credential: Arc<Credential>,
    loaded: Instant,
    /// [`hcp_store::local_credential_changes`] when it was read.
    local: u64,
    /// When this process last recorded the key's use (`credentials.last_used_at`).
    touched: Option<Instant>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache").field("live", &self.inner.live.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl KeyCache {
    /// An entry is read again after this long, announced change or not.
    pub const MAX_AGE: Duration = Duration::from_secs(60);
    /// How often a key's use is recorded (`last_used_at` is kept to the minute).
    const TOUCH_EVERY: Duration = Duration::from_secs(60);

    /// A cache over `store`, with its listener started on the current runtime.
    pub fn start(store: Store) -> KeyCache {
        let stop = CancellationToken::new();
        let inner = Arc::new(Inner {
            store: store.clone(),
            entries: Mutex::default(),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            _stop: stop.clone().drop_guard(),
        });
        tokio::spawn(listen(store, Arc::downgrade(&inner), stop));
        KeyCache { inner }
    }

    /// The credential with this key id: from memory when the listener vouches for it, else from
    /// the database (and kept when nothing was announced meanwhile).
    pub async fn get(&self, key_id: &str) -> Result<Option<Arc<Credential>>, ApiError> {
        let inner = &self.inner;
        let local = hcp_store::local_credential_changes();
        if inner.live.load(Ordering::Acquire) {
            if let Some(e) = inner.entries.lock().expect("key cache").get(key_id) {
                if e.local == local && e.loaded.elapsed() < Self::MAX_AGE {
                    metrics::CREDENTIAL_LOOKUPS.with_label_values(&["cache"]).inc();
                    return Ok(Some(e.credential.clone()));
                }
            }
        }
        let generation = inner.generation.load(Ordering::Acquire);
        let read = inner.store.credential(key_id).await?.map(Arc::new);
        metrics::CREDENTIAL_LOOKUPS.with_label_values(&["database"]).inc();
        if let Some(c) = &read {
            let mut entries = inner.entries.lock().expect("key cache");
            // Kept only if no change was announced (and no loss happened) since the read began.
            if inner.live.load(Ordering::Acquire) && inner.generation.load(Ordering::Acquire) == generation {
                let touched = entries.get(key_id).and_then(|e| e.touched);
                let entry = Entry { credential: c.clone(), loaded: Instant::now(), local, touched };
                entries.insert(key_id.to_owned(), entry);
            }
        }
        Ok(read)
    }

    /// Whether this use of `key_id` should be recorded (at most once a minute per key and
    /// process; the database keeps it to the minute anyway). Marks it recorded.
    pub fn should_touch(&self, key_id: &str) -> bool {
        let mut entries = self.inner.entries.lock().expect("key cache");
        match entries.get_mut(key_id) {
            Some(e) if e.touched.is_some_and(|t| t.elapsed() < Self::TOUCH_EVERY) => false,
            Some(e) => {
                e.touched = Some(Instant::now());
                true
            }
            // Not kept (listener down, or a change raced the read): record as before the cache.
            None => true,
        }
    }
}

/// What a notification's `payload` asks: forget one key, every key (`*`, a device changed), or
/// nothing (a listener's ping).
fn act_on(inner: &Inner, payload: &str) {
    if payload.starts_with(PING) {
        return;
    }
    forget(inner, (payload != "*").then_some(payload));
}

fn forget(inner: &Inner, key_id: Option<&str>) {
    let mut entries = inner.entries.lock().expect("key cache");
    inner.generation.fetch_add(1, Ordering::AcqRel);
    match key_id {
        Some(k) => {
            entries.remove(k);
        }
        None => entries.clear(),
    }
}

/// Listens on the credential channel until the cache is dropped, forgetting what each
/// notification names; a loss forgets everything and reconnects (a notification may have been
/// missed meanwhile).
async fn listen(store: Store, cache: Weak<Inner>, stop: CancellationToken) {
    let mut delay = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let listener = tokio::select! {
            _ = stop.cancelled() => return,
            l = store.credential_listener() => l,
        };
        let mut listener = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "credential listener cannot connect; keys are read from the database meanwhile");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        delay = Duration::from_millis(100);
        // Notifications must be seen to arrive before anything is kept: behind a
        // transaction-pooling PgBouncer the LISTEN session is not this listener's to keep, and a
        // revocation would then wait for `MAX_AGE`. A ping of its own must come back.
        match ping(&store, &mut listener, &cache, &stop).await {
            Ping::Back => {}
            Ping::Stop => return,
            Ping::Lost => continue,
            Ping::Silent => {
                tracing::warn!(
                    "credential notifications do not reach this process (a transaction-pooling PgBouncer between \
                     it and PostgreSQL? HCP_DATABASE_LISTEN_URL gives the listener a direct connection): every \
                     key is read from the database; checking again in a minute"
                );
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => continue,
                }
            }
        }
        {
            let Some(inner) = cache.upgrade() else { return };
            // Whatever was kept before this connection may predate a missed notification.
            forget(&inner, None);
            inner.live.store(true, Ordering::Release);
        }
        loop {
            let got = tokio::select! {
                _ = stop.cancelled() => return,
                got = listener.try_recv() => got,
            };
            let Some(inner) = cache.upgrade() else { return };
            match got {
                Ok(Some(n)) => act_on(&inner, n.payload()),
                Ok(None) | Err(_) => {
                    inner.live.store(false, Ordering::Release);
                    forget(&inner, None);
                    tracing::warn!("credential listener lost its connection; reconnecting");
                    break;
                }
            }
        }
    }
}

/// The payload prefix of a listener's own check (never a key id: key ids are hex).
const PING: &str = "ping:";

/// How a listener's check went.
enum Ping {
    /// Its own notification came back: notifications reach it.
    Back,
    /// None came back within two seconds.
    Silent,
    /// The connection was lost meanwhile.
    Lost,
    /// The cache was dropped or the process is stopping.
    Stop,
}

/// Sends a ping on the credential channel through the store's pool and waits up to two seconds
/// for it on `listener` (notifications that arrive meanwhile are acted on).
async fn ping(
    store: &Store,
    listener: &mut sqlx::postgres::PgListener,
    cache: &Weak<Inner>,
    stop: &CancellationToken,
) -> Ping {
    let payload = format!("{PING}{}", uuid::Uuid::now_v7());
    if let Err(e) = store.notify_credentials(&payload).await {
        tracing::warn!(error = %e, "credential listener check not sent");
        return Ping::Lost;
    }
    let deadline = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(deadline);
    loop {
        let got = tokio::select! {
            _ = stop.cancelled() => return Ping::Stop,
            _ = &mut deadline => return Ping::Silent,
            got = listener.try_recv() => got,
        };
        let Some(inner) = cache.upgrade() else { return Ping::Stop };
        match got {
            Ok(Some(n)) if n.payload() == payload => return Ping::Back,
            Ok(Some(n)) => act_on(&inner, n.payload()),
            Ok(None) | Err(_) => return Ping::Lost,
        }
    }
}
