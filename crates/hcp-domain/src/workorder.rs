//! The bad-review work order (差评工单) lifecycle as a pure state machine (docs/domain.md §5):
//! opened → claimed (签收) → contacted → verified (核实: 属实 / 不属实) → rectified (整改,
//! only when founded) → replied (反馈) → callback (回访): satisfied closes (办结), unsatisfied
//! reopens. Appeal (申诉) of a malicious or unrelated review goes to supervisor review (复核):
//! upheld ends the order (the rating leaves the statistics), rejected sends it back to the handler.
//! Escalation (督办) marks any open order without changing its state. Anything else is refused,
//! naming the current state and the actions it allows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::attribution::{Attribution, Basis};
use crate::calendar::{Deadline, WorkCalendar};
use crate::{time, Grade};

/// Where a work order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OrderState {
    /// Opened by the aggregator, waiting for the responsible unit.
    Opened,
    /// 签收: a handler took it.
    Claimed,
    /// The rater was contacted.
    Contacted,
    /// 核实: the complaint was found true (属实) or not (不属实).
    Verified {
        /// 属实.
        founded: bool,
    },
    /// 整改: the cause was fixed.
    Rectified,
    /// 反馈: the rater was told the outcome.
    Replied,
    /// 办结 after a satisfied callback.
    Closed,
    /// Reopened after an unsatisfied callback.
    Reopened,
    /// 申诉: waiting for the supervisor's review.
    Appealed,
    /// 复核 upheld: the rating is excluded from the statistics; the order ends.
    AppealUpheld,
}

/// What someone does to a work order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// 签收.
    Claim,
    /// Record the contact with the rater.
    Contact,
    /// 核实.
    Verify {
        /// 属实.
        founded: bool,
    },
    /// 整改.
    Rectify,
    /// 反馈.
    Reply,
    /// 回访 result.
    Callback {
        /// The rater is satisfied.
        satisfied: bool,
    },
    /// 申诉.
    Appeal,
    /// 复核: uphold the appeal.
    UpholdAppeal,
    /// 复核: reject the appeal.
    RejectAppeal,
    /// 督办.
    Escalate,
}

impl Action {
    /// The action's name without its data, as in API paths and refusals.
    pub fn name(self) -> &'static str {
        match self {
            Action::Claim => "claim",
            Action::Contact => "contact",
            Action::Verify { .. } => "verify",
            Action::Rectify => "rectify",
            Action::Reply => "reply",
            Action::Callback { .. } => "callback",
            Action::Appeal => "appeal",
            Action::UpholdAppeal => "uphold_appeal",
            Action::RejectAppeal => "reject_appeal",
            Action::Escalate => "escalate",
        }
    }

    /// Every action, with each data variant.
    pub const ALL: [Action; 12] = [
        Action::Claim,
        Action::Contact,
        Action::Verify { founded: true },
        Action::Verify { founded: false },
        Action::Rectify,
        Action::Reply,
        Action::Callback { satisfied: true },
        Action::Callback { satisfied: false },
        Action::Appeal,
        Action::UpholdAppeal,
        Action::RejectAppeal,
        Action::Escalate,
    ];
}

impl OrderState {
    /// Every state, with each data variant.
    pub const ALL: [OrderState; 11] = [
        OrderState::Opened,
        OrderState::Claimed,
        OrderState::Contacted,
        OrderState::Verified { founded: true },
        OrderState::Verified { founded: false },
        OrderState::Rectified,
        OrderState::Replied,
        OrderState::Closed,
        OrderState::Reopened,
        OrderState::Appealed,
        OrderState::AppealUpheld,
    ];

