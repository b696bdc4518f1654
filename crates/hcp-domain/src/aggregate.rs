//! Pre-aggregation: a batch of ratings becomes one delta per aggregate row, so the store does
//! one upsert per key instead of one per rating.
//!
//! Every counted rating adds one to a row per scope its attribution puts it in (all, channel,
//! stage, department, hall, window, staff member, service item, region and its ancestors,
//! platform, tag class), in an hour bucket and a day bucket (Beijing time).
//! A follow-up rating (追评) that replaces a first rating is a −1 on the first rating's rows
//! plus a +1 on its own.
//!
//! The same deltas feed the board's **split rows** ([`SplitKey`]): per reach a board can show
//! (everything, a department, a region at any level) and Beijing day, the counts by channel, by
//! stage and by tag, so a board reads rollups only, never the ratings themselves.
//!
//! A rating's **dimension grades** (评价维度) feed the dimension rows ([`DimKey`]): per scope its
//! attribution puts each dimension in ([`crate::attribution::Attribution::dimension_scopes`]),
//! dimension and Beijing day, the counts of that dimension's grades. They move with the rating:
//! a follow-up or an upheld appeal takes them out exactly as it takes out the overall grade.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{time, Grade, GradeCounts};

/// The id of the single row of the [`Scope::All`] scope.
pub const ALL_ID: &str = "all";

/// What an aggregate row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every rating; the id is [`ALL_ID`].
    All,
    /// A department.
    Department,
    /// A window.
    Window,
    /// A staff member.
    Staff,
    /// A channel; the id is its wire name.
    Channel,
    /// A stage; the id is its wire name.
    Stage,
    /// A service hall.
    Hall,
    /// A service item (事项); the id is its code.
    ServiceItem,
    /// A region (行政区划) and, through the tree, every region above it.
    Region,
    /// A platform: an online channel or the onsite system.
    Platform,
    /// A tag class (`conduct`, `process`, `platform`): ratings carrying such a tag.
    TagClass,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 11] = [
        Scope::All,
        Scope::Department,
        Scope::Window,
        Scope::Staff,
        Scope::Channel,
        Scope::Stage,
        Scope::Hall,
        Scope::ServiceItem,
        Scope::Region,
        Scope::Platform,
        Scope::TagClass,
    ];

    /// The wire / database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Department => "department",
            Scope::Window => "window",
            Scope::Staff => "staff",
            Scope::Channel => "channel",
            Scope::Stage => "stage",
            Scope::Hall => "hall",
            Scope::ServiceItem => "service_item",
            Scope::Region => "region",
            Scope::Platform => "platform",
            Scope::TagClass => "tag_class",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Width of a time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketWidth {
    /// A Beijing clock hour.
    Hour,
    /// A Beijing calendar day.
    Day,
}

impl BucketWidth {
    /// The database name.
    pub fn as_str(self) -> &'static str {
        match self {
            BucketWidth::Hour => "hour",
            BucketWidth::Day => "day",
        }
    }
}

/// The key of one aggregate row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AggKey {
    /// Hour or day.
    pub width: BucketWidth,
    /// Start of the bucket (a Beijing hour or midnight), in UTC.
    pub bucket_start: DateTime<Utc>,
    /// Scope kind.
    pub scope: Scope,
    /// Scope id.
    pub scope_id: String,
}

/// What a split row divides a reach's day by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SplitDim {
    /// The channel (wire name).
    Channel,
    /// The stage (wire name).
    Stage,
    /// A tag code the rating carries (a rating with two tags counts in both).
    Tag,
}

impl SplitDim {
    /// The database name.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitDim::Channel => "channel",
            SplitDim::Stage => "stage",
            SplitDim::Tag => "tag",
        }
    }
}

/// The key of one split row: a reach's Beijing day, by channel, stage or tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SplitKey {
    /// The reach as a scope key: `all:all`, `department:<id>` or `region:<code>`.
    pub reach: String,
    /// Beijing midnight of the day, in UTC.
    pub day_start: DateTime<Utc>,
    /// What the row divides by.
    pub dim: SplitDim,
    /// The channel, stage or tag.
    pub value: String,
}

/// The key of one dimension row: a scope's Beijing day, for one evaluation dimension.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DimKey {
    /// Scope kind.
    pub scope: Scope,
    /// Scope id.
    pub scope_id: String,
    /// The dimension code.
    pub dimension: String,
    /// Beijing midnight of the day, in UTC.
    pub day_start: DateTime<Utc>,
}

