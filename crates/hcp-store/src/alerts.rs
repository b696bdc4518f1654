//! Alert rules, windowed counts per unit, and the alerts (fired → cleared) with their
//! notifications and webhook messages, written in one transaction per rule.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use hcp_domain::alert::{transitions, AlertKind, AlertRule};
use hcp_domain::{GradeCounts, Scope};
use serde::Serialize;

use crate::notifications::{queue, NewNotification};
use crate::{Error, Store};

/// A unit firing a rule: observed value, ratings in the window, its region path.
#[derive(Debug, Clone)]
pub struct Firing {
    /// The unit.
    pub scope_id: String,
    /// 好评率 or 差评 count.
    pub value: f64,
    /// Ratings in the window.
    pub ratings: i64,
    /// Region and ancestors.
    pub region_path: Vec<String>,
}

/// An alert as listed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    /// Id.
    pub alert_id: i64,
    /// The rule.
    pub rule_id: String,
    /// Its name.
    pub rule_name: String,
    /// What it measures: `satisfaction_below` (`value` is a 好评率) or `bad_at_least` (a count).
    pub kind: String,
    /// The scope watched.
    pub scope: String,
    /// The unit.
    pub scope_id: String,
    /// 好评率 or 差评 count when it fired.
    pub value: f64,
    /// Ratings in the window then.
    pub ratings: i64,
    /// When it fired.
    pub fired_at: DateTime<Utc>,
    /// When it cleared (`null` while active).
    pub cleared_at: Option<DateTime<Utc>>,
}

fn kind_str(k: AlertKind) -> &'static str {
    match k {
        AlertKind::SatisfactionBelow => "satisfaction_below",
        AlertKind::BadAtLeast => "bad_at_least",
    }
}

type RuleRow = (String, String, String, String, f64, i64, i64, bool);

