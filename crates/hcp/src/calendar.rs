//! `hcp calendar`: import the working-day calendar; compute a deadline on it.

use std::collections::BTreeMap;

use anyhow::Context;
use clap::Subcommand;
use hcp_server::Config;
use hcp_store::Store;

#[derive(Subcommand)]
pub enum CalendarCommand {
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

/// Runs `hcp calendar …`.
pub async fn run(config: &Config, command: CalendarCommand) -> anyhow::Result<()> {
    match command {
        CalendarCommand::Import { file } => import_calendar(config, &file).await,
        CalendarCommand::AddWorkingDays { date, n, file } => add_working_days(config, date, n, file.as_deref()).await,
    }
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
