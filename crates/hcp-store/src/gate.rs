//! The ingest gate's tables: channel credentials, rating claims (one first rating per service
//! record and stage, answered synchronously) and idempotency keys.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use crate::{Error, Store};

/// The channel on which every change to what a channel key may do is announced (migration
/// `credential_notify`): the payload is the key id, or `*` when a device changed.
pub const CREDENTIAL_CHANNEL: &str = "hcp_credentials";

/// Changes to credentials made through this process's stores (revocations, rate limits), counted:
/// a key cache in the same process sees them without waiting for [`CREDENTIAL_CHANNEL`]'s
/// notification (other processes learn of them from the notification).
static LOCAL_CREDENTIAL_CHANGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many credential changes this process has committed (see [`LOCAL_CREDENTIAL_CHANGES`]).
pub fn local_credential_changes() -> u64 {
    LOCAL_CREDENTIAL_CHANGES.load(std::sync::atomic::Ordering::Acquire)
}

fn credential_changed() {
    LOCAL_CREDENTIAL_CHANGES.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

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

/// One key's row of the claim statement: the rating id it inserted, the one it resumed, the
/// holder its snapshot saw, and whether that holder was pending.
type ClaimRow = (Option<Uuid>, Option<Uuid>, Option<Uuid>, Option<bool>);

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
    /// such key. Every ingest forgets its copy of the key at once (see [`CREDENTIAL_CHANNEL`]),
    /// so the change holds from the next request.
    pub async fn set_credential_rate_limit(&self, key_id: &str, rate_limit: Option<i32>) -> Result<bool, Error> {
        let n = sqlx::query("UPDATE credentials SET rate_limit = $2 WHERE key_id = $1")
            .bind(key_id)
            .bind(rate_limit)
            .execute(&self.pool)
            .await?;
        credential_changed();
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

    /// A listener on [`CREDENTIAL_CHANNEL`], on a connection of its own.
    pub async fn credential_listener(&self) -> Result<sqlx::postgres::PgListener, Error> {
        let mut listener = sqlx::postgres::PgListener::connect_with(self.listen_pool()).await?;
        listener.listen(CREDENTIAL_CHANNEL).await?;
        Ok(listener)
    }

    /// Sends `payload` on [`CREDENTIAL_CHANNEL`] (a listener's check that notifications reach it).
    pub async fn notify_credentials(&self, payload: &str) -> Result<(), Error> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CREDENTIAL_CHANNEL).bind(payload).execute(&self.pool).await?;
        Ok(())
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
        credential_changed();
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
        // One statement, `hcp_claim_ratings` (so one implicit transaction and one round trip: a claim inserted and
        // then left unanswered, the database lost between two statements, must not stay behind as
        // a pending claim of a rating never produced — the fault-injection test caught exactly
        // that once). It inserts the new claims; resumes released claims (a failed produce) and
        // stale pending ones (a producer that crashed or gave up) under their first rating id,
        // since the earlier attempt may still reach the broker and then both copies carry the id
        // the client is told; and reads every other holder. Per key: the inserted row, else the
        // resumed one, else the holder as this statement's snapshot saw it.
        let rows: Vec<ClaimRow> = sqlx::query_as(
            // Migration `claim_function`: one statement, planned once per session.
            "SELECT inserted_id, resumed_id, held_id, held_pending
               FROM hcp_claim_ratings($1::text[], $2::text[], $3::int2[], $4::uuid[], $5::interval)",
        )
        .bind(&recs)
        .bind(&stages)
        .bind(&assess)
        .bind(&ids)
        .bind(&stale)
        .fetch_all(&self.pool)
        .await?;
        if rows.len() != keys.len() {
            return Err(Error::Protocol(format!("{} claim rows for {} keys", rows.len(), keys.len())));
        }
        // A key none of the three covers was claimed by a concurrent statement that committed
        // after this one's snapshot was taken (its insert waited for that one): read its holder
        // now, in a statement of its own.
        let unseen: Vec<usize> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| r.0.is_none() && r.1.is_none() && r.2.is_none())
            .map(|(i, _)| i)
            .collect();
        let mut late = std::collections::HashMap::new();
        if !unseen.is_empty() {
            let late_rows: Vec<(Uuid, bool)> = sqlx::query_as(
                "SELECT c.rating_id, c.state = 'pending'
                   FROM UNNEST($1::text[], $2::text[], $3::int2[]) WITH ORDINALITY AS t(rec, stage, assess, n)
                   JOIN rating_claims c ON c.service_record_no = t.rec AND c.stage = t.stage AND c.assess_number = t.assess
                  ORDER BY t.n",
            )
            .bind(unseen.iter().map(|&i| recs[i]).collect::<Vec<_>>())
            .bind(unseen.iter().map(|&i| stages[i]).collect::<Vec<_>>())
            .bind(unseen.iter().map(|&i| assess[i]).collect::<Vec<_>>())
            .fetch_all(&self.pool)
            .await?;
            if late_rows.len() != unseen.len() {
                return Err(Error::Protocol(format!(
                    "{} late claim holders for {} keys",
                    late_rows.len(),
                    unseen.len()
                )));
            }
            late = unseen.into_iter().zip(late_rows).collect();
        }
        let mut out = vec![Claim::Claimed; keys.len()];
        for (n, ((inserted, resumed, held, pending), (key, i))) in
            rows.into_iter().zip(keys.iter().zip(order)).enumerate()
        {
            out[i] = match (inserted, resumed, held, late.get(&n)) {
                // This key's row went in with this rating's id.
                (Some(h), _, _, _) if h == key.3 => Claim::Claimed,
                // An equal key earlier in this group went in: it is still producing.
                (Some(h), _, _, _) => Claim::InProgress(h),
                (None, Some(h), _, _) => Claim::Resumed(h),
                (None, None, Some(h), _) if pending == Some(true) => Claim::InProgress(h),
                (None, None, Some(h), _) => Claim::Existing(h),
                (None, None, None, Some(&(h, true))) => Claim::InProgress(h),
                (None, None, None, Some(&(h, false))) => Claim::Existing(h),
                (None, None, None, None) => return Err(Error::Protocol("a claim without a holder".into())),
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
