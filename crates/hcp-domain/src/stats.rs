//! Satisfaction statistics: grade counts and the rates derived from them (docs/domain.md §2).

use serde::{Deserialize, Serialize};

use crate::Grade;

/// Whether 基本满意 (3) counts as good. Localities differ; the default counts it as good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SatisfactionPolicy {
    /// 3, 4 and 5 are good (default).
    #[default]
    ThreeIsGood,
    /// Only 4 and 5 are good; 3 is neutral.
    ThreeIsNeutral,
}

impl SatisfactionPolicy {
    /// Whether `grade` counts as 好评 under this policy.
    pub fn is_good(self, grade: Grade) -> bool {
        match self {
            SatisfactionPolicy::ThreeIsGood => grade.value() >= 3,
            SatisfactionPolicy::ThreeIsNeutral => grade.value() >= 4,
        }
    }
}

/// Ratings per grade; index 0 is grade 1. Signed so that compensating deltas can be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GradeCounts(pub [i64; 5]);

impl GradeCounts {
    /// One rating of `grade`.
    pub fn one(grade: Grade) -> Self {
        let mut c = [0; 5];
        c[usize::from(grade.value() - 1)] = 1;
        GradeCounts(c)
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &GradeCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// Subtracts `other` from `self`.
    pub fn sub(&mut self, other: &GradeCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a -= b;
        }
    }

    /// The count for `grade`.
    pub fn get(&self, grade: Grade) -> i64 {
        self.0[usize::from(grade.value() - 1)]
    }

    /// All counted ratings.
    pub fn total(&self) -> i64 {
        self.0.iter().sum()
    }

    /// Whether every count is zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&c| c == 0)
    }

    /// Derives the summary figures under `policy`.
    pub fn summary(&self, policy: SatisfactionPolicy) -> Summary {
        let total = self.total();
        let good: i64 = (1..=5).filter_map(Grade::new).filter(|g| policy.is_good(*g)).map(|g| self.get(g)).sum();
        let bad = self.0[0] + self.0[1];
        let weighted: i64 = self.0.iter().enumerate().map(|(i, c)| (i as i64 + 1) * c).sum();
        let ratio = |n: i64| (total > 0).then(|| n as f64 / total as f64);
        Summary {
            total,
            good,
            bad,
            satisfaction_rate: ratio(good),
            bad_rate: ratio(bad),
            average_grade: ratio(weighted),
        }
    }
}

/// Figures derived from [`GradeCounts`]. Rates are `None` when there are no ratings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Valid ratings counted.
    pub total: i64,
    /// 好评 under the policy.
    pub good: i64,
    /// 差评 (grades 1–2).
    pub bad: i64,
    /// 好评率 = good / total.
    pub satisfaction_rate: Option<f64>,
    /// 差评率 = bad / total.
    pub bad_rate: Option<f64>,
    /// Mean grade.
    pub average_grade: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_under_both_policies() {
        let c = GradeCounts([1, 1, 2, 3, 3]);
        let s = c.summary(SatisfactionPolicy::ThreeIsGood);
        assert_eq!((s.total, s.good, s.bad), (10, 8, 2));
        assert_eq!(s.satisfaction_rate, Some(0.8));
        assert_eq!(s.average_grade, Some(3.6));
        let n = c.summary(SatisfactionPolicy::ThreeIsNeutral);
        assert_eq!(n.good, 6);
        assert_eq!(GradeCounts::default().summary(SatisfactionPolicy::default()).satisfaction_rate, None);
    }
}
