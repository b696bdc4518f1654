//! A believable demo city (示范市): its directory is the data file `deploy/demo/directory.json`
//! (imported through the same path as any operator's file), a sign-in roster for the days
//! being seeded, and a day of ratings with a realistic grade mix, both window stages, online and
//! hotline channels. Deterministic for a given seed and day, so re-seeding the same day changes
//! nothing.

use std::sync::LazyLock;

use chrono::{DateTime, Duration, Timelike, Utc};
use hcp_domain::directory::{RosterEntry, TagClass, WindowRole};
use hcp_domain::{time, DirectoryData, RatingInput, RatingSubmitted};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// The demo directory file, embedded so `hcp seed demo` works from any directory.
pub const DIRECTORY_JSON: &str = include_str!("../../../deploy/demo/directory.json");

/// The demo directory, parsed.
pub static DIRECTORY: LazyLock<DirectoryData> =
    LazyLock::new(|| serde_json::from_str(DIRECTORY_JSON).expect("deploy/demo/directory.json is valid"));

/// A demo operator account.
pub struct DemoAccount {
    /// Login.
    pub username: &'static str,
    /// Shown name.
    pub name: &'static str,
    /// Role.
    pub role: &'static str,
    /// A handler's department.
    pub department: Option<&'static str>,
    /// A supervisor's region.
    pub region: Option<&'static str>,
}

/// The demo city's operators: one per role, handlers for two departments.
pub const ACCOUNTS: &[DemoAccount] = &[
    DemoAccount { username: "admin", name: "系统管理员", role: "admin", department: None, region: None },
    DemoAccount {
        username: "dc", name: "示范市督查员", role: "supervisor", department: None, region: Some("449900")
    },
    DemoAccount {
        username: "sj", name: "市场监管局经办人", role: "handler", department: Some("D-SJ"), region: None
    },
    DemoAccount { username: "ga", name: "公安局经办人", role: "handler", department: Some("D-GA"), region: None },
    DemoAccount { username: "hf", name: "回访专员", role: "callback", department: None, region: None },
    DemoAccount { username: "sh", name: "审计员", role: "auditor", department: None, region: None },
];

/// Each window's regular staff member (the one its evaluator reports), by window id.
pub const HOME_STAFF: &[(&str, &str)] = &[
    ("W-SMZX-01", "S-1001"),
    ("W-SMZX-02", "S-1002"),
    ("W-SMZX-03", "S-1003"),
    ("W-SMZX-04", "S-1004"),
    ("W-SMZX-09", "S-1005"),
    ("W-FT-01", "S-2001"),
    ("W-FT-02", "S-2002"),
    ("W-FT-08", "S-2003"),
];

/// The sign-in roster of one Beijing day: everyone at their home window 08:30–12:00 and
/// 13:30–18:00, except that in the afternoon 周婷 (S-1006) takes 综合受理1号窗 and its regular
/// 陈晓琳 (S-1001) moves to 综合受理2号窗 while 林志强 (S-1002) is off.
pub fn roster_for_day(day: DateTime<Utc>) -> Vec<RosterEntry> {
    let at = |h: i64, m: i64| time::day_start(day) + Duration::hours(h) + Duration::minutes(m);
    let spell = |w: &str, s: &str, from: DateTime<Utc>, to: DateTime<Utc>| RosterEntry {
        window_id: w.into(),
        staff_id: s.into(),
        signed_in_at: from,
        signed_out_at: Some(to),
    };
    let mut out = Vec::new();
    for &(w, s) in HOME_STAFF {
        out.push(spell(w, s, at(8, 30), at(12, 0)));
        let afternoon = match w {
            "W-SMZX-01" => "S-1006",
            "W-SMZX-02" => "S-1001",
            _ => s,
        };
        out.push(spell(w, afternoon, at(13, 30), at(18, 0)));
    }
    out
}

const BAD_COMMENTS: &[&str] =
    &["排队等了一个多小时", "材料要求前后说法不一致,跑了两趟", "工作人员态度冷淡", "系统一直卡顿"];

fn grade(rng: &mut SmallRng) -> i64 {
    match rng.gen_range(0..1000) {
        0..=779 => 5,
        780..=899 => 4,
        900..=954 => 3,
        955..=984 => 2,
        _ => 1,
    }
}

fn tags_of(negative: bool, class: Option<TagClass>) -> Vec<&'static str> {
    DIRECTORY
        .tags
        .iter()
        .filter(|t| t.negative == negative && class.is_none_or(|c| t.class == c))
        .map(|t| t.code.as_str())
        .collect()
}

