//! Live push: a [`Live`] hub turns PostgreSQL's `hcp_board` notifications (sent by the commit of
//! every transaction that changes aggregates, work orders or alerts) into a version number, and
//! each open board's Server-Sent Events stream re-reads its snapshot when the version moves —
//! at most every [`MIN_PUSH_INTERVAL`] (or [`COST_FACTOR`] times what the last read of that
//! reach took, so a busy day's expensive board never keeps the database reading), at least every
//! [`REFRESH_INTERVAL`], one read per reach and version however many boards are open.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use hcp_domain::Reach;
use hcp_http::LiveSession;
use hcp_store::Store;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::board::{snapshot, BoardSnapshot};
use crate::BoardState;

/// Pushes to one board are at least this far apart (a burst of batches is one push).
pub const MIN_PUSH_INTERVAL: Duration = Duration::from_millis(200);
/// Pushes to one board are also at least this many times the last read's duration apart: the
/// reads of a reach take at most 1 / (1 + COST_FACTOR) of the time under a constant stream of
/// changes.
pub const COST_FACTOR: u32 = 3;
/// A board is re-read at least this often (deadlines come due, the day turns).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// A cached snapshot of the current version is reused for this long.
const CACHE_FOR: Duration = Duration::from_secs(5);

/// A reach's latest snapshot: the version it was read at, when, how long the read took, and the
/// snapshot.
type Cached = (u64, Instant, Duration, Arc<BoardSnapshot>);

/// The version of what boards show, and the latest snapshot per reach.
pub struct Live {
    version: watch::Sender<u64>,
    cache: Mutex<HashMap<Reach, Cached>>,
    shutdown: CancellationToken,
}

impl Live {
    /// A hub whose streams end when `shutdown` is cancelled (so a graceful stop is not held up by
    /// open boards).
    pub fn new(shutdown: CancellationToken) -> Arc<Live> {
        Arc::new(Live { version: watch::channel(0).0, cache: Mutex::new(HashMap::new()), shutdown })
    }

    /// The shortest gap between two pushes of `reach`'s board.
    fn min_gap(&self, reach: &Reach) -> Duration {
        let cost = self.cache.lock().expect("board cache").get(reach).map_or(Duration::ZERO, |c| c.2);
        MIN_PUSH_INTERVAL.max(cost * COST_FACTOR)
    }

    /// Something changed: every open board re-reads.
    pub fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// The snapshot of `reach` at `version`, read once and shared while fresh.
    async fn snapshot(&self, state: &BoardState, reach: &Reach, version: u64) -> Option<Arc<BoardSnapshot>> {
        if let Some((v, at, _, snap)) = self.cache.lock().expect("board cache").get(reach) {
            if *v == version && at.elapsed() < CACHE_FOR {
                return Some(snap.clone());
            }
        }
        let started = Instant::now();
        match snapshot(state, reach, chrono::Utc::now()).await {
            Ok(snap) => {
                let snap = Arc::new(snap);
                let entry = (version, Instant::now(), started.elapsed(), snap.clone());
                self.cache.lock().expect("board cache").insert(reach.clone(), entry);
                Some(snap)
            }
            Err(e) => {
                tracing::warn!(error = %e, "board snapshot failed; the stream retries at the next change");
                None
            }
        }
    }
}

/// Listens on `hcp_board` until `shutdown`, bumping `live` on every notification and after every
/// (re)connection (a notification may have been missed while disconnected).
pub async fn run_listener(store: Store, live: Arc<Live>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let mut listener = match store.board_listener().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "board listener cannot connect; retrying in 1 s");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        live.bump();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = listener.try_recv() => match got {
                    Ok(Some(_)) => live.bump(),
                    // The connection was lost; the next call reconnects (and re-listens).
                    Ok(None) => live.bump(),
                    Err(e) => {
                        tracing::warn!(error = %e, "board listener failed; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

/// The Server-Sent Events of one board: a `snapshot` event at once and after every change.
/// The stream ends with the server, and when the caller's `session` ends (logout, account
/// changed, expiry), checked every few seconds.
pub fn stream(
    state: BoardState,
    reach: Reach,
    session: LiveSession,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    struct S {
        state: BoardState,
        reach: Reach,
        rx: watch::Receiver<u64>,
        first: bool,
        last: Option<Instant>,
        session_ended: CancellationToken,
        _watch: DropGuard,
    }
    let rx = state.live.version.subscribe();
    let (session_ended, watch) = session.watch();
    let init = S { state, reach, rx, first: true, last: None, session_ended, _watch: watch };
    let events = futures::stream::unfold(init, |mut s| async move {
        let live = s.state.live.clone();
        loop {
            if !s.first {
                tokio::select! {
                    _ = live.shutdown.cancelled() => return None,
                    _ = s.session_ended.cancelled() => return None,
                    changed = s.rx.changed() => if changed.is_err() { return None },
                    _ = tokio::time::sleep(REFRESH_INTERVAL) => {}
                }
                if let Some(last) = s.last {
                    let wait = live.min_gap(&s.reach).saturating_sub(last.elapsed());
                    if !wait.is_zero() {
                        tokio::select! {
                            _ = live.shutdown.cancelled() => return None,
                            _ = s.session_ended.cancelled() => return None,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                }
            }
            s.first = false;
            let version = *s.rx.borrow_and_update();
            let Some(snap) = live.snapshot(&s.state, &s.reach, version).await else { continue };
            s.last = Some(Instant::now());
            let event = Event::default().event("snapshot").id(version.to_string()).json_data(&*snap);
            match event {
                Ok(event) => return Some((Ok(event), s)),
                Err(e) => tracing::error!(error = %e, "board snapshot does not serialise"),
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
