//! The monthly partitions of `ratings` (migration 26): one per Beijing month, named
//! `ratings_pYYYYMM`, from 00:00 Asia/Shanghai on the 1st to the same instant of the next month,
//! plus `ratings_default` for whatever no month partition takes. The binary creates the months
//! ahead ([`Store::ensure_rating_partitions`]); `hcp ratings archive` writes an old month out and
//! drops its partition ([`Store::begin_archive`]).

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use hcp_domain::time::Month;
use sqlx::{Postgres, Transaction};

use crate::{Error, Store};

/// The advisory-lock key of partition maintenance ("hcp_prt"): one creator at a time.
const PARTITION_LOCK: i64 = 0x0068_6370_5f70_7274;

/// Months whose partitions the binary keeps ready after the current one (`hcp migrate` and the
/// aggregator's task `partitions`).
pub const MONTHS_AHEAD: u32 = 3;

/// Columns of `ratings` no query filters, joins or groups on (the rating's payload: its
/// attribution and rater as JSON, dimension grades, comment, dimension rollup keys): ANALYZE keeps
/// no statistics of them (`SET STATISTICS 0`, migration 31 and every partition made since), which
/// spares it detoasting and sorting them, about a third of its time on a month's partition.
pub const UNSAMPLED_COLUMNS: [&str; 5] = ["attribution", "rater", "dimensions", "comment", "dim_scopes"];

/// The partition that catches ratings of a month without its own partition.
pub const DEFAULT_PARTITION: &str = "ratings_default";

/// The partition of `month`: `ratings_pYYYYMM`.
pub fn partition_name(month: Month) -> String {
    format!("ratings_p{:04}{:02}", month.year, month.month)
}

/// The month of a partition named by [`partition_name`] (`None` for any other name).
pub fn partition_month(name: &str) -> Option<Month> {
    let digits = name.strip_prefix("ratings_p")?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Month::parse(&format!("{}-{}", &digits[..4], &digits[4..]))
}

/// Why a month cannot be archived yet: ratings of it still under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchiveBlockers {
    /// Work orders of its ratings not yet closed (or ended by an upheld appeal).
    pub open_orders: i64,
    /// Staff appeals of its ratings not yet reviewed.
    pub pending_appeals: i64,
}

impl ArchiveBlockers {
    /// Whether nothing holds the month back.
    pub fn is_clear(&self) -> bool {
        self.open_orders == 0 && self.pending_appeals == 0
    }
}

/// A month being archived: its partition is locked against writes (`SHARE`, reads go on) until
/// [`Archive::drop_partition`] or until the value is dropped (nothing changes then).
pub struct Archive {
    tx: Transaction<'static, Postgres>,
    month: Month,
    rows: i64,
}

impl Store {
    /// Creates the partition of every month from the one before `now`'s (a rating may be up to
    /// 30 days old) to `months_ahead` months after it, and of every month the DEFAULT partition
    /// holds ratings of, moving those ratings into it; returns the months created. Idempotent and
    /// safe under concurrent callers (one advisory lock; a month is created in its own short
    /// transaction). A month partition is made as a plain table, filled with the month's rows
    /// from the DEFAULT partition (locked meanwhile, so none arrives in between) and attached:
    /// the parent is never locked exclusively, so the aggregator keeps writing other months.
    pub async fn ensure_rating_partitions(&self, now: DateTime<Utc>, months_ahead: u32) -> Result<Vec<Month>, Error> {
        self.ensure_rating_partitions_since(Month::of(now).previous(), now, months_ahead).await
    }

