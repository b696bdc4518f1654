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

/// Runs `hcp export …`.
pub async fn run(config: &Config, command: ExportCommand) -> anyhow::Result<()> {
    match command {
        ExportCommand::Ratings { from, to, format, out } => export_ratings(config, from, to, &format, out).await,
    }
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
    let mut chunks =
        std::pin::pin!(hcp_board::export::export_stream(store, start, end, format, config.export_pf.clone()));
    while let Some(chunk) = chunks.next().await {
        sink.write_all(chunk?.as_bytes())?;
    }
    sink.flush()?;
    Ok(())
}