    /// The state's name without its data.
    pub fn name(self) -> &'static str {
        match self {
            OrderState::Opened => "opened",
            OrderState::Claimed => "claimed",
            OrderState::Contacted => "contacted",
            OrderState::Verified { .. } => "verified",
            OrderState::Rectified => "rectified",
            OrderState::Replied => "replied",
            OrderState::Closed => "closed",
            OrderState::Reopened => "reopened",
            OrderState::Appealed => "appealed",
            OrderState::AppealUpheld => "appeal_upheld",
        }
    }

    /// Whether the order has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, OrderState::Closed | OrderState::AppealUpheld)
    }

    /// The state `action` leads to, or `None` when it is not allowed here.
    fn next(self, action: Action) -> Option<OrderState> {
        use OrderState as S;
        Some(match (self, action) {
            (s, Action::Escalate) if !s.is_terminal() => s,
            (S::Opened | S::Reopened, Action::Claim) => S::Claimed,
            (S::Claimed, Action::Contact) => S::Contacted,
            (S::Contacted, Action::Verify { founded }) => S::Verified { founded },
            (S::Verified { founded: true }, Action::Rectify) => S::Rectified,
            (S::Rectified | S::Verified { founded: false }, Action::Reply) => S::Replied,
            (S::Replied, Action::Callback { satisfied: true }) => S::Closed,
            (S::Replied, Action::Callback { satisfied: false }) => S::Reopened,
            (S::Claimed | S::Contacted | S::Verified { founded: false }, Action::Appeal) => S::Appealed,
            (S::Appealed, Action::UpholdAppeal) => S::AppealUpheld,
            (S::Appealed, Action::RejectAppeal) => S::Claimed,
            _ => return None,
        })
    }

    /// The names of the actions allowed in this state, in [`Action::ALL`] order, without repeats.
    pub fn allowed(self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for a in Action::ALL {
            if self.next(a).is_some() && !out.contains(&a.name()) {
                out.push(a.name());
            }
        }
        out
    }

    /// A staff member's appeal (申诉) upheld by review, independently of the order's progress: an
    /// order still open ends as `appeal_upheld` (the rating no longer counts); an ended one stays
    /// as it is (`None`).
    pub fn after_staff_appeal_upheld(self) -> Option<OrderState> {
        (!self.is_terminal()).then_some(OrderState::AppealUpheld)
    }

    /// Applies `action`: the next state, or a refusal naming this state and what it allows.
    pub fn apply(self, action: Action) -> Result<OrderState, Refused> {
        self.next(action).ok_or_else(|| Refused { state: self.name(), action: action.name(), allowed: self.allowed() })
    }
}

/// An action the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("action {action} is not allowed in state {state}; allowed: {allowed:?}")]
pub struct Refused {
    /// The current state.
    pub state: &'static str,
    /// The refused action.
    pub action: &'static str,
    /// What the state allows.
    pub allowed: Vec<&'static str>,
}

/// Schema id of [`WorkOrderEvent`], carried in the `hcp-schema` Kafka header.
pub const WORKORDER_EVENT_SCHEMA: &str = "hcp.workorder.event.v1";

/// The region key of the default deadline policy.
pub const DEFAULT_POLICY_REGION: &str = "*";

/// How many working days a responsible unit has (docs/domain.md §5; a per-region policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadlinePolicy {
    /// Contact the rater within this many working days of the opening day.
    pub contact_days: u32,
    /// Verify and rectify (then reply) within this many working days of the opening day.
    pub rectify_days: u32,
    /// An order is near due when its deadline is at most this many working days away.
    pub near_due_days: u32,
    /// A stage of a known service record left unrated this many natural days gets the system
    /// default 基本满意 rating (Guangdong 2019: 7); `None` turns the default off in the region.
    #[serde(default = "default_rating_days")]
    pub default_rating_days: Option<u32>,
}

fn default_rating_days() -> Option<u32> {
    Some(7)
}

impl Default for DeadlinePolicy {
    /// Shenzhen 2021: contact within 3 working days, verify and rectify within 10.
    fn default() -> Self {
        DeadlinePolicy { contact_days: 3, rectify_days: 10, near_due_days: 1, default_rating_days: Some(7) }
    }
}

