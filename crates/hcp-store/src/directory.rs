//! The directory tables: snapshot loads for the aggregator, imports, admin reads and deletes,
//! and the window sign-in roster.

use chrono::{DateTime, Duration, Utc};
use hcp_domain::directory::{
    Department, Device, DeviceKind, Dimension, EntityKind, Hall, Region, RosterEntry, ServiceItem, Staff, Tag,
    TagClass, Window, WindowRole,
};
use hcp_domain::{Directory, DirectoryData};
use sqlx::{Postgres, Row, Transaction};

use crate::{Error, Store};

/// How far back the snapshot keeps roster entries: ratings older than the ingest age limit
/// (30 days) never arrive, and a re-attribution covers the same window.
pub const ROSTER_HORIZON_DAYS: i64 = 32;

/// What deleting a directory row did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Gone.
    Deleted,
    /// There was no such row.
    NotFound,
    /// Other rows refer to it; nothing was deleted. The text names them.
    Referenced(String),
}

fn decode_err(what: &str, value: &str) -> Error {
    Error::Decode(format!("stored {what} has an invalid value '{value}'").into())
}

impl Store {
    /// The directory version (bumped by every directory write).
    pub async fn directory_version(&self) -> Result<i64, Error> {
        sqlx::query_scalar("SELECT version FROM directory_state").fetch_one(&self.pool).await
    }

    /// Reads the whole directory (roster: the last [`ROSTER_HORIZON_DAYS`] days) at one
    /// consistent point, with the version it corresponds to.
    pub async fn load_directory(&self) -> Result<Directory, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let version: i64 = sqlx::query_scalar("SELECT version FROM directory_state").fetch_one(&mut *tx).await?;
        let data = read_all(&mut tx, Utc::now() - Duration::days(ROSTER_HORIZON_DAYS)).await?;
        tx.commit().await?;
        Ok(Directory::new(version, data))
    }

    /// Writes every row of `data` (insert or update by key) in one transaction: all of the file
    /// or nothing. The rows must have passed [`hcp_domain::directory::check_rows`].
    pub async fn import_directory(&self, data: &DirectoryData) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        upsert_all(&mut tx, data).await?;
        tx.commit().await
    }

    /// One page of rows of `kind` as JSON objects (field names as in the API), by key.
    pub async fn list_entities(
        &self,
        kind: EntityKind,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<serde_json::Value>, i64), Error> {
        let table = kind.as_str();
        let order =
            if kind == EntityKind::Roster { "signed_in_at DESC, window_id, staff_id" } else { kind.key_column() };
        let rows: Vec<serde_json::Value> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t) - 'updated_at' FROM {table} t ORDER BY {order} LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&self.pool).await?;
        Ok((rows, total))
    }

    /// One row of `kind` by key (not for the roster), as a JSON object.
    pub async fn get_entity(&self, kind: EntityKind, key: &str) -> Result<Option<serde_json::Value>, Error> {
        let (table, col) = (kind.as_str(), kind.key_column());
        sqlx::query_scalar(&format!("SELECT to_jsonb(t) - 'updated_at' FROM {table} t WHERE {col} = $1"))
            .bind(key)
            .fetch_optional(&self.pool)
            .await
    }

    /// Deletes one row of `kind` by key, unless other rows refer to it.
    pub async fn delete_entity(&self, kind: EntityKind, key: &str) -> Result<DeleteOutcome, Error> {
        let mut tx = self.pool.begin().await?;
        if kind == EntityKind::Departments {
            let windows: Vec<String> = sqlx::query_scalar("SELECT id FROM windows WHERE $1 = ANY(department_ids)")
                .bind(key)
                .fetch_all(&mut *tx)
                .await?;
            if !windows.is_empty() {
                return Ok(DeleteOutcome::Referenced(format!("windows {}", windows.join(", "))));
            }
        }
        let (table, col) = (kind.as_str(), kind.key_column());
        let deleted = sqlx::query(&format!("DELETE FROM {table} WHERE {col} = $1")).bind(key).execute(&mut *tx).await;
        let n = match deleted {
            Ok(r) => r.rows_affected(),
            Err(Error::Database(e)) if e.is_foreign_key_violation() => {
                return Ok(DeleteOutcome::Referenced(e.constraint().unwrap_or("a reference").to_string()));
            }
            Err(e) => return Err(e),
        };
        // Deferred foreign keys are checked at commit.
        match tx.commit().await {
            Ok(()) if n == 0 => Ok(DeleteOutcome::NotFound),
            Ok(()) => Ok(DeleteOutcome::Deleted),
            Err(Error::Database(e)) if e.is_foreign_key_violation() => {
                Ok(DeleteOutcome::Referenced(e.constraint().unwrap_or("a reference").to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Signs `staff` in at `window` at `at`. Any other open sign-in of theirs ends at `at`
    /// (nobody is at two windows).
    pub async fn sign_in(&self, window: &str, staff: &str, at: DateTime<Utc>) -> Result<RosterEntry, Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE roster SET signed_out_at = $2, updated_at = now()
              WHERE staff_id = $1 AND signed_out_at IS NULL AND signed_in_at < $2",
        )
        .bind(staff)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO roster (window_id, staff_id, signed_in_at) VALUES ($1, $2, $3)
             ON CONFLICT (window_id, staff_id, signed_in_at) DO NOTHING",
        )
        .bind(window)
        .bind(staff)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RosterEntry { window_id: window.into(), staff_id: staff.into(), signed_in_at: at, signed_out_at: None })
    }

    /// Signs `staff` out of `window` at `at`; `None` when they were not signed in there.
    pub async fn sign_out(&self, window: &str, staff: &str, at: DateTime<Utc>) -> Result<Option<RosterEntry>, Error> {
        let row = sqlx::query(
            "UPDATE roster SET signed_out_at = $3, updated_at = now()
              WHERE window_id = $1 AND staff_id = $2 AND signed_out_at IS NULL AND signed_in_at < $3
          RETURNING signed_in_at",
        )
        .bind(window)
        .bind(staff)
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(RosterEntry {
                window_id: window.into(),
                staff_id: staff.into(),
                signed_in_at: r.try_get("signed_in_at")?,
                signed_out_at: Some(at),
            })
        })
        .transpose()
    }
}

