//! Attribution (谁办理谁负责, docs/domain.md §4): which department, hall, window, staff member, service
//! item, region and platform a rating belongs to, and who answers for it when it is a 差评.
//!
//! [`attribute`] is a pure function of a [`Directory`] snapshot and the rating. Its result is
//! stored on the rating as a snapshot: later directory changes do not rewrite history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::ALL_ID;
use crate::directory::{Directory, TagClass, ONSITE_PLATFORM};
use crate::{Channel, RatingSubmitted, Scope, Stage};

/// Why a rating could not be attributed completely. The rating is kept and counted where it
/// can be; the flags list it for operators until the directory is fixed and it is re-attributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttributionFlag {
    /// The window id is not in the directory.
    UnknownWindow,
    /// A window-stage rating names no window, and its device is bound to none.
    NoWindow,
    /// The device id is not in the directory.
    UnknownDevice,
    /// The hall could not be determined.
    UnknownHall,
    /// The staff id reported is not in the directory.
    UnknownStaff,
    /// Nobody was signed in at the window at the stage time and the device reported no staff.
    NoStaffOnDuty,
    /// A hotline rating names no hotline agent.
    NoHotlineAgent,
    /// The service item code is not in the directory.
    UnknownServiceItem,
    /// The responsible department could not be determined.
    UnknownDepartment,
    /// The window does not serve the service item's department.
    ItemNotServedByWindow,
    /// The stage does not match the window's role (e.g. pickup rated at an acceptance-only window).
    StageNotServedByWindow,
}

impl AttributionFlag {
    /// Every flag.
    pub const ALL: [AttributionFlag; 11] = [
        AttributionFlag::UnknownWindow,
        AttributionFlag::NoWindow,
        AttributionFlag::UnknownDevice,
        AttributionFlag::UnknownHall,
        AttributionFlag::UnknownStaff,
        AttributionFlag::NoStaffOnDuty,
        AttributionFlag::NoHotlineAgent,
        AttributionFlag::UnknownServiceItem,
        AttributionFlag::UnknownDepartment,
        AttributionFlag::ItemNotServedByWindow,
        AttributionFlag::StageNotServedByWindow,
    ];

    /// The wire / database name.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributionFlag::UnknownWindow => "unknown_window",
            AttributionFlag::NoWindow => "no_window",
            AttributionFlag::UnknownDevice => "unknown_device",
            AttributionFlag::UnknownHall => "unknown_hall",
            AttributionFlag::UnknownStaff => "unknown_staff",
            AttributionFlag::NoStaffOnDuty => "no_staff_on_duty",
            AttributionFlag::NoHotlineAgent => "no_hotline_agent",
            AttributionFlag::UnknownServiceItem => "unknown_service_item",
            AttributionFlag::UnknownDepartment => "unknown_department",
            AttributionFlag::ItemNotServedByWindow => "item_not_served_by_window",
            AttributionFlag::StageNotServedByWindow => "stage_not_served_by_window",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// On what ground a party answers for a 差评.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// A service-conduct tag: the staff member (or hotline agent) and the window.
    Conduct,
    /// A matter/process tag: the service item's owning department.
    Process,
    /// A platform tag: the platform.
    Platform,
    /// No classified tag (text only, or tags the catalogue does not know): whoever served.
    General,
}

/// One party answering for a 差评, and why. Issue-5 work orders are assigned from these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Responsibility {
    /// Why.
    pub basis: Basis,
    /// The department that answers (the staff member's own department for conduct).
    pub department_id: Option<String>,
    /// The window, for conduct.
    pub window_id: Option<String>,
    /// The staff member or hotline agent, for conduct.
    pub staff_id: Option<String>,
    /// The platform, for platform tags.
    pub platform: Option<String>,
}

/// The attribution snapshot stored with a rating.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attribution {
    /// The department whose service was rated (the service item's owner where known).
    pub department_id: Option<String>,
    /// The hall.
    pub hall_id: Option<String>,
    /// The window.
    pub window_id: Option<String>,
    /// The staff member on duty (window) or the hotline agent.
    pub staff_id: Option<String>,
    /// The service item, when the directory knows it.
    pub service_item_code: Option<String>,
    /// The region (of the hall, else of the department).
    pub region_code: Option<String>,
    /// The platform: the online channel, or [`ONSITE_PLATFORM`] for hall ratings.
    pub platform: Option<String>,
    /// Distinct classes of the rating's catalogued tags.
    pub tag_classes: Vec<TagClass>,
    /// Who answers for it; empty unless it is a 差评.
    pub responsible: Vec<Responsibility>,
    /// What could not be attributed; empty when complete.
    pub flags: Vec<AttributionFlag>,
    /// The directory version attributed against.
    pub directory_version: i64,
    /// Every aggregate row this rating counts in (scope, id); stored beside the snapshot as
    /// `agg_scopes`, not inside it.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub scopes: Vec<(Scope, String)>,
    /// Per dimension graded (code order), the aggregate rows its grade counts in: the rating's
    /// scopes, less the window and staff member for a `process` or `platform` dimension (a low
    /// 办事指南 grade is not held against whoever served), and less the tag classes. Stored
    /// beside the snapshot as `dim_scopes`, so taking the rating out subtracts exactly these.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub dimension_scopes: Vec<(String, Vec<(Scope, String)>)>,
}

