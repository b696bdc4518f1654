//! A believable demo city (示范市): departments, halls, windows, staff, service items, and a day
//! of ratings with a realistic grade mix, both window stages, online and hotline channels.
//! Deterministic for a given seed and day, so re-seeding the same day changes nothing.

use chrono::{DateTime, Duration, Timelike, Utc};
use hcp_domain::{time, RatingInput, RatingSubmitted};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// A department: id, unified social credit code, name.
pub struct Department {
    /// Short id used in ratings.
    pub id: &'static str,
    /// 18-character unified social credit code.
    pub uscc: &'static str,
    /// Name.
    pub name: &'static str,
}

/// The demo departments.
pub const DEPARTMENTS: &[Department] = &[
    Department { id: "D-GA", uscc: "11440300007542800X", name: "示范市公安局" },
    Department { id: "D-SJ", uscc: "11440300MB2C92385R", name: "示范市市场监督管理局" },
    Department { id: "D-RS", uscc: "114403000075161640", name: "示范市人力资源和社会保障局" },
    Department {
        id: "D-ZR", uscc: "11440300MB2D11236E", name: "示范市规划和自然资源局(不动产登记中心)"
    },
    Department { id: "D-YB", uscc: "11440300MB2C95717Q", name: "示范市医疗保障局" },
    Department { id: "D-ZJ", uscc: "114403000075220286", name: "示范市住房和建设局" },
];

/// A window: id, hall, name, departments served (a comprehensive window serves several), stage role.
pub struct Window {
    /// Id.
    pub id: &'static str,
    /// Hall id.
    pub hall: &'static str,
    /// Name.
    pub name: &'static str,
    /// Departments served.
    pub departments: &'static [&'static str],
    /// Whether this is a unified pickup (出件) window rather than an acceptance window.
    pub pickup: bool,
}

/// The demo halls: id and name.
pub const HALLS: &[(&str, &str)] = &[("H-SMZX", "示范市市民中心政务服务大厅"), ("H-FT", "福华区政务服务中心")];

/// The demo windows.
pub const WINDOWS: &[Window] = &[
    Window {
        id: "W-SMZX-01", hall: "H-SMZX", name: "综合受理1号窗", departments: &["D-SJ", "D-RS"], pickup: false
    },
    Window {
        id: "W-SMZX-02",
        hall: "H-SMZX",
        name: "综合受理2号窗",
        departments: &["D-SJ", "D-RS", "D-YB"],
        pickup: false,
    },
    Window { id: "W-SMZX-03", hall: "H-SMZX", name: "不动产登记专窗", departments: &["D-ZR"], pickup: false },
    Window { id: "W-SMZX-04", hall: "H-SMZX", name: "户政专窗", departments: &["D-GA"], pickup: false },
    Window {
        id: "W-SMZX-09",
        hall: "H-SMZX",
        name: "统一出件窗",
        departments: &["D-SJ", "D-RS", "D-YB", "D-ZR", "D-GA", "D-ZJ"],
        pickup: true,
    },
    Window { id: "W-FT-01", hall: "H-FT", name: "综合受理1号窗", departments: &["D-SJ", "D-ZJ"], pickup: false },
    Window { id: "W-FT-02", hall: "H-FT", name: "综合受理2号窗", departments: &["D-RS", "D-YB"], pickup: false },
    Window {
        id: "W-FT-08",
        hall: "H-FT",
        name: "统一出件窗",
        departments: &["D-SJ", "D-ZJ", "D-RS", "D-YB"],
        pickup: true,
    },
];

/// Demo staff: id, name, department, home window.
pub const STAFF: &[(&str, &str, &str, &str)] = &[
    ("S-1001", "陈晓琳", "D-SJ", "W-SMZX-01"),
    ("S-1002", "林志强", "D-RS", "W-SMZX-02"),
    ("S-1003", "黄丽娟", "D-ZR", "W-SMZX-03"),
    ("S-1004", "张伟", "D-GA", "W-SMZX-04"),
    ("S-1005", "刘敏", "D-SJ", "W-SMZX-09"),
    ("S-2001", "王芳", "D-ZJ", "W-FT-01"),
    ("S-2002", "李娜", "D-YB", "W-FT-02"),
    ("S-2003", "赵磊", "D-RS", "W-FT-08"),
];

