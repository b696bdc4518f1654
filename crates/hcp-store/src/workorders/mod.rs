//! Bad-review work orders, by concern: the orders themselves (opening inside the aggregator's
//! batch transaction, actions with their audit line and side effects), the overdue sweep, the
//! deadline policies, accountability measures on founded orders, staff appeals, the audit log as the outbox of `hcp.workorder.event.v1`, and callback
//! invitations. Notifications, rating records and the reach → SQL conditions they share live in
//! their own modules of the store.

mod accountability;
mod callbacks;
mod orders;
mod outbox;
mod policies;
mod staff_appeals;
mod sweep;

pub use accountability::{AccountabilityError, AccountabilityRecord};
pub use callbacks::CallbackError;
pub(crate) use orders::open_orders;
pub use orders::{
    ActError, ActRequest, Actor, AttributedUnits, LogEntry, NewOrder, OrderDetail, OrderQuery, WorkOrder,
};
pub use outbox::PendingEvents;
pub use policies::PolicyRow;
pub use staff_appeals::{OwnBadReview, StaffAppeal, StaffAppealError};
pub use sweep::{DeadlineContext, SweepOutcome};
