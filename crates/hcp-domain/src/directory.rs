//! The directory: who and what a rating can be attributed to (regions, departments, halls,
//! windows, devices, staff, service items, the window sign-in roster, the tag catalogue and the
//! catalogue of evaluation dimensions),
//! the per-row checks every write path shares, and [`Directory`], the immutable in-memory
//! snapshot the aggregator attributes against.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{time, FieldError, MAX_ID_CHARS};

/// 行政区划: an administrative region (a tree: province → city → district → street).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// 行政区划代码: 6 digits (county level and up) or 12 digits (statistical code).
    #[cfg_attr(feature = "openapi", schema(example = "440304"))]
    pub code: String,
    /// Name.
    #[cfg_attr(feature = "openapi", schema(example = "福田区"))]
    pub name: String,
    /// Parent region; none for a root.
    #[serde(default)]
    pub parent_code: Option<String>,
}

/// A department (a tree: a bureau and its sub-units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Department {
    /// Short id used in ratings.
    #[cfg_attr(feature = "openapi", schema(example = "D-GA"))]
    pub id: String,
    /// 统一社会信用代码 (18 characters, GB 32100-2015 check character), national `deptCode`.
    #[cfg_attr(feature = "openapi", schema(example = "11440300007542800X"))]
    pub uscc: String,
    /// Name.
    pub name: String,
    /// Parent department; none for a top-level one.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// The region it serves.
    pub region_code: String,
}

/// A service hall (政务服务大厅).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Hall {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The region it is in.
    pub region_code: String,
}

/// What a window does in the comprehensive-window model (前台综合受理、统一窗口出件).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WindowRole {
    /// Front-desk acceptance (受理) only.
    Acceptance,
    /// Unified pickup (出件) only.
    Pickup,
    /// Both stages.
    Both,
}

impl WindowRole {
    /// The wire / database name.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowRole::Acceptance => "acceptance",
            WindowRole::Pickup => "pickup",
            WindowRole::Both => "both",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [WindowRole::Acceptance, WindowRole::Pickup, WindowRole::Both].into_iter().find(|r| r.as_str() == s)
    }
}

/// A service window; a comprehensive window (综合窗口) serves several departments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Id.
    pub id: String,
    /// The hall it is in.
    pub hall_id: String,
    /// Name, e.g. 综合受理1号窗.
    pub name: String,
    /// Which stages it serves.
    pub role: WindowRole,
    /// Departments whose matters it handles (at least one).
    pub department_ids: Vec<String>,
}

/// What kind of device rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// 窗口评价器: the tablet at a window.
    Evaluator,
    /// 自助终端: a self-service terminal in a hall.
    Terminal,
}

impl DeviceKind {
    /// The wire / database name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Evaluator => "evaluator",
            DeviceKind::Terminal => "terminal",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [DeviceKind::Evaluator, DeviceKind::Terminal].into_iter().find(|k| k.as_str() == s)
    }
}

/// A rating device, bound to a window (evaluator) or only to a hall (terminal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Id.
    pub id: String,
    /// Evaluator or terminal.
    pub kind: DeviceKind,
    /// The hall it stands in.
    pub hall_id: String,
    /// The window it is bound to (evaluators).
    #[serde(default)]
    pub window_id: Option<String>,
}

/// A staff member: window staff or a 12345 hotline agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Staff {
    /// Id (national `proManager`).
    pub id: String,
    /// Name.
    pub name: String,
    /// The department they belong to.
    pub department_id: String,
}

/// A service item (事项), owned by one department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServiceItem {
    /// 事项编码 (national `taskCode`).
    pub code: String,
    /// 事项名称 (national `taskName`).
    pub name: String,
    /// Owning department.
    pub department_id: String,
}

/// One sign-in of a staff member at a window (窗口签到).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RosterEntry {
    /// The window.
    pub window_id: String,
    /// Who signed in.
    pub staff_id: String,
    /// When.
    pub signed_in_at: DateTime<Utc>,
    /// When they signed out; open while on duty.
    #[serde(default)]
    pub signed_out_at: Option<DateTime<Utc>>,
}

/// Who a tag holds responsible when it is given with a bad review (docs/domain.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TagClass {
    /// Service conduct (attitude, professionalism, waiting, one-time notification): the staff
    /// member and the window.
    Conduct,
    /// The matter or process (guide unclear, too many materials, too slow, policy): the
    /// department owning the service item.
    Process,
    /// The online platform or hall system (faults, outages): the platform.
    Platform,
}

impl TagClass {
    /// Every class.
    pub const ALL: [TagClass; 3] = [TagClass::Conduct, TagClass::Process, TagClass::Platform];

