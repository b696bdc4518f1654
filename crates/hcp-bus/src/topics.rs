//! Topic names. A prefix lets tests and tenants share one broker without sharing topics.

/// The topics of one hcp deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// `hcp.rating.submitted.v1`: validated ratings from ingest, keyed by 办件编号.
    pub rating_submitted: String,
    /// `hcp.rating.attributed.v1`: each stored rating with its attribution snapshot, keyed by
    /// rating id; published by the aggregator (again after a re-attribution).
    pub rating_attributed: String,
    /// `hcp.workorder.event.v1`: every work-order transition (opened, claimed, … escalated),
    /// keyed by order id, relayed from the audit log (outbox) after it commits.
    pub workorder_event: String,
    /// `hcp.rating.dlq.v1`: records of the rating topic the aggregator could not decode or
    /// validate, in an envelope with the reason and where they came from; `hcp dlq replay`.
    pub rating_dlq: String,
}

impl Topics {
    /// The topics with `prefix` prepended (empty in production).
    pub fn with_prefix(prefix: &str) -> Self {
        Topics {
            rating_submitted: format!("{prefix}hcp.rating.submitted.v1"),
            rating_attributed: format!("{prefix}hcp.rating.attributed.v1"),
            workorder_event: format!("{prefix}hcp.workorder.event.v1"),
            rating_dlq: format!("{prefix}hcp.rating.dlq.v1"),
        }
    }

    /// Every topic, for creation.
    pub fn all(&self) -> Vec<&str> {
        vec![&self.rating_submitted, &self.rating_attributed, &self.workorder_event, &self.rating_dlq]
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self::with_prefix("")
    }
}
