//! Operator accounts (the password hash is made and checked by `hcp-http::auth`).

use serde::Serialize;
use sqlx::Row;

use crate::{Error, Store};

/// An operator account.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Account {
    /// Login name.
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// `admin`, `supervisor`, `handler`, `callback` or `auditor`.
    pub role: String,
    /// A handler's department.
    pub department_id: Option<String>,
    /// A supervisor's region.
    pub region_code: Option<String>,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// PHC string of the password hash (never serialized).
    #[serde(skip)]
    pub password_hash: String,
}

impl Store {
    /// Adds or replaces an account.
    pub async fn upsert_account(&self, a: &Account) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO accounts (username, display_name, role, department_id, region_code, password_hash, disabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (username) DO UPDATE SET display_name = EXCLUDED.display_name, role = EXCLUDED.role,
                 department_id = EXCLUDED.department_id, region_code = EXCLUDED.region_code,
                 password_hash = EXCLUDED.password_hash, disabled = EXCLUDED.disabled",
        )
        .bind(&a.username)
        .bind(&a.display_name)
        .bind(&a.role)
        .bind(&a.department_id)
        .bind(&a.region_code)
        .bind(&a.password_hash)
        .bind(a.disabled)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The account named `username`.
    pub async fn account(&self, username: &str) -> Result<Option<Account>, Error> {
        let row = sqlx::query(
            "SELECT username, display_name, role, department_id, region_code, password_hash, disabled
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
                disabled: r.try_get("disabled")?,
                password_hash: r.try_get("password_hash")?,
            })
        })
        .transpose()
    }
}