    /// The wire / database name.
    pub fn as_str(self) -> &'static str {
        match self {
            TagClass::Conduct => "conduct",
            TagClass::Process => "process",
            TagClass::Platform => "platform",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A tag of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Tag {
    /// Code as sent in ratings (`evalDetail`).
    pub code: String,
    /// zh-CN label shown to raters.
    pub name: String,
    /// Whom it concerns.
    pub class: TagClass,
    /// Whether it is a complaint (offered with grades 1–3) rather than praise.
    pub negative: bool,
}

/// An evaluation dimension (评价维度): besides the overall grade, a rating may grade each
/// dimension its channel offers (Shenzhen measures: 业务评价、服务评价 by channel scene; online:
/// 事项、办事指南、平台体验).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    /// Code as sent in ratings (`dimensions` keys; `evalDetail` as `code:grade`).
    #[cfg_attr(feature = "openapi", schema(example = "attitude"))]
    pub code: String,
    /// zh-CN label shown to raters.
    #[cfg_attr(feature = "openapi", schema(example = "服务态度"))]
    pub name: String,
    /// Whom its grade concerns, as a tag's class does: `conduct` counts for whoever served,
    /// `process` and `platform` not for the window or staff member.
    pub class: TagClass,
    /// The channels (wire names) that offer it, at least one; CSV: `web;app`.
    #[cfg_attr(feature = "openapi", schema(example = json!(["window_evaluator", "self_service_terminal"])))]
    pub channels: Vec<String>,
}

/// A directory as plain rows: what an import file holds and what a snapshot is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryData {
    /// Regions.
    #[serde(default)]
    pub regions: Vec<Region>,
    /// Departments.
    #[serde(default)]
    pub departments: Vec<Department>,
    /// Halls.
    #[serde(default)]
    pub halls: Vec<Hall>,
    /// Windows.
    #[serde(default)]
    pub windows: Vec<Window>,
    /// Devices.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Staff.
    #[serde(default)]
    pub staff: Vec<Staff>,
    /// Service items.
    #[serde(default)]
    pub service_items: Vec<ServiceItem>,
    /// Sign-in roster.
    #[serde(default)]
    pub roster: Vec<RosterEntry>,
    /// Tag catalogue.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Evaluation dimension catalogue.
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
}

/// The id of the onsite platform (the hall's own systems), for platform tags on window ratings.
pub const ONSITE_PLATFORM: &str = "onsite_system";

/// An immutable directory snapshot with the indexes attribution needs. Built once per directory
/// change; attributing a rating against it is a few hash lookups.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// The directory version this snapshot was read at.
    pub version: i64,
    pub(crate) regions: HashMap<String, Region>,
    pub(crate) departments: HashMap<String, Department>,
    pub(crate) halls: HashMap<String, Hall>,
    pub(crate) windows: HashMap<String, Window>,
    pub(crate) devices: HashMap<String, Device>,
    pub(crate) staff: HashMap<String, Staff>,
    pub(crate) items: HashMap<String, ServiceItem>,
    pub(crate) tags: HashMap<String, Tag>,
    pub(crate) dimensions: HashMap<String, Dimension>,
    /// Per window, its duty spells sorted by start.
    pub(crate) duty: HashMap<String, Vec<Spell>>,
}

/// A staff member's time at a window: (staff, start, effective end).
pub(crate) type Spell = (String, DateTime<Utc>, DateTime<Utc>);

impl Directory {
    /// Builds the snapshot. An open sign-in ends at the earliest of the staff member's next
    /// sign-in anywhere (nobody is at two windows) and the end of that Beijing day (a forgotten
    /// sign-out does not attribute tomorrow's ratings to them).
    pub fn new(version: i64, data: DirectoryData) -> Self {
        let mut by_staff: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
        for e in &data.roster {
            by_staff.entry(&e.staff_id).or_default().push(e.signed_in_at);
        }
        for v in by_staff.values_mut() {
            v.sort();
        }
        let mut duty: HashMap<String, Vec<Spell>> = HashMap::new();
        for e in &data.roster {
            let end = match e.signed_out_at {
                Some(out) => out,
                None => {
                    let day_end = time::day_start(e.signed_in_at) + Duration::days(1);
                    let next = by_staff
                        .get(e.staff_id.as_str())
                        .and_then(|v| v.iter().find(|&&t| t > e.signed_in_at).copied());
                    next.map_or(day_end, |n| n.min(day_end))
                }
            };
            duty.entry(e.window_id.clone()).or_default().push((e.staff_id.clone(), e.signed_in_at, end));
        }
        for spells in duty.values_mut() {
            spells.sort_by_key(|s| s.1);
        }
        fn index<T>(rows: Vec<T>, key: fn(&T) -> &String) -> HashMap<String, T> {
            rows.into_iter().map(|r| (key(&r).clone(), r)).collect()
        }
        Directory {
            version,
            regions: index(data.regions, |r| &r.code),
            departments: index(data.departments, |d| &d.id),
            halls: index(data.halls, |h| &h.id),
            windows: index(data.windows, |w| &w.id),
            devices: index(data.devices, |d| &d.id),
            staff: index(data.staff, |s| &s.id),
            items: index(data.service_items, |i| &i.code),
            tags: index(data.tags, |t| &t.code),
            dimensions: index(data.dimensions, |d| &d.code),
            duty,
        }
    }

