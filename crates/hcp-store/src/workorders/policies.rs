//! Deadline policies per region: stored, listed, set and removed.

use chrono::{DateTime, Utc};
use hcp_domain::workorder::DEFAULT_POLICY_REGION;
use hcp_domain::{DeadlinePolicy, Policies};
use serde::Serialize;
use sqlx::Row;

use crate::{Error, Store};

/// A policy row.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyRow {
    /// Region code, or `*` for the default.
    pub region_code: String,
    /// The limits.
    #[serde(flatten)]
    pub policy: DeadlinePolicy,
    /// Where it comes from.
    pub source: String,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Store {
    /// Every deadline policy.
    pub async fn load_policies(&self) -> Result<Policies, Error> {
        Ok(Policies(self.list_policies().await?.into_iter().map(|r| (r.region_code, r.policy)).collect()))
    }

    /// Every policy row, the default first.
    pub async fn list_policies(&self) -> Result<Vec<PolicyRow>, Error> {
        let rows = sqlx::query(
            "SELECT region_code, contact_days, rectify_days, near_due_days, default_rating_days, source, updated_at
               FROM deadline_policies ORDER BY region_code <> '*', region_code",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let days = |c: &str| r.try_get::<i32, _>(c).map(|v| v.max(0) as u32);
                Ok(PolicyRow {
                    region_code: r.try_get("region_code")?,
                    policy: DeadlinePolicy {
                        contact_days: days("contact_days")?,
                        rectify_days: days("rectify_days")?,
                        near_due_days: days("near_due_days")?,
                        default_rating_days: r
                            .try_get::<Option<i32>, _>("default_rating_days")?
                            .map(|v| v.max(1) as u32),
                    },
                    source: r.try_get("source")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Adds or replaces a region's policy (checked by the caller with [`DeadlinePolicy::check`]).
    /// Returns whether it was new. Orders already open keep their deadlines.
    pub async fn put_policy(&self, region: &str, policy: &DeadlinePolicy, source: &str) -> Result<bool, Error> {
        let inserted: bool = sqlx::query_scalar(
            "INSERT INTO deadline_policies (region_code, contact_days, rectify_days, near_due_days, source,
                                            default_rating_days)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (region_code) DO UPDATE SET contact_days = EXCLUDED.contact_days,
                 rectify_days = EXCLUDED.rectify_days, near_due_days = EXCLUDED.near_due_days,
                 default_rating_days = EXCLUDED.default_rating_days,
                 source = EXCLUDED.source, updated_at = now()
             RETURNING xmax = 0",
        )
        .bind(region)
        .bind(policy.contact_days as i32)
        .bind(policy.rectify_days as i32)
        .bind(policy.near_due_days as i32)
        .bind(source)
        .bind(policy.default_rating_days.map(|d| d as i32))
        .fetch_one(&self.pool)
        .await?;
        Ok(inserted)
    }

    /// Removes a region's policy (the default `*` stays). Returns whether one was removed.
    pub async fn delete_policy(&self, region: &str) -> Result<bool, Error> {
        if region == DEFAULT_POLICY_REGION {
            return Ok(false);
        }
        let n = sqlx::query("DELETE FROM deadline_policies WHERE region_code = $1")
            .bind(region)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected() > 0)
    }
}