/// One dimension grade of a rating and the rows it counts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimFacts {
    /// The dimension code.
    pub code: String,
    /// Its grade.
    pub grade: Grade,
    /// The (scope, id) rows it counts in.
    pub scopes: Vec<(Scope, String)>,
}

/// The facts about a rating that aggregation needs: its grade, its time, the rows its
/// attribution puts it in ([`crate::attribution::Attribution::scopes`]), its tags and its
/// dimension grades with their rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggFacts {
    /// The grade.
    pub grade: Grade,
    /// When it was rated.
    pub rated_at: DateTime<Utc>,
    /// The (scope, id) rows it counts in (always one channel and one stage among them).
    pub scopes: Vec<(Scope, String)>,
    /// Its tag codes.
    pub tags: Vec<String>,
    /// Its dimension grades.
    pub dimensions: Vec<DimFacts>,
}

/// The deltas of one batch, one entry per aggregate row and per split row touched.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rollup {
    rows: HashMap<AggKey, GradeCounts>,
    splits: HashMap<SplitKey, GradeCounts>,
    dims: HashMap<DimKey, GradeCounts>,
}

impl Rollup {
    /// An empty rollup.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `facts` once in every row it belongs to.
    pub fn add(&mut self, facts: &AggFacts) {
        self.apply(facts, false);
    }

    /// Removes `facts` from every row it was counted in (a replaced or excluded rating).
    pub fn remove(&mut self, facts: &AggFacts) {
        self.apply(facts, true);
    }

    fn apply(&mut self, facts: &AggFacts, negative: bool) {
        let delta = GradeCounts::one(facts.grade);
        for (width, bucket_start) in
            [(BucketWidth::Hour, time::hour_start(facts.rated_at)), (BucketWidth::Day, time::day_start(facts.rated_at))]
        {
            for (scope, scope_id) in &facts.scopes {
                let key = AggKey { width, bucket_start, scope: *scope, scope_id: scope_id.clone() };
                let row = self.rows.entry(key).or_default();
                if negative {
                    row.sub(&delta);
                } else {
                    row.add(&delta);
                }
            }
        }
        let day_start = time::day_start(facts.rated_at);
        for d in &facts.dimensions {
            let delta = GradeCounts::one(d.grade);
            for (scope, scope_id) in &d.scopes {
                let key = DimKey { scope: *scope, scope_id: scope_id.clone(), dimension: d.code.clone(), day_start };
                let row = self.dims.entry(key).or_default();
                if negative {
                    row.sub(&delta);
                } else {
                    row.add(&delta);
                }
            }
        }
        let reaches = facts.scopes.iter().filter(|(s, _)| matches!(s, Scope::All | Scope::Department | Scope::Region));
        let divisions: Vec<(SplitDim, &str)> = facts
            .scopes
            .iter()
            .filter_map(|(s, id)| match s {
                Scope::Channel => Some((SplitDim::Channel, id.as_str())),
                Scope::Stage => Some((SplitDim::Stage, id.as_str())),
                _ => None,
            })
            .chain(facts.tags.iter().map(|t| (SplitDim::Tag, t.as_str())))
            .collect();
        for (scope, id) in reaches {
            let reach = format!("{}:{id}", scope.as_str());
            for (dim, value) in &divisions {
                let key = SplitKey { reach: reach.clone(), day_start, dim: *dim, value: (*value).to_string() };
                let row = self.splits.entry(key).or_default();
                if negative {
                    row.sub(&delta);
                } else {
                    row.add(&delta);
                }
            }
        }
    }

    /// The non-zero deltas, in a stable order (so concurrent writers lock rows in the same order).
    pub fn into_rows(self) -> Vec<(AggKey, GradeCounts)> {
        let mut rows: Vec<_> = self.rows.into_iter().filter(|(_, c)| !c.is_zero()).collect();
        rows.sort_by(|(a, _), (b, _)| {
            (a.scope.as_str(), &a.scope_id, a.width.as_str(), a.bucket_start).cmp(&(
                b.scope.as_str(),
                &b.scope_id,
                b.width.as_str(),
                b.bucket_start,
            ))
        });
        rows
    }

