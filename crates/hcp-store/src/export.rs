//! Reads for the national / provincial export: stored ratings with the directory facts the
//! national record names, in pages (keyset on `(rated_at, rating_id)`), so an export of any size
//! streams in bounded memory.

use chrono::{DateTime, Utc};
use hcp_domain::export::ExportFacts;
use hcp_domain::Channel;
use uuid::Uuid;

use crate::{Error, Store};

/// Where the next page starts: after this `(rated_at, rating_id)`.
pub type ExportCursor = (DateTime<Utc>, Uuid);

/// One exported rating with the directory facts the national record names.
#[derive(sqlx::FromRow)]
struct ExportRow {
    rating_id: Uuid,
    service_record_no: String,
    item_code: Option<String>,
    item_name: Option<String>,
    uscc: Option<String>,
    department_name: Option<String>,
    area_code: Option<String>,
    channel: String,
    grade: i16,
    tags: Vec<String>,
    dimensions: sqlx::types::Json<std::collections::BTreeMap<String, u8>>,
    comment: Option<String>,
    rated_at: DateTime<Utc>,
    assess_number: i16,
    user_prop: Option<i16>,
    name_masked: Option<String>,
    staff_name: Option<String>,
}

impl Store {
    /// Up to `limit` ratings rated in `[from, to)` after `cursor`, oldest first, with their
    /// export facts (`None` for a channel this build does not know) and their cursors. Ratings taken out by an upheld appeal are not
    /// exported (they do not count); a follow-up and the first rating it replaced both are
    /// (`assessNumber` 2 and 1).
    pub async fn export_page(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        cursor: Option<ExportCursor>,
        limit: i64,
    ) -> Result<Vec<(ExportCursor, Option<ExportFacts>)>, Error> {
        let (after_at, after_id) = cursor.unwrap_or((from - chrono::Duration::microseconds(1), Uuid::nil()));
        let rows: Vec<ExportRow> = sqlx::query_as(
            "SELECT r.rating_id, r.service_record_no, r.service_item_code AS item_code, i.name AS item_name,
                    d.uscc, d.name AS department_name, COALESCE(h.region_code, d.region_code) AS area_code,
                    r.channel, r.grade, r.tags, r.dimensions, r.comment, r.rated_at, r.assess_number,
                    (r.rater->>'user_prop')::int2 AS user_prop, r.rater->>'name_masked' AS name_masked,
                    s.name AS staff_name
               FROM ratings r
               LEFT JOIN service_items i ON i.code = r.service_item_code
               LEFT JOIN departments d ON d.id = r.attr_department_id
               LEFT JOIN halls h ON h.id = r.attr_hall_id
               LEFT JOIN staff s ON s.id = r.attr_staff_id
              WHERE r.rated_at >= $1 AND r.rated_at < $2 AND r.excluded_at IS NULL
                AND (r.rated_at, r.rating_id) > ($3, $4)
              ORDER BY r.rated_at, r.rating_id
              LIMIT $5",
        )
        .bind(from)
        .bind(to)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let cursor = (r.rated_at, r.rating_id);
                let facts = Channel::parse(&r.channel).map(|channel| ExportFacts {
                    service_record_no: r.service_record_no,
                    service_item: r.item_code.map(|c| (c, r.item_name.unwrap_or_default())),
                    department: r.uscc.map(|u| (u, r.department_name.unwrap_or_default())),
                    area_code: r.area_code,
                    channel,
                    grade: r.grade as u8,
                    tags: r.tags,
                    dimensions: r.dimensions.0.into_iter().collect(),
                    comment: r.comment,
                    rated_at: r.rated_at,
                    assess_number: r.assess_number as u8,
                    user_prop: r.user_prop.map(|p| p as u8),
                    name_masked: r.name_masked,
                    staff_name: r.staff_name,
                });
                (cursor, facts)
            })
            .collect())
    }
}
