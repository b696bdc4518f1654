//! Ratings whose attribution is incomplete: the operators' list, and re-attribution once the
//! directory is fixed (a compensating aggregate update in one transaction).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use hcp_domain::{
    attribute, AssessNumber, Attribution, Channel, Directory, Grade, RatingSubmitted, Rollup, SealedRater, Stage,
};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use crate::batch::{dimensions_from_row, facts_from_row, facts_of, upsert_aggregates};
use crate::reach::{rating_reach_condition, OrderScope};
use crate::{Error, Store};

/// A rating that could not be attributed completely, as listed for operators. Carries no
/// personal data of the rater.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlaggedRating {
    /// Rating id.
    pub rating_id: Uuid,
    /// 办件编号.
    pub service_record_no: String,
    /// Channel wire name.
    pub channel: String,
    /// Stage wire name.
    pub stage: String,
    /// Grade.
    pub grade: i16,
    /// When it was rated.
    pub rated_at: DateTime<Utc>,
    /// What the client reported: department, hall, window, staff, device, service item.
    pub reported: serde_json::Value,
    /// What could be attributed.
    pub attribution: serde_json::Value,
    /// Why it is flagged.
    pub flags: Vec<String>,
}

/// What a re-attribution run did.
#[derive(Debug, Clone, Default)]
pub struct Reattributed {
    /// Flagged ratings examined.
    pub examined: usize,
    /// Ratings whose attribution changed; the events to publish as attributed again.
    pub changed: Vec<(RatingSubmitted, Attribution)>,
    /// Of the changed ones, those now complete.
    pub resolved: usize,
}

const RATING_COLUMNS: &str = "rating_id, channel, stage, service_record_no, service_item_code, department_id, hall_id,
    window_id, staff_id, device_id, grade, tags, dimensions, comment, rated_at, received_at, assess_number, agg_scopes,
    dim_scopes, attribution_flags, superseded_by, rater, excluded_at";

fn event_from_row(row: &PgRow) -> Result<RatingSubmitted, Error> {
    let bad = |what: &str| Error::Decode(format!("stored rating has an invalid {what}").into());
    let channel: String = row.try_get("channel")?;
    let stage: String = row.try_get("stage")?;
    let grade: i16 = row.try_get("grade")?;
    let assess: i16 = row.try_get("assess_number")?;
    Ok(RatingSubmitted {
        rating_id: row.try_get("rating_id")?,
        channel: Channel::parse(&channel).ok_or_else(|| bad("channel"))?,
        stage: Stage::parse(&stage).ok_or_else(|| bad("stage"))?,
        service_record_no: row.try_get("service_record_no")?,
        service_item_code: row.try_get("service_item_code")?,
        department_id: row.try_get("department_id")?,
        hall_id: row.try_get("hall_id")?,
        window_id: row.try_get("window_id")?,
        staff_id: row.try_get("staff_id")?,
        device_id: row.try_get("device_id")?,
        grade: u8::try_from(grade).ok().and_then(Grade::new).ok_or_else(|| bad("grade"))?,
        tags: row.try_get("tags")?,
        dimensions: dimensions_from_row(row)?,
        comment: row.try_get("comment")?,
        rated_at: row.try_get("rated_at")?,
        received_at: row.try_get("received_at")?,
        assess_number: u8::try_from(assess)
            .ok()
            .and_then(|n| AssessNumber::try_from(n).ok())
            .ok_or_else(|| bad("assess_number"))?,
        rater: row.try_get::<Option<sqlx::types::Json<SealedRater>>, _>("rater")?.map(|j| j.0),
    })
}

