//! `hcp workorders sweep`: the overdue sweep, now.

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;
use hcp_server::Config;
use hcp_store::Store;

#[derive(Subcommand)]
pub enum WorkordersCommand {
    /// Run the overdue sweep once now and print what it did.
    Sweep,
}

/// Runs `hcp workorders …`.
pub async fn run(config: &Config, command: WorkordersCommand) -> anyhow::Result<()> {
    match command {
        WorkordersCommand::Sweep => {
            let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
            let out = hcp_workorder::sweep_once(&store, Utc::now()).await?;
            println!("{}", serde_json::to_string(&out)?);
            Ok(())
        }
    }
}