async fn read_all(tx: &mut Transaction<'_, Postgres>, roster_since: DateTime<Utc>) -> Result<DirectoryData, Error> {
    let mut d = DirectoryData::default();
    for r in sqlx::query("SELECT code, name, parent_code FROM regions").fetch_all(&mut **tx).await? {
        d.regions.push(Region { code: r.try_get(0)?, name: r.try_get(1)?, parent_code: r.try_get(2)? });
    }
    for r in sqlx::query("SELECT id, uscc, name, parent_id, region_code FROM departments").fetch_all(&mut **tx).await? {
        d.departments.push(Department {
            id: r.try_get(0)?,
            uscc: r.try_get(1)?,
            name: r.try_get(2)?,
            parent_id: r.try_get(3)?,
            region_code: r.try_get(4)?,
        });
    }
    for r in sqlx::query("SELECT id, name, region_code FROM halls").fetch_all(&mut **tx).await? {
        d.halls.push(Hall { id: r.try_get(0)?, name: r.try_get(1)?, region_code: r.try_get(2)? });
    }
    for r in sqlx::query("SELECT id, hall_id, name, role, department_ids FROM windows").fetch_all(&mut **tx).await? {
        let role: String = r.try_get(3)?;
        d.windows.push(Window {
            id: r.try_get(0)?,
            hall_id: r.try_get(1)?,
            name: r.try_get(2)?,
            role: WindowRole::parse(&role).ok_or_else(|| decode_err("window role", &role))?,
            department_ids: r.try_get(4)?,
        });
    }
    for r in sqlx::query("SELECT id, kind, hall_id, window_id FROM devices").fetch_all(&mut **tx).await? {
        let kind: String = r.try_get(1)?;
        d.devices.push(Device {
            id: r.try_get(0)?,
            kind: DeviceKind::parse(&kind).ok_or_else(|| decode_err("device kind", &kind))?,
            hall_id: r.try_get(2)?,
            window_id: r.try_get(3)?,
        });
    }
    for r in sqlx::query("SELECT id, name, department_id FROM staff").fetch_all(&mut **tx).await? {
        d.staff.push(Staff { id: r.try_get(0)?, name: r.try_get(1)?, department_id: r.try_get(2)? });
    }
    for r in sqlx::query("SELECT code, name, department_id FROM service_items").fetch_all(&mut **tx).await? {
        d.service_items.push(ServiceItem { code: r.try_get(0)?, name: r.try_get(1)?, department_id: r.try_get(2)? });
    }
    for r in sqlx::query(
        "SELECT window_id, staff_id, signed_in_at, signed_out_at FROM roster
          WHERE signed_in_at >= $1 OR signed_out_at IS NULL OR signed_out_at >= $1",
    )
    .bind(roster_since)
    .fetch_all(&mut **tx)
    .await?
    {
        d.roster.push(RosterEntry {
            window_id: r.try_get(0)?,
            staff_id: r.try_get(1)?,
            signed_in_at: r.try_get(2)?,
            signed_out_at: r.try_get(3)?,
        });
    }
    for r in sqlx::query("SELECT code, name, class, negative FROM tags").fetch_all(&mut **tx).await? {
        let class: String = r.try_get(2)?;
        d.tags.push(Tag {
            code: r.try_get(0)?,
            name: r.try_get(1)?,
            class: TagClass::parse(&class).ok_or_else(|| decode_err("tag class", &class))?,
            negative: r.try_get(3)?,
        });
    }
    for r in sqlx::query("SELECT code, name, class, channels FROM dimensions").fetch_all(&mut **tx).await? {
        let class: String = r.try_get(2)?;
        d.dimensions.push(Dimension {
            code: r.try_get(0)?,
            name: r.try_get(1)?,
            class: TagClass::parse(&class).ok_or_else(|| decode_err("dimension class", &class))?,
            channels: r.try_get(3)?,
        });
    }
    Ok(d)
}

