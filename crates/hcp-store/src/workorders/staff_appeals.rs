//! Staff appeals (工作人员申诉): a staff member's own bad reviews (never who gave them), their
//! appeals, and the review (复核) within the reviewer's reach; an upheld appeal excludes the rating
//! and ends an order still open, in one transaction.

use chrono::{DateTime, Utc};
use hcp_domain::staff_appeal::Appeal;
use hcp_domain::OrderState;
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use crate::reach::{scope_condition, OrderScope};
use crate::workorders::orders::{exclude_rating, log, Actor};
use crate::{Error, Store};

/// A staff member's appeal.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StaffAppeal {
    /// Id.
    pub appeal_id: Uuid,
    /// The bad rating appealed.
    pub rating_id: Uuid,
    /// Its work order, if one was opened.
    pub order_id: Option<Uuid>,
    /// The order's number.
    pub order_no: Option<i64>,
    /// The staff member appealing.
    pub staff_id: String,
    /// Their name in the directory.
    pub staff_name: Option<String>,
    /// The account that filed it.
    pub filed_by: String,
    /// When.
    pub filed_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// References to evidence.
    pub attachments: Vec<String>,
    /// `pending`, `upheld` or `rejected`.
    pub status: String,
    /// Who reviewed it (复核).
    pub reviewed_by: Option<String>,
    /// When.
    pub reviewed_at: Option<DateTime<Utc>>,
    /// The review's note.
    pub review_note: Option<String>,
}

const APPEAL_COLUMNS: &str = "a.appeal_id, a.rating_id, a.order_id, o.order_no, a.staff_id,
    (SELECT name FROM staff WHERE id = a.staff_id) AS staff_name, a.filed_by, a.filed_at, a.reason,
    a.attachments, a.status, a.reviewed_by, a.reviewed_at, a.review_note";

fn appeal_from_row(r: &PgRow) -> Result<StaffAppeal, Error> {
    Ok(StaffAppeal {
        appeal_id: r.try_get("appeal_id")?,
        rating_id: r.try_get("rating_id")?,
        order_id: r.try_get("order_id")?,
        order_no: r.try_get("order_no")?,
        staff_id: r.try_get("staff_id")?,
        staff_name: r.try_get("staff_name")?,
        filed_by: r.try_get("filed_by")?,
        filed_at: r.try_get("filed_at")?,
        reason: r.try_get("reason")?,
        attachments: r.try_get("attachments")?,
        status: r.try_get("status")?,
        reviewed_by: r.try_get("reviewed_by")?,
        reviewed_at: r.try_get("reviewed_at")?,
        review_note: r.try_get("review_note")?,
    })
}

/// One of a staff member's bad reviews, as they see it: what was said, never who said it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OwnBadReview {
    /// The rating.
    pub rating_id: Uuid,
    /// 办件编号.
    pub service_record_no: String,
    /// `acceptance` or `pickup`.
    pub stage: String,
    /// The channel.
    pub channel: String,
    /// 1 or 2.
    pub grade: i16,
    /// Tag names (the catalogue's, else the code).
    pub tag_names: Vec<String>,
    /// The rater's words.
    pub comment: Option<String>,
    /// When rated.
    pub rated_at: DateTime<Utc>,
    /// Whether it counts in the statistics now.
    pub counted: bool,
    /// Why not, when excluded.
    pub excluded_reason: Option<String>,
    /// Its work order's number.
    pub order_no: Option<i64>,
    /// The order's state.
    pub order_state: Option<String>,
    /// The appeal, once filed.
    pub appeal: Option<StaffAppeal>,
}

