//! Service records (办件) and rating invitations.

use chrono::{DateTime, Utc};
use hcp_domain::SealedRater;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use crate::notifications::{queue, NewNotification};
use crate::{Error, Store};

/// A service record as the platform reported it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceRecord {
    /// 办件编号.
    pub service_record_no: String,
    /// 事项编码.
    pub service_item_code: Option<String>,
    /// Department.
    pub department_id: Option<String>,
    /// Hall.
    pub hall_id: Option<String>,
    /// 受理: when.
    pub accepted_at: Option<DateTime<Utc>>,
    /// 受理: window.
    pub accepted_window_id: Option<String>,
    /// 受理: staff member.
    pub accepted_staff_id: Option<String>,
    /// 出件: when.
    pub picked_up_at: Option<DateTime<Utc>>,
    /// 出件: window.
    pub pickup_window_id: Option<String>,
    /// 出件: staff member.
    pub pickup_staff_id: Option<String>,
    /// The applicant's contact, sealed (never serialized).
    #[serde(skip)]
    pub applicant: Option<SealedRater>,
    /// The key id of the platform that reported it first (only it may report more or invite).
    pub reported_by: Option<String>,
    /// The keyed digest of the platform's user id of the applicant (我的业务), never serialized.
    #[serde(skip)]
    pub platform_user: Option<Vec<u8>>,
}

/// The attribution fields of a service record: set once by the reporting platform, changed
/// afterwards only by [`Store::correct_service_record`].
pub const ATTRIBUTION_FIELDS: [&str; 7] = [
    "service_item_code",
    "department_id",
    "hall_id",
    "accepted_window_id",
    "accepted_staff_id",
    "pickup_window_id",
    "pickup_staff_id",
];

impl ServiceRecord {
    /// The value of attribution field `field` (one of [`ATTRIBUTION_FIELDS`]).
    pub fn attribution(&self, field: &str) -> Option<&str> {
        match field {
            "service_item_code" => self.service_item_code.as_deref(),
            "department_id" => self.department_id.as_deref(),
            "hall_id" => self.hall_id.as_deref(),
            "accepted_window_id" => self.accepted_window_id.as_deref(),
            "accepted_staff_id" => self.accepted_staff_id.as_deref(),
            "pickup_window_id" => self.pickup_window_id.as_deref(),
            "pickup_staff_id" => self.pickup_staff_id.as_deref(),
            _ => None,
        }
    }
}

/// One audited change of a service record's attribution field.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordCorrection {
    /// Which field.
    pub field: String,
    /// Before.
    pub old_value: Option<String>,
    /// After.
    pub new_value: Option<String>,
    /// Why.
    pub reason: String,
    /// The operator.
    pub corrected_by: String,
    /// When.
    pub corrected_at: DateTime<Utc>,
}

/// A stored invitation.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invitation {
    /// Id (part of the signed token).
    pub invitation_id: Uuid,
    /// 办件编号.
    pub service_record_no: String,
    /// Stage it rates.
    pub stage: String,
    /// `qr_code` or `sms`.
    pub channel: String,
    /// Valid until.
    pub expires_at: DateTime<Utc>,
    /// Used (a rating was submitted).
    pub used_at: Option<DateTime<Utc>>,
    /// The rating it produced.
    pub rating_id: Option<Uuid>,
}

fn record_from_row(r: &sqlx::postgres::PgRow) -> Result<ServiceRecord, Error> {
    let applicant: Option<sqlx::types::Json<SealedRater>> = r.try_get("applicant")?;
    Ok(ServiceRecord {
        service_record_no: r.try_get("service_record_no")?,
        service_item_code: r.try_get("service_item_code")?,
        department_id: r.try_get("department_id")?,
        hall_id: r.try_get("hall_id")?,
        accepted_at: r.try_get("accepted_at")?,
        accepted_window_id: r.try_get("accepted_window_id")?,
        accepted_staff_id: r.try_get("accepted_staff_id")?,
        picked_up_at: r.try_get("picked_up_at")?,
        pickup_window_id: r.try_get("pickup_window_id")?,
        pickup_staff_id: r.try_get("pickup_staff_id")?,
        applicant: applicant.map(|a| a.0),
        reported_by: r.try_get("reported_by")?,
        platform_user: r.try_get("platform_user")?,
    })
}

