//! Threshold alerts (docs/domain.md §6, live boards): a rule watches every unit of a scope over a
//! sliding window ("satisfaction of any window below 80 % over the last 60 minutes with at least
//! 20 ratings", "3 bad reviews for one staff member within a day"). A unit's alert fires when its
//! condition starts to hold and clears when it stops; [`transitions`] says which.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::aggregate::Scope;
use crate::error::{FieldError, ValidationErrors};
use crate::stats::{GradeCounts, SatisfactionPolicy};

/// What a rule measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// 好评率 below `threshold` (a fraction) with at least `min_ratings` ratings in the window.
    SatisfactionBelow,
    /// At least `threshold` 差评 (grades 1–2) in the window.
    BadAtLeast,
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRule {
    /// Id (letters, digits, `-`, `_`).
    pub rule_id: String,
    /// Shown in banners and notifications.
    pub name: String,
    /// `department`, `hall`, `window`, `staff` or `service_item`: every unit of it is watched.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub scope: Scope,
    /// What is measured.
    pub kind: AlertKind,
    /// A fraction for `satisfaction_below` (0.8), a count for `bad_at_least` (3).
    pub threshold: f64,
    /// Fewest ratings in the window for `satisfaction_below` to apply (ignored by `bad_at_least`).
    pub min_ratings: i64,
    /// The sliding window, in minutes (1 to 10 080, a week).
    pub window_minutes: i64,
    /// Off rules are not evaluated (their open alerts clear at the next evaluation).
    pub enabled: bool,
}

/// Scopes a rule may watch.
pub const ALERT_SCOPES: [Scope; 5] = [Scope::Department, Scope::Hall, Scope::Window, Scope::Staff, Scope::ServiceItem];

impl AlertRule {
    /// Checks the rule's fields.
    pub fn check(&self) -> Result<(), ValidationErrors> {
        let mut e = Vec::new();
        let ok_id = !self.rule_id.is_empty()
            && self.rule_id.len() <= 64
            && self.rule_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok_id {
            e.push(FieldError::new(
                "rule_id",
                "invalid",
                "规则编号须为 1–64 位字母、数字、- 或 _",
                "rule_id: 1-64 letters, digits, - or _",
            ));
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 100 {
            e.push(FieldError::new("name", "invalid", "名称须为 1–100 字", "name: 1-100 characters"));
        }
        if !ALERT_SCOPES.contains(&self.scope) {
            e.push(FieldError::new(
                "scope",
                "invalid",
                "范围须为 department、hall、window、staff 或 service_item",
                "scope must be department, hall, window, staff or service_item",
            ));
        }
        let threshold_ok = match self.kind {
            AlertKind::SatisfactionBelow => self.threshold > 0.0 && self.threshold <= 1.0,
            AlertKind::BadAtLeast => {
                self.threshold >= 1.0 && self.threshold <= 10_000.0 && self.threshold.fract() == 0.0
            }
        };
        if !threshold_ok {
            e.push(FieldError::new(
                "threshold",
                "out_of_range",
                "阈值:好评率为 0–1 之间的小数,差评数为 1–10000 的整数",
                "threshold: a fraction in (0, 1] for satisfaction_below, a whole 1-10000 for bad_at_least",
            ));
        }
        if !(1..=100_000).contains(&self.min_ratings) {
            e.push(FieldError::new(
                "min_ratings",
                "out_of_range",
                "最少评价数须在 1–100000 之间",
                "min_ratings must be 1-100000",
            ));
        }
        if !(1..=10_080).contains(&self.window_minutes) {
            e.push(FieldError::new(
                "window_minutes",
                "out_of_range",
                "时间窗须在 1–10080 分钟之间",
                "window_minutes must be 1-10080",
            ));
        }
        if e.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(e))
        }
    }

    /// The observed value when the condition holds for a unit with `counts` in the window: the
    /// 好评率, or the 差评 count.
    pub fn firing(&self, counts: &GradeCounts, policy: SatisfactionPolicy) -> Option<f64> {
        let s = counts.summary(policy);
        match self.kind {
            AlertKind::SatisfactionBelow => {
                let rate = s.satisfaction_rate?;
                (s.total >= self.min_ratings && rate < self.threshold).then_some(rate)
            }
            AlertKind::BadAtLeast => (s.bad as f64 >= self.threshold).then_some(s.bad as f64),
        }
    }
}

/// Which units' alerts fire (firing now, not active) and clear (active, no longer firing).
pub fn transitions(active: &BTreeSet<String>, firing: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    (firing.difference(active).cloned().collect(), active.difference(firing).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: AlertKind, threshold: f64) -> AlertRule {
        AlertRule {
            rule_id: "r1".into(),
            name: "窗口满意度".into(),
            scope: Scope::Window,
            kind,
            threshold,
            min_ratings: 5,
            window_minutes: 60,
            enabled: true,
        }
    }

    #[test]
    fn conditions() {
        let p = SatisfactionPolicy::ThreeIsGood;
        let sat = rule(AlertKind::SatisfactionBelow, 0.8);
        assert_eq!(sat.firing(&GradeCounts([1, 1, 1, 0, 2]), p), Some(0.6));
        assert_eq!(sat.firing(&GradeCounts([1, 1, 0, 0, 1]), p), None, "fewer than min_ratings");
        assert_eq!(sat.firing(&GradeCounts([0, 1, 0, 0, 4]), p), None, "exactly 80 % is not below");
        let bad = rule(AlertKind::BadAtLeast, 3.0);
        assert_eq!(bad.firing(&GradeCounts([2, 1, 0, 0, 0]), p), Some(3.0));
        assert_eq!(bad.firing(&GradeCounts([1, 1, 0, 0, 9]), p), None);
        assert!(sat.check().is_ok() && bad.check().is_ok());
        let mut wrong = rule(AlertKind::BadAtLeast, 2.5);
        wrong.scope = Scope::Channel;
        wrong.window_minutes = 0;
        let fields: Vec<String> = wrong.check().unwrap_err().0.into_iter().map(|f| f.field).collect();
        assert_eq!(fields, ["scope", "threshold", "window_minutes"]);
    }

    #[test]
    fn fire_and_clear() {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        let (fired, cleared) = transitions(&set(&["W1", "W2"]), &set(&["W2", "W3"]));
        assert_eq!((fired, cleared), (vec!["W3".to_string()], vec!["W1".to_string()]));
    }
}
