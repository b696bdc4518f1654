//! The production start check (`HCP_ENV=production`, the default): `hcp serve` refuses to run
//! with a missing key, a key published in this repository, or a demo account, and says every
//! reason at once. deploy/local/run.sh and test.sh run as `development`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hcp_server::{ComponentName, Components, Config};
use hcp_store::Store;

/// Key material that has been published in this repository (now or in its history): demo and
/// test keys. Anyone can read them, so anyone could forge sessions or links, or open sealed
/// identities, with them. `published_keys_are_listed` keeps the list complete.
pub const PUBLISHED_KEYS: &[&str] = &[
    // docker-compose.yml's former demo keys (session, invitation and PII alike).
    "ZGV2LW9ubHkta2V5LWNoYW5nZS1tZS1pbi1wcm9kISE=",
    // tests/support: TEST_PII_KEY and TEST_SESSION_KEY.
    "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
    "c2Vzc2lvbi1rZXktZm9yLXRlc3RzLW9ubHktMzItYnl0ZXM=",
];

/// The demo password `hcp seed demo` uses unless `HCP_DEMO_PASSWORD` says otherwise.
pub const DEMO_PASSWORD: &str = "hcp-demo-2026";

/// The base64 pieces of a key setting (`id:b64,id:b64` or a bare `b64`) that decode to at least
/// 16 bytes, decoded.
fn key_material(value: &str) -> Vec<Vec<u8>> {
    value
        .split([',', ':', ' ', '\n'])
        .map(str::trim)
        .filter(|t| t.len() >= 22)
        .filter_map(|t| B64.decode(t).ok())
        .filter(|b| b.len() >= 16)
        .collect()
}

/// Whether `value` contains key material from [`PUBLISHED_KEYS`].
pub fn uses_published_key(value: &str) -> bool {
    let published: Vec<Vec<u8>> = PUBLISHED_KEYS.iter().flat_map(|k| key_material(k)).collect();
    key_material(value).iter().any(|m| published.contains(m))
}

/// Every reason the configuration is not fit for production (empty: fit).
pub fn key_problems(config: &Config, components: &Components) -> Vec<String> {
    let mut problems = Vec::new();
    let mut need = |set: bool, name: &str, why: &str| {
        if !set {
            problems.push(format!("{name} is not set ({why})"));
        }
    };
    need(config.session_key.is_some(), "HCP_SESSION_KEY", "a random key would end every session at restart");
    need(config.pii.is_some(), "HCP_PII_KEY", "raters' identities could not be sealed");
    if components.iter().any(|c| c == ComponentName::Ingest) {
        need(config.invitation_key.is_some(), "HCP_INVITATION_KEY", "a random key would kill every link at restart");
    }
    if !config.ingest_auth_required && components.iter().any(|c| c == ComponentName::Ingest) {
        problems
            .push("HCP_INGEST_AUTH=optional lets anyone rate without a channel key (demos and load tests only)".into());
    }
    if components.contains(ComponentName::Sms)
        && config.sms_gateway != hcp_server::config::SmsGatewayName::Outbox
        && config.sms_inbound_token.is_none()
    {
        problems.push(
            "HCP_SMS_INBOUND_TOKEN is not set (the SMS gateway could not report 退订/TD replies, so a number that \
             opted out would keep getting SMS)"
                .into(),
        );
    }
    if config.metrics_token.is_none() {
        tracing::warn!("HCP_METRICS_TOKEN is not set: /metrics is public; keep it off the internet or set a token");
    }
    for name in hcp_server::config::SECRET_VARIABLES {
        if std::env::var(name).is_ok_and(|v| uses_published_key(&v)) {
            problems.push(format!("{name} uses a key published in the hcp repository: generate your own"));
        }
    }
    problems
}

/// The demo accounts still able to log in, and operator accounts whose password is the demo one.
pub async fn account_problems(store: &Store) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut passwords = vec![DEMO_PASSWORD.to_owned()];
    passwords.extend(std::env::var("HCP_DEMO_PASSWORD").ok().filter(|p| !p.is_empty()));
    let demo: Vec<&str> = hcp_tools::demo::ACCOUNTS.iter().map(|a| a.username).collect();
    for a in store.accounts().await? {
        if a.disabled {
            continue;
        }
        if demo.contains(&a.username.as_str()) {
            problems
                .push(format!("demo account `{}` can log in (hcp account add … --disabled, or remove it)", a.username));
            continue;
        }
        if a.role == "admin" {
            let (hash, candidates) = (a.password_hash.clone(), passwords.clone());
            let demo_password = tokio::task::spawn_blocking(move || {
                candidates.iter().any(|p| hcp_http::auth::verify_password(p, &hash))
            })
            .await?;
            if demo_password {
                problems.push(format!("account `{}` has the demo password", a.username));
            }
        }
    }
    Ok(problems)
}

/// Refuses a production start that [`key_problems`] or [`account_problems`] find unfit.
pub async fn check(config: &Config, components: &Components) -> anyhow::Result<()> {
    let mut problems = key_problems(config, components);
    let store = Store::connect(&config.database_url, 2).await?;
    problems.extend(account_problems(&store).await?);
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve in production (HCP_ENV=production):\n  - {}\nREADME.md, \"Running in production\", says how to fix each; \
         HCP_ENV=development runs anyway (local runs and demos only)",
        problems.join("\n  - ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_material_is_recognised_in_every_key_form() {
        // An unpublished key, made here (a literal would be published by this very file).
        let own = B64.encode(rand::random::<[u8; 32]>());
        assert!(uses_published_key(PUBLISHED_KEYS[0]));
        assert!(uses_published_key(&format!("new:{own},dev1:{}", PUBLISHED_KEYS[0])));
        assert!(uses_published_key(&format!("t1:{}", PUBLISHED_KEYS[1])));
        assert!(!uses_published_key(&own));
        assert!(!uses_published_key(&format!("k1:{own}")));
        assert!(!uses_published_key(""));
    }

    /// Every key-shaped base64 value on a line naming a key, secret or token in the repository's
    /// tracked files is in [`PUBLISHED_KEYS`], so a key committed tomorrow cannot start in production.
    #[test]
    fn published_keys_are_listed() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let files = std::process::Command::new("git").args(["-C", root, "ls-files"]).output().expect("git ls-files");
        let mut unlisted = Vec::new();
        for file in String::from_utf8_lossy(&files.stdout).lines() {
            let Ok(text) = std::fs::read_to_string(format!("{root}/{file}")) else { continue };
            for line in text.lines() {
                let lower = line.to_lowercase();
                if !["key", "secret", "token"].iter().any(|w| lower.contains(w)) {
                    continue;
                }
                for token in line.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c))) {
                    if token.len() >= 43
                        && key_material(token).iter().any(|m| m.len() == 32)
                        && !uses_published_key(token)
                    {
                        unlisted.push(format!("{file}: {token}"));
                    }
                }
            }
        }
        assert!(unlisted.is_empty(), "add these to PUBLISHED_KEYS (or remove them): {unlisted:#?}");
    }
}