/// Column vectors for UNNEST; `f` picks one column of each row.
fn col<T, U>(rows: &[T], f: impl Fn(&T) -> U) -> Vec<U> {
    rows.iter().map(f).collect()
}

/// A query being bound.
type UpsertQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// How one directory kind is written: its upsert (one row per element of the bound column
/// vectors; a row that did not change is left alone) and the columns it binds. Each kind's
/// statement lives in its one implementation.
trait Upsert: Sized {
    /// The statement.
    const SQL: &'static str;
    /// Binds the column vectors of `rows` to `query`, in the statement's order.
    fn bind<'q>(query: UpsertQuery<'q>, rows: &[Self]) -> UpsertQuery<'q>;
}

/// Upserts `rows` of one kind (nothing when there are none).
async fn upsert<T: Upsert>(tx: &mut Transaction<'_, Postgres>, rows: &[T]) -> Result<(), Error> {
    if !rows.is_empty() {
        T::bind(sqlx::query(T::SQL), rows).execute(&mut **tx).await?;
    }
    Ok(())
}

async fn upsert_all(tx: &mut Transaction<'_, Postgres>, d: &DirectoryData) -> Result<(), Error> {
    upsert(tx, &d.regions).await?;
    upsert(tx, &d.departments).await?;
    upsert(tx, &d.halls).await?;
    upsert(tx, &d.windows).await?;
    upsert(tx, &d.devices).await?;
    upsert(tx, &d.staff).await?;
    upsert(tx, &d.service_items).await?;
    upsert(tx, &d.roster).await?;
    upsert(tx, &d.tags).await?;
    upsert(tx, &d.dimensions).await
}

