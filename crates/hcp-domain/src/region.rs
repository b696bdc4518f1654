//! The region tree (行政区划) as the results are read at every level of it (docs/domain.md §6):
//! "'好差评'结果纳入政务服务机构和各区政府(含新区管委会)政府绩效考核". A region's level follows
//! from its code (GB/T 2260 six digits: 省 `xx0000`, 市 `xxxx00`, 区县; the twelve-digit statistical
//! codes below them: 街道乡镇 `…000`, 社区村), its place from the directory's parent codes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// How high a region stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RegionLevel {
    /// 省级.
    Province,
    /// 市级.
    City,
    /// 区县级 (and 新区).
    District,
    /// 街道乡镇.
    Street,
    /// 社区村.
    Community,
}

impl RegionLevel {
    /// Every level, top down.
    pub const ALL: [RegionLevel; 5] =
        [RegionLevel::Province, RegionLevel::City, RegionLevel::District, RegionLevel::Street, RegionLevel::Community];

    /// The level of an area code; `None` for a code of another shape.
    pub fn of(code: &str) -> Option<RegionLevel> {
        if !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(match code.len() {
            6 if code.ends_with("0000") => RegionLevel::Province,
            6 if code.ends_with("00") => RegionLevel::City,
            6 => RegionLevel::District,
            9 => RegionLevel::Street,
            12 if code.ends_with("000") => RegionLevel::Street,
            12 => RegionLevel::Community,
            _ => return None,
        })
    }

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RegionLevel::Province => "province",
            RegionLevel::City => "city",
            RegionLevel::District => "district",
            RegionLevel::Street => "street",
            RegionLevel::Community => "community",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<RegionLevel> {
        RegionLevel::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            RegionLevel::Province => "省",
            RegionLevel::City => "市",
            RegionLevel::District => "区县",
            RegionLevel::Street => "街道乡镇",
            RegionLevel::Community => "社区村",
        }
    }
}

/// The directory's regions as a tree: code → parent code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionTree(pub HashMap<String, Option<String>>);

impl RegionTree {
    /// Builds the tree from (code, parent) pairs.
    pub fn new(rows: impl IntoIterator<Item = (String, Option<String>)>) -> Self {
        RegionTree(rows.into_iter().collect())
    }

    /// The regions directly below `parent` (`None`: the roots, whose parent is unknown or absent),
    /// by code.
    pub fn children(&self, parent: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .iter()
            .filter(|(_, p)| match (parent, p.as_deref()) {
                (None, None) => true,
                (None, Some(p)) => !self.0.contains_key(p),
                (Some(want), Some(p)) => want == p,
                (Some(_), None) => false,
            })
            .map(|(c, _)| c.clone())
            .collect();
        out.sort();
        out
    }

    /// `code` and its ancestors, nearest first (the order deadline and default-rating policies
    /// are looked up in).
    pub fn path(&self, code: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = Some(code.to_owned());
        while let Some(c) = at {
            if out.contains(&c) || out.len() > self.0.len() {
                break;
            }
            at = self.0.get(&c).cloned().flatten();
            out.push(c);
        }
        out
    }

    /// Whether `code` is `ancestor` or lies below it.
    pub fn is_within(&self, code: &str, ancestor: &str) -> bool {
        let mut at = Some(code.to_owned());
        // A cycle in bad data cannot loop forever: a path is never longer than the tree.
        for _ in 0..=self.0.len() {
            match at {
                Some(c) if c == ancestor => return true,
                Some(c) => at = self.0.get(&c).cloned().flatten(),
                None => return false,
            }
        }
        false
    }

    /// The regions a board of `top` ranks: a region's direct children; for everything (`None`),
    /// the first level with more than one region, passing down through single roots (one province
    /// with one city ranks that city's districts).
    pub fn ranked_below(&self, top: Option<&str>) -> Vec<String> {
        if top.is_some() {
            return self.children(top);
        }
        let mut at: Option<String> = None;
        for _ in 0..=self.0.len() {
            let children = self.children(at.as_deref());
            if children.len() == 1 {
                at = children.into_iter().next();
            } else {
                return children;
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> RegionTree {
        let s = |c: &str| c.to_owned();
        RegionTree::new([
            (s("440000"), None),
            (s("440300"), Some(s("440000"))),
            (s("440305"), Some(s("440300"))),
            (s("440306"), Some(s("440300"))),
            (s("440305001000"), Some(s("440305"))),
            (s("440305002000"), Some(s("440305"))),
        ])
    }

    #[test]
    fn a_level_follows_from_the_code() {
        use RegionLevel as L;
        for (code, level) in [
            ("440000", Some(L::Province)),
            ("440300", Some(L::City)),
            ("440305", Some(L::District)),
            ("440305001", Some(L::Street)),
            ("440305001000", Some(L::Street)),
            ("440305001001", Some(L::Community)),
            ("44030", None),
            ("44a300", None),
        ] {
            assert_eq!(RegionLevel::of(code), level, "{code}");
        }
        for l in RegionLevel::ALL {
            assert_eq!(RegionLevel::parse(l.as_str()), Some(l));
        }
    }

    #[test]
    fn the_tree_answers_children_descent_and_the_level_a_board_ranks() {
        let t = tree();
        assert_eq!(t.children(None), ["440000"]);
        assert_eq!(t.children(Some("440300")), ["440305", "440306"]);
        assert!(t.is_within("440305001000", "440300") && t.is_within("440300", "440300"));
        assert_eq!(t.path("440305001000"), ["440305001000", "440305", "440300", "440000"]);
        assert!(!t.is_within("440300", "440305") && !t.is_within("999999", "440300"));
        assert_eq!(t.ranked_below(None), ["440305", "440306"], "one province with one city: its districts");
        assert_eq!(t.ranked_below(Some("440305")), ["440305001000", "440305002000"]);
        assert_eq!(t.ranked_below(Some("440000")), ["440300"], "a region's only child is still ranked");
        assert!(t.ranked_below(Some("440306")).is_empty(), "a leaf ranks nothing");
        // A region whose parent is unknown counts as a root; a cycle ends.
        let odd = RegionTree::new([("1".to_owned(), Some("2".to_owned())), ("2".to_owned(), Some("1".to_owned()))]);
        assert!(!odd.is_within("1", "3"));
        assert!(odd.ranked_below(None).is_empty());
    }
}