    /// The staff member on duty at `window` at `at`: the latest sign-in whose spell covers it.
    pub fn on_duty(&self, window: &str, at: DateTime<Utc>) -> Option<&str> {
        self.duty
            .get(window)?
            .iter()
            .rev()
            .find(|(_, start, end)| *start <= at && at < *end)
            .map(|(s, _, _)| s.as_str())
    }

    /// `code` and its ancestors, nearest first (stops at a cycle or an unknown parent).
    pub fn region_path(&self, code: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = self.regions.get(code);
        while let Some(r) = cur {
            if out.contains(&r.code) {
                break;
            }
            out.push(r.code.clone());
            cur = r.parent_code.as_deref().and_then(|p| self.regions.get(p));
        }
        out
    }

    /// The class of a tag, if the catalogue knows it.
    pub fn tag_class(&self, code: &str) -> Option<TagClass> {
        self.tags.get(code).map(|t| t.class)
    }

    /// A dimension of the catalogue.
    pub fn dimension(&self, code: &str) -> Option<&Dimension> {
        self.dimensions.get(code)
    }

    /// A department by id.
    pub fn department(&self, id: &str) -> Option<&Department> {
        self.departments.get(id)
    }

    /// A window by id.
    pub fn window(&self, id: &str) -> Option<&Window> {
        self.windows.get(id)
    }

    /// A staff member by id.
    pub fn staff(&self, id: &str) -> Option<&Staff> {
        self.staff.get(id)
    }

    /// Row counts per kind, for logs.
    pub fn sizes(&self) -> [(&'static str, usize); 10] {
        [
            ("regions", self.regions.len()),
            ("departments", self.departments.len()),
            ("halls", self.halls.len()),
            ("windows", self.windows.len()),
            ("devices", self.devices.len()),
            ("staff", self.staff.len()),
            ("service_items", self.items.len()),
            ("roster", self.duty.values().map(Vec::len).sum()),
            ("tags", self.tags.len()),
            ("dimensions", self.dimensions.len()),
        ]
    }
}

/// The GB 32100-2015 alphabet of the unified social credit code (no I, O, S, V, Z).
const USCC_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// The check character of the first 17 characters of a unified social credit code.
pub fn uscc_check_char(first17: &str) -> Option<char> {
    if first17.chars().count() != 17 {
        return None;
    }
    let mut sum = 0;
    for (c, w) in first17.chars().zip(USCC_WEIGHTS) {
        sum += USCC_ALPHABET.find(c)? as u32 * w;
    }
    let check = (31 - sum % 31) % 31;
    USCC_ALPHABET.chars().nth(check as usize)
}

/// Whether `code` is a well-formed unified social credit code with a correct check character.
pub fn uscc_is_valid(code: &str) -> bool {
    code.len() == 18 && code.is_ascii() && uscc_check_char(&code[..17]) == code.chars().last()
}

fn field_err(field: &str, code: &'static str, zh: String, en: String) -> FieldError {
    FieldError::new(field, code, zh, en)
}

/// Checks a directory id or name field: present, 1..=64 characters (names up to 200), no
/// control characters, and no whitespace in ids.
pub fn check_text(errors: &mut Vec<FieldError>, field: &str, value: &str, is_id: bool) {
    let max = if is_id { MAX_ID_CHARS } else { 200 };
    let n = value.chars().count();
    if n == 0 || n > max {
        errors.push(field_err(
            field,
            "length",
            format!("{field} 长度须为 1 到 {max} 个字符"),
            format!("{field} must be 1 to {max} characters"),
        ));
    } else if value.chars().any(|c| c.is_control() || (is_id && c.is_whitespace())) {
        errors.push(field_err(
            field,
            "format",
            format!("{field} 不能包含控制字符{}", if is_id { "或空白" } else { "" }),
            format!("{field} must not contain control characters{}", if is_id { " or whitespace" } else { "" }),
        ));
    }
}

/// Checks a 行政区划代码: 6 or 12 digits.
pub fn check_region_code(errors: &mut Vec<FieldError>, field: &str, code: &str) {
    if !(code.len() == 6 || code.len() == 12) || !code.bytes().all(|b| b.is_ascii_digit()) {
        errors.push(field_err(
            field,
            "format",
            format!("{field} 须为 6 位或 12 位数字的行政区划代码,收到 “{code}”"),
            format!("{field} must be a 6- or 12-digit area code, got '{code}'"),
        ));
    }
}

/// Checks a unified social credit code, naming what is wrong with it.
pub fn check_uscc(errors: &mut Vec<FieldError>, field: &str, code: &str) {
    if code.chars().count() != 18 || !code.chars().all(|c| USCC_ALPHABET.contains(c)) {
        errors.push(field_err(
            field,
            "format",
            format!("{field} 须为 18 位统一社会信用代码(数字或大写字母,不含 I、O、S、V、Z),收到 “{code}”"),
            format!("{field} must be an 18-character unified social credit code, got '{code}'"),
        ));
    } else if !uscc_is_valid(code) {
        let expected = uscc_check_char(&code[..17]).unwrap_or('?');
        errors.push(field_err(
            field,
            "checksum",
            format!("{field} 校验位错误:“{code}” 的第 18 位应为 {expected}"),
            format!("{field} check character is wrong: '{code}' should end in {expected}"),
        ));
    }
}

/// A kind of directory row; also the admin API path segment and the import file section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// 行政区划.
    Regions,
    /// 部门.
    Departments,
    /// 大厅.
    Halls,
    /// 窗口.
    Windows,
    /// 设备.
    Devices,
    /// 工作人员.
    Staff,
    /// 事项.
    ServiceItems,
    /// 窗口签到.
    Roster,
    /// 评价标签.
    Tags,
    /// 评价维度.
    Dimensions,
}

