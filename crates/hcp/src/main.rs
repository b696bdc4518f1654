//! `hcp`: one binary, subcommands for every role. Configuration comes from the environment
//! (`DATABASE_URL`, `KAFKA_BROKERS`, `HCP_HTTP_ADDR`, …) or the matching global options; see
//! `hcp::Config` and `hcp serve --help`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use futures::stream::{self, StreamExt};
use hcp::{bench, demo, loadgen, server, telemetry, ComponentName, Components, Config};
use hcp_bus::RatingProducer;
use hcp_directory::import::{self, Format};
use hcp_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The logging variables, read before the configuration (`hcp::telemetry`).
const LOGGING: &str =
    "Logging: HCP_LOG_FORMAT=json for structured logs (default text); RUST_LOG filters them (default info).";

#[derive(Parser)]
#[command(
    name = "hcp",
    version,
    about = "政务服务好差评 event pipeline",
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
              default_value = "sessions,ingest,aggregator,board,alerts,directory,workorders,webhooks")]
        components: Vec<ComponentName>,
    },
    /// Apply the database migrations.
    Migrate,
    /// Kafka topic administration.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// The directory: departments, halls, windows, staff, items, roster, tags.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// The official working-day calendar.
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
    },
    /// Operator accounts (console and API logins).
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Channel keys (device and integration credentials).
    Credential {
        #[command(subcommand)]
        command: CredentialCommand,
    },
    /// The dead-letter topic of ratings the aggregator refused.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Bad-review work orders.
    Workorders {
        #[command(subcommand)]
        command: WorkordersCommand,
    },
    /// Exports for the provincial / national platform.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Performance reports.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Load data.
    Seed {
        #[command(subcommand)]
        command: SeedCommand,
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
    },
    /// Measure hcp against raw Kafka, PostgreSQL COPY and bare axum in one run.
    Bench(bench::BenchOptions),
}

#[derive(Subcommand)]
enum TopicsCommand {
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

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Import a directory file: a .json document, or a <kind>.csv. Every row is checked first;
    /// one bad row means nothing from the file is imported, and each bad row is listed with its line.
    Import {
        /// The file.
        file: std::path::PathBuf,
        /// For a CSV file not named after its kind: regions, departments, halls, windows,
        /// devices, staff, service_items, roster or tags.
        #[arg(long)]
        kind: Option<String>,
    },
}

