//! `hcp ratings archive`: whole old months of ratings written to files, then their partitions
//! dropped (docs/retention.md). Rollups, work orders, staff appeals and `rating_keys` stay, so
//! statistics and duplicate refusal are unchanged; a month's per-rating detail is then only in
//! its files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use futures::StreamExt;
use hcp_domain::time::Month;
use hcp_server::Config;
use hcp_store::Store;

#[derive(Subcommand)]
pub enum RatingsCommand {
    /// Archive every month before --before: write its ratings to files in --out (the national
    /// export `ratings-YYYY-MM.jsonl`, readable by `hcp export ratings --from-archive`, and every
    /// stored column in `ratings-YYYY-MM.rows.jsonl`), then drop the month's partition.
    Archive {
        /// The first month kept (YYYY-MM, Beijing); every month partition before it is archived.
        #[arg(long)]
        before: String,
        /// The directory the files are written to (created if missing; existing files are never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `hcp ratings …`.
pub async fn run(config: &Config, command: RatingsCommand) -> anyhow::Result<()> {
    match command {
        RatingsCommand::Archive { before, out } => {
            let before = Month::parse(&before)
                .with_context(|| format!("--before {before:?} 不是 YYYY-MM 月份 / is not a month YYYY-MM"))?;
            archive(config, before, &out, Utc::now()).await
        }
    }
}

/// Whether ratings of `month` can no longer arrive at `now`: it ended more than the longest a
/// rating may wait (`MAX_RATING_AGE`, 30 days) and a day ago.
fn settled(month: Month, now: DateTime<Utc>) -> bool {
    month.range().1 + hcp_domain::rating::MAX_RATING_AGE + chrono::Duration::days(1) <= now
}

/// Archives every month partition before `before`, oldest first, once all of them are checked.
async fn archive(config: &Config, before: Month, out: &Path, now: DateTime<Utc>) -> anyhow::Result<()> {
    let current = Month::of(now);
    anyhow::ensure!(
        before <= current,
        "不能归档当月或未来月份（--before {before} 晚于当月 {current}）/ the current month and future months cannot be archived \
         (--before {before} is after the current month {current})"
    );
    let store = Store::connect(&config.database_url, 3).await.context("connecting to PostgreSQL")?;
    let months: Vec<Month> = store.rating_partition_months().await?.into_iter().filter(|m| *m < before).collect();
    let mut refused = Vec::new();
    for &month in &months {
        if !settled(month, now) {
            refused.push(format!(
                "{month}: 该月结束未满 31 天，评价仍可能到达 / it ended less than 31 days ago, ratings of it may still arrive"
            ));
            continue;
        }
        let blockers = store.archive_blockers(month).await?;
        if !blockers.is_clear() {
            refused.push(format!(
                "{month}: {} 个工单未办结、{} 个申诉待审核 / {} work orders still open, {} staff appeals pending",
                blockers.open_orders, blockers.pending_appeals, blockers.open_orders, blockers.pending_appeals
            ));
        }
    }
    anyhow::ensure!(refused.is_empty(), "未归档任何月份 / nothing archived:\n{}", refused.join("\n"));
    if months.is_empty() {
        println!("{before} 之前没有可归档的月份 / no month partition before {before}");
        return Ok(());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for month in months {
        archive_month(config, &store, month, out).await?;
    }
    Ok(())
}

/// Writes `month`'s two files (each first as `….part`, synced, then renamed) and drops its
/// partition in the transaction that locked it, once both files hold every row counted.
async fn archive_month(config: &Config, store: &Store, month: Month, out: &Path) -> anyhow::Result<()> {
    let export_path = out.join(format!("ratings-{month}.jsonl"));
    let rows_path = out.join(format!("ratings-{month}.rows.jsonl"));
    for path in [&export_path, &rows_path] {
        anyhow::ensure!(!path.exists(), "{} 已存在，不覆盖 / already exists, not overwritten", path.display());
    }
    let Some(mut archive) = store.begin_archive(month).await? else {
        return Ok(());
    };
    let (from, to) = month.range();

    // The national export of the month, exactly as `hcp export ratings` writes it.
    let (part, mut sink) = create_part(&export_path)?;
    let mut chunks = std::pin::pin!(hcp_board::export::export_stream(
        store.clone(),
        from,
        to,
        hcp_board::export::ExportFormat::Jsonl,
        config.export_pf.clone(),
    ));
    while let Some(chunk) = chunks.next().await {
        sink.write_all(chunk?.as_bytes())?;
    }
    finish_part(sink, &part, &export_path)?;

    // Every stored column of every rating of the month.
    let (part, mut sink) = create_part(&rows_path)?;
    let written = archive
        .each_row(|line| {
            sink.write_all(line.as_bytes())?;
            sink.write_all(b"\n")
        })
        .await?;
    anyhow::ensure!(
        written == archive.rows(),
        "{month}: 写出 {written} 行，分区有 {} 行 / wrote {written} rows of {}",
        archive.rows(),
        archive.rows()
    );
    finish_part(sink, &part, &rows_path)?;
    sync_dir(out)?;

    let rows = archive.rows();
    archive.drop_partition().await.with_context(|| format!("dropping the partition of {month}"))?;
    println!(
        "{month}: {rows} 条评价已归档 / {rows} ratings archived → {}, {}",
        export_path.display(),
        rows_path.display()
    );
    Ok(())
}

/// Creates `path` + `.part` for writing (never an existing file).
fn create_part(path: &Path) -> anyhow::Result<(PathBuf, BufWriter<File>)> {
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let file = File::create(&part).with_context(|| format!("creating {}", part.display()))?;
    Ok((part, BufWriter::new(file)))
}

/// Flushes and syncs the `.part` file, then renames it to `path`.
fn finish_part(sink: BufWriter<File>, part: &Path, path: &Path) -> anyhow::Result<()> {
    let file = sink.into_inner().map_err(|e| e.into_error())?;
    file.sync_all().with_context(|| format!("syncing {}", part.display()))?;
    std::fs::rename(part, path).with_context(|| format!("renaming {} to {}", part.display(), path.display()))
}

/// Syncs a directory, so the renames in it survive a crash.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_month_is_settled_31_days_after_it_ends() {
        let oct = Month::parse("2026-10").unwrap();
        // October ends at 2026-10-31 16:00 UTC (Beijing midnight).
        let end = Utc.with_ymd_and_hms(2026, 10, 31, 16, 0, 0).unwrap();
        assert!(!settled(oct, end + chrono::Duration::days(30)));
        assert!(settled(oct, end + chrono::Duration::days(31)));
    }
}
