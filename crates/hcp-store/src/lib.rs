//! # hcp-store: everything hcp keeps in PostgreSQL
//!
//! Owns the schema (the embedded `migrations/`), the aggregator's batch write — ratings with
//! their attribution snapshot, aggregate deltas and rejected records in **one transaction**, the
//! consumer positions once the batch's events are published — the directory tables (snapshot loads, imports, the roster),
//! re-attribution of flagged ratings, the working-day calendar, bad-review work orders (opened in
//! the batch transaction; actions, audit log and event outbox, appeal exclusions, the overdue sweep,
//! callback invitations, notifications, deadline policies), the SMS queue (leases, outcomes,
//! receipts, per-number counts, opt-outs: digests only), operator accounts, and the aggregate
//! reads behind the stats API, and the monthly partitions of `ratings` (created ahead, old months
//! archived and dropped: `partitions`; the uniqueness of a rating lives in `rating_keys`), and the
//! planner statistics of tables that grow faster than autovacuum visits them (`statistics`).
//!
//! It must not talk to Kafka or HTTP and must not decide domain rules: what counts where comes
//! from `hcp-domain` (for example [`hcp_domain::Rollup`]); this crate only makes it durable.
//! All SQL is checked at run time (no build-time database needed).

mod accounts;
mod alerts;
mod attribution;
mod batch;
mod board;
mod calendar;
mod directory;
mod export;
mod gate;
mod invitations;
mod notifications;
mod partitions;
mod reach;
mod read;
mod records;
mod report;
mod sms;
mod statistics;
mod webhooks;
mod workorders;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

pub use accounts::Account;
pub use alerts::{Alert, Firing};
pub use attribution::{FlaggedRating, PendingReattribution, Reattributed};
pub use batch::{Batch, BatchOutcome, PendingBatch, Position, Publishable, Rejected, StoredRating};
pub use board::{reach_key, OrderTimeliness, Splits, BOARD_CHANNEL};
pub use directory::{DeleteOutcome, ROSTER_HORIZON_DAYS};
pub use export::ExportCursor;
pub use gate::{local_credential_changes, Claim, Credential, IdempotentAnswer, IngestCatalogue, CREDENTIAL_CHANNEL};
pub use invitations::{Invitation, OpenStage, RecordCorrection, ServiceRecord, UnratedStage, ATTRIBUTION_FIELDS};
pub use notifications::Notification;
pub use partitions::{
    partition_month, partition_name, Archive, ArchiveBlockers, DEFAULT_PARTITION, MONTHS_AHEAD, UNSAMPLED_COLUMNS,
};
pub use reach::OrderScope;
pub use read::{AggregateQuery, RankingQuery};
pub use records::RatingRecord;
pub use sms::{DueSms, OptOut, SmsMessage, SmsOutcome};
pub use webhooks::{Delivery, DueDelivery, Webhook};
pub use workorders::{
    AccountabilityError, AccountabilityRecord, ActError, ActRequest, Actor, AttributedUnits, CallbackError,
    DeadlineContext, LogEntry, NewOrder, OrderDetail, OrderQuery, OwnBadReview, PendingEvents, PolicyRow, StaffAppeal,
    StaffAppealError, SweepOutcome, WorkOrder,
};

/// Store errors are database errors.
pub type Error = sqlx::Error;

/// Most LISTEN sessions of one process (ingest's key cache and the board's live updates, with
/// room for a reconnection while the old one closes).
const LISTEN_CONNECTIONS: u32 = 4;

/// The schema migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// A handle to the database (cheap to clone).
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// Where the LISTEN sessions connect, when not through `pool` ([`Store::with_listen_url`]).
    listen: Option<PgPool>,
}

impl Store {
    /// Connects a pool of at most `max_connections` to `url`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, Error> {
        let opts: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(session_options(opts))
            .await?;
        Ok(Store { pool, listen: None })
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Store { pool, listen: None }
    }

    /// Opens the LISTEN sessions ([`Store::credential_listener`], [`Store::board_listener`]) on
    /// `url` instead of the pool's server: a transaction-pooling PgBouncer in front of the pool
    /// hands a LISTEN to whichever server connection is free and delivers nothing to it. Connects
    /// when a listener first needs it (the listeners retry on their own), as `hcp-listen` in
    /// `pg_stat_activity`.
    pub fn with_listen_url(mut self, url: &str) -> Result<Self, Error> {
        let opts: PgConnectOptions = url.parse()?;
        self.listen = Some(
            PgPoolOptions::new()
                .max_connections(LISTEN_CONNECTIONS)
                .acquire_timeout(Duration::from_secs(5))
                .connect_lazy_with(session_options(opts).application_name("hcp-listen")),
        );
        Ok(self)
    }

    /// The pool the LISTEN sessions come from.
    fn listen_pool(&self) -> &PgPool {
        self.listen.as_ref().unwrap_or(&self.pool)
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    /// `SELECT 1`: the readiness probe.
    pub async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }
}

/// Creates database `name` on the server of `url` (any database there), connects a pool to it
/// and applies the migrations: a fresh, isolated database for a test or a benchmark.
pub async fn create_fresh_database(url: &str, name: &str, max_connections: u32) -> Result<Store, Error> {
    use sqlx::Connection;
    check_database_name(name)?;
    let opts: PgConnectOptions = url.parse()?;
    let mut admin = sqlx::PgConnection::connect_with(&opts).await?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await?;
    admin.close().await?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(session_options(opts.database(name)))
        .await?;
    let store = Store { pool, listen: None };
    store.migrate().await.map_err(|e| Error::Migrate(Box::new(e)))?;
    Ok(store)
}

/// What every hcp session runs with: its name. (Session settings belong in the database, set by
/// the migrations: a startup `options` parameter is refused by a transaction-pooling PgBouncer.)
fn session_options(opts: PgConnectOptions) -> PgConnectOptions {
    opts.application_name("hcp")
}

/// Database names we create are plain identifiers, so quoting them is safe.
fn check_database_name(name: &str) -> Result<(), Error> {
    if !name.is_empty() && name.len() <= 63 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(Error::Configuration(format!("invalid database name {name:?}").into()))
    }
}