impl Store {
    /// Merges a lifecycle event into the record: attribution fields and the reporting platform
    /// are only filled where empty (a stored value is never overwritten here, whatever races),
    /// times and the applicant's contact take the newer value.
    pub async fn upsert_service_record(&self, r: &ServiceRecord) -> Result<ServiceRecord, Error> {
        let applicant = r.applicant.as_ref().and_then(|a| serde_json::to_value(a).ok());
        let row = sqlx::query(
            "INSERT INTO service_records AS s (service_record_no, service_item_code, department_id, hall_id,
                    accepted_at, accepted_window_id, accepted_staff_id, picked_up_at, pickup_window_id,
                    pickup_staff_id, applicant, reported_by, platform_user)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (service_record_no) DO UPDATE SET
                service_item_code = COALESCE(s.service_item_code, EXCLUDED.service_item_code),
                department_id = COALESCE(s.department_id, EXCLUDED.department_id),
                hall_id = COALESCE(s.hall_id, EXCLUDED.hall_id),
                accepted_at = COALESCE(EXCLUDED.accepted_at, s.accepted_at),
                accepted_window_id = COALESCE(s.accepted_window_id, EXCLUDED.accepted_window_id),
                accepted_staff_id = COALESCE(s.accepted_staff_id, EXCLUDED.accepted_staff_id),
                picked_up_at = COALESCE(EXCLUDED.picked_up_at, s.picked_up_at),
                pickup_window_id = COALESCE(s.pickup_window_id, EXCLUDED.pickup_window_id),
                pickup_staff_id = COALESCE(s.pickup_staff_id, EXCLUDED.pickup_staff_id),
                applicant = COALESCE(EXCLUDED.applicant, s.applicant),
                reported_by = COALESCE(s.reported_by, EXCLUDED.reported_by),
                platform_user = COALESCE(s.platform_user, EXCLUDED.platform_user),
                updated_at = now()
             RETURNING *",
        )
        .bind(&r.service_record_no)
        .bind(&r.service_item_code)
        .bind(&r.department_id)
        .bind(&r.hall_id)
        .bind(r.accepted_at)
        .bind(&r.accepted_window_id)
        .bind(&r.accepted_staff_id)
        .bind(r.picked_up_at)
        .bind(&r.pickup_window_id)
        .bind(&r.pickup_staff_id)
        .bind(applicant)
        .bind(&r.reported_by)
        .bind(&r.platform_user)
        .fetch_one(&self.pool)
        .await?;
        record_from_row(&row)
    }

    /// Sets attribution field `field` (one of [`ATTRIBUTION_FIELDS`]) of record `no` to `value`,
    /// recording who, why and the value before, in one transaction. `None` when there is no
    /// such record.
    pub async fn correct_service_record(
        &self,
        no: &str,
        field: &str,
        value: Option<&str>,
        reason: &str,
        by: &str,
    ) -> Result<Option<ServiceRecord>, Error> {
        assert!(ATTRIBUTION_FIELDS.contains(&field), "{field} is not an attribution field");
        let mut tx = self.pool.begin().await?;
        let Some(before) = sqlx::query("SELECT * FROM service_records WHERE service_record_no = $1 FOR UPDATE")
            .bind(no)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let before = record_from_row(&before)?;
        // `field` is one of the fixed names above, never caller text.
        let row = sqlx::query(&format!(
            "UPDATE service_records SET {field} = $2, updated_at = now() WHERE service_record_no = $1 RETURNING *"
        ))
        .bind(no)
        .bind(value)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO service_record_corrections (service_record_no, field, old_value, new_value, reason, corrected_by)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(no)
        .bind(field)
        .bind(before.attribution(field))
        .bind(value)
        .bind(reason)
        .bind(by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(record_from_row(&row)?))
    }

    /// The corrections of record `no`, oldest first.
    pub async fn service_record_corrections(&self, no: &str) -> Result<Vec<RecordCorrection>, Error> {
        sqlx::query_as(
            "SELECT field, old_value, new_value, reason, corrected_by, corrected_at FROM service_record_corrections
              WHERE service_record_no = $1 ORDER BY correction_id",
        )
        .bind(no)
        .fetch_all(&self.pool)
        .await
    }

    /// SMS invitations sent since `since` by key `key_id` and to the number of `phone_digest`.
    pub async fn sms_sent_since(
        &self,
        key_id: &str,
        phone_digest: &[u8],
        since: DateTime<Utc>,
    ) -> Result<(i64, i64), Error> {
        sqlx::query_as(
            "SELECT count(*) FILTER (WHERE key_id = $1), count(*) FILTER (WHERE phone_digest = $2)
               FROM sms_sends WHERE (key_id = $1 OR phone_digest = $2) AND sent_at >= $3",
        )
        .bind(key_id)
        .bind(phone_digest)
        .bind(since)
        .fetch_one(&self.pool)
        .await
    }

    /// Records an SMS invitation sent by `key_id` to the number of `phone_digest`.
    pub async fn record_sms_send(&self, key_id: &str, phone_digest: &[u8]) -> Result<(), Error> {
        sqlx::query("INSERT INTO sms_sends (key_id, phone_digest) VALUES ($1, $2)")
            .bind(key_id)
            .bind(phone_digest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A service record.
    pub async fn service_record(&self, no: &str) -> Result<Option<ServiceRecord>, Error> {
        sqlx::query("SELECT * FROM service_records WHERE service_record_no = $1")
            .bind(no)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(record_from_row)
            .transpose()
    }

    /// Stores a new invitation.
    pub async fn create_invitation(&self, inv: &Invitation) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO invitations (invitation_id, service_record_no, stage, channel, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(inv.invitation_id)
        .bind(&inv.service_record_no)
        .bind(&inv.stage)
        .bind(&inv.channel)
        .bind(inv.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An invitation.
    pub async fn invitation(&self, id: Uuid) -> Result<Option<Invitation>, Error> {
        let row = sqlx::query(
            "SELECT invitation_id, service_record_no, stage, channel, expires_at, used_at, rating_id
               FROM invitations WHERE invitation_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Invitation {
                invitation_id: r.try_get("invitation_id")?,
                service_record_no: r.try_get("service_record_no")?,
                stage: r.try_get("stage")?,
                channel: r.try_get("channel")?,
                expires_at: r.try_get("expires_at")?,
                used_at: r.try_get("used_at")?,
                rating_id: r.try_get("rating_id")?,
            })
        })
        .transpose()
    }

    /// Marks an unused invitation used by `rating_id`; `false` when it was used already.
    pub async fn use_invitation(&self, id: Uuid, rating_id: Uuid) -> Result<bool, Error> {
        let n = sqlx::query(
            "UPDATE invitations SET used_at = now(), rating_id = $2 WHERE invitation_id = $1 AND used_at IS NULL",
        )
        .bind(id)
        .bind(rating_id)
        .execute(&self.pool)
        .await?;
        Ok(n.rows_affected() == 1)
    }

    /// Gives an invitation back (its rating could not be produced).
    pub async fn unuse_invitation(&self, id: Uuid, rating_id: Uuid) -> Result<(), Error> {
        sqlx::query(
            "UPDATE invitations SET used_at = NULL, rating_id = NULL WHERE invitation_id = $1 AND rating_id = $2",
        )
        .bind(id)
        .bind(rating_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The tag catalogue as (code, name, negative), for the rating page.
    pub async fn tag_catalogue(&self) -> Result<Vec<(String, String, bool)>, Error> {
        sqlx::query_as("SELECT code, name, negative FROM tags ORDER BY negative DESC, code").fetch_all(&self.pool).await
    }

    /// The evaluation dimensions `channel` offers (code, name), by code.
    pub async fn dimensions_offered(&self, channel: &str) -> Result<Vec<(String, String)>, Error> {
        sqlx::query_as("SELECT code, name FROM dimensions WHERE $1 = ANY(channels) ORDER BY code")
            .bind(channel)
            .fetch_all(&self.pool)
            .await
    }

    /// Queues an SMS to a citizen (`record:<no>`, `rater:<rating id>`) in the notification
    /// outbox and the sender's queue: `body` is its text as shown to operators, `template` and
    /// `params` what a gateway sends.
    pub async fn queue_sms(
        &self,
        kind: &str,
        recipient: &str,
        subject: &str,
        body: &str,
        template: hcp_domain::sms::SmsTemplate,
        params: &hcp_domain::sms::SmsParams,
    ) -> Result<i64, Error> {
        let notification = NewNotification {
            kind: kind.into(),
            recipient: recipient.into(),
            subject: subject.into(),
            body: body.into(),
            sms: Some((template, params.clone())),
            ..Default::default()
        };
        let mut conn = self.pool.acquire().await?;
        // Without a dedupe key it is always queued.
        queue(&mut conn, &notification).await?.ok_or(Error::RowNotFound)
    }
}

/// A stage of a service record that has no rating yet.
#[derive(Debug, Clone)]
pub struct UnratedStage {
    /// The record.
    pub record: ServiceRecord,
    /// `acceptance` or `pickup`.
    pub stage: String,
    /// When that stage happened.
    pub at: DateTime<Utc>,
    /// The region of the record's hall, if known.
    pub region_code: Option<String>,
}

impl Store {
    /// Stages that happened at or before `before` and hold no first rating (no claim), oldest first.
    pub async fn unrated_stages(&self, before: DateTime<Utc>, limit: i64) -> Result<Vec<UnratedStage>, Error> {
        let rows = sqlx::query(
            "SELECT s.*, x.stage, x.at, (SELECT region_code FROM halls h WHERE h.id = s.hall_id) AS region_code
               FROM service_records s
               CROSS JOIN LATERAL (VALUES ('acceptance', s.accepted_at), ('pickup', s.picked_up_at)) AS x(stage, at)
              WHERE x.at IS NOT NULL AND x.at <= $1
                AND NOT EXISTS (SELECT 1 FROM rating_claims c WHERE c.service_record_no = s.service_record_no
                                   AND c.stage = x.stage AND c.assess_number = 1 AND c.state <> 'released')
              ORDER BY x.at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UnratedStage {
                    record: record_from_row(r)?,
                    stage: r.try_get("stage")?,
                    at: r.try_get("at")?,
                    region_code: r.try_get("region_code")?,
                })
            })
            .collect()
    }
}

/// A stage of one citizen's service record still open for rating on their platform (我的业务).
#[derive(Debug, Clone)]
pub struct OpenStage {
    /// The record.
    pub record: ServiceRecord,
    /// `acceptance` or `pickup`.
    pub stage: String,
    /// When that stage happened.
    pub at: DateTime<Utc>,
    /// The record's hall's region, if known.
    pub region_code: Option<String>,
    /// The service item's name.
    pub item_name: Option<String>,
    /// The hall's name.
    pub hall_name: Option<String>,
    /// The department's name.
    pub department_name: Option<String>,
}

impl Store {
    /// The stages of the records `key_id` reported for the platform user `user` (a keyed digest)
    /// that happened and hold no first rating yet (no live claim), newest first (at most 200).
    pub async fn open_stages_of_user(&self, key_id: &str, user: &[u8]) -> Result<Vec<OpenStage>, Error> {
        let rows = sqlx::query(
            "SELECT s.*, x.stage, x.at, h.region_code, h.name AS hall_name,
                    (SELECT name FROM service_items i WHERE i.code = s.service_item_code) AS item_name,
                    (SELECT name FROM departments d WHERE d.id = s.department_id) AS department_name
               FROM service_records s
               LEFT JOIN halls h ON h.id = s.hall_id
               CROSS JOIN LATERAL (VALUES ('acceptance', s.accepted_at), ('pickup', s.picked_up_at)) AS x(stage, at)
              WHERE s.reported_by = $1 AND s.platform_user = $2 AND x.at IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM rating_claims c WHERE c.service_record_no = s.service_record_no
                                   AND c.stage = x.stage AND c.assess_number = 1 AND c.state <> 'released')
              ORDER BY x.at DESC, s.service_record_no, x.stage LIMIT 200",
        )
        .bind(key_id)
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OpenStage {
                    record: record_from_row(r)?,
                    stage: r.try_get("stage")?,
                    at: r.try_get("at")?,
                    region_code: r.try_get("region_code")?,
                    item_name: r.try_get("item_name")?,
                    hall_name: r.try_get("hall_name")?,
                    department_name: r.try_get("department_name")?,
                })
            })
            .collect()
    }
}
