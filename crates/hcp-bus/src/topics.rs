//! Topic names and settings. A prefix lets tests and tenants share one broker without sharing
//! topics.

use std::time::Duration;

/// How long a topic keeps its records (`retention.ms`), whatever the broker's default: the
/// rating, attributed and work-order topics a month (a consumer may be rebuilt or replayed from
/// them after an incident; PostgreSQL keeps everything for good), dead letters a quarter (they
/// wait for a fix and `hcp dlq replay`).
pub fn retention(topic: &str) -> Duration {
    const DAY: u64 = 24 * 3600;
    Duration::from_secs(if topic.ends_with("hcp.rating.dlq.v1") { 90 * DAY } else { 30 * DAY })
}

/// The settings every hcp topic is created with, for a replication factor: its retention,
/// and `acks=all` needs two in-sync copies when there are three or more (one on a single node).
pub fn topic_settings(topic: &str, replication: i32) -> Vec<(&'static str, String)> {
    vec![
        ("retention.ms", retention(topic).as_millis().to_string()),
        ("min.insync.replicas", replication.clamp(1, 2).to_string()),
        ("cleanup.policy", "delete".into()),
    ]
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_keep_a_month_dead_letters_a_quarter_and_acks_need_two_copies_from_three_replicas() {
        let topics = Topics::with_prefix("t.");
        let setting = |topic: &str, replication, key: &str| {
            topic_settings(topic, replication).into_iter().find(|(k, _)| *k == key).map(|(_, v)| v).unwrap()
        };
        assert_eq!(setting(&topics.rating_submitted, 3, "retention.ms"), "2592000000");
        assert_eq!(setting(&topics.rating_dlq, 3, "retention.ms"), "7776000000");
        assert_eq!(setting(&topics.rating_attributed, 1, "min.insync.replicas"), "1");
        assert_eq!(setting(&topics.rating_attributed, 3, "min.insync.replicas"), "2");
        assert_eq!(setting(&topics.workorder_event, 5, "min.insync.replicas"), "2");
    }
}