impl DeadlinePolicy {
    /// Checks the bounds the database also enforces.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=60).contains(&self.contact_days) {
            return Err("contact_days must be 1..=60".into());
        }
        if !(1..=120).contains(&self.rectify_days) {
            return Err("rectify_days must be 1..=120".into());
        }
        if self.contact_days > self.rectify_days {
            return Err("contact_days must not exceed rectify_days".into());
        }
        if self.near_due_days > 30 {
            return Err("near_due_days must be 0..=30".into());
        }
        if self.default_rating_days.is_some_and(|d| !(1..=30).contains(&d)) {
            return Err("default_rating_days must be 1..=30 (or null: off)".into());
        }
        Ok(())
    }
}

/// The deadline policies by region code ([`DEFAULT_POLICY_REGION`] for the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policies(pub std::collections::HashMap<String, DeadlinePolicy>);

impl Policies {
    /// The policy of the first region of `region_path` (nearest first) that has one, else the
    /// default row, else the built-in default.
    pub fn for_region(&self, region_path: &[String]) -> DeadlinePolicy {
        region_path
            .iter()
            .find_map(|r| self.0.get(r))
            .or_else(|| self.0.get(DEFAULT_POLICY_REGION))
            .copied()
            .unwrap_or_default()
    }
}

/// The deadlines of an order opened (or reopened) on a Beijing day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderDeadlines {
    /// Contact the rater by then.
    pub contact: Deadline,
    /// Verify, rectify and reply by then.
    pub rectify: Deadline,
}

impl OrderDeadlines {
    /// Computes both deadlines from the opening instant (its Beijing day does not count).
    /// `None` only past chrono's date range.
    pub fn compute(
        calendar: &WorkCalendar,
        policy: &DeadlinePolicy,
        opened_at: DateTime<Utc>,
    ) -> Option<OrderDeadlines> {
        let day = time::beijing_date(opened_at);
        Some(OrderDeadlines {
            contact: calendar.add_working_days(day, policy.contact_days)?,
            rectify: calendar.add_working_days(day, policy.rectify_days)?,
        })
    }

    /// Whether a year on the way is not in the calendar.
    pub fn provisional(&self) -> bool {
        self.contact.provisional || self.rectify.provisional
    }

    /// The years the calendar lacks for these deadlines.
    pub fn missing_years(&self) -> Vec<i32> {
        let mut y: Vec<i32> = self.contact.missing_years.iter().chain(&self.rectify.missing_years).copied().collect();
        y.sort_unstable();
        y.dedup();
        y
    }
}

/// The work order a bad rating opens: whom it is assigned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    /// Why this unit answers.
    pub basis: Basis,
    /// The responsible department (`None`: unassigned, visible to supervisors).
    pub department_id: Option<String>,
    /// The window, for conduct.
    pub window_id: Option<String>,
    /// The staff member, for conduct.
    pub staff_id: Option<String>,
    /// The platform, for platform tags.
    pub platform: Option<String>,
    /// The region whose policy and supervisor apply.
    pub region_code: Option<String>,
}

/// Whether a rating opens a work order (every valid grade 1–2 rating does) and to whom it goes:
/// the attribution's first responsible party (conduct → the staff member's department and window;
/// process → the service item's department; platform → the platform's department if known),
/// falling back to the attributed department.
pub fn assignment(grade: Grade, attribution: &Attribution) -> Option<Assignment> {
    if !grade.is_bad() {
        return None;
    }
    let first = attribution.responsible.first();
    Some(Assignment {
        basis: first.map(|r| r.basis).unwrap_or(Basis::General),
        department_id: first.and_then(|r| r.department_id.clone()).or_else(|| attribution.department_id.clone()),
        window_id: first.and_then(|r| r.window_id.clone()),
        staff_id: first.and_then(|r| r.staff_id.clone()),
        platform: first.and_then(|r| r.platform.clone()),
        region_code: attribution.region_code.clone(),
    })
}

/// How close an open order is to the deadline that currently applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DueStatus {
    /// More than the policy's near-due margin away, or no deadline running.
    OnTrack,
    /// Due within the policy's margin of working days.
    NearDue,
    /// Past its deadline.
    Overdue,
}

