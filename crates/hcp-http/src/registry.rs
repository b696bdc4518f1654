//! Server-side sessions: every session token names a row of `sessions`, and the access layer
//! admits a token only while its row is live (not revoked, not expired). Logout revokes the
//! caller's row; `hcp account add` revokes every row of the account it changes.
//!
//! Answers are cached for [`CHECK_TTL`] so a busy console does not cost a query per request: a
//! revocation made by this process (logout) takes effect at once, one made elsewhere (the CLI,
//! another replica) within that time. Open board streams re-check as often.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hcp_store::Store;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use crate::ApiError;

/// How long an answer about a session is trusted before it is asked again.
pub const CHECK_TTL: Duration = Duration::from_secs(5);

/// Entries kept before stale ones are swept.
const SWEEP_AT: usize = 10_000;

/// The sessions' rows and a short cache of their state.
#[derive(Clone)]
pub struct SessionRegistry {
    store: Store,
    cache: Arc<Mutex<HashMap<Uuid, (Instant, bool)>>>,
}

impl std::fmt::Debug for SessionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionRegistry(..)")
    }
}

impl SessionRegistry {
    /// The registry over `store`'s `sessions`.
    pub fn new(store: Store) -> Self {
        SessionRegistry { store, cache: Arc::default() }
    }

    /// The store the rows live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether session `sid` is live; a database failure is a 503 (never an admission).
    pub async fn is_live(&self, sid: Uuid) -> Result<bool, ApiError> {
        if let Some(&(at, live)) = self.cache.lock().expect("session cache").get(&sid) {
            if at.elapsed() < CHECK_TTL {
                return Ok(live);
            }
        }
        let live = self.store.session_live(sid).await?;
        let mut cache = self.cache.lock().expect("session cache");
        if cache.len() >= SWEEP_AT {
            cache.retain(|_, (at, _)| at.elapsed() < CHECK_TTL);
        }
        cache.insert(sid, (Instant::now(), live));
        Ok(live)
    }

    /// Revokes session `sid` (logout), here at once.
    pub async fn end(&self, sid: Uuid) -> Result<(), ApiError> {
        self.store.end_session(sid).await?;
        self.cache.lock().expect("session cache").insert(sid, (Instant::now(), false));
        Ok(())
    }

    /// A token cancelled once session `sid` is no longer live (checked every [`CHECK_TTL`], and
    /// at its expiry), for long-lived responses such as the board stream. Dropping the guard
    /// stops the watch.
    pub fn watch(&self, sid: Uuid, expires_at: chrono::DateTime<chrono::Utc>) -> (CancellationToken, DropGuard) {
        let ended = CancellationToken::new();
        let stop = CancellationToken::new();
        let (registry, ended2, stop2) = (self.clone(), ended.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let left = (expires_at - chrono::Utc::now()).to_std().unwrap_or_default();
                tokio::select! {
                    _ = stop2.cancelled() => return,
                    _ = tokio::time::sleep(CHECK_TTL.min(left)) => {}
                }
                // A database failure is not a revocation: the stream keeps its session.
                if chrono::Utc::now() >= expires_at || matches!(registry.is_live(sid).await, Ok(false)) {
                    ended2.cancel();
                    return;
                }
            }
        });
        (ended, stop.drop_guard())
    }
}

/// What the access layer hands a handler about the caller's session, beside the
/// [`Caller`](crate::Caller): enough to watch it while a response stays open.
#[derive(Debug, Clone)]
pub struct LiveSession {
    /// The session.
    pub sid: Uuid,
    /// Its expiry.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The registry that knows it.
    pub registry: SessionRegistry,
}

impl LiveSession {
    /// See [`SessionRegistry::watch`].
    pub fn watch(&self) -> (CancellationToken, DropGuard) {
        self.registry.watch(self.sid, self.expires_at)
    }
}

/// The session the access layer verified for an operator route; on any other route there is
/// none, and asking for one is `401`.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for LiveSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<LiveSession>().cloned().ok_or(ApiError::Unauthenticated)
    }
}