    /// The non-zero split deltas, in a stable order (as [`Rollup::into_rows`]).
    pub fn split_rows(&self) -> Vec<(SplitKey, GradeCounts)> {
        let mut rows: Vec<_> = self.splits.iter().filter(|(_, c)| !c.is_zero()).map(|(k, c)| (k.clone(), *c)).collect();
        rows.sort_by(|(a, _), (b, _)| {
            (&a.reach, a.day_start, a.dim, &a.value).cmp(&(&b.reach, b.day_start, b.dim, &b.value))
        });
        rows
    }

    /// The non-zero dimension deltas, in a stable order (as [`Rollup::into_rows`]).
    pub fn dimension_rows(&self) -> Vec<(DimKey, GradeCounts)> {
        let mut rows: Vec<_> = self.dims.iter().filter(|(_, c)| !c.is_zero()).map(|(k, c)| (k.clone(), *c)).collect();
        rows.sort_by(|(a, _), (b, _)| {
            (a.scope.as_str(), &a.scope_id, a.day_start, &a.dimension).cmp(&(
                b.scope.as_str(),
                &b.scope_id,
                b.day_start,
                &b.dimension,
            ))
        });
        rows
    }

    /// Number of distinct aggregate rows touched so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn facts(grade: u8, window: &str, hour_utc: u32) -> AggFacts {
        AggFacts {
            grade: Grade::new(grade).unwrap(),
            rated_at: Utc.with_ymd_and_hms(2026, 11, 20, hour_utc, 10, 0).unwrap(),
            scopes: vec![
                (Scope::All, ALL_ID.into()),
                (Scope::Channel, "window_evaluator".into()),
                (Scope::Stage, "acceptance".into()),
                (Scope::Department, "D1".into()),
                (Scope::Window, window.into()),
            ],
            tags: vec!["long_wait".into()],
            dimensions: vec![DimFacts {
                code: "attitude".into(),
                grade: Grade::new(grade.clamp(2, 4)).unwrap(),
                scopes: vec![(Scope::All, ALL_ID.into()), (Scope::Window, window.into())],
            }],
        }
    }

    fn row<'a>(rows: &'a [(AggKey, GradeCounts)], width: BucketWidth, scope: Scope, id: &str) -> Vec<&'a GradeCounts> {
        rows.iter().filter(|(k, _)| k.width == width && k.scope == scope && k.scope_id == id).map(|(_, c)| c).collect()
    }

    #[test]
    fn a_batch_becomes_one_delta_per_row() {
        let mut r = Rollup::new();
        r.add(&facts(5, "W1", 1));
        r.add(&facts(1, "W1", 1));
        r.add(&facts(4, "W2", 2));
        let rows = r.into_rows();
        // hour rows: all, channel, stage, dept in 2 hours (4×2) + W1 hour 1 + W2 hour 2 = 10; day rows: 4 + 2 windows = 6.
        assert_eq!(rows.len(), 16);
        let day_all = row(&rows, BucketWidth::Day, Scope::All, ALL_ID);
        assert_eq!(day_all, vec![&GradeCounts([1, 0, 0, 1, 1])]);
        assert_eq!(row(&rows, BucketWidth::Day, Scope::Window, "W1"), vec![&GradeCounts([1, 0, 0, 0, 1])]);
        assert_eq!(row(&rows, BucketWidth::Hour, Scope::Window, "W2").len(), 1);
    }

    #[test]
    fn remove_cancels_add_and_zero_rows_vanish() {
        let mut r = Rollup::new();
        r.add(&facts(2, "W1", 1));
        r.remove(&facts(2, "W1", 1));
        assert!(r.split_rows().is_empty());
        assert!(r.dimension_rows().is_empty());
        assert!(r.into_rows().is_empty());
    }

    fn split<'a>(rows: &'a [(SplitKey, GradeCounts)], reach: &str, dim: SplitDim, value: &str) -> Vec<&'a GradeCounts> {
        rows.iter().filter(|(k, _)| k.reach == reach && k.dim == dim && k.value == value).map(|(_, c)| c).collect()
    }

    #[test]
    fn reaches_get_day_rows_by_channel_stage_and_tag() {
        let mut r = Rollup::new();
        r.add(&facts(1, "W1", 1));
        r.add(&facts(5, "W2", 2));
        let mut other = facts(2, "W1", 3);
        other.scopes[1].1 = "app".into();
        other.tags = vec!["long_wait".into(), "rude".into()];
        r.add(&other);
        let rows = r.split_rows();
        // Reaches all:all and department:D1 (windows are no reach), one day; divisions: 2
        // channels, 1 stage, 2 tags → 2 × 5 rows.
        assert_eq!(rows.len(), 10);
        assert!(rows.iter().all(|(k, _)| k.day_start == time::day_start(other.rated_at)));
        assert_eq!(
            split(&rows, "department:D1", SplitDim::Channel, "window_evaluator"),
            vec![&GradeCounts([1, 0, 0, 0, 1])]
        );
        assert_eq!(split(&rows, "all:all", SplitDim::Channel, "app"), vec![&GradeCounts([0, 1, 0, 0, 0])]);
        assert_eq!(split(&rows, "all:all", SplitDim::Stage, "acceptance"), vec![&GradeCounts([1, 1, 0, 0, 1])]);
        assert_eq!(split(&rows, "all:all", SplitDim::Tag, "long_wait"), vec![&GradeCounts([1, 1, 0, 0, 1])]);
        assert_eq!(split(&rows, "department:D1", SplitDim::Tag, "rude"), vec![&GradeCounts([0, 1, 0, 0, 0])]);
        assert!(split(&rows, "window:W1", SplitDim::Tag, "rude").is_empty());
        // Taking the follow-up's first rating out moves its split rows too.
        r.remove(&other);
        assert!(split(&r.split_rows(), "all:all", SplitDim::Tag, "rude").is_empty());
    }

    fn dim<'a>(rows: &'a [(DimKey, GradeCounts)], scope: Scope, id: &str, code: &str) -> Vec<&'a GradeCounts> {
        rows.iter()
            .filter(|(k, _)| k.scope == scope && k.scope_id == id && k.dimension == code)
            .map(|(_, c)| c)
            .collect()
    }

    #[test]
    fn dimension_grades_count_per_scope_and_day_and_leave_with_their_rating() {
        let mut r = Rollup::new();
        r.add(&facts(5, "W1", 1)); // attitude 4
        r.add(&facts(1, "W1", 2)); // attitude 2
        let mut two = facts(5, "W2", 3);
        two.dimensions.push(DimFacts {
            code: "guide".into(),
            grade: Grade::new(1).unwrap(),
            scopes: vec![(Scope::All, ALL_ID.into())],
        });
        r.add(&two);
        let rows = r.dimension_rows();
        // all × {attitude, guide}, W1 × attitude, W2 × attitude; one day.
        assert_eq!(rows.len(), 4);
        assert_eq!(dim(&rows, Scope::All, ALL_ID, "attitude"), vec![&GradeCounts([0, 1, 0, 2, 0])]);
        assert_eq!(dim(&rows, Scope::All, ALL_ID, "guide"), vec![&GradeCounts([1, 0, 0, 0, 0])]);
        assert_eq!(dim(&rows, Scope::Window, "W1", "attitude"), vec![&GradeCounts([0, 1, 0, 1, 0])]);
        assert!(dim(&rows, Scope::Window, "W2", "guide").is_empty(), "a dimension counts only where attributed");
        assert!(rows.iter().all(|(k, _)| k.day_start == time::day_start(two.rated_at)));
        // Taking a rating out (follow-up, upheld appeal) takes its dimension grades out too.
        r.remove(&two);
        let rows = r.dimension_rows();
        assert!(dim(&rows, Scope::All, ALL_ID, "guide").is_empty());
        assert!(dim(&rows, Scope::Window, "W2", "attitude").is_empty());
        assert_eq!(dim(&rows, Scope::All, ALL_ID, "attitude"), vec![&GradeCounts([0, 1, 0, 1, 0])]);
        // A replacing follow-up moves a dimension's grade like the overall grade.
        let mut f = Rollup::new();
        f.remove(&facts(1, "W1", 2));
        f.add(&facts(5, "W1", 2));
        assert_eq!(dim(&f.dimension_rows(), Scope::Window, "W1", "attitude"), vec![&GradeCounts([0, -1, 0, 1, 0])]);
    }

    #[test]
    fn follow_up_moves_the_grade() {
        let mut r = Rollup::new();
        r.remove(&facts(2, "W1", 1));
        r.add(&facts(4, "W1", 1));
        let rows = r.into_rows();
        assert_eq!(row(&rows, BucketWidth::Day, Scope::All, ALL_ID), vec![&GradeCounts([0, -1, 0, 1, 0])]);
    }
}