impl EntityKind {
    /// Every kind, in the order an import writes them (referenced rows first).
    pub const ALL: [EntityKind; 10] = [
        EntityKind::Regions,
        EntityKind::Departments,
        EntityKind::Halls,
        EntityKind::Windows,
        EntityKind::Devices,
        EntityKind::Staff,
        EntityKind::ServiceItems,
        EntityKind::Roster,
        EntityKind::Tags,
        EntityKind::Dimensions,
    ];

    /// The wire name, which is also the table name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Regions => "regions",
            EntityKind::Departments => "departments",
            EntityKind::Halls => "halls",
            EntityKind::Windows => "windows",
            EntityKind::Devices => "devices",
            EntityKind::Staff => "staff",
            EntityKind::ServiceItems => "service_items",
            EntityKind::Roster => "roster",
            EntityKind::Tags => "tags",
            EntityKind::Dimensions => "dimensions",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// zh-CN name.
    pub fn label_zh(self) -> &'static str {
        match self {
            EntityKind::Regions => "行政区划",
            EntityKind::Departments => "部门",
            EntityKind::Halls => "大厅",
            EntityKind::Windows => "窗口",
            EntityKind::Devices => "设备",
            EntityKind::Staff => "工作人员",
            EntityKind::ServiceItems => "事项",
            EntityKind::Roster => "签到记录",
            EntityKind::Tags => "评价标签",
            EntityKind::Dimensions => "评价维度",
        }
    }

    /// The key column (the roster's key is window, staff and sign-in time).
    pub fn key_column(self) -> &'static str {
        match self {
            EntityKind::Regions | EntityKind::ServiceItems | EntityKind::Tags | EntityKind::Dimensions => "code",
            _ => "id",
        }
    }
}

/// The failing fields of one row of an import or an admin write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Which section.
    pub kind: EntityKind,
    /// Index of the row within its section (0-based).
    pub index: usize,
    /// The row's id or code as given (empty if missing).
    pub id: String,
    /// What is wrong.
    pub errors: Vec<FieldError>,
}

/// One row of a directory kind, as the checks see it: its kind, its key, and the checks of its
/// fields and references. Each kind's rules live in its one implementation.
pub trait DirectoryRow {
    /// The section it belongs to.
    const KIND: EntityKind;
    /// The row's id or code as reported (a roster entry's window/staff/sign-in time).
    fn key(&self) -> String;
    /// Pushes what is wrong with this row to `e`; `refs` resolves references (and notices
    /// duplicates within the file).
    fn check(&self, refs: &mut References, e: &mut Vec<FieldError>);
}

/// What a row's references may resolve to: the existing directory and the rows being checked
/// with it; and the keys seen so far in the file (duplicates).
pub struct References {
    regions: std::collections::HashSet<String>,
    departments: std::collections::HashSet<String>,
    halls: std::collections::HashSet<String>,
    window_halls: HashMap<String, String>,
    staff: std::collections::HashSet<String>,
    usccs: HashMap<String, String>,
    seen: std::collections::HashSet<(EntityKind, String)>,
}

impl References {
    /// The references of `existing` together with those `data` adds.
    fn new(existing: &Directory, data: &DirectoryData) -> Self {
        let mut window_halls: HashMap<String, String> =
            existing.windows.values().map(|w| (w.id.clone(), w.hall_id.clone())).collect();
        window_halls.extend(data.windows.iter().map(|w| (w.id.clone(), w.hall_id.clone())));
        References {
            regions: existing.regions.keys().cloned().chain(data.regions.iter().map(|r| r.code.clone())).collect(),
            departments: existing
                .departments
                .keys()
                .cloned()
                .chain(data.departments.iter().map(|d| d.id.clone()))
                .collect(),
            halls: existing.halls.keys().cloned().chain(data.halls.iter().map(|h| h.id.clone())).collect(),
            window_halls,
            staff: existing.staff.keys().cloned().chain(data.staff.iter().map(|s| s.id.clone())).collect(),
            usccs: existing.departments.values().map(|d| (d.uscc.clone(), d.id.clone())).collect(),
            seen: std::collections::HashSet::new(),
        }
    }

