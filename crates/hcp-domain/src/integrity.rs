//! Anti-gaming (docs/domain.md §2: no coercion; staff must not rate for the citizen): patterns that
//! suggest presses were not a citizen's own judgement. Ratings are **flagged, never dropped**;
//! statistics leave flagged ratings out only under an explicit policy.
//!
//! - `device_too_fast`: a hall device counted two presses closer together than the policy's
//!   minimum interval (nobody is served in 10 seconds).
//! - `device_burst`: a device produced more top grades within the burst window than a window
//!   can serve (someone pressing 非常满意 repeatedly).
//! - `staff_burst`: the same for one staff member across devices and channels.
//! - `rater_is_rated_staff` / `rater_is_staff`: the rater's phone is the rated staff member's
//!   own, or another staff member's (phones registered as keyed digests).
//!
//! Each press is judged against the presses stored when it arrives (and the earlier ones of its
//! batch); ratings of different service records may reach the aggregator out of order, so of two
//! presses too close together the one processed second carries the flag.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What counts as suspicious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrityPolicy {
    /// Shortest plausible gap between two presses on one device.
    pub min_interval_secs: i64,
    /// The window bursts are counted in.
    pub burst_window_secs: i64,
    /// More top grades (5) than this within the window from one device or for one staff member
    /// is a burst: the ones beyond it are flagged.
    pub burst_top_grades: usize,
    /// Leave flagged ratings out of the statistics (default: counted, and listed for review).
    pub exclude_flagged: bool,
}

impl Default for IntegrityPolicy {
    fn default() -> Self {
        IntegrityPolicy { min_interval_secs: 10, burst_window_secs: 600, burst_top_grades: 5, exclude_flagged: false }
    }
}

/// Why a rating looks gamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrityFlag {
    /// Two presses on one device closer than the minimum interval.
    DeviceTooFast,
    /// Too many top grades from one device within the window.
    DeviceBurst,
    /// Too many top grades for one staff member within the window.
    StaffBurst,
    /// The rater's phone is the rated staff member's own.
    RaterIsRatedStaff,
    /// The rater's phone is another staff member's.
    RaterIsStaff,
}

impl IntegrityFlag {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrityFlag::DeviceTooFast => "device_too_fast",
            IntegrityFlag::DeviceBurst => "device_burst",
            IntegrityFlag::StaffBurst => "staff_burst",
            IntegrityFlag::RaterIsRatedStaff => "rater_is_rated_staff",
            IntegrityFlag::RaterIsStaff => "rater_is_staff",
        }
    }
}

/// One rating as the checks see it (stored history or a new one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Press {
    /// The rating.
    pub rating_id: Uuid,
    /// The hall device, if any.
    pub device_id: Option<String>,
    /// The staff member it counts for, if any.
    pub staff_id: Option<String>,
    /// 1–5.
    pub grade: u8,
    /// When.
    pub rated_at: DateTime<Utc>,
    /// Staff members whose registered phone is the rater's.
    pub rater_staff: Vec<String>,
}

