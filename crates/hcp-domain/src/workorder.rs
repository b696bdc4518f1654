//! The bad-review work order (差评工单) lifecycle as a pure state machine (domain.md §5):
//! opened → claimed (签收) → contacted → verified (核实: 属实 / 不属实) → rectified (整改,
//! only when founded) → replied (反馈) → callback (回访): satisfied closes (办结), unsatisfied
//! reopens. Appeal (申诉) of a malicious or unrelated review goes to supervisor review (复核):
//! upheld ends the order (the rating leaves the statistics), rejected sends it back to the handler.
//! Escalation (督办) marks any open order without changing its state. Anything else is refused,
//! naming the current state and the actions it allows.

use serde::{Deserialize, Serialize};

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
}
