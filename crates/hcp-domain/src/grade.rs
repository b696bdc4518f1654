//! The five-level grade of GB/T 39734-2020 §7.3.

use serde::{Deserialize, Serialize};

/// A satisfaction grade, 1 (非常不满意) to 5 (非常满意). Construct with [`Grade::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Grade(u8);

impl Grade {
    /// The lowest grade, 非常不满意.
    pub const MIN: u8 = 1;
    /// The highest grade, 非常满意.
    pub const MAX: u8 = 5;
    /// 基本满意, the grade a system-default rating gets.
    pub const NEUTRAL: Grade = Grade(3);

    /// Returns the grade for `value`, or `None` outside 1..=5.
    pub fn new(value: u8) -> Option<Self> {
        (Self::MIN..=Self::MAX).contains(&value).then_some(Grade(value))
    }

    /// The numeric value, 1..=5.
    pub fn value(self) -> u8 {
        self.0
    }

    /// 差评: grades 1 and 2.
    pub fn is_bad(self) -> bool {
        self.0 <= 2
    }

    /// The zh-CN label shown to raters.
    pub fn label_zh(self) -> &'static str {
        ["非常不满意", "不满意", "基本满意", "满意", "非常满意"][usize::from(self.0 - 1)]
    }

    /// The English label.
    pub fn label_en(self) -> &'static str {
        ["very dissatisfied", "dissatisfied", "basically satisfied", "satisfied", "very satisfied"]
            [usize::from(self.0 - 1)]
    }
}

impl TryFrom<u8> for Grade {
    type Error = String;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        Grade::new(v).ok_or_else(|| format!("grade must be 1..=5, got {v}"))
    }
}

impl From<Grade> for u8 {
    fn from(g: Grade) -> u8 {
        g.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_to_five_are_grades() {
        assert_eq!(Grade::new(0), None);
        assert_eq!(Grade::new(6), None);
        assert_eq!((1..=5).filter_map(Grade::new).count(), 5);
    }

    #[test]
    fn bad_is_one_and_two() {
        let bad: Vec<u8> = (1..=5).filter_map(Grade::new).filter(|g| g.is_bad()).map(u8::from).collect();
        assert_eq!(bad, vec![1, 2]);
        assert_eq!(Grade::new(1).unwrap().label_zh(), "非常不满意");
        assert_eq!(Grade::new(5).unwrap().label_zh(), "非常满意");
    }
}
