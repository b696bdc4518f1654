//! `hcp account add`: operator accounts (the password from `HCP_ACCOUNT_PASSWORD`, never an argument).

use anyhow::Context;
use clap::Subcommand;
use hcp_server::Config;
use hcp_store::Store;

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Add or replace an account; the password comes from HCP_ACCOUNT_PASSWORD (never an argument,
    /// so it stays out of shell history and process lists).
    Add {
        /// Login name.
        username: String,
        /// admin, supervisor, handler, callback, auditor or staff.
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
        /// A staff account's staff member (a directory staff id): they see and may appeal only
        /// their own bad reviews.
        #[arg(long)]
        staff: Option<String>,
        /// Save the account disabled: it cannot log in, and its sessions end (as on any change).
        #[arg(long)]
        disabled: bool,
    },
}

/// Runs `hcp account …`.
pub async fn run(config: &Config, command: AccountCommand) -> anyhow::Result<()> {
    match command {
        AccountCommand::Add { username, role, name, department, region, staff, disabled } => {
            let password = std::env::var("HCP_ACCOUNT_PASSWORD")
                .ok()
                .filter(|p| p.len() >= 8)
                .context("set HCP_ACCOUNT_PASSWORD to the password (at least 8 characters)")?;
            let role = hcp_domain::Role::parse(&role).with_context(|| {
                format!("unknown role {role:?} (admin, supervisor, handler, callback, auditor, staff)")
            })?;
            anyhow::ensure!(role != hcp_domain::Role::Handler || department.is_some(), "a handler needs --department");
            anyhow::ensure!(role != hcp_domain::Role::Supervisor || region.is_some(), "a supervisor needs --region");
            anyhow::ensure!(
                (role == hcp_domain::Role::Staff) == staff.is_some(),
                "a staff account needs --staff (and only a staff account takes it)"
            );
            let store = Store::connect(&config.database_url, 2).await.context("connecting to PostgreSQL")?;
            let department = match &staff {
                // A staff member's department is the directory's.
                Some(id) => Some(
                    store
                        .staff_department(id)
                        .await?
                        .with_context(|| format!("no staff member {id:?} in the directory"))?,
                ),
                None => department,
            };
            store
                .upsert_account(&hcp_store::Account {
                    display_name: name.unwrap_or_else(|| username.clone()),
                    username: username.clone(),
                    role: role.as_str().into(),
                    department_id: department,
                    region_code: region,
                    staff_id: staff,
                    disabled,
                    password_hash: hcp_http::auth::hash_password(&password),
                })
                .await?;
            let state = if disabled { ", disabled" } else { "" };
            println!("account {username} ({}{state}) saved; its sessions ended", role.as_str());
            Ok(())
        }
    }
}