    /// The checks every named row starts with: its key (`key_field`: an id, no whitespace), its
    /// name, and that the key is not repeated in the file.
    fn named(&mut self, e: &mut Vec<FieldError>, kind: EntityKind, (key_field, key): (&str, &str), name: &str) {
        check_text(e, key_field, key, true);
        check_text(e, "name", name, false);
        self.duplicate(e, kind, key_field, key);
    }

    /// Whether a row of `kind` with key `id` exists (kinds no row refers to: never).
    fn contains(&self, kind: EntityKind, id: &str) -> bool {
        match kind {
            EntityKind::Regions => self.regions.contains(id),
            EntityKind::Departments => self.departments.contains(id),
            EntityKind::Halls => self.halls.contains(id),
            EntityKind::Windows => self.window_halls.contains_key(id),
            EntityKind::Staff => self.staff.contains(id),
            EntityKind::Devices
            | EntityKind::ServiceItems
            | EntityKind::Roster
            | EntityKind::Tags
            | EntityKind::Dimensions => false,
        }
    }

    /// Reports `field` unless `id` names a row of `kind`.
    fn require(&self, e: &mut Vec<FieldError>, field: &str, kind: EntityKind, id: &str) {
        if !self.contains(kind, id) {
            missing(e, field, kind, id);
        }
    }

    /// Reports `field` of a row of `kind` with key `id` when that key was seen before in the file.
    fn duplicate(&mut self, e: &mut Vec<FieldError>, kind: EntityKind, field: &str, id: &str) {
        if !self.seen.insert((kind, id.to_string())) {
            e.push(field_err(
                field,
                "duplicate",
                format!("{field} “{id}” 在文件中重复出现"),
                format!("{field} '{id}' appears more than once in the file"),
            ));
        }
    }
}

/// Reports that `field` refers to a row of `kind` that does not exist.
fn missing(e: &mut Vec<FieldError>, field: &str, kind: EntityKind, id: &str) {
    e.push(field_err(
        field,
        "unknown_reference",
        format!("{field} 引用的{} “{id}” 不存在", kind.label_zh()),
        format!("{field} refers to {} '{id}', which does not exist", kind.as_str()),
    ));
}

/// Reports a row that names itself as its own parent.
fn own_parent(e: &mut Vec<FieldError>, field: &str, zh: &str, en: &str) {
    e.push(field_err(field, "cycle", zh.into(), en.into()));
}

impl DirectoryRow for Region {
    const KIND: EntityKind = EntityKind::Regions;
    fn key(&self) -> String {
        self.code.clone()
    }
    fn check(&self, refs: &mut References, e: &mut Vec<FieldError>) {
        check_region_code(e, "code", &self.code);
        check_text(e, "name", &self.name, false);
        refs.duplicate(e, Self::KIND, "code", &self.code);
        if let Some(p) = &self.parent_code {
            if p == &self.code {
                own_parent(e, "parent_code", "上级区划不能是自身", "a region cannot be its own parent");
            } else {
                refs.require(e, "parent_code", EntityKind::Regions, p);
            }
        }
    }
}

impl DirectoryRow for Department {
    const KIND: EntityKind = EntityKind::Departments;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn check(&self, refs: &mut References, e: &mut Vec<FieldError>) {
        check_text(e, "id", &self.id, true);
        check_uscc(e, "uscc", &self.uscc);
        check_text(e, "name", &self.name, false);
        refs.duplicate(e, Self::KIND, "id", &self.id);
        match refs.usccs.insert(self.uscc.clone(), self.id.clone()) {
            Some(other) if other != self.id => e.push(field_err(
                "uscc",
                "duplicate",
                format!("统一社会信用代码 {} 已属于部门 “{other}”", self.uscc),
                format!("uscc {} already belongs to department '{other}'", self.uscc),
            )),
            _ => {}
        }
        if let Some(p) = &self.parent_id {
            if p == &self.id {
                own_parent(e, "parent_id", "上级部门不能是自身", "a department cannot be its own parent");
            } else {
                refs.require(e, "parent_id", EntityKind::Departments, p);
            }
        }
        refs.require(e, "region_code", EntityKind::Regions, &self.region_code);
    }
}

impl DirectoryRow for Hall {
    const KIND: EntityKind = EntityKind::Halls;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn check(&self, refs: &mut References, e: &mut Vec<FieldError>) {
        refs.named(e, Self::KIND, ("id", &self.id), &self.name);
        refs.require(e, "region_code", EntityKind::Regions, &self.region_code);
    }
}