impl Attribution {
    /// Whether something could not be attributed.
    pub fn is_flagged(&self) -> bool {
        !self.flags.is_empty()
    }

    /// The scopes as `scope:id` strings, the form stored with the rating.
    pub fn scope_keys(&self) -> Vec<String> {
        self.scopes.iter().map(|(s, id)| format!("{}:{id}", s.as_str())).collect()
    }

    /// The dimension scopes as `code/scope:id` strings, the form stored with the rating
    /// (`dim_scopes`; a dimension code never contains `/`).
    pub fn dimension_scope_keys(&self) -> Vec<String> {
        self.dimension_scopes
            .iter()
            .flat_map(|(code, scopes)| scopes.iter().map(move |(s, id)| format!("{code}/{}:{id}", s.as_str())))
            .collect()
    }
}

/// Parses a stored `code/scope:id` dimension scope key.
pub fn parse_dimension_scope_key(key: &str) -> Option<(String, (Scope, String))> {
    let (code, scope) = key.split_once('/')?;
    Some((code.to_string(), parse_scope_key(scope)?))
}

/// Schema id of [`RatingAttributed`] (`schemas/rating-attributed.v1.json`).
pub const RATING_ATTRIBUTED_SCHEMA: &str = "hcp.rating.attributed.v1";

/// The event on `hcp.rating.attributed.v1`: a stored rating and whom it was attributed to.
/// Published once when the rating is stored and again whenever a re-attribution changes it;
/// consumers keep the latest per `rating.rating_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingAttributed {
    /// The rating as submitted.
    pub rating: RatingSubmitted,
    /// The attribution snapshot.
    pub attribution: Attribution,
    /// When it was attributed.
    pub attributed_at: DateTime<Utc>,
    /// Whether this replaces an earlier attribution of the same rating.
    pub reattributed: bool,
}

/// Parses a stored `scope:id` key.
pub fn parse_scope_key(key: &str) -> Option<(Scope, String)> {
    let (scope, id) = key.split_once(':')?;
    Some((Scope::parse(scope)?, id.to_string()))
}

/// Attributes `rating` against `dir`. `stage_time` is when the rated stage happened (the
/// rating time until service records say otherwise): the roster is read at that moment.
pub fn attribute(dir: &Directory, rating: &RatingSubmitted, stage_time: DateTime<Utc>) -> Attribution {
    let mut a = Attribution { directory_version: dir.version, ..Default::default() };
    let item = rating.service_item_code.as_deref().and_then(|c| dir.items.get(c));
    if rating.service_item_code.is_some() && item.is_none() {
        a.flags.push(AttributionFlag::UnknownServiceItem);
    }
    a.service_item_code = item.map(|i| i.code.clone());
    let reported_dept = rating.department_id.as_deref().filter(|d| dir.departments.contains_key(*d));

    match rating.stage {
        Stage::Acceptance | Stage::Pickup => {
            let item_dept = item.map(|i| i.department_id.as_str());
            attribute_window(dir, rating, stage_time, item_dept, reported_dept, &mut a)
        }
        Stage::Online => {
            a.department_id = item.map(|i| i.department_id.clone()).or(reported_dept.map(String::from));
            a.platform = Some(rating.channel.as_str().to_string());
        }
        Stage::Hotline => {
            match rating.staff_id.as_deref() {
                None => a.flags.push(AttributionFlag::NoHotlineAgent),
                Some(s) if dir.staff.contains_key(s) => a.staff_id = Some(s.to_string()),
                Some(_) => a.flags.push(AttributionFlag::UnknownStaff),
            }
            // A transferred case names its handling department; otherwise the item's owner, or
            // the hotline centre the agent belongs to.
            a.department_id = reported_dept
                .map(String::from)
                .or_else(|| item.map(|i| i.department_id.clone()))
                .or_else(|| a.staff_id.as_deref().and_then(|s| dir.staff.get(s)).map(|s| s.department_id.clone()));
        }
    }
    if a.department_id.is_none() {
        a.flags.push(AttributionFlag::UnknownDepartment);
    }
    a.region_code = a
        .hall_id
        .as_deref()
        .and_then(|h| dir.halls.get(h))
        .map(|h| h.region_code.clone())
        .or_else(|| a.department_id.as_deref().and_then(|d| dir.departments.get(d)).map(|d| d.region_code.clone()));

    let mut classes: Vec<TagClass> = rating.tags.iter().filter_map(|t| dir.tag_class(t)).collect();
    classes.sort();
    classes.dedup();
    a.tag_classes = classes;
    if rating.grade.is_bad() {
        a.responsible = responsibilities(dir, rating, &a);
    }
    a.flags.sort();
    a.flags.dedup();
    a.scopes = scopes(dir, rating, &a);
    a.dimension_scopes = dimension_scopes(dir, rating, &a.scopes);
    a
}