impl DueStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DueStatus::OnTrack => "on_track",
            DueStatus::NearDue => "near_due",
            DueStatus::Overdue => "overdue",
        }
    }
}

impl OrderState {
    /// Which deadline runs in this state: the contact deadline until the rater was contacted,
    /// then the rectification deadline until the reply; none while an appeal is reviewed,
    /// after the reply, or once ended.
    pub fn running_deadline(self) -> Option<DeadlineKind> {
        match self {
            OrderState::Opened | OrderState::Claimed | OrderState::Reopened => Some(DeadlineKind::Contact),
            OrderState::Contacted | OrderState::Verified { .. } | OrderState::Rectified => Some(DeadlineKind::Rectify),
            _ => None,
        }
    }

    /// Parses a stored state (`founded` for `verified`).
    pub fn parse(name: &str, founded: Option<bool>) -> Option<OrderState> {
        Some(match name {
            "opened" => OrderState::Opened,
            "claimed" => OrderState::Claimed,
            "contacted" => OrderState::Contacted,
            "verified" => OrderState::Verified { founded: founded? },
            "rectified" => OrderState::Rectified,
            "replied" => OrderState::Replied,
            "closed" => OrderState::Closed,
            "reopened" => OrderState::Reopened,
            "appealed" => OrderState::Appealed,
            "appeal_upheld" => OrderState::AppealUpheld,
            _ => return None,
        })
    }
}

/// The two deadlines of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineKind {
    /// Contact the rater.
    Contact,
    /// Verify, rectify, reply.
    Rectify,
}

/// The due status at `now` of a deadline ending at `due_at` on the Beijing day `due_date`.
pub fn due_status(
    calendar: &WorkCalendar,
    policy: &DeadlinePolicy,
    now: DateTime<Utc>,
    due_at: DateTime<Utc>,
) -> DueStatus {
    if now >= due_at {
        return DueStatus::Overdue;
    }
    // The due date is the Beijing day before `due_at` (a deadline ends at midnight).
    let due_date = time::beijing_date(due_at - chrono::Duration::seconds(1));
    let today = time::beijing_date(now);
    let margin_end = if policy.near_due_days == 0 {
        Some(today)
    } else {
        calendar.add_working_days(today, policy.near_due_days).map(|d| d.date)
    };
    match margin_end {
        Some(end) if due_date <= end => DueStatus::NearDue,
        _ => DueStatus::OnTrack,
    }
}