impl DirectoryRow for Window {
    const KIND: EntityKind = EntityKind::Windows;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn check(&self, refs: &mut References, e: &mut Vec<FieldError>) {
        refs.named(e, Self::KIND, ("id", &self.id), &self.name);
        refs.require(e, "hall_id", EntityKind::Halls, &self.hall_id);
        if self.department_ids.is_empty() {
            e.push(field_err(
                "department_ids",
                "required",
                "窗口须至少服务一个部门".into(),
                "a window serves at least one department".into(),
            ));
        }
        for (j, d) in self.department_ids.iter().enumerate() {
            refs.require(e, &format!("department_ids[{j}]"), EntityKind::Departments, d);
        }
    }
}

impl DirectoryRow for Device {
    const KIND: EntityKind = EntityKind::Devices;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn check(&self, refs: &mut References, e: &mut Vec<FieldError>) {
        check_text(e, "id", &self.id, true);
        refs.duplicate(e, Self::KIND, "id", &self.id);
        refs.require(e, "hall_id", EntityKind::Halls, &self.hall_id);
        match (&self.window_id, self.kind) {
            (None, DeviceKind::Evaluator) => e.push(field_err(
                "window_id",
                "required",
                "窗口评价器须绑定窗口".into(),
                "an evaluator is bound to a window".into(),
            )),
            (Some(w), _) => match refs.window_halls.get(w) {
                None => missing(e, "window_id", EntityKind::Windows, w),
                Some(h) if h != &self.hall_id => e.push(field_err(
                    "window_id",
                    "hall_mismatch",
                    format!("窗口 “{w}” 属于大厅 “{h}”,与设备所在大厅 “{}” 不一致", self.hall_id),
                    format!("window '{w}' is in hall '{h}', not in the device's hall '{}'", self.hall_id),
                )),
                Some(_) => {}
            },
            (None, DeviceKind::Terminal) => {}
        }
    }
}

impl DirectoryRow for Staff {
    const KIND: EntityKind = EntityKind::Staff;
    fn key(&self) -> String {
        self.id.clone()
    }
    fn check(&self, refs: &mut References, e: &mut Vec<FieldError>) {
        refs.named(e, Self::KIND, ("id", &self.id), &self.name);
        refs.require(e, "department_id", EntityKind::Departments, &self.department_id);
    }
}

impl DirectoryRow for ServiceItem {
    const KIND: EntityKind = EntityKind::ServiceItems;
    fn key(&self) -> String {
        self.code.clone()
    }
    fn check(&self, refs: &mut References, e: &mut Vec<FieldError>) {
        refs.named(e, Self::KIND, ("code", &self.code), &self.name);
        refs.require(e, "department_id", EntityKind::Departments, &self.department_id);
    }
}

impl DirectoryRow for RosterEntry {
    const KIND: EntityKind = EntityKind::Roster;
    fn key(&self) -> String {
        format!("{}/{}/{}", self.window_id, self.staff_id, self.signed_in_at.to_rfc3339())
    }
    fn check(&self, refs: &mut References, e: &mut Vec<FieldError>) {
        refs.require(e, "window_id", EntityKind::Windows, &self.window_id);
        refs.require(e, "staff_id", EntityKind::Staff, &self.staff_id);
        if self.signed_out_at.is_some_and(|o| o <= self.signed_in_at) {
            e.push(field_err(
                "signed_out_at",
                "before_sign_in",
                "签退时间须晚于签到时间".into(),
                "signed_out_at must be after signed_in_at".into(),
            ));
        }
        refs.duplicate(e, Self::KIND, "signed_in_at", &self.key());
    }
}

impl DirectoryRow for Tag {
    const KIND: EntityKind = EntityKind::Tags;
    fn key(&self) -> String {
        self.code.clone()
    }
    fn check(&self, refs: &mut References, e: &mut Vec<FieldError>) {
        if !crate::rating::is_code(&self.code) {
            e.push(field_err(
                "code",
                "format",
                format!("标签编码须为 1 到 {} 位字母、数字、下划线、点或连字符", crate::rating::MAX_TAG_CHARS),
                format!("tag codes are 1 to {} letters, digits, '_', '.' or '-'", crate::rating::MAX_TAG_CHARS),
            ));
        }
        check_text(e, "name", &self.name, false);
        refs.duplicate(e, Self::KIND, "code", &self.code);
    }
}

