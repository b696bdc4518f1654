//! Task `statistics`: analyses the tables the aggregator fills as soon as they have grown, instead
//! of leaving them planned as nearly empty until autovacuum's next visit
//! ([`hcp_store::Store::analyze_grown_tables`]). Run by every aggregator: the store lets one
//! analyse a table at a time.

use std::time::Duration;

use hcp_store::Store;
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// How often the tables' changes are looked at (one catalogue read).
const EVERY: Duration = Duration::from_secs(5);

/// Fewer changed rows than this never warrant an analysis: a plan on a table this small is
/// cheap whatever the statistics say.
const MIN_CHANGES: i64 = 1_000;

/// Looks every few seconds until `stop`; a failed look is logged and tried again at the next tick
/// (autovacuum still analyses meanwhile, only later).
pub async fn keep_statistics(store: Store, stop: CancellationToken) {
    loop {
        match store.analyze_grown_tables(MIN_CHANGES).await {
            Ok(tables) => {
                for table in tables {
                    metrics::TABLES_ANALYZED.inc();
                    tracing::debug!(%table, "analysed a table that grew since its last analysis");
                }
            }
            Err(error) => tracing::warn!(%error, "could not analyse the tables that grew; trying again"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
