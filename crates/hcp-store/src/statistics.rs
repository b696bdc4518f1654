//! Planner statistics of tables that grow faster than autovacuum looks at them.
//!
//! Autovacuum re-analyses a table once a tenth of it changed, but it visits each database only
//! once per `autovacuum_naptime` (a minute by default). A table that starts empty and fills at
//! thousands of rows a second (a new month's `ratings` partition, `rating_keys` and the claims
//! of a fresh installation) is planned for most of that minute as if it were empty: the
//! aggregator's anti-gaming read and its write then took 2–3 s a batch instead of 60 and 400 ms,
//! and ratings took up to 18 s to become visible. [`Store::analyze_grown_tables`] closes that gap
//! from the aggregator, a few seconds after the growth, for the tables this role may analyse.

use crate::{Error, Store};

/// The advisory-lock key of the statistics keeper ("hcp_anl"): one table analysed at a time
/// across every aggregator.
const ANALYZE_LOCK: i64 = 0x0068_6370_5f61_6e6c;

/// The share of a table's rows (as last analysed) that must have changed since, on top of
/// `min_changes`, before [`Store::analyze_grown_tables`] analyses it again: all of them, so a
/// growing table's estimates stay within a factor of two (what the plans above needed: they went
/// wrong on estimates a hundred times too small) at a few analyses in its first minute, each
/// costing a sample of up to 30 000 rows (0.6 s of a core for a month's `ratings` partition of
/// 100 000 bench ratings, several times that under heavy load). Ten times autovacuum's share, so
/// a table autovacuum keeps up with is left to it.
const GROWN_SHARE: f64 = 1.0;

impl Store {
    /// Analyses every plain table of the schema that this role owns and in which at least
    /// `min_changes` rows, and more rows than it had when last analysed, changed since its last
    /// analysis (a never-analysed table counts as empty); the most changed first. Returns the
    /// tables analysed. Each table is analysed in its own short transaction under an advisory
    /// lock, so concurrent callers (every aggregator runs this) never analyse the same table twice
    /// at once: a table another caller is analysing, or has just analysed, is skipped. ANALYZE
    /// reads a sample (at most 30 000 rows at the default statistics target) and blocks no reader
    /// or writer.
    pub async fn analyze_grown_tables(&self, min_changes: i64) -> Result<Vec<String>, Error> {
        // The tables that grew: all of them with $3 NULL, else that one (looked at again under
        // the lock).
        const GROWN: &str = "SELECT format('%I.%I', s.schemaname, s.relname)
               FROM pg_stat_user_tables s
               JOIN pg_class c ON c.oid = s.relid
              WHERE s.schemaname = current_schema() AND c.relkind = 'r'
                AND ($3::text IS NULL OR format('%I.%I', s.schemaname, s.relname) = $3)
                AND pg_has_role(c.relowner, 'USAGE')
                AND s.n_mod_since_analyze >= $1
                AND s.n_mod_since_analyze > GREATEST(c.reltuples, 0) * $2
              ORDER BY s.n_mod_since_analyze DESC";
        let grown: Vec<String> = sqlx::query_scalar(GROWN)
            .bind(min_changes)
            .bind(GROWN_SHARE)
            .bind(None::<String>)
            .fetch_all(&self.pool)
            .await?;
        let mut analysed = Vec::with_capacity(grown.len());
        for table in grown {
            let mut tx = self.pool.begin().await?;
            let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(ANALYZE_LOCK)
                .fetch_one(&mut *tx)
                .await?;
            // Under the lock, so a table another caller analysed meanwhile is not analysed again.
            let still: Option<String> = if mine {
                sqlx::query_scalar(GROWN)
                    .bind(min_changes)
                    .bind(GROWN_SHARE)
                    .bind(&table)
                    .fetch_optional(&mut *tx)
                    .await?
            } else {
                None
            };
            if still.is_none() {
                continue;
            }
            // `table` is `format('%I.%I')` of a catalogued name: quoted, so safe to splice.
            sqlx::query(&format!("ANALYZE {table}")).execute(&mut *tx).await?;
            tx.commit().await?;
            analysed.push(table);
        }
        Ok(analysed)
    }
}
