//! Accountability measures on founded bad reviews (教育, 约谈, 问责 for conduct; 流程论证 for a
//! process or platform cause): recorded on an order in the caller's reach, each with an audit
//! line that is never published as an event (a personnel matter, not a work-order transition).

use chrono::{DateTime, Utc};
use hcp_domain::accountability::{AccountabilityKind, Cause};
use serde::Serialize;
use sqlx::{PgExecutor, Row};
use uuid::Uuid;

use crate::reach::{scope_condition, OrderScope};
use crate::workorders::orders::Actor;
use crate::{Error, Store};

/// A recorded accountability measure.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountabilityRecord {
    /// Id.
    pub id: i64,
    /// The order it answers.
    pub order_id: Uuid,
    /// `education` 教育, `interview` 约谈, `accountability` 问责 or `process_review` 流程论证.
    pub kind: String,
    /// The verified cause it answers (`conduct`, `process`, `platform`).
    pub cause: String,
    /// The staff member it concerns (conduct).
    pub staff_id: Option<String>,
    /// The department it concerns.
    pub department_id: Option<String>,
    /// Who recorded it.
    pub actor: String,
    /// Their role.
    pub actor_role: String,
    /// When.
    pub at: DateTime<Utc>,
    /// What was done and why.
    pub note: String,
}

/// Why a measure was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum AccountabilityError {
    /// No such order in the caller's reach.
    #[error("no such work order")]
    NotFound,
    /// The order has no founded verification: nothing to answer for.
    #[error("the order has no founded verification")]
    NotFounded {
        /// The order's cause, if verified.
        cause: Option<String>,
    },
    /// The measure does not fit the verified cause.
    #[error("{kind} does not answer a {cause} cause")]
    DoesNotFit {
        /// The measure.
        kind: &'static str,
        /// The verified cause.
        cause: &'static str,
        /// The measures that fit it.
        fitting: Vec<&'static str>,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const RECORD_COLUMNS: &str = "id, order_id, kind, cause, staff_id, department_id, actor, actor_role, at, note";

fn record_from_row(r: &sqlx::postgres::PgRow) -> Result<AccountabilityRecord, Error> {
    Ok(AccountabilityRecord {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        kind: r.try_get("kind")?,
        cause: r.try_get("cause")?,
        staff_id: r.try_get("staff_id")?,
        department_id: r.try_get("department_id")?,
        actor: r.try_get("actor")?,
        actor_role: r.try_get("actor_role")?,
        at: r.try_get("at")?,
        note: r.try_get("note")?,
    })
}

/// The measures recorded on an order, oldest first.
pub(crate) async fn accountability_of(
    db: impl PgExecutor<'_>,
    order_id: Uuid,
) -> Result<Vec<AccountabilityRecord>, Error> {
    sqlx::query(&format!("SELECT {RECORD_COLUMNS} FROM accountability_actions WHERE order_id = $1 ORDER BY id"))
        .bind(order_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(record_from_row)
        .collect()
}

impl Store {
    /// Records `kind` on the order in `scope`, if its verification was founded and the measure
    /// fits the verified cause; a conduct measure concerns the order's staff member (else the
    /// rating's), a process review the order's department. Writes an unpublished audit line in
    /// the same transaction.
    pub async fn record_accountability(
        &self,
        scope: &OrderScope,
        actor: &Actor,
        order_id: Uuid,
        kind: AccountabilityKind,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<AccountabilityRecord, AccountabilityError> {
        let (scope_sql, scope_arg) = scope_condition(scope, 2);
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT o.state, o.founded, o.cause, o.department_id, COALESCE(o.staff_id, r.attr_staff_id) AS staff_id
               FROM work_orders o LEFT JOIN ratings r USING (rating_id) -- none once its month is archived
              WHERE o.order_id = $1 AND {scope_sql} FOR UPDATE OF o"
        ))
        .bind(order_id)
        .bind(&scope_arg)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(AccountabilityError::NotFound)?;
        let cause_name: Option<String> = row.try_get("cause")?;
        let founded: Option<bool> = row.try_get("founded")?;
        let cause = match (founded, cause_name.as_deref().and_then(Cause::parse)) {
            (Some(true), Some(c)) if c != Cause::None => c,
            _ => return Err(AccountabilityError::NotFounded { cause: cause_name }),
        };
        if !kind.fits(cause) {
            return Err(AccountabilityError::DoesNotFit {
                kind: kind.as_str(),
                cause: cause.as_str(),
                fitting: AccountabilityKind::fitting(cause),
            });
        }
        let staff_id: Option<String> = if cause == Cause::Conduct { row.try_get("staff_id")? } else { None };
        let department_id: Option<String> = row.try_get("department_id")?;
        let state: String = row.try_get("state")?;
        let record = sqlx::query(&format!(
            "INSERT INTO accountability_actions (order_id, kind, cause, staff_id, department_id, actor, actor_role, at, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {RECORD_COLUMNS}"
        ))
        .bind(order_id)
        .bind(kind.as_str())
        .bind(cause.as_str())
        .bind(&staff_id)
        .bind(&department_id)
        .bind(&actor.name)
        .bind(&actor.role)
        .bind(now)
        .bind(note)
        .fetch_one(&mut *tx)
        .await?;
        // An audit line, never published as an event (published_at is set at once).
        sqlx::query(
            "INSERT INTO work_order_log (order_id, at, actor, actor_role, action, from_state, to_state, note, published_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, now())",
        )
        .bind(order_id)
        .bind(now)
        .bind(&actor.name)
        .bind(&actor.role)
        .bind(format!("accountability:{}", kind.as_str()))
        .bind(&state)
        .bind(format!("{}:{note}", kind.label_zh()))
        .execute(&mut *tx)
        .await?;
        let record = record_from_row(&record)?;
        tx.commit().await?;
        Ok(record)
    }
}