/// One line of a work order's history, as published on `hcp.workorder.event.v1`
/// (contract `schemas/workorder-event.v1.json`). `event_id` grows per order: consumers keep the
/// highest they have seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkOrderEvent {
    /// The audit-log id of the transition.
    pub event_id: i64,
    /// The order.
    pub order_id: uuid::Uuid,
    /// Its human-readable number.
    pub order_no: i64,
    /// The bad rating it answers.
    pub rating_id: uuid::Uuid,
    /// `open`, an [`Action`] name, `sweep`, `view_rater` is never published.
    pub action: String,
    /// State before (`None` when opened).
    pub from_state: Option<String>,
    /// State after.
    pub to_state: String,
    /// Who: an account name or `system:<part>`.
    pub actor: String,
    /// Their role.
    pub actor_role: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The responsible department.
    pub department_id: Option<String>,
    /// The region.
    pub region_code: Option<String>,
    /// The deadline that runs after this event, if any.
    pub due_at: Option<DateTime<Utc>>,
    /// The handler's or supervisor's note.
    pub note: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderState as S;

    /// The documented transitions, written out independently of `next`.
    fn documented() -> Vec<(OrderState, Action, OrderState)> {
        let mut t = vec![
            (S::Opened, Action::Claim, S::Claimed),
            (S::Reopened, Action::Claim, S::Claimed),
            (S::Claimed, Action::Contact, S::Contacted),
            (S::Contacted, Action::Verify { founded: true }, S::Verified { founded: true }),
            (S::Contacted, Action::Verify { founded: false }, S::Verified { founded: false }),
            (S::Verified { founded: true }, Action::Rectify, S::Rectified),
            (S::Rectified, Action::Reply, S::Replied),
            (S::Verified { founded: false }, Action::Reply, S::Replied),
            (S::Replied, Action::Callback { satisfied: true }, S::Closed),
            (S::Replied, Action::Callback { satisfied: false }, S::Reopened),
            (S::Claimed, Action::Appeal, S::Appealed),
            (S::Contacted, Action::Appeal, S::Appealed),
            (S::Verified { founded: false }, Action::Appeal, S::Appealed),
            (S::Appealed, Action::UpholdAppeal, S::AppealUpheld),
            (S::Appealed, Action::RejectAppeal, S::Claimed),
        ];
        for s in OrderState::ALL {
            if !matches!(s, S::Closed | S::AppealUpheld) {
                t.push((s, Action::Escalate, s));
            }
        }
        t
    }

    #[test]
    fn every_state_action_pair_moves_as_documented_or_is_refused() {
        let table = documented();
        let mut checked = 0;
        for state in OrderState::ALL {
            for action in Action::ALL {
                let expected = table.iter().find(|(s, a, _)| *s == state && *a == action).map(|(_, _, to)| *to);
                match (state.apply(action), expected) {
                    (Ok(to), Some(want)) => assert_eq!(to, want, "{state:?} + {action:?}"),
                    (Err(refused), None) => {
                        assert_eq!((refused.state, refused.action), (state.name(), action.name()));
                        assert!(!refused.allowed.contains(&action.name()), "{state:?}: {action:?} refused but listed");
                        for name in &refused.allowed {
                            assert!(
                                table.iter().any(|(s, a, _)| *s == state && a.name() == *name),
                                "{state:?} lists {name}"
                            );
                        }
                    }
                    (got, want) => panic!("{state:?} + {action:?}: got {got:?}, documented {want:?}"),
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 11 * 12);
    }

    #[test]
    fn refusals_name_the_state_and_the_allowed_actions() {
        let r = S::Opened.apply(Action::Reply).unwrap_err();
        assert_eq!((r.state, r.action), ("opened", "reply"));
        assert_eq!(r.allowed, vec!["claim", "escalate"]);
        assert_eq!(S::Verified { founded: false }.allowed(), vec!["reply", "appeal", "escalate"]);
        assert_eq!(S::Verified { founded: true }.allowed(), vec!["rectify", "escalate"]);
        assert!(S::Closed.allowed().is_empty() && S::AppealUpheld.allowed().is_empty());
        assert_eq!(S::Rectified.apply(Action::Appeal).unwrap_err().allowed, vec!["reply", "escalate"]);
    }

    #[test]
    fn the_happy_path_and_the_reopen_loop() {
        let path = [
            Action::Claim,
            Action::Contact,
            Action::Verify { founded: true },
            Action::Rectify,
            Action::Reply,
            Action::Callback { satisfied: false },
            Action::Claim,
            Action::Contact,
            Action::Verify { founded: false },
            Action::Reply,
            Action::Callback { satisfied: true },
        ];
        let end = path.iter().try_fold(S::Opened, |s, a| s.apply(*a)).unwrap();
        assert_eq!(end, S::Closed);
        let appealed = [Action::Claim, Action::Escalate, Action::Appeal, Action::UpholdAppeal];
        assert_eq!(appealed.iter().try_fold(S::Opened, |s, a| s.apply(*a)).unwrap(), S::AppealUpheld);
    }

    fn cal() -> WorkCalendar {
        WorkCalendar::from_json(include_str!("../../../deploy/calendar/cn-workdays-2020-2026.json")).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn deadlines_follow_the_policy_and_the_calendar() {
        let d = OrderDeadlines::compute(&cal(), &DeadlinePolicy::default(), at("2025-09-30T10:00:00+08:00")).unwrap();
        assert_eq!(d.contact.date.to_string(), "2025-10-11");
        assert_eq!(d.contact.due_at, at("2025-10-12T00:00:00+08:00"));
        assert_eq!(d.rectify.date.to_string(), "2025-10-21");
        assert!(!d.provisional());
        // Opened at 23:30 on 2026-12-30 Beijing time (15:30 UTC): the Beijing day counts, not UTC.
        let late = OrderDeadlines::compute(&cal(), &DeadlinePolicy::default(), at("2026-12-30T15:30:00Z")).unwrap();
        assert_eq!(late.rectify.date.to_string(), "2027-01-13");
        assert!(late.provisional());
        assert_eq!(late.missing_years(), vec![2027]);
    }

    #[test]
    fn policies_resolve_by_the_nearest_region() {
        let mut p = Policies::default();
        assert_eq!(p.for_region(&["440305".into()]), DeadlinePolicy::default());
        p.0.insert(
            "*".into(),
            DeadlinePolicy { contact_days: 2, rectify_days: 5, near_due_days: 1, ..Default::default() },
        );
        p.0.insert(
            "440300".into(),
            DeadlinePolicy { contact_days: 3, rectify_days: 15, near_due_days: 2, ..Default::default() },
        );
        assert_eq!(p.for_region(&["440305".into(), "440300".into(), "440000".into()]).rectify_days, 15);
        assert_eq!(p.for_region(&["510100".into()]).rectify_days, 5);
        assert!(DeadlinePolicy { contact_days: 11, rectify_days: 10, near_due_days: 1, ..Default::default() }
            .check()
            .is_err());
    }

    #[test]
    fn due_status_near_due_within_one_working_day() {
        let c = cal();
        let p = DeadlinePolicy::default();
        // Due at the end of Monday 2026-11-23: on Friday evening it is one working day away.
        let due = at("2026-11-24T00:00:00+08:00");
        assert_eq!(due_status(&c, &p, at("2026-11-19T12:00:00+08:00"), due), DueStatus::OnTrack);
        assert_eq!(due_status(&c, &p, at("2026-11-20T18:00:00+08:00"), due), DueStatus::NearDue);
        assert_eq!(due_status(&c, &p, at("2026-11-23T23:59:59+08:00"), due), DueStatus::NearDue);
        assert_eq!(due_status(&c, &p, due, due), DueStatus::Overdue);
    }

    #[test]
    fn bad_ratings_are_assigned_to_the_first_responsible_party() {
        use crate::attribution::Responsibility;
        let good = Grade::new(3).unwrap();
        let bad = Grade::new(2).unwrap();
        let mut a = Attribution {
            department_id: Some("D-HALL".into()),
            region_code: Some("440305".into()),
            ..Default::default()
        };
        assert_eq!(assignment(good, &a), None);
        let unassigned = assignment(bad, &a).unwrap();
        assert_eq!((unassigned.basis, unassigned.department_id.as_deref()), (Basis::General, Some("D-HALL")));
        a.responsible = vec![
            Responsibility {
                basis: Basis::Conduct,
                department_id: Some("D-STAFF".into()),
                window_id: Some("W1".into()),
                staff_id: Some("S1".into()),
                platform: None,
            },
            Responsibility {
                basis: Basis::Process,
                department_id: Some("D-ITEM".into()),
                window_id: None,
                staff_id: None,
                platform: None,
            },
        ];
        let conduct = assignment(Grade::new(1).unwrap(), &a).unwrap();
        assert_eq!(
            (
                conduct.basis,
                conduct.department_id.as_deref(),
                conduct.window_id.as_deref(),
                conduct.staff_id.as_deref()
            ),
            (Basis::Conduct, Some("D-STAFF"), Some("W1"), Some("S1"))
        );
        assert_eq!(conduct.region_code.as_deref(), Some("440305"));
    }

    #[test]
    fn stored_states_parse_back() {
        for s in OrderState::ALL {
            let founded = match s {
                S::Verified { founded } => Some(founded),
                _ => None,
            };
            assert_eq!(OrderState::parse(s.name(), founded), Some(s));
        }
        assert_eq!(OrderState::parse("verified", None), None);
    }
}