/// The flags of each of `new` (keyed by rating id; absent = clean), judged together with
/// `history` (earlier stored ratings of the same devices and staff, within the window).
pub fn check(policy: &IntegrityPolicy, history: &[Press], new: &[Press]) -> HashMap<Uuid, Vec<IntegrityFlag>> {
    let mut flags: HashMap<Uuid, Vec<IntegrityFlag>> = HashMap::new();
    let is_new: std::collections::HashSet<Uuid> = new.iter().map(|p| p.rating_id).collect();
    let mut all: Vec<&Press> = history.iter().filter(|p| !is_new.contains(&p.rating_id)).chain(new).collect();
    all.sort_by_key(|p| (p.rated_at, p.rating_id));
    let mut add = |id: Uuid, f: IntegrityFlag| {
        if is_new.contains(&id) {
            let v = flags.entry(id).or_default();
            if !v.contains(&f) {
                v.push(f);
            }
        }
    };
    let min_gap = Duration::seconds(policy.min_interval_secs);
    let window = Duration::seconds(policy.burst_window_secs);
    // Too fast: a new press within the gap of the press before it, or of a stored press after it
    // (a press that arrived out of order).
    let mut by_device: HashMap<&str, Vec<&Press>> = HashMap::new();
    for p in &all {
        if let Some(d) = p.device_id.as_deref() {
            by_device.entry(d).or_default().push(p);
        }
    }
    for seq in by_device.values() {
        for (i, p) in seq.iter().enumerate() {
            let after_prev = i > 0 && p.rated_at - seq[i - 1].rated_at < min_gap;
            let before_stored =
                seq.get(i + 1).is_some_and(|n| !is_new.contains(&n.rating_id) && n.rated_at - p.rated_at < min_gap);
            if after_prev || before_stored {
                add(p.rating_id, IntegrityFlag::DeviceTooFast);
            }
        }
    }
    let mut top_by_device: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
    let mut top_by_staff: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
    let burst = |times: &mut Vec<DateTime<Utc>>, at: DateTime<Utc>| {
        times.retain(|t| at - *t < window);
        times.push(at);
        times.len() > policy.burst_top_grades
    };
    for p in &all {
        if p.grade != 5 {
            continue;
        }
        if let Some(d) = p.device_id.as_deref() {
            if burst(top_by_device.entry(d).or_default(), p.rated_at) {
                add(p.rating_id, IntegrityFlag::DeviceBurst);
            }
        }
        if let Some(s) = p.staff_id.as_deref() {
            if burst(top_by_staff.entry(s).or_default(), p.rated_at) {
                add(p.rating_id, IntegrityFlag::StaffBurst);
            }
        }
    }
    for p in new {
        if p.rater_staff.is_empty() {
            continue;
        }
        let own = p.staff_id.as_ref().is_some_and(|s| p.rater_staff.contains(s));
        add(p.rating_id, if own { IntegrityFlag::RaterIsRatedStaff } else { IntegrityFlag::RaterIsStaff });
    }
    for v in flags.values_mut() {
        v.sort();
    }
    flags
}

/// The stored neighbours each new press needs to be judged (see [`probes`]).
#[derive(Debug, Default)]
pub struct Probes<'a> {
    /// Presses whose device's stored press just before them, and just after them, matter.
    pub neighbours: Vec<&'a Press>,
    /// Top grades whose device's last stored top grades matter.
    pub device_top: Vec<&'a Press>,
    /// Top grades whose staff member's last stored top grades matter.
    pub staff_top: Vec<&'a Press>,
}

