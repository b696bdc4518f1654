//! Production mode (issue 23, finding 6): `hcp serve` with `HCP_ENV=production` (the default)
//! refuses to start with a missing key, a key published in the repository, a demo account or an
//! admin with the demo password, naming every reason; with its own keys (here given as files)
//! and real accounts it serves.

use std::process::{Command, Stdio};
use std::time::Duration;

use hcp_tests::{free_port, hcp_bin, wait_until, TestApp, TEST_PII_KEY};

/// `hcp serve` of `app`'s database in production mode, with `env` on top; its variables from
/// the test run (keys, HCP_ENV) are not inherited.
fn serve(app: &TestApp, port: u16, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(hcp_bin());
    cmd.args(["serve", "--components", "sessions,ingest"]).stdout(Stdio::null()).stderr(Stdio::piped());
    for name in ["HCP_SESSION_KEY", "HCP_INVITATION_KEY", "HCP_PII_KEY", "HCP_METRICS_TOKEN", "HCP_DEMO_PASSWORD"] {
        cmd.env_remove(name).env_remove(format!("{name}_FILE"));
    }
    cmd.env_remove("HCP_INGEST_AUTH");
    for (k, v) in app.child_env() {
        if k != "HCP_PII_KEY" {
            cmd.env(k, v);
        }
    }
    cmd.env("HCP_ENV", "production").env("HCP_HTTP_ADDR", format!("127.0.0.1:{port}"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a start that must be refused; returns its stderr.
fn refused(mut cmd: Command) -> String {
    let out = cmd.output().expect("run hcp serve");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a production start was not refused:\n{stderr}");
    stderr
}

fn random_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

async fn add_account(app: &TestApp, username: &str, role: &str, password: &str, disabled: bool) {
    app.store
        .upsert_account(&hcp_store::Account {
            username: username.into(),
            display_name: username.into(),
            role: role.into(),
            department_id: None,
            region_code: None,
            staff_id: None,
            disabled,
            password_hash: hcp_http::auth::hash_password(password),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_production_start_refuses_demo_keys_and_accounts_and_serves_with_its_own() {
    let app = TestApp::start().await;
    let port = free_port();

    // Nothing set: every missing key is named, and nothing listens.
    let err = refused(serve(&app, port, &[("HCP_INGEST_AUTH", "optional".into())]));
    for name in [
        "HCP_SESSION_KEY is not set",
        "HCP_PII_KEY is not set",
        "HCP_INVITATION_KEY is not set",
        "HCP_INGEST_AUTH=optional",
    ] {
        assert!(err.contains(name), "{name} not named:\n{err}");
    }

    // Keys published in the repository (the tests' own, the old compose key), a demo account and
    // an admin with the demo password: each named.
    add_account(&app, "admin", "admin", "whatever-it-is", false).await;
    add_account(&app, "ops-chief", "admin", "hcp-demo-2026", false).await;
    let published = [
        ("HCP_SESSION_KEY", "ZGV2LW9ubHkta2V5LWNoYW5nZS1tZS1pbi1wcm9kISE=".to_owned()),
        ("HCP_PII_KEY", TEST_PII_KEY.to_owned()),
        ("HCP_INVITATION_KEY", random_key()),
    ];
    let err = refused(serve(&app, port, &published));
    for what in [
        "HCP_SESSION_KEY uses a key published",
        "HCP_PII_KEY uses a key published",
        "demo account `admin`",
        "account `ops-chief` has the demo password",
    ] {
        assert!(err.contains(what), "{what} not named:\n{err}");
    }
    assert!(!err.contains("HCP_INVITATION_KEY"), "its own invitation key is fine:\n{err}");
    assert!(!err.contains("ZGV2LW9ubHk") && !err.contains("AQIDBAUG"), "a key was printed:\n{err}");

    // The operator's fix: own keys (as files), the demo account disabled, a real password.
    add_account(&app, "admin", "admin", "whatever-it-is", true).await;
    add_account(&app, "ops-chief", "admin", "a-long-real-passphrase", false).await;
    let dir = std::env::temp_dir().join(format!("hcp-prod-{}", app.db_name));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, value: String| {
        let path = dir.join(name);
        std::fs::write(&path, value).unwrap();
        path.to_string_lossy().into_owned()
    };
    let own = [
        ("HCP_SESSION_KEY_FILE", file("session", random_key())),
        ("HCP_PII_KEY_FILE", file("pii", format!("k1:{}", random_key()))),
        ("HCP_INVITATION_KEY_FILE", file("invitation", random_key())),
    ];
    let mut cmd = serve(&app, port, &own);
    cmd.stderr(Stdio::null());
    let mut child = hcp_tests::ChildProcess(cmd.spawn().unwrap());
    let client = reqwest::Client::new();
    wait_until(Duration::from_secs(30), "the production server to serve", || async {
        client.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(child.0.try_wait().unwrap().is_none());
    let r = client
        .post(format!("http://127.0.0.1:{port}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "ops-chief", "password": "a-long-real-passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn demo_data_is_refused_in_production() {
    let out = Command::new(hcp_bin()).args(["seed", "demo"]).env("HCP_ENV", "production").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HCP_ENV=development"));
}