#[derive(Subcommand)]
enum CalendarCommand {
    /// Import a calendar file (as `deploy/calendar/cn-workdays-2020-2026.json`): every year in it
    /// replaces the stored one whole; other years stay.
    Import {
        /// The file.
        file: std::path::PathBuf,
    },
    /// Print the due date of a deadline of N working days opened on DATE (the end of the Nth
    /// working day after DATE, ISO format), so an operator can check any deadline by hand.
    AddWorkingDays {
        /// The opening day, YYYY-MM-DD.
        date: chrono::NaiveDate,
        /// Working days (at most 3650).
        n: u32,
        /// Use this calendar file instead of the calendar stored in the database.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Add or replace an account; the password comes from HCP_ACCOUNT_PASSWORD (never an argument,
    /// so it stays out of shell history and process lists).
    Add {
        /// Login name.
        username: String,
        /// admin, supervisor, handler, callback or auditor.
        #[arg(long)]
        role: String,
        /// Shown name (default: the login name).
        #[arg(long)]
        name: Option<String>,
        /// A handler's department id.
        #[arg(long)]
        department: Option<String>,
        /// A supervisor's region code.
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Subcommand)]
enum CredentialCommand {
    /// Issue a key and print its token (shown once; only its hash is stored).
    Add {
        /// `device` or `integration`.
        #[arg(long)]
        kind: String,
        /// The channel of its ratings (window_evaluator, self_service_terminal, hotline, app, web, mini_program).
        #[arg(long)]
        channel: String,
        /// A device key's device id.
        #[arg(long)]
        device: Option<String>,
        /// What it is for.
        #[arg(long)]
        name: String,
    },
    /// Revoke a key.
    Revoke {
        /// Key id.
        key_id: String,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List every dead letter, a line each: `partition:offset`, key, origin (topic/partition/offset),
    /// reason, the start of its body.
    List,
    /// Send dead letters back to the rating topic after a fix: the ones named `P:O` (partition and
    /// offset on the dead-letter topic), or with `--all` every one not replayed by `--all` before.
    Replay {
        /// `partition:offset` of the dead letters to replay.
        records: Vec<String>,
        /// Every dead letter not replayed by an earlier `--all`.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum WorkordersCommand {
    /// Run the overdue sweep once now and print what it did.
    Sweep,
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Ratings of a date range with the national field names (docs/export.md); 12345 hotline
    /// ratings, which have no national channel code, are left out.
    Ratings {
        /// First day (Beijing date, YYYY-MM-DD), inclusive.
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day, inclusive.
        #[arg(long)]
        to: chrono::NaiveDate,
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// The monthly performance report (绩效考核) of departments, halls and staff.
    Monthly {
        /// YYYY-MM (Beijing time).
        #[arg(long)]
        month: String,
        /// xlsx (a sheet per level) or csv (one level).
        #[arg(long, default_value = "xlsx")]
        format: String,
        /// With csv: department, hall or staff.
        #[arg(long, default_value = "department")]
        level: String,
        /// Where to write (default hcp-report-<month>.<format>; `-` for standard output, csv only).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum SeedCommand {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let cli = Cli::from_arg_matches(&hcp::config::command_line(Cli::command()).get_matches())?;
    let config = cli.config;
    match cli.command {
        Command::Serve { components } => {
            let components = Components::only(&components);
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
            println!("migrations applied");
            Ok(())
        }
        Command::Topics { command: TopicsCommand::Create { partitions, replication } } => {
            let topics = config.topics();
            let created = hcp_bus::create_topics(&config.kafka(), &topics.all(), partitions, replication).await?;
            for t in topics.all() {
                println!("{t}: {}", if created.iter().any(|c| c == t) { "created" } else { "exists" });
            }
            Ok(())
        }
        Command::Topics { command: TopicsCommand::List { prefix } } => {
            let kafka = config.kafka();
            let names =
                tokio::task::spawn_blocking(move || hcp_bus::list_topics(&kafka, &prefix, Duration::from_secs(10)))
                    .await??;
            for name in names {
                println!("{name}");
            }
            Ok(())
        }
        Command::Topics { command: TopicsCommand::Delete { names } } => {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let deleted = hcp_bus::delete_topics(&config.kafka(), &names).await?;
            eprintln!("deleted {} of {} topics", deleted.len(), names.len());
            Ok(())
        }
        Command::Directory { command: DirectoryCommand::Import { file, kind } } => {
            import_directory_file(&config, &file, kind.as_deref()).await
        }
        Command::Calendar { command: CalendarCommand::Import { file } } => import_calendar(&config, &file).await,
        Command::Calendar { command: CalendarCommand::AddWorkingDays { date, n, file } } => {
            add_working_days(&config, date, n, file.as_deref()).await
        }
        Command::Seed { command: SeedCommand::Demo { ratings, seed } } => seed_demo(&config, ratings, seed).await,
        Command::Account { command: AccountCommand::Add { username, role, name, department, region } } => {
            let password = std::env::var("HCP_ACCOUNT_PASSWORD")
                .ok()
                .filter(|p| p.len() >= 8)
                .context("set HCP_ACCOUNT_PASSWORD to the password (at least 8 characters)")?;
            let role = hcp_domain::Role::parse(&role)
                .with_context(|| format!("unknown role {role:?} (admin, supervisor, handler, callback, auditor)"))?;
            anyhow::ensure!(role != hcp_domain::Role::Handler || department.is_some(), "a handler needs --department");
            anyhow::ensure!(role != hcp_domain::Role::Supervisor || region.is_some(), "a supervisor needs --region");
            let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
            store
                .upsert_account(&hcp_store::Account {
                    display_name: name.unwrap_or_else(|| username.clone()),
                    username: username.clone(),
                    role: role.as_str().into(),
                    department_id: department,
                    region_code: region,
                    disabled: false,
                    password_hash: hcp_http::auth::hash_password(&password),
                })
                .await?;
            println!("account {username} ({}) saved", role.as_str());
            Ok(())
        }
        Command::Credential { command: CredentialCommand::Add { kind, channel, device, name } } => {
            let ch = hcp_domain::Channel::parse(&channel).with_context(|| format!("unknown channel {channel:?}"))?;
            anyhow::ensure!(
                ch.credential_kind() == Some(kind.as_str()),
                "channel {channel} takes a {:?} key",
                ch.credential_kind()
            );
            anyhow::ensure!(
                ch.device_kind().is_some() == device.is_some(),
                "a device key needs --device; an integration key has none"
            );
            let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
            let (key_id, token, secret_sha256) = hcp_http::auth::new_channel_key();
            store
                .create_credential(&hcp_store::Credential {
                    key_id,
                    kind,
                    channel,
                    device_id: device,
                    name,
                    created_at: Utc::now(),
                    revoked_at: None,
                    last_used_at: None,
                    secret_sha256,
                })
                .await?;
            println!("{token}");
            Ok(())
        }
        Command::Credential { command: CredentialCommand::Revoke { key_id } } => {
            let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
            anyhow::ensure!(store.revoke_credential(&key_id).await?, "no key {key_id}");
            println!("key {key_id} revoked");
            Ok(())
        }
        Command::Dlq { command } => dlq(&config, command).await,
        Command::Report { command: ReportCommand::Monthly { month, format, level, out } } => {
            report_monthly(&config, &month, &format, &level, out).await
        }
        Command::Export { command: ExportCommand::Ratings { from, to, format, out } } => {
            export_ratings(&config, from, to, &format, out).await
        }
        Command::Workorders { command: WorkordersCommand::Sweep } => {
            let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
            let out = hcp_workorder::sweep_once(&store, Utc::now()).await?;
            println!("{}", serde_json::to_string(&out)?);
            Ok(())
        }
        Command::Loadgen { url, requests, concurrency, rate, path, batch, prefix, json } => {
            let opts = loadgen::LoadOptions {
                url: format!("{}{path}", url.trim_end_matches('/')),
                requests,
                concurrency,
                rate,
                record_prefix: prefix.unwrap_or_else(|| format!("LOAD{}-", Utc::now().format("%Y%m%d%H%M%S"))),
                batch,
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

async fn import_directory_file(config: &Config, file: &std::path::Path, kind: Option<&str>) -> anyhow::Result<()> {
    let kind = kind
        .map(|k| hcp_domain::directory::EntityKind::parse(k).with_context(|| format!("unknown kind {k:?}")))
        .transpose()?;
    let format = Format::for_path(file, kind).map_err(anyhow::Error::msg)?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
    let report = import::import(&store, &text, format, &mut |line| eprintln!("{line}")).await?;
    for bad in &report.bad_rows {
        for e in &bad.errors {
            let field = if e.field.is_empty() { String::new() } else { format!(" {}", e.field) };
            eprintln!(
                "{}:{}: {}[{}] {}{field}: {} ({})",
                file.display(),
                bad.line,
                bad.kind.as_str(),
                bad.index,
                bad.id,
                e.message,
                e.message_en
            );
        }
    }
    anyhow::ensure!(
        report.imported,
        "{}: {} bad row(s); nothing was imported / 有 {} 行错误,未导入任何数据",
        file.display(),
        report.bad_rows.len(),
        report.bad_rows.len()
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Reads and checks a calendar file.
fn read_calendar(file: &std::path::Path) -> anyhow::Result<(hcp_domain::WorkCalendar, BTreeMap<i32, String>)> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let calendar = hcp_domain::WorkCalendar::from_json(&text).map_err(|errors| {
        anyhow::anyhow!("{} is invalid; nothing imported:\n  {}", file.display(), errors.join("\n  "))
    })?;
    let parsed: hcp_domain::calendar::CalendarFile = serde_json::from_str(&text)?;
    let sources = parsed.years.into_iter().filter_map(|(y, c)| Some((y.parse().ok()?, c.source))).collect();
    Ok((calendar, sources))
}

async fn import_calendar(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    let (calendar, sources) = read_calendar(file)?;
    let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
    store.import_calendar(&calendar, &sources).await?;
    let years: Vec<String> = calendar.years().iter().map(i32::to_string).collect();
    println!("calendar years imported: {}", years.join(", "));
    Ok(())
}

async fn add_working_days(
    config: &Config,
    date: chrono::NaiveDate,
    n: u32,
    file: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    anyhow::ensure!(n <= 3650, "n must be at most 3650 working days");
    let calendar = match file {
        Some(f) => read_calendar(f)?.0,
        None => {
            let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
            store.load_calendar().await?
        }
    };
    let deadline = calendar.add_working_days(date, n).context("date out of range")?;
    println!("{}", deadline.date);
    if deadline.provisional {
        let years: Vec<String> = deadline.missing_years.iter().map(i32::to_string).collect();
        eprintln!(
            "provisional: the calendar needs year {}; Monday-Friday assumed there (日历缺少 {} 年数据,按周一至周五推算)",
            years.join(", "),
            years.join("、")
        );
    }
    Ok(())
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

async fn dlq(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    let (kafka, topics) = (config.kafka(), config.topics());
    let replay_group = format!("{}-dlq-replay", config.aggregator_group);
    let (selected, all) = match &command {
        DlqCommand::List => (Vec::new(), false),
        DlqCommand::Replay { records, all } => {
            let parsed = records
                .iter()
                .map(|r| {
                    let (p, o) = r.split_once(':').with_context(|| format!("{r:?} is not partition:offset"))?;
                    Ok::<_, anyhow::Error>((p.parse::<i32>()?, o.parse::<i64>()?))
                })
                .collect::<Result<Vec<_>, _>>()?;
            anyhow::ensure!(*all || !parsed.is_empty(), "name dead letters as partition:offset, or use --all");
            (parsed, *all)
        }
    };
    let group = if all { Some(replay_group.clone()) } else { None };
    let topic = topics.rating_dlq.clone();
    let read_kafka = kafka.clone();
    let (records, consumer) = tokio::task::spawn_blocking(move || {
        hcp_bus::read_dead_letters(&read_kafka, &topic, group.as_deref(), Duration::from_secs(10))
    })
    .await??;
    if matches!(command, DlqCommand::List) {
        for r in &records {
            let (reason, source, body) = match &r.letter {
                Some(l) => (
                    l.reason.clone(),
                    format!("{}/{}/{}", l.source_topic, l.source_partition, l.source_offset),
                    String::from_utf8_lossy(&l.body()).chars().take(80).collect::<String>(),
                ),
                None => ("(not a dead-letter envelope)".into(), "-".into(), String::new()),
            };
            println!("{}:{}\t{}\t{source}\t{reason}\t{body}", r.partition, r.offset, r.key);
        }
        eprintln!("{} dead letter(s)", records.len());
        return Ok(());
    }
    let chosen: Vec<&hcp_bus::DeadLetterRecord> =
        records.iter().filter(|r| all || selected.contains(&(r.partition, r.offset))).collect();
    anyhow::ensure!(all || chosen.len() == selected.len(), "some named dead letters do not exist");
    let producer = RatingProducer::new(&kafka, &topics)?;
    let mut replayed = 0;
    for r in &chosen {
        let Some(letter) = &r.letter else { continue };
        producer.publish_raw(&r.key, &letter.body()).await?;
        replayed += 1;
    }
    if all {
        let done: Vec<hcp_bus::DeadLetterRecord> = chosen.iter().map(|r| (*r).clone()).collect();
        let topic = topics.rating_dlq.clone();
        tokio::task::spawn_blocking(move || hcp_bus::commit_through(&consumer, &topic, &done)).await??;
    }
    println!("replayed {replayed}");
    Ok(())
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

/// `hcp export ratings`: streams the export to a file or standard output.
async fn export_ratings(
    config: &Config,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    format: &str,
    out: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    use std::io::Write;
    let format = hcp_board::export::ExportFormat::parse(format)
        .with_context(|| format!("unknown format {format:?} (jsonl or csv)"))?;
    let (start, end) =
        hcp_board::export::date_range(from, to).map_err(|e| anyhow::anyhow!("{}", e.to_problem().detail))?;
    let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
    let mut sink: Box<dyn Write> = match &out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut chunks = std::pin::pin!(hcp_board::export::export_stream(store, start, end, format));
    while let Some(chunk) = chunks.next().await {
        sink.write_all(chunk?.as_bytes())?;
    }
    sink.flush()?;
    Ok(())
}

/// `hcp report monthly`: builds the report and writes it.
async fn report_monthly(
    config: &Config,
    month: &str,
    format: &str,
    level: &str,
    out: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use hcp_domain::report::ReportLevel;
    let month = hcp_domain::time::Month::parse(month).with_context(|| format!("month {month:?} is not YYYY-MM"))?;
    let level = ReportLevel::parse(level).with_context(|| format!("level {level:?} (department, hall or staff)"))?;
    let policy = config.policy();
    let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
    let report = hcp_board::report::build(&store, policy, month, Utc::now()).await?;
    let bytes = match format {
        "xlsx" => hcp_board::report::xlsx(month, &report)?,
        "csv" => {
            let rows = report.iter().find(|(l, _)| *l == level).map(|(_, r)| r.as_slice()).unwrap_or_default();
            format!("\u{feff}{}", hcp_domain::report::csv(rows)).into_bytes()
        }
        other => anyhow::bail!("format {other:?} (xlsx or csv)"),
    };
    let path = out.unwrap_or_else(|| format!("hcp-report-{month}.{format}").into());
    if path.as_os_str() == "-" {
        anyhow::ensure!(format == "csv", "an xlsx report needs a file (--out)");
        std::io::Write::write_all(&mut std::io::stdout().lock(), &bytes)?;
    } else {
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        let sizes: Vec<String> = report.iter().map(|(l, r)| format!("{} {}", l.title_zh(), r.len())).collect();
        eprintln!("wrote {} ({})", path.display(), sizes.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
