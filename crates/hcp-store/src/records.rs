//! A stored rating's record as operators read it: attribution, whether it counts, an appeal
//! exclusion, the rater masked; and the anti-gaming review list.

use chrono::{DateTime, Utc};
use hcp_domain::{MaskedRater, SealedRater};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use crate::reach::{rating_reach_condition, OrderScope};
use crate::{Error, Store};

/// The rating behind an order, as a handler sees it (the rater masked).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RatingRecord {
    /// Id.
    pub rating_id: Uuid,
    /// 办件编号.
    pub service_record_no: String,
    /// Stage.
    pub stage: String,
    /// Channel.
    pub channel: String,
    /// Grade 1–5.
    pub grade: i16,
    /// Tags.
    pub tags: Vec<String>,
    /// Their names from the tag catalogue (the code where unknown), in the same order.
    pub tag_names: Vec<String>,
    /// Grades per evaluation dimension (code → 1–5); empty when none was given.
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, u8>))]
    pub dimensions: std::collections::BTreeMap<String, u8>,
    /// Text.
    pub comment: Option<String>,
    /// When rated.
    pub rated_at: DateTime<Utc>,
    /// 首评 1 / 追评 2.
    pub assess_number: i16,
    /// Attributed department, hall, window, staff.
    pub attr_department_id: Option<String>,
    /// Hall.
    pub attr_hall_id: Option<String>,
    /// Window.
    pub attr_window_id: Option<String>,
    /// Staff member.
    pub attr_staff_id: Option<String>,
    /// The follow-up that replaced it in the statistics.
    pub superseded_by: Option<Uuid>,
    /// Counted in the statistics now (not replaced, not excluded).
    pub counted: bool,
    /// Excluded from every aggregate by an upheld appeal: when.
    pub excluded_at: Option<DateTime<Utc>>,
    /// Why.
    pub excluded_reason: Option<String>,
    /// By which order.
    pub excluded_by: Option<Uuid>,
    /// The rater, masked (`138****1234`); absent when anonymous.
    pub rater: Option<MaskedRater>,
    /// Anti-gaming flags (`device_too_fast`, `device_burst`, `staff_burst`, `rater_is_rated_staff`, `rater_is_staff`).
    pub integrity_flags: Vec<String>,
}

pub(crate) const RATING_RECORD_COLUMNS: &str =
    "rating_id, service_record_no, stage, channel, grade, tags, dimensions, comment, rated_at,
    assess_number, attr_department_id, attr_hall_id, attr_window_id, attr_staff_id, superseded_by,
    excluded_at, excluded_reason, excluded_by, rater, integrity_flags,
    ARRAY(SELECT COALESCE(t.name, x.code) FROM unnest(tags) WITH ORDINALITY AS x(code, n)
          LEFT JOIN tags t ON t.code = x.code ORDER BY x.n) AS tag_names";

pub(crate) fn rating_from_row(row: &PgRow) -> Result<RatingRecord, Error> {
    let rater: Option<sqlx::types::Json<SealedRater>> = row.try_get("rater")?;
    let superseded_by: Option<Uuid> = row.try_get("superseded_by")?;
    let excluded_at: Option<DateTime<Utc>> = row.try_get("excluded_at")?;
    Ok(RatingRecord {
        rating_id: row.try_get("rating_id")?,
        service_record_no: row.try_get("service_record_no")?,
        stage: row.try_get("stage")?,
        channel: row.try_get("channel")?,
        grade: row.try_get("grade")?,
        tags: row.try_get("tags")?,
        tag_names: row.try_get("tag_names")?,
        dimensions: row.try_get::<sqlx::types::Json<std::collections::BTreeMap<String, u8>>, _>("dimensions")?.0,
        comment: row.try_get("comment")?,
        rated_at: row.try_get("rated_at")?,
        assess_number: row.try_get("assess_number")?,
        attr_department_id: row.try_get("attr_department_id")?,
        attr_hall_id: row.try_get("attr_hall_id")?,
        attr_window_id: row.try_get("attr_window_id")?,
        attr_staff_id: row.try_get("attr_staff_id")?,
        counted: superseded_by.is_none() && excluded_at.is_none(),
        superseded_by,
        excluded_at,
        excluded_reason: row.try_get("excluded_reason")?,
        excluded_by: row.try_get("excluded_by")?,
        rater: rater.map(|r| r.0.masked()),
        integrity_flags: row.try_get("integrity_flags")?,
    })
}

impl Store {
    /// A stored rating as its record: attribution, whether it counts, exclusion, masked rater.
    pub async fn rating_record(&self, rating_id: Uuid) -> Result<Option<RatingRecord>, Error> {
        self.rating_record_within(&OrderScope::All, rating_id).await
    }

    /// [`Store::rating_record`] when the rating's attributed department lies within `reach`.
    pub async fn rating_record_within(
        &self,
        reach: &OrderScope,
        rating_id: Uuid,
    ) -> Result<Option<RatingRecord>, Error> {
        let (condition, arg) = rating_reach_condition(reach, 2);
        sqlx::query(&format!("SELECT {RATING_RECORD_COLUMNS} FROM ratings WHERE rating_id = $1 AND {condition}"))
            .bind(rating_id)
            .bind(arg)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rating_from_row)
            .transpose()
    }

    /// One page of ratings with anti-gaming flags (optionally one flag), newest first, with the total.
    pub async fn integrity_flagged(
        &self,
        reach: &OrderScope,
        flag: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<RatingRecord>, i64), Error> {
        let (condition, arg) = rating_reach_condition(reach, 2);
        let filter = format!(
            "cardinality(integrity_flags) > 0 AND ($1::text IS NULL OR $1 = ANY(integrity_flags)) AND {condition}"
        );
        let rows = sqlx::query(&format!(
            "SELECT {RATING_RECORD_COLUMNS} FROM ratings WHERE {filter} ORDER BY rated_at DESC, rating_id LIMIT $3 OFFSET $4"
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
        Ok((rows.iter().map(rating_from_row).collect::<Result<_, _>>()?, total))
    }
}