impl Store {
    /// Every rule, by id.
    pub async fn alert_rules(&self) -> Result<Vec<AlertRule>, Error> {
        let rows: Vec<RuleRow> = sqlx::query_as(
            "SELECT rule_id, name, scope, kind, threshold, min_ratings, window_minutes, enabled FROM alert_rules ORDER BY rule_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(rule_id, name, scope, kind, threshold, min_ratings, window_minutes, enabled)| {
                Some(AlertRule {
                    rule_id,
                    name,
                    scope: Scope::parse(&scope)?,
                    kind: if kind == "bad_at_least" { AlertKind::BadAtLeast } else { AlertKind::SatisfactionBelow },
                    threshold,
                    min_ratings,
                    window_minutes,
                    enabled,
                })
            })
            .collect())
    }

    /// Adds or replaces a rule (checked by the caller).
    pub async fn upsert_alert_rule(&self, r: &AlertRule) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO alert_rules (rule_id, name, scope, kind, threshold, min_ratings, window_minutes, enabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (rule_id) DO UPDATE SET name = $2, scope = $3, kind = $4, threshold = $5, min_ratings = $6,
                 window_minutes = $7, enabled = $8, updated_at = now()",
        )
        .bind(&r.rule_id)
        .bind(&r.name)
        .bind(r.scope.as_str())
        .bind(kind_str(r.kind))
        .bind(r.threshold)
        .bind(r.min_ratings)
        .bind(r.window_minutes)
        .bind(r.enabled)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a rule and its alerts; false when there was none.
    pub async fn delete_alert_rule(&self, id: &str) -> Result<bool, Error> {
        let r = sqlx::query("DELETE FROM alert_rules WHERE rule_id = $1").bind(id).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    /// Counted ratings per unit of `scope` rated in `(to - minutes, to]`.
    pub async fn window_counts(
        &self,
        scope: Scope,
        to: DateTime<Utc>,
        minutes: i64,
    ) -> Result<Vec<(String, GradeCounts)>, Error> {
        let from = to - chrono::Duration::minutes(minutes);
        let rows: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT substr(s, length($1) + 2) AS unit,
                    count(*) FILTER (WHERE r.grade = 1), count(*) FILTER (WHERE r.grade = 2),
                    count(*) FILTER (WHERE r.grade = 3), count(*) FILTER (WHERE r.grade = 4),
                    count(*) FILTER (WHERE r.grade = 5)
               FROM ratings r, unnest(r.agg_scopes) s
              WHERE r.rated_at > $2 AND r.rated_at <= $3 AND r.excluded_at IS NULL AND r.superseded_by IS NULL
                AND s LIKE $1 || ':%'
              GROUP BY 1",
        )
        .bind(scope.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(u, a, b, c, d, e)| (u, GradeCounts([a, b, c, d, e]))).collect())
    }

    /// The regions (and ancestors) a unit's latest rating counted in.
    pub async fn unit_regions(&self, scope: Scope, unit: &str) -> Result<Vec<String>, Error> {
        let key = format!("{}:{unit}", scope.as_str());
        sqlx::query_scalar(
            "SELECT substr(x, 8) FROM (SELECT agg_scopes FROM ratings WHERE agg_scopes @> ARRAY[$1]
                                        ORDER BY rated_at DESC LIMIT 1) r, unnest(r.agg_scopes) x
              WHERE x LIKE 'region:%'",
        )
        .bind(key)
        .fetch_all(&self.pool)
        .await
    }

    /// Records what `rule` sees at `now`: opens an alert for each newly firing unit and clears
    /// those no longer firing, each with a notification to the unit's supervisors and a webhook
    /// message (`alert.fired` / `alert.cleared`). Returns the units fired and cleared.
    pub async fn apply_alerts(
        &self,
        rule: &AlertRule,
        firing: &[Firing],
        now: DateTime<Utc>,
    ) -> Result<(Vec<String>, Vec<String>), Error> {
        let mut tx = self.pool.begin().await?;
        let active: Vec<(i64, String, Vec<String>)> = sqlx::query_as(
            "SELECT alert_id, scope_id, region_path FROM alerts WHERE rule_id = $1 AND cleared_at IS NULL FOR UPDATE",
        )
        .bind(&rule.rule_id)
        .fetch_all(&mut *tx)
        .await?;
        let active_ids: BTreeSet<String> = active.iter().map(|a| a.1.clone()).collect();
        let firing_by: BTreeMap<&str, &Firing> = firing.iter().map(|f| (f.scope_id.as_str(), f)).collect();
        let firing_ids: BTreeSet<String> = firing_by.keys().map(|s| s.to_string()).collect();
        let (fired, cleared) = transitions(&active_ids, &firing_ids);
        let mut messages = Vec::new();
        let describe = |value: f64| match rule.kind {
            AlertKind::SatisfactionBelow => format!("好评率 {:.1}%", value * 100.0),
            AlertKind::BadAtLeast => format!("差评 {value:.0} 条"),
        };
        for unit in &fired {
            let f = firing_by[unit.as_str()];
            let (alert_id,): (i64,) = sqlx::query_as(
                "INSERT INTO alerts (rule_id, scope, scope_id, region_path, value, ratings, fired_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING alert_id",
            )
            .bind(&rule.rule_id)
            .bind(rule.scope.as_str())
            .bind(unit)
            .bind(&f.region_path)
            .bind(f.value)
            .bind(f.ratings)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let subject = format!("预警:{} {}", rule.name, unit);
            let body = format!(
                "{} {} 近 {} 分钟{}(评价 {} 条),触发预警规则“{}”。",
                rule.scope.as_str(),
                unit,
                rule.window_minutes,
                describe(f.value),
                f.ratings,
                rule.name
            );
            notify(&mut tx, "alert_fired", &subject, &body, &f.region_path, &format!("alert:{alert_id}:fired")).await?;
            messages.push(message(alert_id, "fired", rule, unit, Some(f), now));
        }
        for unit in &cleared {
            let (alert_id, _, regions) = active.iter().find(|a| &a.1 == unit).expect("an active unit");
            sqlx::query("UPDATE alerts SET cleared_at = $2 WHERE alert_id = $1")
                .bind(alert_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let subject = format!("预警解除:{} {}", rule.name, unit);
            let body = format!("{} {} 已不再满足预警规则“{}”。", rule.scope.as_str(), unit, rule.name);
            notify(&mut tx, "alert_cleared", &subject, &body, regions, &format!("alert:{alert_id}:cleared")).await?;
            messages.push(message(*alert_id, "cleared", rule, unit, None, now));
        }
        crate::webhooks::enqueue(&mut tx, &messages).await?;
        tx.commit().await?;
        Ok((fired, cleared))
    }

    /// Alerts, newest first; only open ones with `active_only`.
    pub async fn list_alerts(&self, active_only: bool, limit: i64) -> Result<Vec<Alert>, Error> {
        sqlx::query_as(
            "SELECT a.alert_id, a.rule_id, r.name AS rule_name, r.kind, a.scope, a.scope_id, a.value, a.ratings, a.fired_at, a.cleared_at
               FROM alerts a JOIN alert_rules r USING (rule_id)
              WHERE NOT $1 OR a.cleared_at IS NULL
              ORDER BY a.fired_at DESC, a.alert_id DESC LIMIT $2",
        )
        .bind(active_only)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }
}

async fn notify(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    kind: &str,
    subject: &str,
    body: &str,
    region_path: &[String],
    dedupe: &str,
) -> Result<(), Error> {
    let notification = NewNotification {
        kind: kind.into(),
        recipient: "role:supervisor".into(),
        subject: subject.into(),
        body: body.into(),
        region_path: region_path.to_vec(),
        dedupe_key: Some(dedupe.into()),
        ..Default::default()
    };
    queue(tx, &notification).await?;
    Ok(())
}

/// A Standard Webhooks message for an alert transition.
fn message(
    alert_id: i64,
    what: &str,
    rule: &AlertRule,
    unit: &str,
    firing: Option<&Firing>,
    now: DateTime<Utc>,
) -> (String, String, String) {
    let event_type = format!("alert.{what}");
    let body = serde_json::json!({
        "type": event_type,
        "timestamp": now,
        "data": {
            "alert_id": alert_id, "rule_id": rule.rule_id, "rule_name": rule.name, "scope": rule.scope.as_str(),
            "scope_id": unit, "value": firing.map(|f| f.value), "ratings": firing.map(|f| f.ratings), "at": now,
        }
    });
    (format!("msg_alert_{alert_id}_{what}"), event_type, body.to_string())
}