/// A random, valid rating submission for record number `record` (also used by `hcp loadgen`).
pub fn random_input(rng: &mut SmallRng, record: String, rated_at: Option<DateTime<Utc>>) -> RatingInput {
    let d = &*DIRECTORY;
    let g = grade(rng);
    let mut input = RatingInput {
        service_record_no: Some(record),
        grade: Some(g),
        rated_at: rated_at.map(|t| t.with_timezone(&time::beijing())),
        ..Default::default()
    };
    let item = &d.service_items[rng.gen_range(0..d.service_items.len())];
    input.service_item_code = Some(item.code.clone());
    match rng.gen_range(0..100) {
        0..=69 => {
            let pickup = rng.gen_bool(0.35);
            let role = if pickup { WindowRole::Pickup } else { WindowRole::Acceptance };
            let candidates: Vec<_> = d
                .windows
                .iter()
                .filter(|w| {
                    (w.role == role || w.role == WindowRole::Both) && w.department_ids.contains(&item.department_id)
                })
                .collect();
            let w = candidates.get(rng.gen_range(0..candidates.len().max(1))).copied().unwrap_or(&d.windows[0]);
            input.channel = Some(if rng.gen_bool(0.85) { "window_evaluator" } else { "qr_code" }.into());
            input.stage = Some(if pickup { "pickup" } else { "acceptance" }.into());
            input.department_id = Some(item.department_id.clone());
            input.hall_id = Some(w.hall_id.clone());
            input.window_id = Some(w.id.clone());
            input.staff_id = HOME_STAFF.iter().find(|(win, _)| *win == w.id).map(|(_, s)| (*s).into());
            input.device_id = Some(format!("EVAL-{}", w.id));
        }
        70..=89 => {
            input.channel = Some(["app", "web", "mini_program", "sms"][rng.gen_range(0..4)].into());
            input.stage = Some("online".into());
            input.department_id = Some(item.department_id.clone());
        }
        _ => {
            input.channel = Some("hotline".into());
            input.stage = Some("hotline".into());
            input.department_id = Some(item.department_id.clone());
            input.staff_id = Some(format!("HL-{:03}", rng.gen_range(1..=12)));
        }
    }
    if g <= 2 {
        let class = [TagClass::Conduct, TagClass::Process, TagClass::Platform][rng.gen_range(0..3)];
        let pool = tags_of(true, Some(class));
        input.tags = Some(vec![pool[rng.gen_range(0..pool.len())].into()]);
        if rng.gen_bool(0.6) {
            input.comment = Some(BAD_COMMENTS[rng.gen_range(0..BAD_COMMENTS.len())].into());
        }
    } else if rng.gen_bool(0.3) {
        let pool = tags_of(false, None);
        input.tags = Some(vec![pool[rng.gen_range(0..pool.len())].into()]);
    }
    input.dimensions = dimension_grades(&input, g);
    input
}

/// About half the raters also grade the dimensions their channel offers, near their overall
/// grade. Drawn from the record number, not from `rng`, so the rest of a seeded day is the same
/// with or without dimensions.
fn dimension_grades(input: &RatingInput, grade: i64) -> Option<std::collections::BTreeMap<String, i64>> {
    let record = input.service_record_no.as_deref()?;
    let channel = input.channel.as_deref()?;
    let mut h =
        record.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    if h % 2 == 1 {
        return None;
    }
    let grades: std::collections::BTreeMap<String, i64> = DIRECTORY
        .dimensions
        .iter()
        .filter(|d| d.channels.iter().any(|c| c == channel))
        .map(|d| {
            h = h.rotate_right(7);
            (d.code.clone(), (grade + (h % 3) as i64 - 1).clamp(1, 5))
        })
        .collect();
    (!grades.is_empty()).then_some(grades)
}

/// `n` ratings spread over the service hours (08:30–18:00 Beijing) of the 24 hours before `end`.
pub fn day_of_ratings(n: usize, end: DateTime<Utc>, seed: u64) -> Vec<RatingSubmitted> {
    let day = time::day_start(end);
    let mut rng = SmallRng::seed_from_u64(seed ^ day.timestamp() as u64);
    let start = end - Duration::hours(24);
    let mut out = Vec::with_capacity(n);
    let mut i = 0u64;
    while out.len() < n {
        i += 1;
        let t = start + Duration::seconds(rng.gen_range(0..86_400));
        let local_minutes = t.with_timezone(&time::beijing()).hour() * 60 + t.with_timezone(&time::beijing()).minute();
        if !(510..1080).contains(&local_minutes) {
            continue;
        }
        let record = format!("DEMO{}{:06}", day.with_timezone(&time::beijing()).format("%Y%m%d"), i);
        let received = t + Duration::seconds(rng.gen_range(1..30));
        let input = random_input(&mut rng, record, Some(t));
        let ts =
            uuid::Timestamp::from_unix(uuid::NoContext, received.timestamp() as u64, received.timestamp_subsec_nanos());
        if let Ok(event) = input.validate(Uuid::new_v7(ts), received) {
            out.push(event);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcp_domain::directory::check_rows;
    use hcp_domain::{attribute, Directory};

    #[test]
    fn the_demo_directory_and_roster_are_valid() {
        let mut data = DIRECTORY.clone();
        assert!(check_rows(&Directory::default(), &data).is_empty(), "{:?}", check_rows(&Directory::default(), &data));
        data.roster = roster_for_day(Utc::now());
        assert!(check_rows(&Directory::default(), &data).is_empty());
    }

    #[test]
    fn demo_ratings_attribute_completely_against_the_demo_directory() {
        let end = Utc::now();
        let mut data = DIRECTORY.clone();
        data.roster = roster_for_day(end - Duration::days(1));
        data.roster.extend(roster_for_day(end));
        let dir = Directory::new(1, data);
        let ratings = day_of_ratings(500, end, 42);
        let flagged: Vec<_> = ratings
            .iter()
            .map(|r| attribute(&dir, r, r.rated_at))
            .filter(|a| a.is_flagged())
            .map(|a| a.flags)
            .collect();
        assert!(flagged.is_empty(), "{flagged:?}");
    }
}