    /// [`Store::ensure_rating_partitions`] from month `first` on (e.g. before loading history).
    pub async fn ensure_rating_partitions_since(
        &self,
        first: Month,
        now: DateTime<Utc>,
        months_ahead: u32,
    ) -> Result<Vec<Month>, Error> {
        let mut last = Month::of(now);
        for _ in 0..months_ahead {
            last = last.next();
        }
        let mut months = Vec::new();
        let mut m = first;
        while m <= last {
            months.push(m);
            m = m.next();
        }
        let caught: Vec<DateTime<Utc>> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT date_trunc('month', rated_at AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai'
               FROM {DEFAULT_PARTITION}"
        ))
        .fetch_all(&self.pool)
        .await?;
        months.extend(caught.into_iter().map(Month::of));
        months.sort();
        months.dedup();
        let mut created = Vec::new();
        for month in months {
            if self.create_month_partition(month).await? {
                created.push(month);
            }
        }
        Ok(created)
    }

    /// Creates `month`'s partition unless it exists, moving its rows out of the DEFAULT
    /// partition; whether it was created.
    async fn create_month_partition(&self, month: Month) -> Result<bool, Error> {
        let name = partition_name(month);
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PARTITION_LOCK).execute(&mut *tx).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(&name).fetch_one(&mut *tx).await?;
        if exists {
            return Ok(false);
        }
        let (from, to) = month.range();
        // Writers of other months route past the DEFAULT partition; a writer of this month waits
        // until the partition is attached, then lands in it.
        sqlx::query(&format!("LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")).execute(&mut *tx).await?;
        sqlx::query(&format!(
            "CREATE TABLE {name} (LIKE ratings INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"
        ))
        .execute(&mut *tx)
        .await?;
        // `LIKE` does not copy per-column statistics targets.
        let unsampled: Vec<String> =
            UNSAMPLED_COLUMNS.iter().map(|c| format!("ALTER COLUMN {c} SET STATISTICS 0")).collect();
        sqlx::query(&format!("ALTER TABLE {name} {}", unsampled.join(", "))).execute(&mut *tx).await?;
        sqlx::query(&format!(
            "WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE rated_at >= $1 AND rated_at < $2 RETURNING *)
             INSERT INTO {name} SELECT * FROM moved"
        ))
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        // DDL takes no parameters: the bounds are instants this code formats itself.
        sqlx::query(&format!(
            "ALTER TABLE ratings ATTACH PARTITION {name} FOR VALUES FROM ('{}') TO ('{}')",
            from.to_rfc3339(),
            to.to_rfc3339()
        ))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The months that have a partition of their own, oldest first.
    pub async fn rating_partition_months(&self) -> Result<Vec<Month>, Error> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'ratings'::regclass",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut months: Vec<Month> = names.iter().filter_map(|n| partition_month(n)).collect();
        months.sort();
        Ok(months)
    }

    /// The partition that holds `rating_id`, found through its key (`None` once archived or
    /// when no such rating is stored).
    pub async fn rating_partition_of(&self, rating_id: uuid::Uuid) -> Result<Option<String>, Error> {
        sqlx::query_scalar(
            "SELECT r.tableoid::regclass::text FROM rating_keys k
               JOIN ratings r ON r.rating_id = k.rating_id AND r.rated_at = k.rated_at
              WHERE k.rating_id = $1",
        )
        .bind(rating_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// What holds `month` back from archiving: work orders of its ratings still open and staff
    /// appeals of them still pending (both read and change the stored rating).
    pub async fn archive_blockers(&self, month: Month) -> Result<ArchiveBlockers, Error> {
        let (from, to) = month.range();
        let (open_orders, pending_appeals): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM work_orders o JOIN rating_keys k USING (rating_id)
                      WHERE k.rated_at >= $1 AND k.rated_at < $2 AND o.state NOT IN ('closed', 'appeal_upheld')),
                    (SELECT count(*) FROM staff_appeals a JOIN rating_keys k USING (rating_id)
                      WHERE k.rated_at >= $1 AND k.rated_at < $2 AND a.status = 'pending')",
        )
        .bind(from)
        .bind(to)
        .fetch_one(&self.pool)
        .await?;
        Ok(ArchiveBlockers { open_orders, pending_appeals })
    }

    /// Starts archiving `month`: locks its partition against writes (reads go on) and counts its
    /// rows. `None` when the month has no partition.
    pub async fn begin_archive(&self, month: Month) -> Result<Option<Archive>, Error> {
        let name = partition_name(month);
        let mut tx = self.pool.begin().await?;
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(&name).fetch_one(&mut *tx).await?;
        if !exists {
            return Ok(None);
        }
        sqlx::query(&format!("LOCK TABLE {name} IN SHARE MODE")).execute(&mut *tx).await?;
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {name}")).fetch_one(&mut *tx).await?;
        Ok(Some(Archive { tx, month, rows }))
    }
}

impl Archive {
    /// The month.
    pub fn month(&self) -> Month {
        self.month
    }

    /// Its ratings, as counted once the partition was locked.
    pub fn rows(&self) -> i64 {
        self.rows
    }

    /// Hands every stored row of the month, in full (every column, as one JSON object: `to_jsonb`),
    /// to `write`, oldest first; returns how many.
    pub async fn each_row(&mut self, mut write: impl FnMut(&str) -> std::io::Result<()>) -> Result<i64, Error> {
        let name = partition_name(self.month);
        let sql = format!("SELECT to_jsonb(r)::text FROM {name} r ORDER BY r.rated_at, r.rating_id");
        let mut rows = sqlx::query_scalar::<_, String>(&sql).fetch(&mut *self.tx);
        let mut n = 0;
        while let Some(line) = rows.try_next().await? {
            write(&line).map_err(Error::Io)?;
            n += 1;
        }
        Ok(n)
    }

    /// Detaches the month's partition from `ratings` and drops it, in the transaction that locked
    /// it (so exactly the rows counted and written are dropped). Its `rating_keys`, work orders,
    /// staff appeals and every rollup stay.
    pub async fn drop_partition(mut self) -> Result<(), Error> {
        let name = partition_name(self.month);
        sqlx::query(&format!("ALTER TABLE ratings DETACH PARTITION {name}")).execute(&mut *self.tx).await?;
        sqlx::query(&format!("DROP TABLE {name}")).execute(&mut *self.tx).await?;
        self.tx.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_and_nothing_else_is_a_month() {
        let m = Month::parse("2026-03").unwrap();
        assert_eq!(partition_name(m), "ratings_p202603");
        assert_eq!(partition_month("ratings_p202603"), Some(m));
        for other in ["ratings_default", "ratings_p2026031", "ratings_p202613", "ratings_pabcdef", "rating_keys"] {
            assert_eq!(partition_month(other), None, "{other}");
        }
    }
}
