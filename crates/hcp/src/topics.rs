//! `hcp topics`: create, list and delete the deployment's topics, or print their settings
//! (all from `hcp-bus`, so a Kubernetes deployment's `KafkaTopic`s can be checked against them).

use std::time::Duration;

use clap::Subcommand;
use hcp_server::Config;

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Create the topics (existing ones are left alone).
    Create {
        /// Partitions per topic.
        #[arg(long, env = "HCP_PARTITIONS", default_value_t = 6)]
        partitions: i32,
        /// Replication factor (1 for a single local broker).
        #[arg(long, env = "HCP_REPLICATION", default_value_t = 1)]
        replication: i32,
    },
    /// List the topics on the cluster whose name starts with `--prefix` (default: every topic).
    List {
        /// Name prefix, e.g. a tenant's `HCP_TOPIC_PREFIX`.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Print, as JSON, the topics `create` would make with these options: name, partitions,
    /// replication and configs (no broker needed; deploy/k8s/check.py compares its KafkaTopics).
    Settings {
        /// Partitions per topic.
        #[arg(long, env = "HCP_PARTITIONS", default_value_t = 6)]
        partitions: i32,
        /// Replication factor.
        #[arg(long, env = "HCP_REPLICATION", default_value_t = 1)]
        replication: i32,
    },
    /// Delete the named topics and every record in them (missing ones are skipped).
    Delete {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Runs `hcp topics …`.
pub async fn run(config: &Config, command: TopicsCommand) -> anyhow::Result<()> {
    match command {
        TopicsCommand::Create { partitions, replication } => {
            let topics = config.topics();
            let created = hcp_bus::create_topics(&config.kafka(), &topics.all(), partitions, replication).await?;
            for t in topics.all() {
                println!("{t}: {}", if created.iter().any(|c| c == t) { "created" } else { "exists" });
            }
            Ok(())
        }
        TopicsCommand::Settings { partitions, replication } => {
            println!("{}", serde_json::to_string_pretty(&settings(&config.topics(), partitions, replication))?);
            Ok(())
        }
        TopicsCommand::List { prefix } => {
            let kafka = config.kafka();
            let names =
                tokio::task::spawn_blocking(move || hcp_bus::list_topics(&kafka, &prefix, Duration::from_secs(10)))
                    .await??;
            for name in names {
                println!("{name}");
            }
            Ok(())
        }
        TopicsCommand::Delete { names } => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let deleted = hcp_bus::delete_topics(&config.kafka(), &names).await?;
            eprintln!("deleted {} of {} topics", deleted.len(), names.len());
            Ok(())
        }
    }
}

/// The topics `hcp topics create --partitions P --replication R` makes, as JSON: a list of
/// `{name, partitions, replication, config}` in creation order.
fn settings(topics: &hcp_bus::Topics, partitions: i32, replication: i32) -> serde_json::Value {
    topics
        .all()
        .into_iter()
        .map(|name| {
            let config: serde_json::Map<String, serde_json::Value> = hcp_bus::topic_settings(name, replication)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into()))
                .collect();
            serde_json::json!({ "name": name, "partitions": partitions, "replication": replication, "config": config })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_every_topic_with_the_bus_configs() {
        let printed = settings(&hcp_bus::Topics::default(), 12, 3);
        let topics = printed.as_array().unwrap();
        assert_eq!(topics.len(), 4);
        assert_eq!(topics[0]["name"], "hcp.rating.submitted.v1");
        assert_eq!(topics[0]["partitions"], 12);
        assert_eq!(topics[0]["replication"], 3);
        assert_eq!(topics[0]["config"]["min.insync.replicas"], "2");
        assert_eq!(topics[3]["config"]["retention.ms"], "7776000000");
    }
}