impl Upsert for Region {
    const SQL: &'static str = "INSERT INTO regions AS t (code, name, parent_code)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
             ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, parent_code = EXCLUDED.parent_code,
                 updated_at = now()
             WHERE (t.name, t.parent_code) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.parent_code)";
    fn bind<'q>(query: UpsertQuery<'q>, rows: &[Self]) -> UpsertQuery<'q> {
        query
            .bind(col(rows, |r| r.code.clone()))
            .bind(col(rows, |r| r.name.clone()))
            .bind(col(rows, |r| r.parent_code.clone()))
    }
}

impl Upsert for Department {
    const SQL: &'static str = "INSERT INTO departments AS t (id, uscc, name, parent_id, region_code)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
             ON CONFLICT (id) DO UPDATE SET uscc = EXCLUDED.uscc, name = EXCLUDED.name,
                 parent_id = EXCLUDED.parent_id, region_code = EXCLUDED.region_code, updated_at = now()
             WHERE (t.uscc, t.name, t.parent_id, t.region_code)
                   IS DISTINCT FROM (EXCLUDED.uscc, EXCLUDED.name, EXCLUDED.parent_id, EXCLUDED.region_code)";
    fn bind<'q>(query: UpsertQuery<'q>, rows: &[Self]) -> UpsertQuery<'q> {
        query
            .bind(col(rows, |r| r.id.clone()))
            .bind(col(rows, |r| r.uscc.clone()))
            .bind(col(rows, |r| r.name.clone()))
            .bind(col(rows, |r| r.parent_id.clone()))
            .bind(col(rows, |r| r.region_code.clone()))
    }
}

impl Upsert for Hall {
    const SQL: &'static str = "INSERT INTO halls AS t (id, name, region_code)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, region_code = EXCLUDED.region_code, updated_at = now()
             WHERE (t.name, t.region_code) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.region_code)";
    fn bind<'q>(query: UpsertQuery<'q>, rows: &[Self]) -> UpsertQuery<'q> {
        query
            .bind(col(rows, |r| r.id.clone()))
            .bind(col(rows, |r| r.name.clone()))
            .bind(col(rows, |r| r.region_code.clone()))
    }
}

// Department lists travel as one string per window: ids never contain the unit separator.
impl Upsert for Window {
    const SQL: &'static str = "INSERT INTO windows AS t (id, hall_id, name, role, department_ids)
             SELECT id, hall, name, role, string_to_array(depts, E'\\x1f')
               FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(id, hall, name, role, depts)
             ON CONFLICT (id) DO UPDATE SET hall_id = EXCLUDED.hall_id, name = EXCLUDED.name, role = EXCLUDED.role,
                 department_ids = EXCLUDED.department_ids, updated_at = now()
             WHERE (t.hall_id, t.name, t.role, t.department_ids)
                   IS DISTINCT FROM (EXCLUDED.hall_id, EXCLUDED.name, EXCLUDED.role, EXCLUDED.department_ids)";
    fn bind<'q>(query: UpsertQuery<'q>, rows: &[Self]) -> UpsertQuery<'q> {
        query
            .bind(col(rows, |r| r.id.clone()))
            .bind(col(rows, |r| r.hall_id.clone()))
            .bind(col(rows, |r| r.name.clone()))
            .bind(col(rows, |r| r.role.as_str()))
            .bind(col(rows, |r| r.department_ids.join("\u{1f}")))
    }
}