impl DirectoryRow for Dimension {
    const KIND: EntityKind = EntityKind::Dimensions;
    fn key(&self) -> String {
        self.code.clone()
    }
    fn check(&self, refs: &mut References, e: &mut Vec<FieldError>) {
        if !crate::rating::is_code(&self.code) {
            e.push(field_err(
                "code",
                "format",
                format!("维度编码须为 1 到 {} 位字母、数字、下划线、点或连字符", crate::rating::MAX_TAG_CHARS),
                format!("dimension codes are 1 to {} letters, digits, '_', '.' or '-'", crate::rating::MAX_TAG_CHARS),
            ));
        }
        check_text(e, "name", &self.name, false);
        refs.duplicate(e, Self::KIND, "code", &self.code);
        if self.channels.is_empty() {
            e.push(field_err(
                "channels",
                "required",
                "评价维度须至少用于一个评价渠道".into(),
                "a dimension is offered on at least one channel".into(),
            ));
        }
        for (j, c) in self.channels.iter().enumerate() {
            let field = format!("channels[{j}]");
            match crate::Channel::parse(c) {
                None => e.push(field_err(
                    &field,
                    "unknown_value",
                    format!("未知的评价渠道 “{c}”"),
                    format!("unknown channel '{c}'"),
                )),
                // The default rating is the system's, not a rater's: it grades no dimension.
                Some(crate::Channel::SystemDefault) => e.push(field_err(
                    &field,
                    "not_rated_by_people",
                    "系统默认评价不评价维度".into(),
                    "system default ratings grade no dimension".into(),
                )),
                Some(_) if self.channels[..j].contains(c) => e.push(field_err(
                    &field,
                    "duplicate",
                    format!("评价渠道 “{c}” 重复"),
                    format!("channel '{c}' is listed twice"),
                )),
                Some(_) => {}
            }
        }
    }
}

impl Dimension {
    /// Whether ratings over `channel` may grade it.
    pub fn offered_on(&self, channel: crate::Channel) -> bool {
        self.channels.iter().any(|c| c == channel.as_str())
    }
}

/// Checks `rows` of one kind, adding a [`RowError`] for each bad one to `out`.
fn check_kind<T: DirectoryRow>(rows: &[T], refs: &mut References, out: &mut Vec<RowError>) {
    for (index, row) in rows.iter().enumerate() {
        let mut errors = Vec::new();
        row.check(refs, &mut errors);
        if !errors.is_empty() {
            out.push(RowError { kind: T::KIND, index, id: row.key(), errors });
        }
    }
}

/// Checks every row of `data`: its fields, duplicate ids within the file, and that every
/// reference resolves to a row of `existing` or of `data` itself. All rows are checked, so a
/// report names every bad row at once.
pub fn check_rows(existing: &Directory, data: &DirectoryData) -> Vec<RowError> {
    let mut refs = References::new(existing, data);
    let mut out = Vec::new();
    check_kind(&data.regions, &mut refs, &mut out);
    check_kind(&data.departments, &mut refs, &mut out);
    check_kind(&data.halls, &mut refs, &mut out);
    check_kind(&data.windows, &mut refs, &mut out);
    check_kind(&data.devices, &mut refs, &mut out);
    check_kind(&data.staff, &mut refs, &mut out);
    check_kind(&data.service_items, &mut refs, &mut out);
    check_kind(&data.roster, &mut refs, &mut out);
    check_kind(&data.tags, &mut refs, &mut out);
    check_kind(&data.dimensions, &mut refs, &mut out);
    out
}

impl DirectoryData {
    /// Rows per kind.
    pub fn counts(&self) -> Vec<(EntityKind, usize)> {
        EntityKind::ALL.iter().map(|&k| (k, self.len_of(k))).collect()
    }

    /// Rows of one kind.
    pub fn len_of(&self, kind: EntityKind) -> usize {
        match kind {
            EntityKind::Regions => self.regions.len(),
            EntityKind::Departments => self.departments.len(),
            EntityKind::Halls => self.halls.len(),
            EntityKind::Windows => self.windows.len(),
            EntityKind::Devices => self.devices.len(),
            EntityKind::Staff => self.staff.len(),
            EntityKind::ServiceItems => self.service_items.len(),
            EntityKind::Roster => self.roster.len(),
            EntityKind::Tags => self.tags.len(),
            EntityKind::Dimensions => self.dimensions.len(),
        }
    }