/// Which stored history can still change the verdict on each of `new`: a press whose device's
/// previous press in the batch is within the minimum interval is too fast whatever is stored, and
/// a top grade preceded within the window by `burst_top_grades` top grades of the batch (same
/// device, or same staff member) is a burst whatever is stored — neither needs a lookup. A busy
/// device's batch then costs lookups for its first presses only.
pub fn probes<'a>(policy: &IntegrityPolicy, new: &'a [Press]) -> Probes<'a> {
    let mut sorted: Vec<&Press> = new.iter().collect();
    sorted.sort_by_key(|p| (p.rated_at, p.rating_id));
    let min_gap = Duration::seconds(policy.min_interval_secs);
    let window = Duration::seconds(policy.burst_window_secs);
    let mut last_on_device: HashMap<&str, DateTime<Utc>> = HashMap::new();
    let mut top_by_device: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
    let mut top_by_staff: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
    // Whether `at` is preceded within the window by enough top grades of the batch; records it.
    let decided = |times: &mut Vec<DateTime<Utc>>, at: DateTime<Utc>| {
        times.retain(|t| at - *t < window);
        let enough = times.len() >= policy.burst_top_grades;
        times.push(at);
        enough
    };
    let mut out = Probes::default();
    for p in sorted {
        if let Some(d) = p.device_id.as_deref() {
            if last_on_device.insert(d, p.rated_at).is_none_or(|prev| p.rated_at - prev >= min_gap) {
                out.neighbours.push(p);
            }
            if p.grade == 5 && !decided(top_by_device.entry(d).or_default(), p.rated_at) {
                out.device_top.push(p);
            }
        }
        if let Some(s) = p.staff_id.as_deref() {
            if p.grade == 5 && !decided(top_by_staff.entry(s).or_default(), p.rated_at) {
                out.staff_top.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(n: u128, device: Option<&str>, staff: Option<&str>, grade: u8, secs: i64) -> Press {
        Press {
            rating_id: Uuid::from_u128(n),
            device_id: device.map(String::from),
            staff_id: staff.map(String::from),
            grade,
            rated_at: DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap(),
            rater_staff: vec![],
        }
    }

    #[test]
    fn presses_closer_than_the_interval_are_flagged_against_history_too() {
        let p = IntegrityPolicy::default();
        let history = [press(1, Some("E1"), None, 4, 0)];
        let new =
            [press(2, Some("E1"), None, 3, 5), press(3, Some("E1"), None, 2, 60), press(4, Some("E2"), None, 5, 61)];
        let f = check(&p, &history, &new);
        assert_eq!(f.get(&Uuid::from_u128(2)), Some(&vec![IntegrityFlag::DeviceTooFast]));
        assert!(!f.contains_key(&Uuid::from_u128(3)) && !f.contains_key(&Uuid::from_u128(4)));
        assert!(!f.contains_key(&Uuid::from_u128(1)), "history is never re-flagged");
        // Out of order: the stored press came later in time; the new, earlier one carries the flag.
        let late = check(&p, &[press(5, Some("E3"), None, 5, 100)], &[press(6, Some("E3"), None, 5, 95)]);
        assert_eq!(late.get(&Uuid::from_u128(6)), Some(&vec![IntegrityFlag::DeviceTooFast]));
    }

    #[test]
    fn a_rater_with_a_staff_phone_is_flagged() {
        let mut own = press(40, None, Some("S1"), 5, 0);
        own.rater_staff = vec!["S1".into()];
        let mut other = press(41, None, Some("S2"), 5, 0);
        other.rater_staff = vec!["S9".into()];
        let f = check(&IntegrityPolicy::default(), &[], &[own, other]);
        assert_eq!(f[&Uuid::from_u128(40)], vec![IntegrityFlag::RaterIsRatedStaff]);
        assert_eq!(f[&Uuid::from_u128(41)], vec![IntegrityFlag::RaterIsStaff]);
    }

    #[test]
    fn top_grade_bursts_flag_the_presses_beyond_the_limit() {
        let p = IntegrityPolicy::default();
        // Six 非常满意 for S1 from one device, a minute apart: the sixth is a burst for both.
        let new: Vec<Press> = (0..6).map(|i| press(10 + i as u128, Some("E1"), Some("S1"), 5, i * 60)).collect();
        let f = check(&p, &[], &new);
        assert_eq!(f.len(), 1);
        assert_eq!(f[&Uuid::from_u128(15)], vec![IntegrityFlag::DeviceBurst, IntegrityFlag::StaffBurst]);
        // Spread over an hour they are fine; other grades never make a burst.
        let slow: Vec<Press> = (0..6).map(|i| press(20 + i as u128, Some("E1"), Some("S1"), 5, i * 700)).collect();
        assert!(check(&p, &[], &slow).is_empty());
        let mixed: Vec<Press> = (0..8).map(|i| press(30 + i as u128, Some("E1"), None, 4, i * 30)).collect();
        assert!(check(&p, &[], &mixed).is_empty());
    }

    #[test]
    fn a_busy_devices_batch_needs_lookups_for_its_first_presses_only() {
        let p = IntegrityPolicy::default();
        // 20 top grades 2 s apart on one device and staff member, then one 5 minutes later.
        let mut new: Vec<Press> = (0..20).map(|i| press(100 + i, Some("E1"), Some("S1"), 5, 2 * i as i64)).collect();
        new.push(press(200, Some("E1"), Some("S1"), 5, 340));
        let probes = probes(&p, &new);
        let ids = |v: &[&Press]| v.iter().map(|p| p.rating_id.as_u128()).collect::<Vec<_>>();
        assert_eq!(ids(&probes.neighbours), vec![100, 200]);
        assert_eq!(ids(&probes.device_top), vec![100, 101, 102, 103, 104]);
        assert_eq!(ids(&probes.staff_top), vec![100, 101, 102, 103, 104]);
    }
}