/// Where each dimension grade of `rating` counts (see [`Attribution::dimension_scopes`]). A
/// dimension the catalogue does not know (a rating sent without a key, or a dimension removed
/// since) counts like a `conduct` one: for whoever served, as a tag without a class does.
fn dimension_scopes(
    dir: &Directory,
    rating: &RatingSubmitted,
    scopes: &[(Scope, String)],
) -> Vec<(String, Vec<(Scope, String)>)> {
    rating
        .dimensions
        .keys()
        .map(|code| {
            let for_server = dir.dimension(code).is_none_or(|d| d.class == TagClass::Conduct);
            let counted = scopes
                .iter()
                .filter(|(s, _)| match s {
                    Scope::TagClass => false,
                    Scope::Window | Scope::Staff => for_server,
                    _ => true,
                })
                .cloned()
                .collect();
            (code.clone(), counted)
        })
        .collect()
}

fn attribute_window(
    dir: &Directory,
    rating: &RatingSubmitted,
    stage_time: DateTime<Utc>,
    item_dept: Option<&str>,
    reported_dept: Option<&str>,
    a: &mut Attribution,
) {
    let device = rating.device_id.as_deref().and_then(|d| dir.devices.get(d));
    if rating.device_id.is_some() && device.is_none() {
        a.flags.push(AttributionFlag::UnknownDevice);
    }
    let window_id = rating.window_id.as_deref().or(device.and_then(|d| d.window_id.as_deref()));
    let window = window_id.and_then(|w| dir.windows.get(w));
    match (window_id, window) {
        (Some(_), None) => a.flags.push(AttributionFlag::UnknownWindow),
        // A self-service terminal stands in a hall, not at a window.
        (None, _) if rating.channel != Channel::SelfServiceTerminal => a.flags.push(AttributionFlag::NoWindow),
        _ => {}
    }
    a.window_id = window.map(|w| w.id.clone());
    a.hall_id = window
        .map(|w| w.hall_id.clone())
        .or_else(|| device.map(|d| d.hall_id.clone()))
        .or_else(|| rating.hall_id.clone().filter(|h| dir.halls.contains_key(h)));
    if a.hall_id.is_none() {
        a.flags.push(AttributionFlag::UnknownHall);
    }
    if let Some(w) = window {
        let serves = match w.role {
            crate::directory::WindowRole::Both => true,
            crate::directory::WindowRole::Acceptance => rating.stage == Stage::Acceptance,
            crate::directory::WindowRole::Pickup => rating.stage == Stage::Pickup,
        };
        if !serves {
            a.flags.push(AttributionFlag::StageNotServedByWindow);
        }
        // The roster decides; the device's report is the fallback when it is silent.
        a.staff_id = match dir.on_duty(&w.id, stage_time) {
            Some(s) => Some(s.to_string()),
            None => match rating.staff_id.as_deref() {
                Some(s) if dir.staff.contains_key(s) => Some(s.to_string()),
                Some(_) => {
                    a.flags.push(AttributionFlag::UnknownStaff);
                    None
                }
                None => {
                    a.flags.push(AttributionFlag::NoStaffOnDuty);
                    None
                }
            },
        };
    }
    if let (Some(w), Some(d)) = (window, item_dept) {
        if !w.department_ids.iter().any(|x| x == d) {
            a.flags.push(AttributionFlag::ItemNotServedByWindow);
        }
    }
    let staff_dept = a.staff_id.as_deref().and_then(|s| dir.staff.get(s)).map(|s| s.department_id.as_str());
    // The item's owner; else the department the client named, if the window serves it; else
    // the window's only department; else the department of whoever served.
    a.department_id = item_dept
        .or_else(|| reported_dept.filter(|d| window.is_none_or(|w| w.department_ids.iter().any(|x| x == d))))
        .or_else(|| window.filter(|w| w.department_ids.len() == 1).map(|w| w.department_ids[0].as_str()))
        .or(staff_dept)
        .map(String::from);
    a.platform = Some(ONSITE_PLATFORM.to_string());
}

fn responsibilities(dir: &Directory, rating: &RatingSubmitted, a: &Attribution) -> Vec<Responsibility> {
    let staff_dept = a.staff_id.as_deref().and_then(|s| dir.staff.get(s)).map(|s| s.department_id.clone());
    let served_by = |basis| Responsibility {
        basis,
        department_id: staff_dept.clone().or_else(|| a.department_id.clone()),
        window_id: a.window_id.clone(),
        staff_id: a.staff_id.clone(),
        platform: None,
    };
    let owner = |basis| Responsibility {
        basis,
        department_id: a.department_id.clone(),
        window_id: None,
        staff_id: None,
        platform: None,
    };
    let mut out = Vec::new();
    for class in &a.tag_classes {
        out.push(match class {
            TagClass::Conduct if rating.stage == Stage::Online => owner(Basis::Conduct),
            TagClass::Conduct => served_by(Basis::Conduct),
            TagClass::Process => owner(Basis::Process),
            TagClass::Platform => Responsibility {
                basis: Basis::Platform,
                department_id: None,
                window_id: None,
                staff_id: None,
                platform: a.platform.clone(),
            },
        });
    }
    if out.is_empty() {
        out.push(match rating.stage {
            Stage::Online => owner(Basis::General),
            // A transferred hotline case answers through the handling department.
            Stage::Hotline if rating.department_id.is_some() => owner(Basis::General),
            _ => served_by(Basis::General),
        });
    }
    out
}

