//! `hcp report monthly`: the monthly performance report (XLSX or CSV).

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;
use hcp_server::Config;
use hcp_store::Store;

#[derive(Subcommand)]
pub enum ReportCommand {
    /// The monthly performance report (绩效考核) of departments, halls and staff.
    Monthly {
        /// YYYY-MM (Beijing time).
        #[arg(long)]
        month: String,
        /// xlsx (a sheet per level) or csv (one level).
        #[arg(long, default_value = "xlsx")]
        format: String,
        /// With csv: region, department, hall, staff or process_review (待论证差评).
        #[arg(long, default_value = "department")]
        level: String,
        /// Where to write (default hcp-report-<month>.<format>; `-` for standard output, csv only).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// Runs `hcp report …`.
pub async fn run(config: &Config, command: ReportCommand) -> anyhow::Result<()> {
    match command {
        ReportCommand::Monthly { month, format, level, out } => {
            report_monthly(config, &month, &format, &level, out).await
        }
    }
}

/// `hcp report monthly`: builds the report and writes it.
async fn report_monthly(
    config: &Config,
    month: &str,
    format: &str,
    level: &str,
    out: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let month = hcp_domain::time::Month::parse(month).with_context(|| format!("month {month:?} is not YYYY-MM"))?;
    let policy = config.policy();
    let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
    let report = hcp_board::report::build(&store, policy, month, Utc::now()).await?;
    let bytes = match format {
        "xlsx" => hcp_board::report::xlsx(month, &report)?,
        "csv" => report
            .csv(level)
            .with_context(|| format!("level {level:?} (region, department, hall, staff or process_review)"))?
            .into_bytes(),
        other => anyhow::bail!("format {other:?} (xlsx or csv)"),
    };
    let path = out.unwrap_or_else(|| format!("hcp-report-{month}.{format}").into());
    if path.as_os_str() == "-" {
        anyhow::ensure!(format == "csv", "an xlsx report needs a file (--out)");
        std::io::Write::write_all(&mut std::io::stdout().lock(), &bytes)?;
    } else {
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {} ({})", path.display(), report.sizes().join(", "));
    }
    Ok(())
}