    /// Total rows.
    pub fn total(&self) -> usize {
        EntityKind::ALL.iter().map(|&k| self.len_of(k)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn uscc_check_character_follows_gb_32100() {
        // Published codes of real organisations.
        for code in ["91350100M000100Y43", "91440300708461136T"] {
            assert!(uscc_is_valid(code), "{code}");
        }
        assert!(!uscc_is_valid("91350100M000100Y44"));
        let mut errors = Vec::new();
        check_uscc(&mut errors, "uscc", "91350100M000100Y44");
        check_uscc(&mut errors, "uscc", "9135010OM000100Y43");
        assert_eq!(errors.iter().map(|e| e.code).collect::<Vec<_>>(), vec!["checksum", "format"]);
        assert!(errors[0].message.contains("应为 3"));
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        // Beijing 2026-11-20 h:m.
        Utc.with_ymd_and_hms(2026, 11, 20, h, m, 0).unwrap() - Duration::hours(8)
    }

    #[test]
    fn open_sign_ins_end_at_the_next_sign_in_or_the_end_of_the_day() {
        let entry = |w: &str, s: &str, inn, out| RosterEntry {
            window_id: w.into(),
            staff_id: s.into(),
            signed_in_at: inn,
            signed_out_at: out,
        };
        let data = DirectoryData {
            roster: vec![
                entry("W1", "S1", at(8, 30), None), // moves to W2 at 12:05 without signing out
                entry("W2", "S1", at(12, 5), Some(at(17, 0))),
                entry("W1", "S2", at(13, 0), None), // forgets to sign out
            ],
            ..Default::default()
        };
        let d = Directory::new(1, data);
        assert_eq!(d.on_duty("W1", at(8, 29)), None);
        assert_eq!(d.on_duty("W1", at(9, 0)), Some("S1"));
        assert_eq!(d.on_duty("W1", at(12, 30)), None);
        assert_eq!(d.on_duty("W2", at(12, 30)), Some("S1"));
        assert_eq!(d.on_duty("W2", at(17, 0)), None);
        assert_eq!(d.on_duty("W1", at(15, 0)), Some("S2"));
        assert_eq!(d.on_duty("W1", at(23, 59)), Some("S2"));
        assert_eq!(d.on_duty("W1", at(23, 59) + Duration::minutes(2)), None, "next day");
    }

    #[test]
    fn dimension_rows_name_a_code_and_the_channels_that_offer_them() {
        let dim = |code: &str, channels: &[&str]| Dimension {
            code: code.into(),
            name: "服务态度".into(),
            class: TagClass::Conduct,
            channels: channels.iter().map(|c| c.to_string()).collect(),
        };
        let data = DirectoryData {
            dimensions: vec![
                dim("service_attitude", &["window_evaluator", "qr_code"]),
                dim("bad code", &[]),
                dim("service_attitude", &["fax", "system_default", "web", "web"]),
            ],
            ..Default::default()
        };
        let errors = check_rows(&Directory::default(), &data);
        let got: Vec<(usize, Vec<(&str, &str)>)> =
            errors.iter().map(|r| (r.index, r.errors.iter().map(|e| (e.field.as_str(), e.code)).collect())).collect();
        assert_eq!(
            got,
            vec![
                (1, vec![("code", "format"), ("channels", "required")]),
                (
                    2,
                    vec![
                        ("code", "duplicate"),
                        ("channels[0]", "unknown_value"),
                        ("channels[1]", "not_rated_by_people"),
                        ("channels[3]", "duplicate"),
                    ]
                ),
            ]
        );
        let d = Directory::new(1, DirectoryData { dimensions: vec![data.dimensions[0].clone()], ..Default::default() });
        let offered = d.dimension("service_attitude").unwrap();
        assert!(offered.offered_on(crate::Channel::QrCode) && !offered.offered_on(crate::Channel::Web));
    }

    #[test]
    fn check_rows_names_every_bad_row_and_resolves_references_within_the_file() {
        let data: DirectoryData = serde_json::from_value(serde_json::json!({
            "regions": [{"code": "440300", "name": "示范市"}, {"code": "4403", "name": "短"}],
            "departments": [
                {"id": "D1", "uscc": "91440300708461136T", "name": "甲局", "region_code": "440300"},
                {"id": "D2", "uscc": "91440300708461136X", "name": "乙局", "region_code": "999999"}
            ],
            "halls": [{"id": "H1", "name": "大厅", "region_code": "440300"}],
            "windows": [
                {"id": "W1", "hall_id": "H1", "name": "1号窗", "role": "both", "department_ids": ["D1", "D9"]},
                {"id": "W1", "hall_id": "H1", "name": "重复", "role": "both", "department_ids": ["D1"]}
            ],
            "devices": [{"id": "E1", "kind": "evaluator", "hall_id": "H1"}],
            "staff": [{"id": "S1", "name": "张三", "department_id": "D1"}],
            "roster": [{"window_id": "W1", "staff_id": "S1", "signed_in_at": "2026-11-20T01:00:00Z"}]
        }))
        .unwrap();
        let errors = check_rows(&Directory::default(), &data);
        type Got<'a> = Vec<(EntityKind, usize, Vec<(&'a str, &'a str)>)>;
        let got: Got = errors
            .iter()
            .map(|r| (r.kind, r.index, r.errors.iter().map(|e| (e.field.as_str(), e.code)).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                (EntityKind::Regions, 1, vec![("code", "format")]),
                (EntityKind::Departments, 1, vec![("uscc", "checksum"), ("region_code", "unknown_reference")]),
                (EntityKind::Windows, 0, vec![("department_ids[1]", "unknown_reference")]),
                (EntityKind::Windows, 1, vec![("id", "duplicate")]),
                (EntityKind::Devices, 0, vec![("window_id", "required")]),
            ]
        );
        // The same rows are fine once the existing directory has what they refer to.
        let existing = Directory::new(1, data.clone());
        let fixed = DirectoryData { staff: data.staff.clone(), roster: data.roster.clone(), ..Default::default() };
        assert!(check_rows(&existing, &fixed).is_empty());
    }
}
