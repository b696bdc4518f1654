//! `hcp`: one binary, subcommands for every role. Configuration comes from the environment
//! (`DATABASE_URL`, `KAFKA_BROKERS`, `HCP_HTTP_ADDR`, …) or the matching global options; see
//! `hcp_server::Config` and `hcp serve --help`.

mod accounts;
mod calendar;
mod credentials;
mod directory;
mod dlq;
mod export;
mod production;
mod ratings;
mod report;
mod seed;
mod topics;
mod workorders;

use anyhow::Context;
use chrono::Utc;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use hcp_server::{server, telemetry, ComponentName, Components, Config};
use hcp_store::Store;
use hcp_tools::{bench, loadgen};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The logging variables, read before the configuration (`hcp_server::telemetry`).
const LOGGING: &str =
    "Logging: HCP_LOG_FORMAT=json for structured logs (default text); RUST_LOG filters them (default info).";

#[derive(Parser)]
#[command(
    name = "hcp",
    version,
    about = "政务服务好差评 event pipeline",
    // (not the flattened configuration's own doc comment)
    long_about = None,
    after_help = LOGGING
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API and run the background tasks (all components, or the ones named).
    #[command(after_help = LOGGING)]
    Serve {
        /// The components to run, comma-separated (default: all of them).
        #[arg(long, env = "HCP_COMPONENTS", value_delimiter = ',', num_args = 1..,
              default_value = "sessions,ingest,aggregator,board,alerts,directory,workorders,webhooks,sms")]
        components: Vec<ComponentName>,
    },
    /// Apply the database migrations.
    Migrate,
    /// Kafka topic administration.
    Topics {
        #[command(subcommand)]
        command: topics::TopicsCommand,
    },
    /// The directory: departments, halls, windows, staff, items, roster, tags.
    Directory {
        #[command(subcommand)]
        command: directory::DirectoryCommand,
    },
    /// The official working-day calendar.
    Calendar {
        #[command(subcommand)]
        command: calendar::CalendarCommand,
    },
    /// Operator accounts (console and API logins).
    Account {
        #[command(subcommand)]
        command: accounts::AccountCommand,
    },
    /// Channel keys (device and integration credentials).
    Credential {
        #[command(subcommand)]
        command: credentials::CredentialCommand,
    },
    /// The dead-letter topic of ratings the aggregator refused.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// Bad-review work orders.
    Workorders {
        #[command(subcommand)]
        command: workorders::WorkordersCommand,
    },
    /// Exports for the provincial / national platform.
    Export {
        #[command(subcommand)]
        command: export::ExportCommand,
    },
    /// Stored ratings: archive whole old months (docs/retention.md).
    Ratings {
        #[command(subcommand)]
        command: ratings::RatingsCommand,
    },
    /// Performance reports.
    Report {
        #[command(subcommand)]
        command: report::ReportCommand,
    },
    /// Load data.
    Seed {
        #[command(subcommand)]
        command: seed::SeedCommand,
    },
    /// Post realistic ratings over HTTP and report throughput and latency.
    Loadgen {
        /// Base URL of a running hcp.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Requests in total.
        #[arg(long, default_value_t = 10_000)]
        requests: u64,
        /// Requests in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Target requests per second (default: as fast as possible).
        #[arg(long)]
        rate: Option<u64>,
        /// Path under the URL to post to.
        #[arg(long, default_value = "/api/v1/ratings")]
        path: String,
        /// Ratings per request (posts `{"ratings": […]}`, e.g. with `--path /api/v1/ratings/batch`).
        #[arg(long)]
        batch: Option<usize>,
        /// Prefix of the service record numbers (default: LOAD + the time).
        #[arg(long)]
        prefix: Option<String>,
        /// Print the report as one JSON line (for `hcp bench`, which runs the load from its own process).
        #[arg(long)]
        json: bool,
        /// Send single ratings with the channel keys in this JSON file (`{"devices": {device id:
        /// key}, "channels": {channel: key}}`), as production clients do.
        #[arg(long)]
        keys: Option<std::path::PathBuf>,
    },
    /// Measure hcp against raw Kafka, PostgreSQL COPY and bare axum in one run.
    Bench(bench::BenchOptions),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    hcp_server::config::load_secret_files()?;
    let cli = Cli::from_arg_matches(&hcp_server::config::command_line(Cli::command()).get_matches())?;
    let config = cli.config;
    match cli.command {
        Command::Serve { components } => {
            let components = Components::only(&components);
            if config.env == hcp_server::config::Env::Production {
                production::check(&config, &components).await?;
            }
            let listener =
                TcpListener::bind(config.http_addr).await.with_context(|| format!("binding {}", config.http_addr))?;
            let shutdown = CancellationToken::new();
            let token = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("shutdown requested");
                token.cancel();
            });
            server::run(config, components, listener, shutdown).await
        }
        Command::Migrate => {
            let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
            store.migrate().await?;
            let created = store
                .ensure_rating_partitions(Utc::now(), hcp_store::MONTHS_AHEAD)
                .await
                .context("creating the monthly ratings partitions")?;
            println!("migrations applied");
            for month in created {
                println!("ratings partition of {month} created");
            }
            Ok(())
        }
        Command::Topics { command } => topics::run(&config, command).await,
        Command::Directory { command } => directory::run(&config, command).await,
        Command::Calendar { command } => calendar::run(&config, command).await,
        Command::Seed { command } => {
            anyhow::ensure!(
                config.env == hcp_server::config::Env::Development,
                "hcp seed makes demo accounts with a known password: only with HCP_ENV=development"
            );
            seed::run(&config, command).await
        }
        Command::Account { command } => accounts::run(&config, command).await,
        Command::Credential { command } => credentials::run(&config, command).await,
        Command::Dlq { command } => dlq::run(&config, command).await,
        Command::Report { command } => report::run(&config, command).await,
        Command::Ratings { command } => ratings::run(&config, command).await,
        Command::Export { command } => export::run(&config, command).await,
        Command::Workorders { command } => workorders::run(&config, command).await,
        Command::Loadgen { url, requests, concurrency, rate, path, batch, prefix, json, keys } => {
            let keys = match keys {
                Some(file) => Some(serde_json::from_slice(&std::fs::read(&file)?).context("reading --keys")?),
                None => None,
            };
            let opts = loadgen::LoadOptions {
                url: format!("{}{path}", url.trim_end_matches('/')),
                requests,
                concurrency,
                rate,
                record_prefix: prefix.unwrap_or_else(|| format!("LOAD{}-", Utc::now().format("%Y%m%d%H%M%S"))),
                batch,
                keys,
            };
            let report = loadgen::run(&opts).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{report}");
            }
            anyhow::ensure!(report.failed == 0, "{} requests failed", report.failed);
            Ok(())
        }
        Command::Bench(opts) => {
            let rows = bench::run(&config, &opts).await?;
            bench::print(&rows);
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// README's table of variables is `hcp serve --help`'s list: the same variables, in the same
    /// order, with the same defaults (`(empty)` for an empty one, `—` for none).
    #[test]
    fn readme_lists_every_variable_of_hcp_serve_with_its_default() {
        let mut cli = Cli::command();
        cli.build();
        let serve = cli.find_subcommand("serve").expect("hcp serve");
        let help: Vec<(String, String)> = serve
            .get_arguments()
            .filter_map(|arg| {
                let env = arg.get_env()?.to_string_lossy().into_owned();
                let defaults: Vec<_> = arg.get_default_values().iter().map(|v| v.to_string_lossy()).collect();
                let default = match defaults.join(",").as_str() {
                    _ if defaults.is_empty() => "—".to_string(),
                    "" => "(empty)".to_string(),
                    d => format!("`{d}`"),
                };
                Some((env, default))
            })
            .collect();
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("## The binary").expect("README has 'The binary'")..];
        let table: Vec<(String, String)> = section
            .lines()
            .skip_while(|l| !l.starts_with("| variable | default |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|row| {
                let cells: Vec<&str> = row.split(" | ").collect();
                (cells[0].trim_start_matches("| ").trim_matches('`').to_string(), cells[1].to_string())
            })
            .collect();
        assert_eq!(table, help);
        assert!(help.len() >= 28, "every setting has its variable: {help:?}");
    }

    #[test]
    fn options_win_and_a_bad_value_is_refused_with_its_name() {
        let command = || {
            let mut command = Cli::command();
            command.build();
            command
        };
        // Parsed from explicit sources only (the test's own environment is left alone): an
        // option wins, a bad value is an error naming the option.
        let parsed = |args: &[&str]| {
            Cli::from_arg_matches(&command().try_get_matches_from(args).expect("parses")).expect("builds")
        };
        let cli = parsed(&["hcp", "--produce-timeout-ms", "250", "serve", "--components", "ingest,board"]);
        assert_eq!(cli.config.produce_timeout, Duration::from_millis(250));
        assert_eq!(cli.config.request_limit(), Duration::from_millis(5250).max(cli.config.request_timeout));
        let Command::Serve { components } = cli.command else { panic!("serve") };
        assert_eq!(components, [ComponentName::Ingest, ComponentName::Board]);
        let refused = command().try_get_matches_from(["hcp", "--ingest-auth", "sometimes", "migrate"]).unwrap_err();
        assert!(refused.to_string().contains("--ingest-auth"), "{refused}");
        assert!(command().try_get_matches_from(["hcp", "serve", "--components", "ingest,reports"]).is_err());
    }
}
