//! `hcp directory import`: a directory file, checked row by row, all or nothing.

use anyhow::Context;
use clap::Subcommand;
use hcp_directory::import::{self, Format};
use hcp_server::Config;
use hcp_store::Store;

#[derive(Subcommand)]
pub enum DirectoryCommand {
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

/// Runs `hcp directory …`.
pub async fn run(config: &Config, command: DirectoryCommand) -> anyhow::Result<()> {
    match command {
        DirectoryCommand::Import { file, kind } => import_directory_file(config, &file, kind.as_deref()).await,
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
