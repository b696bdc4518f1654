//! The ingest gate's tables: channel credentials, rating claims (one first rating per service
//! record and stage, answered synchronously) and idempotency keys.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use crate::{Error, Store};

/// A channel credential (device or integration key), without its secret.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Credential {
    /// Public id (the part of the key before the secret).
    pub key_id: String,
    /// `device` or `integration`.
    pub kind: String,
    /// The channel every rating sent with this key has.
    pub channel: String,
    /// A device key's device.
    pub device_id: Option<String>,
    /// A device key's hall, from the directory (a device's ratings belong to it).
    pub hall_id: Option<String>,
    /// A window evaluator key's window, from the directory (its ratings belong to it).
    pub window_id: Option<String>,
    /// What it is for.
    pub name: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Revoked (refused from then on).
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last accepted use (kept to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// This key's own limit (requests a second), if set; else its kind's default.
    pub rate_limit: Option<i32>,
    /// SHA-256 of the secret (never serialized).
    #[serde(skip)]
    pub secret_sha256: Vec<u8>,
}

/// The outcome of claiming one (service record, stage, assess number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours: produce the rating, then accept or release the claim.
    Claimed,
    /// Another rating holds it: accepted.
    Existing(Uuid),
    /// Another attempt holds it and has not finished producing (pending, younger than the
    /// takeover age): it may still succeed, or be resumed once stale. The caller retries later.
    InProgress(Uuid),
    /// Ours again: an earlier attempt under this id failed to produce (it may still reach the
    /// broker late), so the rating must be produced under this id.
    Resumed(Uuid),
}

/// A stored first answer to an idempotent request.
#[derive(Debug, Clone)]
pub struct IdempotentAnswer {
    /// SHA-256 of the request body it answered.
    pub body_sha256: Vec<u8>,
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub response: serde_json::Value,
}

/// A credential's columns, with its device's hall and window (`FROM CREDENTIALS_WITH_DEVICES`).
const CREDENTIAL_COLUMNS: &str = "c.key_id, c.kind, c.channel, c.device_id, d.hall_id, d.window_id, c.name, \
     c.created_at, c.revoked_at, c.last_used_at, c.rate_limit, c.secret_sha256";
/// Credentials joined to their devices.
const CREDENTIALS_WITH_DEVICES: &str = "credentials c LEFT JOIN devices d ON d.id = c.device_id";

