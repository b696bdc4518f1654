//! `hcp credential`: channel keys (device and integration); the token is printed once.

use anyhow::Context;
use chrono::Utc;
use clap::Subcommand;
use hcp_server::Config;
use hcp_store::Store;

#[derive(Subcommand)]
pub enum CredentialCommand {
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
        /// This key's own limit in requests a second (1–100000); default: its kind's
        /// (HCP_RATE_LIMIT_DEVICE, _INTEGRATION, _PLATFORM).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=100_000))]
        rate_limit: Option<i32>,
    },
    /// Revoke a key.
    Revoke {
        /// Key id.
        key_id: String,
    },
}

/// Runs `hcp credential …`.
pub async fn run(config: &Config, command: CredentialCommand) -> anyhow::Result<()> {
    let store = || Store::connect(&config.database_url, 2);
    match command {
        CredentialCommand::Add { kind, channel, device, name, rate_limit } => {
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
            let store = store().await.context("connecting to PostgreSQL")?;
            let (key_id, token, secret_sha256) = hcp_http::auth::new_channel_key();
            store
                .create_credential(&hcp_store::Credential {
                    key_id,
                    kind,
                    channel,
                    device_id: device,
                    hall_id: None,
                    window_id: None,
                    name,
                    created_at: Utc::now(),
                    revoked_at: None,
                    last_used_at: None,
                    rate_limit,
                    secret_sha256,
                })
                .await?;
            println!("{token}");
            Ok(())
        }
        CredentialCommand::Revoke { key_id } => {
            let store = store().await.context("connecting to PostgreSQL")?;
            anyhow::ensure!(store.revoke_credential(&key_id).await?, "no key {key_id}");
            println!("key {key_id} revoked");
            Ok(())
        }
    }
}