/// Why an appeal was not filed or reviewed.
#[derive(Debug, thiserror::Error)]
pub enum StaffAppealError {
    /// Not the staff member's bad review, or no such appeal in the reviewer's reach.
    #[error("not found")]
    NotFound,
    /// The rating was appealed before.
    #[error("the rating was appealed before")]
    AlreadyAppealed,
    /// The rating no longer counts: nothing to appeal.
    #[error("the rating is already excluded from the statistics")]
    AlreadyExcluded,
    /// The appeal was reviewed before.
    #[error("the appeal was reviewed before: {0}")]
    AlreadyReviewed(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Store {
    /// The bad reviews (grade 1–2) attributed to `staff_id`, newest first, with their order and
    /// appeal.
    pub async fn own_bad_reviews(&self, staff_id: &str, limit: i64) -> Result<Vec<OwnBadReview>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT r.rating_id AS r_id, r.service_record_no, r.stage, r.channel, r.grade AS r_grade, r.comment,
                    r.rated_at, r.excluded_at IS NULL AND r.superseded_by IS NULL AS counted, r.excluded_reason,
                    ARRAY(SELECT COALESCE(t.name, x.code) FROM unnest(r.tags) WITH ORDINALITY AS x(code, n)
                          LEFT JOIN tags t ON t.code = x.code ORDER BY x.n) AS tag_names,
                    wo.order_no AS r_order_no, wo.state AS order_state, a.appeal_id IS NOT NULL AS appealed,
                    {APPEAL_COLUMNS}
               FROM ratings r
               LEFT JOIN work_orders wo ON wo.rating_id = r.rating_id
               LEFT JOIN staff_appeals a ON a.rating_id = r.rating_id
               LEFT JOIN work_orders o ON o.order_id = a.order_id
              WHERE r.attr_staff_id = $1 AND r.grade <= 2
              ORDER BY r.rated_at DESC, r.rating_id LIMIT $2"
        ))
        .bind(staff_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let appealed: bool = r.try_get("appealed")?;
                Ok(OwnBadReview {
                    rating_id: r.try_get("r_id")?,
                    service_record_no: r.try_get("service_record_no")?,
                    stage: r.try_get("stage")?,
                    channel: r.try_get("channel")?,
                    grade: r.try_get("r_grade")?,
                    tag_names: r.try_get("tag_names")?,
                    comment: r.try_get("comment")?,
                    rated_at: r.try_get("rated_at")?,
                    counted: r.try_get("counted")?,
                    excluded_reason: r.try_get("excluded_reason")?,
                    order_no: r.try_get("r_order_no")?,
                    order_state: r.try_get("order_state")?,
                    appeal: if appealed { Some(appeal_from_row(r)?) } else { None },
                })
            })
            .collect()
    }

    /// Files `appeal` of `staff_id`'s bad rating `rating_id` (one per rating), whatever its
    /// order's progress.
    pub async fn file_staff_appeal(
        &self,
        staff_id: &str,
        filed_by: &str,
        rating_id: Uuid,
        appeal: &Appeal,
        now: DateTime<Utc>,
    ) -> Result<StaffAppeal, StaffAppealError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT r.excluded_at IS NOT NULL AS excluded, o.order_id
               FROM ratings r LEFT JOIN work_orders o ON o.rating_id = r.rating_id
              WHERE r.rating_id = $1 AND r.attr_staff_id = $2 AND r.grade <= 2 FOR UPDATE OF r",
        )
        .bind(rating_id)
        .bind(staff_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StaffAppealError::NotFound)?;
        if row.try_get::<bool, _>("excluded")? {
            return Err(StaffAppealError::AlreadyExcluded);
        }
        // Every counted bad rating has its order; its department or region reviews the appeal.
        let Some(order_id) = row.try_get::<Option<Uuid>, _>("order_id")? else {
            return Err(StaffAppealError::NotFound);
        };
        let inserted = sqlx::query(
            "INSERT INTO staff_appeals (appeal_id, rating_id, order_id, staff_id, filed_by, filed_at, reason, attachments)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (rating_id) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(rating_id)
        .bind(order_id)
        .bind(staff_id)
        .bind(filed_by)
        .bind(now)
        .bind(&appeal.reason)
        .bind(&appeal.attachments)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StaffAppealError::AlreadyAppealed);
        }
        let row = sqlx::query(&format!(
            "SELECT {APPEAL_COLUMNS} FROM staff_appeals a LEFT JOIN work_orders o ON o.order_id = a.order_id
              WHERE a.rating_id = $1"
        ))
        .bind(rating_id)
        .fetch_one(&mut *tx)
        .await?;
        let appeal = appeal_from_row(&row)?;
        tx.commit().await?;
        Ok(appeal)
    }

    /// Appeals whose order lies within `scope`, oldest first; only `status` ones when given.
    pub async fn staff_appeals(
        &self,
        scope: &OrderScope,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StaffAppeal>, Error> {
        let (scope_sql, scope_arg) = scope_condition(scope, 1);
        sqlx::query(&format!(
            "SELECT {APPEAL_COLUMNS} FROM staff_appeals a JOIN work_orders o ON o.order_id = a.order_id
              WHERE {scope_sql} AND ($2::text IS NULL OR a.status = $2)
              ORDER BY a.filed_at, a.appeal_id LIMIT $3"
        ))
        .bind(&scope_arg)
        .bind(status)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(appeal_from_row)
        .collect()
    }

    /// Reviews (复核) a pending appeal whose order lies within `scope`. Upheld: the rating leaves
    /// every aggregate (as an upheld order appeal) and an order still open ends as
    /// `appeal_upheld` with an `uphold_appeal` line in its log — one transaction.
    pub async fn review_staff_appeal(
        &self,
        scope: &OrderScope,
        actor: &Actor,
        appeal_id: Uuid,
        uphold: bool,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<StaffAppeal, StaffAppealError> {
        let (scope_sql, scope_arg) = scope_condition(scope, 2);
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT a.status, a.rating_id, o.order_id, o.state, o.founded
               FROM staff_appeals a JOIN work_orders o ON o.order_id = a.order_id
              WHERE a.appeal_id = $1 AND {scope_sql} FOR UPDATE OF a, o"
        ))
        .bind(appeal_id)
        .bind(&scope_arg)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StaffAppealError::NotFound)?;
        let status: String = row.try_get("status")?;
        if status != "pending" {
            return Err(StaffAppealError::AlreadyReviewed(status));
        }
        let new_status = if uphold { "upheld" } else { "rejected" };
        sqlx::query(
            "UPDATE staff_appeals SET status = $2, reviewed_by = $3, reviewer_role = $4, reviewed_at = $5, review_note = $6
              WHERE appeal_id = $1",
        )
        .bind(appeal_id)
        .bind(new_status)
        .bind(&actor.name)
        .bind(&actor.role)
        .bind(now)
        .bind(note)
        .execute(&mut *tx)
        .await?;
        if uphold {
            let rating_id: Uuid = row.try_get("rating_id")?;
            let order_id: Uuid = row.try_get("order_id")?;
            let reason = format!("工作人员申诉成立:{note}");
            exclude_rating(&mut tx, rating_id, order_id, &reason, now).await?;
            let name: String = row.try_get("state")?;
            let state = OrderState::parse(&name, row.try_get("founded")?).ok_or_else(|| {
                sqlx::Error::Decode(format!("work order {order_id} has an unknown state {name}").into())
            })?;
            if let Some(next) = state.after_staff_appeal_upheld() {
                sqlx::query(
                    "UPDATE work_orders SET state = $2, closed_at = $3, updated_at = $3, appeal_reason = $4
                      WHERE order_id = $1",
                )
                .bind(order_id)
                .bind(next.name())
                .bind(now)
                .bind(&reason)
                .execute(&mut *tx)
                .await?;
                log(&mut tx, order_id, actor, "uphold_appeal", state.name(), next.name(), Some(&reason), Some(now))
                    .await?;
            }
        }
        let row = sqlx::query(&format!(
            "SELECT {APPEAL_COLUMNS} FROM staff_appeals a LEFT JOIN work_orders o ON o.order_id = a.order_id
              WHERE a.appeal_id = $1"
        ))
        .bind(appeal_id)
        .fetch_one(&mut *tx)
        .await?;
        let appeal = appeal_from_row(&row)?;
        tx.commit().await?;
        Ok(appeal)
    }
}