/// Whether the staff member and window count this rating. A 差评 whose tags all point elsewhere
/// (process or platform) is not held against whoever served.
fn counts_for_server(rating: &RatingSubmitted, a: &Attribution) -> bool {
    !rating.grade.is_bad() || a.responsible.iter().any(|r| matches!(r.basis, Basis::Conduct | Basis::General))
}

fn scopes(dir: &Directory, rating: &RatingSubmitted, a: &Attribution) -> Vec<(Scope, String)> {
    let mut s = vec![
        (Scope::All, ALL_ID.to_string()),
        (Scope::Channel, rating.channel.as_str().to_string()),
        (Scope::Stage, rating.stage.as_str().to_string()),
    ];
    let mut push = |scope, id: &Option<String>| {
        if let Some(id) = id {
            s.push((scope, id.clone()));
        }
    };
    push(Scope::Department, &a.department_id);
    push(Scope::Hall, &a.hall_id);
    push(Scope::ServiceItem, &a.service_item_code);
    push(Scope::Platform, &a.platform);
    if counts_for_server(rating, a) {
        push(Scope::Window, &a.window_id);
        push(Scope::Staff, &a.staff_id);
    }
    if let Some(region) = &a.region_code {
        for code in dir.region_path(region) {
            s.push((Scope::Region, code));
        }
    }
    for class in &a.tag_classes {
        s.push((Scope::TagClass, class.as_str().to_string()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::*;
    use crate::{AssessNumber, Grade};
    use chrono::{Duration, TimeZone};
    use uuid::Uuid;

    /// Beijing 2026-11-20 h:m.
    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, h, m, 0).unwrap() - Duration::hours(8)
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    fn dir() -> Directory {
        let region =
            |code: &str, parent: Option<&str>| Region { code: s(code), name: s(code), parent_code: parent.map(s) };
        let dept = |id: &str, region: &str| Department {
            id: s(id),
            uscc: s("91440300708461136T"),
            name: s(id),
            parent_id: None,
            region_code: s(region),
        };
        let window = |id: &str, role, depts: &[&str]| Window {
            id: s(id),
            hall_id: s("H1"),
            name: s(id),
            role,
            department_ids: depts.iter().copied().map(s).collect(),
        };
        let staff = |id: &str, d: &str| Staff { id: s(id), name: s(id), department_id: s(d) };
        let item = |code: &str, d: &str| ServiceItem { code: s(code), name: s(code), department_id: s(d) };
        let duty = |w: &str, st: &str, inn, out| RosterEntry {
            window_id: s(w),
            staff_id: s(st),
            signed_in_at: inn,
            signed_out_at: out,
        };
        let tag = |code: &str, class, negative| Tag { code: s(code), name: s(code), class, negative };
        Directory::new(
            7,
            DirectoryData {
                regions: vec![
                    region("440000", None),
                    region("440300", Some("440000")),
                    region("440304", Some("440300")),
                ],
                departments: vec![
                    dept("D-SJ", "440300"),
                    dept("D-RS", "440300"),
                    dept("D-ZWFW", "440304"),
                    dept("D-12345", "440300"),
                ],
                halls: vec![Hall { id: s("H1"), name: s("福田区政务服务中心"), region_code: s("440304") }],
                windows: vec![
                    window("W1", WindowRole::Acceptance, &["D-SJ", "D-RS"]),
                    window("W2", WindowRole::Acceptance, &["D-SJ"]),
                    window("WP", WindowRole::Pickup, &["D-SJ", "D-RS"]),
                ],
                devices: vec![
                    Device { id: s("E1"), kind: DeviceKind::Evaluator, hall_id: s("H1"), window_id: Some(s("W1")) },
                    Device { id: s("T1"), kind: DeviceKind::Terminal, hall_id: s("H1"), window_id: None },
                ],
                staff: vec![staff("S1", "D-ZWFW"), staff("S2", "D-SJ"), staff("S3", "D-ZWFW"), staff("A1", "D-12345")],
                service_items: vec![item("I-SJ", "D-SJ"), item("I-RS", "D-RS")],
                roster: vec![
                    // S1 opens W1, moves to W2 at 12:05 without signing out; S3 takes W1 at 13:00.
                    duty("W1", "S1", at(8, 30), None),
                    duty("W2", "S1", at(12, 5), None),
                    duty("W1", "S3", at(13, 0), Some(at(17, 0))),
                    duty("WP", "S2", at(8, 30), Some(at(17, 30))),
                ],
                tags: vec![
                    tag("attitude_poor", TagClass::Conduct, true),
                    tag("long_wait", TagClass::Conduct, true),
                    tag("too_many_materials", TagClass::Process, true),
                    tag("system_fault", TagClass::Platform, true),
                    tag("attitude_good", TagClass::Conduct, false),
                ],
                dimensions: vec![
                    Dimension {
                        code: s("attitude"),
                        name: s("服务态度"),
                        class: TagClass::Conduct,
                        channels: vec![s("window_evaluator")],
                    },
                    Dimension {
                        code: s("guide"),
                        name: s("办事指南"),
                        class: TagClass::Process,
                        channels: vec![s("window_evaluator"), s("web")],
                    },
                    Dimension {
                        code: s("platform_ux"),
                        name: s("平台体验"),
                        class: TagClass::Platform,
                        channels: vec![s("web")],
                    },
                ],
            },
        )
    }

    fn rating(channel: Channel, stage: Stage, time: DateTime<Utc>) -> RatingSubmitted {
        RatingSubmitted {
            rating_id: Uuid::nil(),
            channel,
            stage,
            service_record_no: s("R1"),
            service_item_code: None,
            department_id: None,
            hall_id: None,
            window_id: None,
            staff_id: None,
            device_id: None,
            grade: Grade::new(5).unwrap(),
            tags: vec![],
            dimensions: Default::default(),
            comment: None,
            rated_at: time,
            received_at: time,
            assess_number: AssessNumber::First,
            rater: None,
        }
    }

    /// What a case expects: department, hall, window, staff, region, flags.
    struct Want {
        dept: Option<&'static str>,
        hall: Option<&'static str>,
        window: Option<&'static str>,
        staff: Option<&'static str>,
        region: Option<&'static str>,
        flags: Vec<AttributionFlag>,
    }

    fn want(
        dept: Option<&'static str>,
        hall: Option<&'static str>,
        window: Option<&'static str>,
        staff: Option<&'static str>,
        region: Option<&'static str>,
        flags: &[AttributionFlag],
    ) -> Want {
        Want { dept, hall, window, staff, region, flags: flags.to_vec() }
    }

    #[test]
    fn table_of_attribution_rules() {
        use AttributionFlag::*;
        use Channel::*;
        use Stage::*;
        let d = dir();
        let win = |w: &str, item: Option<&str>, t| {
            let mut r = rating(WindowEvaluator, Acceptance, t);
            r.window_id = Some(s(w));
            r.service_item_code = item.map(s);
            r
        };
        let with = |mut r: RatingSubmitted, f: fn(&mut RatingSubmitted)| {
            f(&mut r);
            r
        };
        let h1 = Some("H1");
        let fut = Some("440304");
        let cases: Vec<(&str, RatingSubmitted, Want)> = vec![
            (
                "window: roster decides the staff, item decides the department",
                win("W1", Some("I-SJ"), at(9, 0)),
                want(Some("D-SJ"), h1, Some("W1"), Some("S1"), fut, &[]),
            ),
            (
                "staff moved windows mid-day: W1 after the move is S3's",
                win("W1", Some("I-SJ"), at(13, 30)),
                want(Some("D-SJ"), h1, Some("W1"), Some("S3"), fut, &[]),
            ),
            (
                "staff moved windows mid-day: W2 after the move is S1's",
                win("W2", Some("I-SJ"), at(13, 30)),
                want(Some("D-SJ"), h1, Some("W2"), Some("S1"), fut, &[]),
            ),
            (
                "comprehensive window, second department's item",
                win("W1", Some("I-RS"), at(9, 0)),
                want(Some("D-RS"), h1, Some("W1"), Some("S1"), fut, &[]),
            ),
            (
                "comprehensive window, no item: the department the client named, which it serves",
                with(win("W1", None, at(9, 0)), |r| r.department_id = Some(s("D-RS"))),
                want(Some("D-RS"), h1, Some("W1"), Some("S1"), fut, &[]),
            ),
            (
                "comprehensive window, no item, a department it does not serve: whoever served",
                with(win("W1", None, at(9, 0)), |r| r.department_id = Some(s("D-12345"))),
                want(Some("D-ZWFW"), h1, Some("W1"), Some("S1"), fut, &[]),
            ),
            (
                "single-department window, no item",
                win("W2", None, at(13, 0)),
                want(Some("D-SJ"), h1, Some("W2"), Some("S1"), fut, &[]),
            ),
            (
                "pickup is attributed to the pickup window's staff, not the acceptance one",
                with(win("WP", Some("I-SJ"), at(10, 0)), |r| r.stage = Pickup),
                want(Some("D-SJ"), h1, Some("WP"), Some("S2"), fut, &[]),
            ),
            (
                "pickup rated at an acceptance-only window is flagged",
                with(win("W1", Some("I-SJ"), at(10, 0)), |r| r.stage = Pickup),
                want(Some("D-SJ"), h1, Some("W1"), Some("S1"), fut, &[StageNotServedByWindow]),
            ),
            (
                "roster silent: the staff id the device reported",
                with(win("W2", Some("I-SJ"), at(9, 0)), |r| r.staff_id = Some(s("S2"))),
                want(Some("D-SJ"), h1, Some("W2"), Some("S2"), fut, &[]),
            ),
            (
                "roster silent, reported staff unknown",
                with(win("W2", Some("I-SJ"), at(9, 0)), |r| r.staff_id = Some(s("S-404"))),
                want(Some("D-SJ"), h1, Some("W2"), None, fut, &[UnknownStaff]),
            ),
            (
                "roster silent, nobody reported",
                win("W2", Some("I-SJ"), at(9, 0)),
                want(Some("D-SJ"), h1, Some("W2"), None, fut, &[NoStaffOnDuty]),
            ),
            (
                "roster wins over the device's report",
                with(win("W1", Some("I-SJ"), at(9, 0)), |r| r.staff_id = Some(s("S2"))),
                want(Some("D-SJ"), h1, Some("W1"), Some("S1"), fut, &[]),
            ),
            (
                "unknown window: kept, flagged, counted for what is known",
                with(win("W-404", Some("I-SJ"), at(9, 0)), |r| r.hall_id = Some(s("H1"))),
                want(Some("D-SJ"), h1, None, None, fut, &[UnknownWindow]),
            ),
            (
                "unknown window and nothing else: department unknown too",
                win("W-404", None, at(9, 0)),
                want(None, None, None, None, None, &[UnknownDepartment, UnknownHall, UnknownWindow]),
            ),
            (
                "window from the evaluator device",
                with(rating(WindowEvaluator, Acceptance, at(9, 0)), |r| {
                    r.device_id = Some(s("E1"));
                    r.service_item_code = Some(s("I-SJ"));
                }),
                want(Some("D-SJ"), h1, Some("W1"), Some("S1"), fut, &[]),
            ),
            (
                "self-service terminal: hall only",
                with(rating(SelfServiceTerminal, Acceptance, at(9, 0)), |r| {
                    r.device_id = Some(s("T1"));
                    r.service_item_code = Some(s("I-RS"));
                }),
                want(Some("D-RS"), h1, None, None, fut, &[]),
            ),
            (
                "item the window does not serve",
                win("W2", Some("I-RS"), at(13, 0)),
                want(Some("D-RS"), h1, Some("W2"), Some("S1"), fut, &[ItemNotServedByWindow]),
            ),
            (
                "unknown item at a window",
                win("W2", Some("I-404"), at(13, 0)),
                want(Some("D-SJ"), h1, Some("W2"), Some("S1"), fut, &[UnknownServiceItem]),
            ),
            (
                "hotline: the agent and the hotline centre",
                with(rating(Channel::Hotline, Stage::Hotline, at(9, 0)), |r| r.staff_id = Some(s("A1"))),
                want(Some("D-12345"), None, None, Some("A1"), Some("440300"), &[]),
            ),
            (
                "hotline, transferred case: the agent and the handling department",
                with(rating(Channel::Hotline, Stage::Hotline, at(9, 0)), |r| {
                    r.staff_id = Some(s("A1"));
                    r.department_id = Some(s("D-RS"));
                }),
                want(Some("D-RS"), None, None, Some("A1"), Some("440300"), &[]),
            ),
            (
                "hotline without an agent",
                with(rating(Channel::Hotline, Stage::Hotline, at(9, 0)), |r| r.department_id = Some(s("D-RS"))),
                want(Some("D-RS"), None, None, None, Some("440300"), &[NoHotlineAgent]),
            ),
            (
                "hotline with an unknown agent",
                with(rating(Channel::Hotline, Stage::Hotline, at(9, 0)), |r| r.staff_id = Some(s("A-404"))),
                want(None, None, None, None, None, &[UnknownStaff, UnknownDepartment]),
            ),
            (
                "online: the item's department",
                with(rating(App, Online, at(9, 0)), |r| r.service_item_code = Some(s("I-SJ"))),
                want(Some("D-SJ"), None, None, None, Some("440300"), &[]),
            ),
            (
                "online with an unknown item and no department",
                with(rating(Web, Online, at(9, 0)), |r| r.service_item_code = Some(s("I-404"))),
                want(None, None, None, None, None, &[UnknownServiceItem, UnknownDepartment]),
            ),
        ];
        for (name, r, w) in cases {
            let a = attribute(&d, &r, r.rated_at);
            let got = (
                a.department_id.as_deref(),
                a.hall_id.as_deref(),
                a.window_id.as_deref(),
                a.staff_id.as_deref(),
                a.region_code.as_deref(),
            );
            assert_eq!(got, (w.dept, w.hall, w.window, w.staff, w.region), "{name}");
            let mut flags = w.flags.clone();
            flags.sort();
            assert_eq!(a.flags, flags, "{name}");
            assert_eq!(a.directory_version, 7, "{name}");
            assert!(a.responsible.is_empty(), "{name}: good ratings have no responsible party");
        }
    }

    fn bad(mut r: RatingSubmitted, tags: &[&str]) -> RatingSubmitted {
        r.grade = Grade::new(1).unwrap();
        r.tags = tags.iter().copied().map(s).collect();
        r.comment = Some(s("差"));
        r
    }

    type Party<'a> = (Basis, Option<&'a str>, Option<&'a str>, Option<&'a str>);

    fn bases(a: &Attribution) -> Vec<Party<'_>> {
        a.responsible
            .iter()
            .map(|r| (r.basis, r.department_id.as_deref(), r.staff_id.as_deref(), r.platform.as_deref()))
            .collect()
    }

    fn has(a: &Attribution, scope: Scope, id: &str) -> bool {
        a.scopes.iter().any(|(s, i)| *s == scope && i == id)
    }

    #[test]
    fn bad_review_responsibility_follows_the_tag_class() {
        let d = dir();
        let mut w1 = rating(Channel::WindowEvaluator, Stage::Acceptance, at(9, 0));
        w1.window_id = Some(s("W1"));
        w1.service_item_code = Some(s("I-RS"));

        // Conduct and process tags on one rating: the staff member (through their own
        // department) and the item's owning department both answer.
        let a = attribute(&d, &bad(w1.clone(), &["attitude_poor", "too_many_materials", "long_wait"]), at(9, 0));
        assert_eq!(
            bases(&a),
            vec![(Basis::Conduct, Some("D-ZWFW"), Some("S1"), None), (Basis::Process, Some("D-RS"), None, None)]
        );
        assert_eq!(a.tag_classes, vec![TagClass::Conduct, TagClass::Process]);
        assert!(has(&a, Scope::Staff, "S1") && has(&a, Scope::Window, "W1"));
        assert!(has(&a, Scope::TagClass, "conduct") && has(&a, Scope::TagClass, "process"));

        // Process only: not held against the window or the staff member.
        let a = attribute(&d, &bad(w1.clone(), &["too_many_materials"]), at(9, 0));
        assert_eq!(bases(&a), vec![(Basis::Process, Some("D-RS"), None, None)]);
        assert!(!has(&a, Scope::Staff, "S1") && !has(&a, Scope::Window, "W1"));
        assert!(has(&a, Scope::Department, "D-RS") && has(&a, Scope::Hall, "H1"));

        // Platform only: the onsite system.
        let a = attribute(&d, &bad(w1.clone(), &["system_fault"]), at(9, 0));
        assert_eq!(bases(&a), vec![(Basis::Platform, None, None, Some(ONSITE_PLATFORM))]);
        assert!(!has(&a, Scope::Staff, "S1"));

        // Text only (or uncatalogued tags): whoever served.
        let a = attribute(&d, &bad(w1.clone(), &["not_in_catalogue"]), at(9, 0));
        assert_eq!(bases(&a), vec![(Basis::General, Some("D-ZWFW"), Some("S1"), None)]);
        assert!(has(&a, Scope::Staff, "S1"));

        // Online: conduct goes to the item's department, platform tags to the app.
        let mut online = rating(Channel::App, Stage::Online, at(9, 0));
        online.service_item_code = Some(s("I-SJ"));
        let a = attribute(&d, &bad(online, &["attitude_poor", "system_fault"]), at(9, 0));
        assert_eq!(
            bases(&a),
            vec![(Basis::Conduct, Some("D-SJ"), None, None), (Basis::Platform, None, None, Some("app"))]
        );

        // Hotline, transferred, text only: the handling department.
        let mut hl = rating(Channel::Hotline, Stage::Hotline, at(9, 0));
        hl.staff_id = Some(s("A1"));
        hl.department_id = Some(s("D-RS"));
        let a = attribute(&d, &bad(hl.clone(), &[]), at(9, 0));
        assert_eq!(bases(&a), vec![(Basis::General, Some("D-RS"), None, None)]);
        // Hotline, agent's conduct: the agent through the hotline centre.
        let a = attribute(&d, &bad(hl, &["attitude_poor"]), at(9, 0));
        assert_eq!(bases(&a), vec![(Basis::Conduct, Some("D-12345"), Some("A1"), None)]);
    }

    #[test]
    fn scopes_cover_every_attributed_unit_and_the_region_tree() {
        let d = dir();
        let mut r = rating(Channel::WindowEvaluator, Stage::Acceptance, at(9, 0));
        r.window_id = Some(s("W1"));
        r.service_item_code = Some(s("I-SJ"));
        r.tags = vec![s("attitude_good")];
        let a = attribute(&d, &r, at(9, 0));
        let mut keys = a.scope_keys();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "all:all",
                "channel:window_evaluator",
                "department:D-SJ",
                "hall:H1",
                "platform:onsite_system",
                "region:440000",
                "region:440300",
                "region:440304",
                "service_item:I-SJ",
                "staff:S1",
                "stage:acceptance",
                "tag_class:conduct",
                "window:W1",
            ]
        );
        for k in &keys {
            let (scope, id) = parse_scope_key(k).unwrap();
            assert_eq!(format!("{}:{id}", scope.as_str()), *k);
        }
    }

    #[test]
    fn dimension_grades_count_where_their_class_points() {
        let d = dir();
        let mut r = rating(Channel::WindowEvaluator, Stage::Acceptance, at(9, 0));
        r.window_id = Some(s("W1"));
        r.service_item_code = Some(s("I-SJ"));
        r.tags = vec![s("attitude_good")];
        let g = |v| Grade::new(v).unwrap();
        r.dimensions = [(s("attitude"), g(5)), (s("guide"), g(2)), (s("unknown_dim"), g(4))].into();
        let a = attribute(&d, &r, at(9, 0));
        let of = |code: &str| -> Vec<String> {
            let (_, scopes) = a.dimension_scopes.iter().find(|(c, _)| c == code).unwrap();
            let mut keys: Vec<String> = scopes.iter().map(|(s, id)| format!("{}:{id}", s.as_str())).collect();
            keys.sort();
            keys
        };
        // Conduct: every unit of the rating (its tag classes aside), the window and staff too.
        let everyone: Vec<String> = a.scope_keys().into_iter().filter(|k| !k.starts_with("tag_class:")).collect();
        let mut everyone_sorted = everyone.clone();
        everyone_sorted.sort();
        assert_eq!(of("attitude"), everyone_sorted);
        assert!(of("attitude").contains(&s("staff:S1")) && of("attitude").contains(&s("window:W1")));
        // Process: not held against whoever served; the item's department and the item count it.
        let guide = of("guide");
        assert!(!guide.iter().any(|k| k.starts_with("staff:") || k.starts_with("window:")), "{guide:?}");
        assert!(guide.contains(&s("department:D-SJ")) && guide.contains(&s("service_item:I-SJ")));
        assert!(guide.contains(&s("all:all")) && guide.contains(&s("region:440000")));
        // A code the catalogue does not know counts for whoever served, like an unclassed tag.
        assert_eq!(of("unknown_dim"), everyone_sorted);
        // The stored form round-trips, in code order.
        let keys = a.dimension_scope_keys();
        assert_eq!(keys.len(), 3 * everyone.len() - 2);
        assert!(keys[0].starts_with("attitude/"));
        for k in &keys {
            let (code, (scope, id)) = parse_dimension_scope_key(k).unwrap();
            assert_eq!(format!("{code}/{}:{id}", scope.as_str()), *k);
        }
        // A platform dimension on an online rating counts for the platform and the item's owner.
        let mut online = rating(Channel::Web, Stage::Online, at(9, 0));
        online.service_item_code = Some(s("I-RS"));
        online.dimensions = [(s("platform_ux"), g(1))].into();
        let a = attribute(&d, &online, at(9, 0));
        let keys: Vec<String> = a.dimension_scope_keys();
        assert!(keys.contains(&s("platform_ux/platform:web")) && keys.contains(&s("platform_ux/department:D-RS")));
        // No dimension graded, no dimension rows.
        assert!(attribute(&d, &rating(Channel::Web, Stage::Online, at(9, 0)), at(9, 0)).dimension_scopes.is_empty());
    }

    #[test]
    fn a_later_directory_does_not_change_a_stored_attribution_but_reattribution_can() {
        let r = {
            let mut r = rating(Channel::WindowEvaluator, Stage::Acceptance, at(9, 0));
            r.window_id = Some(s("W-NEW"));
            r
        };
        let before = attribute(&dir(), &r, at(9, 0));
        assert_eq!(
            before.flags,
            vec![AttributionFlag::UnknownWindow, AttributionFlag::UnknownHall, AttributionFlag::UnknownDepartment]
        );
        let mut data = DirectoryData::default();
        data.halls.push(Hall { id: s("H1"), name: s("H1"), region_code: s("440304") });
        data.windows.push(Window {
            id: s("W-NEW"),
            hall_id: s("H1"),
            name: s("新窗口"),
            role: WindowRole::Both,
            department_ids: vec![s("D-SJ")],
        });
        data.staff.push(Staff { id: s("S9"), name: s("S9"), department_id: s("D-SJ") });
        data.roster.push(RosterEntry {
            window_id: s("W-NEW"),
            staff_id: s("S9"),
            signed_in_at: at(8, 0),
            signed_out_at: None,
        });
        let fixed = Directory::new(8, data);
        let after = attribute(&fixed, &r, at(9, 0));
        assert!(after.flags.is_empty(), "{:?}", after.flags);
        assert_eq!((after.window_id.as_deref(), after.staff_id.as_deref()), (Some("W-NEW"), Some("S9")));
        assert_eq!(after.directory_version, 8);
    }
}