impl Store {
    /// One page of flagged ratings, oldest first, with the total.
    pub async fn flagged_ratings(
        &self,
        reach: &OrderScope,
        flag: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<FlaggedRating>, i64), Error> {
        let (condition, arg) = rating_reach_condition(reach, 2);
        let filter = format!(
            "cardinality(attribution_flags) > 0 AND ($1::text IS NULL OR $1 = ANY(attribution_flags)) AND {condition}"
        );
        let rows = sqlx::query(&format!(
            "SELECT rating_id, service_record_no, channel, stage, grade, rated_at, attribution_flags,
                    jsonb_strip_nulls(jsonb_build_object('department_id', department_id, 'hall_id', hall_id,
                        'window_id', window_id, 'staff_id', staff_id, 'device_id', device_id,
                        'service_item_code', service_item_code)) AS reported,
                    COALESCE(attribution, '{{}}'::jsonb) AS attribution
               FROM ratings WHERE {filter}
              ORDER BY stored_at, rating_id LIMIT $3 OFFSET $4"
        ))
        .bind(flag)
        .bind(&arg)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM ratings WHERE {filter}"))
            .bind(flag)
            .bind(&arg)
            .fetch_one(&self.pool)
            .await?;
        let list = rows
            .iter()
            .map(|r| {
                Ok(FlaggedRating {
                    rating_id: r.try_get("rating_id")?,
                    service_record_no: r.try_get("service_record_no")?,
                    channel: r.try_get("channel")?,
                    stage: r.try_get("stage")?,
                    grade: r.try_get("grade")?,
                    rated_at: r.try_get("rated_at")?,
                    reported: r.try_get("reported")?,
                    attribution: r.try_get("attribution")?,
                    flags: r.try_get("attribution_flags")?,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok((list, total))
    }

    /// Attributes up to `limit` flagged ratings again against `dir`. A changed attribution
    /// replaces the stored snapshot, and a counted rating moves between aggregate rows (minus
    /// on the old rows, plus on the new) in the same transaction. Ratings already complete are
    /// never touched: history is not rewritten by later directory changes.
    /// Nothing is committed until [`PendingReattribution::commit`], so the caller can publish
    /// the changed attributions first.
    pub async fn reattribute_flagged(&self, dir: &Directory, limit: i64) -> Result<PendingReattribution, Error> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {RATING_COLUMNS} FROM ratings WHERE cardinality(attribution_flags) > 0
              ORDER BY stored_at, rating_id LIMIT $1 FOR UPDATE"
        ))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Reattributed { examined: rows.len(), ..Default::default() };
        let mut rollup = Rollup::new();
        for row in &rows {
            let event = event_from_row(row)?;
            let old = facts_from_row(row)?;
            let old_flags: Vec<String> = row.try_get("attribution_flags")?;
            let old_keys: BTreeSet<String> = row.try_get::<Vec<String>, _>("agg_scopes")?.into_iter().collect();
            let old_dim_keys: BTreeSet<String> = row.try_get::<Vec<String>, _>("dim_scopes")?.into_iter().collect();
            let new = attribute(dir, &event, event.rated_at);
            let new_flags: Vec<&str> = new.flags.iter().map(|f| f.as_str()).collect();
            if old_flags == new_flags
                && old_keys == new.scope_keys().into_iter().collect()
                && old_dim_keys == new.dimension_scope_keys().into_iter().collect()
            {
                continue;
            }
            // Counted only while neither replaced by a follow-up nor excluded by an upheld appeal.
            let superseded: Option<Uuid> = row.try_get("superseded_by")?;
            let excluded: Option<DateTime<Utc>> = row.try_get("excluded_at")?;
            if superseded.is_none() && excluded.is_none() {
                rollup.remove(&old);
                rollup.add(&facts_of(&event, &new));
            }
            sqlx::query(
                "UPDATE ratings SET attr_department_id = $2, attr_hall_id = $3, attr_window_id = $4,
                        attr_staff_id = $5, attribution = $6, attribution_flags = $7, agg_scopes = $8,
                        directory_version = $9, dim_scopes = $10, attributed_at = now()
                  WHERE rating_id = $1",
            )
            .bind(event.rating_id)
            .bind(&new.department_id)
            .bind(&new.hall_id)
            .bind(&new.window_id)
            .bind(&new.staff_id)
            .bind(serde_json::to_value(&new).unwrap_or_default())
            .bind(&new_flags)
            .bind(new.scope_keys())
            .bind(new.directory_version)
            .bind(new.dimension_scope_keys())
            .execute(&mut *tx)
            .await?;
            // Its work order (if any) judges the newly attributed units (migration 30).
            sqlx::query(
                "UPDATE work_orders SET attr_hall_id = $2, attr_window_id = $3, attr_staff_id = $4
                  WHERE rating_id = $1",
            )
            .bind(event.rating_id)
            .bind(&new.hall_id)
            .bind(&new.window_id)
            .bind(&new.staff_id)
            .execute(&mut *tx)
            .await?;
            if !new.is_flagged() {
                out.resolved += 1;
            }
            out.changed.push((event, new));
        }
        upsert_aggregates(&mut tx, rollup).await?;
        Ok(PendingReattribution { tx, result: out })
    }

    /// Roster entries around `at` that decide who was on duty at `window`: the window's
    /// sign-ins of the preceding day and every sign-in of those staff members in that day (a
    /// later sign-in elsewhere ends an open one).
    pub async fn roster_around(
        &self,
        window: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<hcp_domain::directory::RosterEntry>, Error> {
        let rows = sqlx::query(
            "SELECT window_id, staff_id, signed_in_at, signed_out_at FROM roster
              WHERE signed_in_at <= $2 AND signed_in_at > $2 - interval '1 day'
                AND staff_id IN (SELECT staff_id FROM roster WHERE window_id = $1
                                    AND signed_in_at <= $2 AND signed_in_at > $2 - interval '1 day')",
        )
        .bind(window)
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(hcp_domain::directory::RosterEntry {
                    window_id: r.try_get(0)?,
                    staff_id: r.try_get(1)?,
                    signed_in_at: r.try_get(2)?,
                    signed_out_at: r.try_get(3)?,
                })
            })
            .collect()
    }
}

/// A re-attribution written but not committed.
pub struct PendingReattribution {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    /// What it changed.
    pub result: Reattributed,
}

impl PendingReattribution {
    /// Commits it.
    pub async fn commit(self) -> Result<Reattributed, Error> {
        self.tx.commit().await?;
        Ok(self.result)
    }
}
