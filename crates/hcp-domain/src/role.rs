//! Operator roles and what each may do to a work order (docs/domain.md §1, §5). Citizens are not a
//! role: they act only through an invitation token.

use serde::{Deserialize, Serialize};

use crate::workorder::Action;

/// An operator's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Configures everything; acts on any order.
    Admin,
    /// Watches a region: reviews appeals (复核) and escalates (督办) there.
    Supervisor,
    /// Handles one department's orders: claim, contact, verify, rectify, reply, appeal.
    Handler,
    /// Calls raters back (回访): records the result and alone sees a rater's full identity.
    Callback,
    /// Reads everything, changes nothing.
    Auditor,
    /// 窗口工作人员 (or 12345 接线员): one staff member, who sees only their own bad reviews (never
    /// who gave them) and may appeal them (申诉权力); no order, statistic or directory.
    Staff,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] =
        [Role::Admin, Role::Supervisor, Role::Handler, Role::Callback, Role::Auditor, Role::Staff];

    /// The roles of the office (everyone but a staff member appealing their own reviews): the
    /// ones that may see orders, statistics or the directory at all.
    pub const OFFICE: [Role; 5] = [Role::Admin, Role::Supervisor, Role::Handler, Role::Callback, Role::Auditor];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Handler => "handler",
            Role::Callback => "callback",
            Role::Auditor => "auditor",
            Role::Staff => "staff",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            Role::Admin => "系统管理员",
            Role::Supervisor => "督办人员",
            Role::Handler => "部门经办人",
            Role::Callback => "回访人员",
            Role::Auditor => "审计人员",
            Role::Staff => "窗口工作人员",
        }
    }

    /// Whether this role may take `action` on an order in its scope.
    pub fn may(self, action: Action) -> bool {
        use Action as A;
        match self {
            Role::Admin => true,
            Role::Handler => {
                matches!(action, A::Claim | A::Contact | A::Verify { .. } | A::Rectify | A::Reply | A::Appeal)
            }
            Role::Supervisor => matches!(action, A::UpholdAppeal | A::RejectAppeal | A::Escalate),
            Role::Callback => matches!(action, A::Callback { .. }),
            Role::Auditor | Role::Staff => false,
        }
    }

    /// Whether this role sees a rater's full phone and ID number (each view is audited).
    pub fn sees_rater_identity(self) -> bool {
        self == Role::Callback
    }
}

/// How far an operator's view reaches: a handler its department, a supervisor its region (and
/// the regions below it), the other office roles everything; a staff member has none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reach {
    /// Everything (admin, auditor, callback).
    All,
    /// One department (a handler).
    Department(String),
    /// A region and the regions below it (a supervisor).
    Region(String),
}

impl Reach {
    /// The reach of `role` with the account's department and region; `None` when a handler has
    /// no department or a supervisor no region (such an account sees nothing).
    pub fn of(role: Role, department_id: Option<&str>, region_code: Option<&str>) -> Option<Reach> {
        match role {
            Role::Handler => department_id.map(|d| Reach::Department(d.to_owned())),
            Role::Supervisor => region_code.map(|r| Reach::Region(r.to_owned())),
            Role::Admin | Role::Auditor | Role::Callback => Some(Reach::All),
            // A staff member's own reviews are named by their staff id, never by a reach.
            Role::Staff => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_follows_the_role_and_the_account() {
        assert_eq!(Reach::of(Role::Handler, Some("D1"), Some("440300")), Some(Reach::Department("D1".into())));
        assert_eq!(Reach::of(Role::Supervisor, Some("D1"), Some("440300")), Some(Reach::Region("440300".into())));
        assert_eq!(Reach::of(Role::Handler, None, Some("440300")), None);
        assert_eq!(Reach::of(Role::Supervisor, Some("D1"), None), None);
        for r in [Role::Admin, Role::Auditor, Role::Callback] {
            assert_eq!(Reach::of(r, None, None), Some(Reach::All));
        }
        assert_eq!(Reach::of(Role::Staff, Some("D1"), Some("440300")), None, "a staff member reaches nothing");
    }

    #[test]
    fn roles_parse_and_split_the_actions() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        // Every action is someone's besides the admin's, and the auditor has none.
        for a in Action::ALL {
            assert!(Role::Admin.may(a));
            assert!(!Role::Auditor.may(a));
            assert!(!Role::Staff.may(a), "a staff member takes no order action");
            let owners = [Role::Handler, Role::Supervisor, Role::Callback].iter().filter(|r| r.may(a)).count();
            assert_eq!(owners, 1, "{a:?}");
        }
        assert!(Role::Callback.sees_rater_identity() && !Role::Handler.sees_rater_identity());
    }
}
