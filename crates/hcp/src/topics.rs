//! `hcp topics`: create, list and delete the deployment's topics (settings from `hcp-bus`).

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
