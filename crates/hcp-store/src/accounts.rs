//! Operator accounts (the password hash is made and checked by `hcp-http::auth`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use crate::{Error, Store};

/// An operator account.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// Login name.
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// `admin`, `supervisor`, `handler`, `callback`, `auditor` or `staff`.
    pub role: String,
    /// A handler's department.
    pub department_id: Option<String>,
    /// A supervisor's region.
    pub region_code: Option<String>,
    /// A staff account's staff member (directory id).
    pub staff_id: Option<String>,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// PHC string of the password hash (never serialized).
    #[serde(skip)]
    pub password_hash: String,
}

impl Store {
    /// Adds or replaces an account, and revokes every session it has: whatever changed (password,
    /// role, department, region, disabled), a session issued before must not outlive it.
    pub async fn upsert_account(&self, a: &Account) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO accounts (username, display_name, role, department_id, region_code, password_hash, disabled, staff_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (username) DO UPDATE SET display_name = EXCLUDED.display_name, role = EXCLUDED.role,
                 department_id = EXCLUDED.department_id, region_code = EXCLUDED.region_code,
                 password_hash = EXCLUDED.password_hash, disabled = EXCLUDED.disabled, staff_id = EXCLUDED.staff_id",
        )
        .bind(&a.username)
        .bind(&a.display_name)
        .bind(&a.role)
        .bind(&a.department_id)
        .bind(&a.region_code)
        .bind(&a.password_hash)
        .bind(a.disabled)
        .bind(&a.staff_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE sessions SET revoked_at = now(), revoked_why = 'account_changed'
              WHERE username = $1 AND revoked_at IS NULL",
        )
        .bind(&a.username)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a session issued to `username` until `expires_at`.
    pub async fn open_session(&self, session_id: Uuid, username: &str, expires_at: DateTime<Utc>) -> Result<(), Error> {
        sqlx::query("INSERT INTO sessions (session_id, username, expires_at) VALUES ($1, $2, $3)")
            .bind(session_id)
            .bind(username)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether session `session_id` exists, is not revoked and has not expired.
    pub async fn session_live(&self, session_id: Uuid) -> Result<bool, Error> {
        let live: Option<bool> =
            sqlx::query_scalar("SELECT revoked_at IS NULL AND expires_at > now() FROM sessions WHERE session_id = $1")
                .bind(session_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(live.unwrap_or(false))
    }

    /// Revokes session `session_id` at logout (a revoked one stays as it was).
    pub async fn end_session(&self, session_id: Uuid) -> Result<(), Error> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = now(), revoked_why = 'logout' WHERE session_id = $1 AND revoked_at IS NULL",
        )
        .bind(session_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a refused login (`reason`: `wrong_password`, `unknown_account`, `disabled` or
    /// `throttled`); the name typed is kept to 64 characters.
    pub async fn record_login_failure(&self, username: &str, address: &str, reason: &str) -> Result<(), Error> {
        let username: String = username.chars().take(64).collect();
        sqlx::query("INSERT INTO login_failures (username, address, reason) VALUES ($1, $2, $3)")
            .bind(username)
            .bind(address)
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Failed logins (throttled attempts not counted) since `since`, for the name typed and for
    /// the address: each as (count, time of the last).
    pub async fn login_failures(
        &self,
        username: &str,
        address: &str,
        since: DateTime<Utc>,
    ) -> Result<[(i64, Option<DateTime<Utc>>); 2], Error> {
        let username: String = username.chars().take(64).collect();
        let row = sqlx::query(
            "SELECT count(*) FILTER (WHERE username = $1) AS user_n, max(at) FILTER (WHERE username = $1) AS user_last,
                    count(*) FILTER (WHERE address = $2) AS addr_n, max(at) FILTER (WHERE address = $2) AS addr_last
               FROM login_failures
              WHERE (username = $1 OR address = $2) AND at > $3 AND reason <> 'throttled'",
        )
        .bind(username)
        .bind(address)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok([(row.try_get("user_n")?, row.try_get("user_last")?), (row.try_get("addr_n")?, row.try_get("addr_last")?)])
    }

    /// Every account, by name.
    pub async fn accounts(&self) -> Result<Vec<Account>, Error> {
        let rows = sqlx::query(
            "SELECT username, display_name, role, department_id, region_code, password_hash, disabled, staff_id
               FROM accounts ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Account {
                    username: r.try_get("username")?,
                    display_name: r.try_get("display_name")?,
                    role: r.try_get("role")?,
                    department_id: r.try_get("department_id")?,
                    region_code: r.try_get("region_code")?,
                    staff_id: r.try_get("staff_id")?,
                    disabled: r.try_get("disabled")?,
                    password_hash: r.try_get("password_hash")?,
                })
            })
            .collect()
    }

    /// The account named `username`.
    pub async fn account(&self, username: &str) -> Result<Option<Account>, Error> {
        let row = sqlx::query(
            "SELECT username, display_name, role, department_id, region_code, password_hash, disabled, staff_id
               FROM accounts WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Account {
                username: r.try_get("username")?,
                display_name: r.try_get("display_name")?,
                role: r.try_get("role")?,
                department_id: r.try_get("department_id")?,
                region_code: r.try_get("region_code")?,
                staff_id: r.try_get("staff_id")?,
                disabled: r.try_get("disabled")?,
                password_hash: r.try_get("password_hash")?,
            })
        })
        .transpose()
    }
}

impl Store {
    /// The department of staff member `staff_id` in the directory, if there is one.
    pub async fn staff_department(&self, staff_id: &str) -> Result<Option<String>, Error> {
        sqlx::query_scalar("SELECT department_id FROM staff WHERE id = $1")
            .bind(staff_id)
            .fetch_optional(&self.pool)
            .await
    }
}
