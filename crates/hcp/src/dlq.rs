//! `hcp dlq`: the dead-letter topic: list its letters, replay them after a fix.

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use hcp_bus::RatingProducer;
use hcp_server::Config;

#[derive(Subcommand)]
pub enum DlqCommand {
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

/// Runs `hcp dlq …`.
pub async fn run(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
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
