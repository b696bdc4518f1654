//! `hcp export ratings`: the national export, streamed to a file or standard output.

use anyhow::Context;
use clap::Subcommand;
use hcp_server::Config;
use hcp_store::Store;

#[derive(Subcommand)]
pub enum ExportCommand {
    /// Ratings of a date range with the national field names (docs/export.md); 12345 hotline
    /// ratings, which have no national channel code, are left out.
    Ratings {
        /// First day (Beijing date, YYYY-MM-DD), inclusive.
        #[arg(long, required_unless_present = "from_archive")]
        from: Option<chrono::NaiveDate>,
        /// Last day, inclusive.
        #[arg(long, required_unless_present = "from_archive")]
        to: Option<chrono::NaiveDate>,
        /// Read an archived month (`ratings-YYYY-MM.jsonl` written by `hcp ratings archive`)
        /// instead of the database: its records as they were exported when the month was archived.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        from_archive: Option<std::path::PathBuf>,
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// Runs `hcp export …`.
pub async fn run(config: &Config, command: ExportCommand) -> anyhow::Result<()> {
    match command {
        ExportCommand::Ratings { from_archive: Some(archive), format, out, .. } => {
            export_archive(&archive, &format, out)
        }
        ExportCommand::Ratings { from: Some(from), to: Some(to), format, out, .. } => {
            export_ratings(config, from, to, &format, out).await
        }
        ExportCommand::Ratings { .. } => {
            anyhow::bail!("--from 与 --to，或 --from-archive / --from and --to, or --from-archive")
        }
    }
}

/// Where the export goes: `out`, or standard output.
fn sink(out: &Option<std::path::PathBuf>) -> anyhow::Result<Box<dyn std::io::Write>> {
    Ok(match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

/// `hcp export ratings --from-archive FILE`: the archived month's national records, checked line
/// by line, as JSON lines or CSV.
fn export_archive(archive: &std::path::Path, format: &str, out: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    use hcp_domain::export::{csv_header, NationalRecord};
    use std::io::{BufRead, Write};
    let format = hcp_board::export::ExportFormat::parse(format)
        .with_context(|| format!("unknown format {format:?} (jsonl or csv)"))?;
    let file = std::fs::File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let mut sink = sink(&out)?;
    if format == hcp_board::export::ExportFormat::Csv {
        sink.write_all(format!("\u{feff}{}", csv_header()).as_bytes())?;
    }
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", archive.display()))?;
        let record: NationalRecord = serde_json::from_str(&line).with_context(|| {
            format!(
                "{} 第 {} 行不是国家导出记录 / line {} is not a national export record \
                 (the archive's .rows.jsonl holds full rows; give its ratings-YYYY-MM.jsonl)",
                archive.display(),
                i + 1,
                i + 1
            )
        })?;
        sink.write_all(
            match format {
                hcp_board::export::ExportFormat::Jsonl => record.json_line(),
                hcp_board::export::ExportFormat::Csv => record.csv_line(),
            }
            .as_bytes(),
        )?;
    }
    sink.flush()?;
    Ok(())
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
    let mut sink = sink(&out)?;
    let mut chunks =
        std::pin::pin!(hcp_board::export::export_stream(store, start, end, format, config.export_pf.clone()));
    while let Some(chunk) = chunks.next().await {
        sink.write_all(chunk?.as_bytes())?;
    }
    sink.flush()?;
    Ok(())
}
