//! `hcp seed demo`: the demo city 示范市, its accounts and a day of its ratings through Kafka.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;
use futures::stream::{self, StreamExt};
use hcp_bus::RatingProducer;
use hcp_directory::import::{self, Format};
use hcp_server::Config;
use hcp_store::Store;
use hcp_tools::demo;

#[derive(Subcommand)]
pub enum SeedCommand {
    /// Publish a day of ratings of the demo city (示范市) through Kafka.
    Demo {
        /// How many ratings.
        #[arg(long, default_value_t = 3000)]
        ratings: usize,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

/// Runs `hcp seed …`.
pub async fn run(config: &Config, command: SeedCommand) -> anyhow::Result<()> {
    match command {
        SeedCommand::Demo { ratings, seed } => seed_demo(config, ratings, seed).await,
    }
}

async fn seed_demo(config: &Config, n: usize, seed: u64) -> anyhow::Result<()> {
    let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
    let mut progress = |line: String| eprintln!("{line}");
    let report = import::import(&store, demo::DIRECTORY_JSON, Format::Json, &mut progress).await?;
    anyhow::ensure!(report.imported, "the demo directory did not import: {:?}", report.bad_rows);
    let now = Utc::now();
    let roster = hcp_domain::DirectoryData {
        roster: [demo::roster_for_day(now - chrono::Duration::days(1)), demo::roster_for_day(now)].concat(),
        ..Default::default()
    };
    let report = import::import(&store, &serde_json::to_string(&roster)?, Format::Json, &mut progress).await?;
    anyhow::ensure!(report.imported, "the demo roster did not import: {:?}", report.bad_rows);
    let password =
        std::env::var("HCP_DEMO_PASSWORD").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "hcp-demo-2026".into());
    let hash = hcp_http::auth::hash_password(&password);
    for a in demo::ACCOUNTS {
        store
            .upsert_account(&hcp_store::Account {
                username: a.username.into(),
                display_name: a.name.into(),
                role: a.role.into(),
                department_id: a.department.map(Into::into),
                region_code: a.region.map(Into::into),
                staff_id: None,
                disabled: false,
                password_hash: hash.clone(),
            })
            .await?;
    }
    let producer = RatingProducer::new(&config.kafka(), &config.topics())?;
    let events = demo::day_of_ratings(n, now, seed);
    let results: Vec<_> =
        stream::iter(events.iter()).map(|e| producer.publish(e)).buffer_unordered(256).collect().await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await??;
    let d = &*demo::DIRECTORY;
    println!(
        "demo city 示范市: {} departments, {} halls, {} windows, {} staff, {} service items; published {} ratings ({} failed)",
        d.departments.len(),
        d.halls.len(),
        d.windows.len(),
        d.staff.len(),
        d.service_items.len(),
        results.len() - failed,
        failed
    );
    let names: Vec<&str> = demo::ACCOUNTS.iter().map(|a| a.username).collect();
    println!("demo accounts (password from HCP_DEMO_PASSWORD, default hcp-demo-2026): {}", names.join(", "));
    anyhow::ensure!(failed == 0, "{failed} ratings could not be published");
    Ok(())
}