fn credential_from_row(r: &sqlx::postgres::PgRow) -> Result<Credential, Error> {
    Ok(Credential {
        key_id: r.try_get("key_id")?,
        kind: r.try_get("kind")?,
        channel: r.try_get("channel")?,
        device_id: r.try_get("device_id")?,
        hall_id: r.try_get("hall_id")?,
        window_id: r.try_get("window_id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
        rate_limit: r.try_get("rate_limit")?,
        secret_sha256: r.try_get("secret_sha256")?,
    })
}

/// The directory facts ingest checks ratings against ([`Store::ingest_catalogue`]).
#[derive(Debug, Default)]
pub struct IngestCatalogue {
    /// (window, its hall).
    pub windows: Vec<(String, String)>,
    /// Tag codes.
    pub tags: Vec<String>,
    /// (dimension code, the channels offering it).
    pub dimensions: Vec<(String, Vec<String>)>,
}

impl Store {
    /// Stores a new credential.
    pub async fn create_credential(&self, c: &Credential) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO credentials (key_id, secret_sha256, kind, channel, device_id, name, rate_limit)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.key_id)
        .bind(&c.secret_sha256)
        .bind(&c.kind)
        .bind(&c.channel)
        .bind(&c.device_id)
        .bind(&c.name)
        .bind(c.rate_limit)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets a key's own rate limit (`None`: its kind's default again); `false` when there is no
    /// such key. Ingest reads the key on every request, so the change holds from the next one.
    pub async fn set_credential_rate_limit(&self, key_id: &str, rate_limit: Option<i32>) -> Result<bool, Error> {
        let n = sqlx::query("UPDATE credentials SET rate_limit = $2 WHERE key_id = $1")
            .bind(key_id)
            .bind(rate_limit)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    /// Every credential, newest first.
    pub async fn list_credentials(&self) -> Result<Vec<Credential>, Error> {
        sqlx::query(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM {CREDENTIALS_WITH_DEVICES} ORDER BY c.created_at DESC, c.key_id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(credential_from_row)
        .collect()
    }

    /// One credential by id.
    pub async fn credential(&self, key_id: &str) -> Result<Option<Credential>, Error> {
        sqlx::query(&format!("SELECT {CREDENTIAL_COLUMNS} FROM {CREDENTIALS_WITH_DEVICES} WHERE c.key_id = $1"))
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(credential_from_row)
            .transpose()
    }

    /// What ingest checks ratings against: every window's hall, every tag code, and every
    /// evaluation dimension with the channels that offer it.
    pub async fn ingest_catalogue(&self) -> Result<IngestCatalogue, Error> {
        let windows = sqlx::query_as("SELECT id, hall_id FROM windows").fetch_all(&self.pool).await?;
        let tags = sqlx::query_scalar("SELECT code FROM tags").fetch_all(&self.pool).await?;
        let dimensions = sqlx::query_as("SELECT code, channels FROM dimensions").fetch_all(&self.pool).await?;
        Ok(IngestCatalogue { windows, tags, dimensions })
    }

    /// Revokes a credential; `false` when there is none.
    pub async fn revoke_credential(&self, key_id: &str) -> Result<bool, Error> {
        let n = sqlx::query("UPDATE credentials SET revoked_at = COALESCE(revoked_at, now()) WHERE key_id = $1")
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected() > 0)
    }

    /// Registers a staff member's phone digest; `false` when there is no such staff member.
    pub async fn set_staff_phone(&self, staff_id: &str, digest: &[u8]) -> Result<bool, Error> {
        let n = sqlx::query(
            "INSERT INTO staff_phones (staff_id, phone_digest) SELECT id, $2 FROM staff WHERE id = $1
             ON CONFLICT (staff_id) DO UPDATE SET phone_digest = EXCLUDED.phone_digest, updated_at = now()",
        )
        .bind(staff_id)
        .bind(digest)
        .execute(&self.pool)
        .await?;
        Ok(n.rows_affected() > 0)
    }

    /// Staff members whose registered phone has this digest.
    pub async fn staff_with_phone(&self, digest: &[u8]) -> Result<Vec<String>, Error> {
        sqlx::query_scalar("SELECT staff_id FROM staff_phones WHERE phone_digest = $1 ORDER BY staff_id")
            .bind(digest)
            .fetch_all(&self.pool)
            .await
    }

    /// Records a use, at most once a minute per key.
    pub async fn touch_credential(&self, key_id: &str) -> Result<(), Error> {
        sqlx::query(
            "UPDATE credentials SET last_used_at = now()
              WHERE key_id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .bind(key_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims each (service record, stage, assess number) for its rating id, in input order. A
    /// released claim, or a pending one older than `takeover_after` (its producer crashed or gave
    /// up), is resumed under its own rating id ([`Claim::Resumed`]); a younger pending one is
    /// [`Claim::InProgress`]. Of two equal keys the earlier
    /// claims first. Keys are written in sorted order, so concurrent claims of overlapping keys
    /// wait for each other instead of deadlocking.
    pub async fn claim_ratings(
        &self,
        keys: &[(String, String, i16, Uuid)],
        takeover_after: Duration,
    ) -> Result<Vec<Claim>, Error> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        // Stable: equal keys keep their input order.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| (&keys[a].0, &keys[a].1, keys[a].2).cmp(&(&keys[b].0, &keys[b].1, keys[b].2)));
        let sorted: Vec<&(String, String, i16, Uuid)> = order.iter().map(|&i| &keys[i]).collect();
        let keys = sorted;
        let recs: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let stages: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        let assess: Vec<i16> = keys.iter().map(|k| k.2).collect();
        let ids: Vec<Uuid> = keys.iter().map(|k| k.3).collect();
        let stale = format!("{} milliseconds", takeover_after.as_millis());
        // One transaction: a claim inserted and then left unanswered (the database lost between
        // two statements) must not stay behind as a pending claim of a rating never produced —
        // a retry would get a 409 naming it (the fault-injection test caught exactly that when
        // the two statements ran without a transaction).
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO rating_claims (service_record_no, stage, assess_number, rating_id, state)
             SELECT rec, stage, assess, id, 'pending' FROM UNNEST($1::text[], $2::text[], $3::int2[], $4::uuid[])
                 AS t(rec, stage, assess, id)
             ON CONFLICT DO NOTHING",
        )
        .bind(&recs)
        .bind(&stages)
        .bind(&assess)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        // Released claims (a failed produce) and stale pending ones (a producer that crashed or
        // gave up) are resumed under their first rating id: the earlier attempt may still reach
        // the broker, and then both copies carry the id the client is told. The holders are read
        // in the same statement (the update never changes a holder): four round trips in all.
        let rows: Vec<(Uuid, bool, bool)> = sqlx::query_as(
            "WITH t AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::int2[]) WITH ORDINALITY AS t(rec, stage, assess, n)),
                  res AS (
                 UPDATE rating_claims c SET state = 'pending', claimed_at = now()
                   FROM t
                  WHERE c.service_record_no = t.rec AND c.stage = t.stage AND c.assess_number = t.assess
                    AND (c.state = 'released' OR (c.state = 'pending' AND c.claimed_at < now() - $4::interval))
                 RETURNING c.service_record_no, c.stage, c.assess_number)
             SELECT c.rating_id, EXISTS (SELECT 1 FROM res WHERE res.service_record_no = t.rec AND res.stage = t.stage
                                                             AND res.assess_number = t.assess),
                    c.state = 'pending'
               FROM t JOIN rating_claims c ON c.service_record_no = t.rec AND c.stage = t.stage AND c.assess_number = t.assess
              ORDER BY t.n",
        )
        .bind(&recs)
        .bind(&stages)
        .bind(&assess)
        .bind(&stale)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let holders = rows;
        if holders.len() != keys.len() {
            return Err(Error::Protocol(format!("{} claim holders for {} keys", holders.len(), keys.len())));
        }
        let mut out = vec![Claim::Claimed; keys.len()];
        for (((h, resumed, pending), key), i) in holders.into_iter().zip(keys).zip(order) {
            out[i] = if h == key.3 {
                Claim::Claimed
            } else if resumed {
                Claim::Resumed(h)
            } else if pending {
                Claim::InProgress(h)
            } else {
                Claim::Existing(h)
            };
        }
        Ok(out)
    }

    /// When each (service record, stage)'s first rating was accepted (`None`: no first rating
    /// went through ingest), in input order.
    pub async fn first_rating_times(&self, keys: &[(String, String)]) -> Result<Vec<Option<DateTime<Utc>>>, Error> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        sqlx::query_scalar(
            "SELECT c.claimed_at FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS t(rec, stage, n)
               LEFT JOIN rating_claims c ON c.service_record_no = t.rec AND c.stage = t.stage
                                        AND c.assess_number = 1 AND c.state = 'accepted'
              ORDER BY t.n",
        )
        .bind(keys.iter().map(|k| k.0.as_str()).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1.as_str()).collect::<Vec<_>>())
        .fetch_all(&self.pool)
        .await
    }

    /// Marks the claims of produced ratings accepted.
    pub async fn accept_claims(&self, rating_ids: &[Uuid]) -> Result<(), Error> {
        sqlx::query("UPDATE rating_claims SET state = 'accepted' WHERE rating_id = ANY($1)")
            .bind(rating_ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Releases the claims of ratings that were not produced, so a retry can claim again (and
    /// resumes their rating ids: see [`Claim::Resumed`]).
    pub async fn release_claims(&self, rating_ids: &[Uuid]) -> Result<(), Error> {
        sqlx::query("UPDATE rating_claims SET state = 'released' WHERE rating_id = ANY($1) AND state = 'pending'")
            .bind(rating_ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The stored answer of an idempotent request.
    pub async fn idempotent_answer(&self, scope: &str, key: &str) -> Result<Option<IdempotentAnswer>, Error> {
        let row = sqlx::query(
            "SELECT body_sha256, status, response FROM idempotency_keys WHERE scope = $1 AND idem_key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(IdempotentAnswer {
                body_sha256: r.try_get("body_sha256")?,
                status: r.try_get::<i16, _>("status")? as u16,
                response: r.try_get("response")?,
            })
        })
        .transpose()
    }

    /// Stores the first answer of an idempotent request (a concurrent twin's answer wins).
    pub async fn save_idempotent_answer(&self, scope: &str, key: &str, answer: &IdempotentAnswer) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, idem_key, body_sha256, status, response)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(&answer.body_sha256)
        .bind(answer.status as i16)
        .bind(&answer.response)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
