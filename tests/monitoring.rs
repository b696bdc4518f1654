//! The monitoring files in `deploy/monitoring/` and `deploy/k8s/` stay true to the code: every
//! metric the Grafana dashboard queries and the Kubernetes PrometheusRule alerts on is one hcp
//! registers (a renamed metric fails here, not on a wall screen or a silent pager), and
//! Prometheus scrapes `/metrics`.

use std::collections::BTreeSet;
use std::path::Path;

/// Every `"hcp_…"` string literal in the crates' sources: the registered metric names.
fn registered() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split("\"hcp_").skip(1) {
                    let name: String = part.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                    if part[name.len()..].starts_with('"') {
                        names.insert(format!("hcp_{name}"));
                    }
                }
            }
        }
    }
    names
}

#[test]
fn the_dashboard_queries_only_metrics_hcp_registers() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring/grafana-hcp-pipeline.json"),
    )
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let registered = registered();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let mut used = BTreeSet::new();
    for panel in panels {
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}: no query", panel["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            for part in expr.split("hcp_").skip(1) {
                let name: String = part.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                let base = name.strip_suffix("_bucket").unwrap_or(&name);
                used.insert(format!("hcp_{base}"));
            }
        }
    }
    let unknown: Vec<&String> = used.iter().filter(|m| !registered.contains(*m)).collect();
    assert!(unknown.is_empty(), "the dashboard queries metrics hcp does not register: {unknown:?}");
    // What the issue asks the dashboard to show.
    for needed in [
        "hcp_ingest_ratings_accepted_total",
        "hcp_aggregator_consumer_lag",
        "hcp_aggregator_batch_seconds",
        "hcp_http_requests_total",
        "hcp_workorders_open",
    ] {
        assert!(used.contains(needed), "the dashboard lacks {needed}");
    }

    let prometheus =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring/prometheus.yml"))
            .unwrap();
    assert!(prometheus.contains("metrics_path: /metrics") && prometheus.contains("job_name: hcp"));
}

#[test]
fn the_alert_rules_use_only_metrics_hcp_registers() {
    // One `expr:` per line in the rule file (its header says so); deploy/k8s/check.py reads the
    // rendered rule with a YAML parser as well.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/base/monitoring/prometheusrule.yaml"),
    )
    .unwrap();
    let exprs: Vec<&str> = text.lines().filter_map(|l| l.trim_start().strip_prefix("expr:")).map(str::trim).collect();
    assert!(exprs.len() >= 5, "only {} alert expressions", exprs.len());
    let registered = registered();
    let mut used = BTreeSet::new();
    for expr in &exprs {
        assert!(!expr.is_empty(), "an expression continues on the next line: keep each on one");
        for part in expr.split("hcp_").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            used.insert(format!("hcp_{name}"));
        }
    }
    let unknown: Vec<&String> = used.iter().filter(|m| !registered.contains(*m)).collect();
    assert!(unknown.is_empty(), "the alert rules use metrics hcp does not register: {unknown:?}");
    // What the deployment issue asks the alerts to watch.
    for needed in [
        "hcp_aggregator_consumer_lag",
        "hcp_http_requests_total",
        "hcp_workorders_open",
        "hcp_aggregator_records_total",
        "hcp_calendar_last_year",
    ] {
        assert!(used.contains(needed), "no alert uses {needed}");
    }
}
