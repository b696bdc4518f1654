//! # hcp-domain: the 好差评 rules, and nothing else
//!
//! Owns the vocabulary of the system — grades, channels, stages, the rating event and its
//! validation, the directory rows and their checks, the working-day calendar, the work-order
//! state machine, attribution of a rating to whoever is
//! responsible (against an in-memory directory snapshot), Beijing-time buckets, the satisfaction
//! statistics, the per-batch pre-aggregation of ratings into aggregate deltas, and the SMS rules
//! (quiet hours, retry schedule, opt-out replies, templates, the vendors' request signatures).
//!
//! It must not do I/O, spawn tasks or depend on tokio, Kafka, SQL or HTTP crates: every other
//! crate depends on this one, never the other way round, and everything here is a pure function
//! that a unit test can drive with plain values. The rules and their sources are in
//! `docs/domain.md`; where a rule is a policy, the policy is a value passed in.

pub mod accountability;
pub mod aggregate;
pub mod alert;
pub mod attribution;
pub mod calendar;
pub mod channel;
pub mod directory;
pub mod error;
pub mod export;
pub mod grade;
pub mod integrity;
pub mod my_business;
pub mod pii;
pub mod rating;
pub mod region;
pub mod report;
pub mod role;
pub mod sms;
pub mod staff_appeal;
pub mod stats;
pub mod time;
pub mod webhook;
pub mod workorder;

pub use aggregate::{AggKey, BucketWidth, DimFacts, DimKey, Rollup, Scope, SplitDim, SplitKey};
pub use attribution::{
    attribute, Attribution, AttributionFlag, Basis, RatingAttributed, Responsibility, RATING_ATTRIBUTED_SCHEMA,
};
pub use calendar::{Deadline, WorkCalendar};
pub use channel::{Channel, Stage};
pub use directory::{Dimension, Directory, DirectoryData, TagClass};
pub use error::{FieldError, ValidationErrors};
pub use grade::Grade;
pub use pii::{MaskedRater, PiiCipher, RaterIdentity, RaterInput, SealedRater};
pub use rating::{AssessNumber, RatingInput, RatingSubmitted, MAX_ID_CHARS, RATING_SUBMITTED_SCHEMA};
pub use role::{Reach, Role};
pub use stats::{GradeCounts, SatisfactionPolicy, Summary};
pub use workorder::{Action, DeadlinePolicy, OrderState, Policies, WorkOrderEvent};