/// Demo service items (事项): code, name, owning department.
pub const ITEMS: &[(&str, &str, &str)] = &[
    ("11440300MB2C92385R4442010001000", "个体工商户设立登记", "D-SJ"),
    ("11440300MB2C92385R4442010002000", "有限责任公司变更登记", "D-SJ"),
    ("114403000075161640444201000300", "社会保障卡申领", "D-RS"),
    ("114403000075161640444201000400", "失业保险金申领", "D-RS"),
    ("11440300MB2D11236E444201000500", "不动产转移登记", "D-ZR"),
    ("11440300007542800X444201000600", "居民身份证换领", "D-GA"),
    ("11440300MB2C95717Q444201000700", "医保关系转移接续", "D-YB"),
    ("114403000075220286444201000800", "商品房预售许可", "D-ZJ"),
];

const CONDUCT_TAGS: &[&str] = &["attitude_poor", "not_professional", "long_wait", "no_one_time_notice"];
const PROCESS_TAGS: &[&str] = &["guide_unclear", "too_many_materials", "too_slow", "policy_unreasonable"];
const GOOD_TAGS: &[&str] = &["attitude_good", "efficient", "clear_guidance"];
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

/// A random, valid rating submission for record number `record` (also used by `hcp loadgen`).
pub fn random_input(rng: &mut SmallRng, record: String, rated_at: Option<DateTime<Utc>>) -> RatingInput {
    let g = grade(rng);
    let mut input = RatingInput {
        service_record_no: Some(record),
        grade: Some(g),
        rated_at: rated_at.map(|t| t.with_timezone(&time::beijing())),
        ..Default::default()
    };
    let (item, _, item_dept) = ITEMS[rng.gen_range(0..ITEMS.len())];
    input.service_item_code = Some(item.into());
    match rng.gen_range(0..100) {
        0..=69 => {
            let pickup = rng.gen_bool(0.35);
            let candidates: Vec<&Window> =
                WINDOWS.iter().filter(|w| w.pickup == pickup && w.departments.contains(&item_dept)).collect();
            let w = candidates.get(rng.gen_range(0..candidates.len().max(1))).copied().unwrap_or(&WINDOWS[0]);
            let staff = STAFF.iter().find(|s| s.3 == w.id).map(|s| s.0);
            input.channel = Some(if rng.gen_bool(0.85) { "window_evaluator" } else { "qr_code" }.into());
            input.stage = Some(if pickup { "pickup" } else { "acceptance" }.into());
            input.department_id = Some(item_dept.into());
            input.hall_id = Some(w.hall.into());
            input.window_id = Some(w.id.into());
            input.staff_id = staff.map(Into::into);
            input.device_id = Some(format!("EVAL-{}", w.id));
        }
        70..=89 => {
            input.channel = Some(["app", "web", "mini_program", "sms"][rng.gen_range(0..4)].into());
            input.stage = Some("online".into());
            input.department_id = Some(item_dept.into());
        }
        _ => {
            input.channel = Some("hotline".into());
            input.stage = Some("hotline".into());
            input.department_id = Some(item_dept.into());
            input.staff_id = Some(format!("HL-{:03}", rng.gen_range(1..=12)));
        }
    }
    if g <= 2 {
        let pool = if rng.gen_bool(0.5) { CONDUCT_TAGS } else { PROCESS_TAGS };
        input.tags = Some(vec![pool[rng.gen_range(0..pool.len())].into()]);
        if rng.gen_bool(0.6) {
            input.comment = Some(BAD_COMMENTS[rng.gen_range(0..BAD_COMMENTS.len())].into());
        }
    } else if rng.gen_bool(0.3) {
        input.tags = Some(vec![GOOD_TAGS[rng.gen_range(0..GOOD_TAGS.len())].into()]);
    }
    input
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