impl Upsert for Device {
    const SQL: &'static str = "INSERT INTO devices AS t (id, kind, hall_id, window_id)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
             ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, hall_id = EXCLUDED.hall_id,
                 window_id = EXCLUDED.window_id, updated_at = now()
             WHERE (t.kind, t.hall_id, t.window_id) IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.hall_id, EXCLUDED.window_id)";
    fn bind<'q>(query: UpsertQuery<'q>, rows: &[Self]) -> UpsertQuery<'q> {
        query
            .bind(col(rows, |r| r.id.clone()))
            .bind(col(rows, |r| r.kind.as_str()))
            .bind(col(rows, |r| r.hall_id.clone()))
            .bind(col(rows, |r| r.window_id.clone()))
    }
}

impl Upsert for Staff {
    const SQL: &'static str = "INSERT INTO staff AS t (id, name, department_id)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, department_id = EXCLUDED.department_id, updated_at = now()
             WHERE (t.name, t.department_id) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.department_id)";
    fn bind<'q>(query: UpsertQuery<'q>, rows: &[Self]) -> UpsertQuery<'q> {
        query
            .bind(col(rows, |r| r.id.clone()))
            .bind(col(rows, |r| r.name.clone()))
            .bind(col(rows, |r| r.department_id.clone()))
    }
}

impl Upsert for ServiceItem {
    const SQL: &'static str = "INSERT INTO service_items AS t (code, name, department_id)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
             ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, department_id = EXCLUDED.department_id, updated_at = now()
             WHERE (t.name, t.department_id) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.department_id)";
    fn bind<'q>(query: UpsertQuery<'q>, rows: &[Self]) -> UpsertQuery<'q> {
        query
            .bind(col(rows, |r| r.code.clone()))
            .bind(col(rows, |r| r.name.clone()))
            .bind(col(rows, |r| r.department_id.clone()))
    }
}

impl Upsert for RosterEntry {
    const SQL: &'static str = "INSERT INTO roster AS t (window_id, staff_id, signed_in_at, signed_out_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
             ON CONFLICT (window_id, staff_id, signed_in_at) DO UPDATE SET signed_out_at = EXCLUDED.signed_out_at,
                 updated_at = now()
             WHERE t.signed_out_at IS DISTINCT FROM EXCLUDED.signed_out_at";
    fn bind<'q>(query: UpsertQuery<'q>, rows: &[Self]) -> UpsertQuery<'q> {
        query
            .bind(col(rows, |r| r.window_id.clone()))
            .bind(col(rows, |r| r.staff_id.clone()))
            .bind(col(rows, |r| r.signed_in_at))
            .bind(col(rows, |r| r.signed_out_at))
    }
}

impl Upsert for Tag {
    const SQL: &'static str = "INSERT INTO tags AS t (code, name, class, negative)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[])
             ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, class = EXCLUDED.class,
                 negative = EXCLUDED.negative, updated_at = now()
             WHERE (t.name, t.class, t.negative) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.class, EXCLUDED.negative)";
    fn bind<'q>(query: UpsertQuery<'q>, rows: &[Self]) -> UpsertQuery<'q> {
        query
            .bind(col(rows, |r| r.code.clone()))
            .bind(col(rows, |r| r.name.clone()))
            .bind(col(rows, |r| r.class.as_str()))
            .bind(col(rows, |r| r.negative))
    }
}

// Channel lists travel as one string per dimension: channel names never contain the unit separator.
impl Upsert for Dimension {
    const SQL: &'static str = "INSERT INTO dimensions AS t (code, name, class, channels)
             SELECT code, name, class, string_to_array(channels, E'\\x1f')
               FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS u(code, name, class, channels)
             ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, class = EXCLUDED.class,
                 channels = EXCLUDED.channels, updated_at = now()
             WHERE (t.name, t.class, t.channels) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.class, EXCLUDED.channels)";
    fn bind<'q>(query: UpsertQuery<'q>, rows: &[Self]) -> UpsertQuery<'q> {
        query
            .bind(col(rows, |r| r.code.clone()))
            .bind(col(rows, |r| r.name.clone()))
            .bind(col(rows, |r| r.class.as_str()))
            .bind(col(rows, |r| r.channels.join("\u{1f}")))
    }
}
