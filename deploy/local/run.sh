#!/usr/bin/env bash
# Runs the whole pipeline with demo data on 127.0.0.1:8080, installing and starting what is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"

ensure_build_tools
ensure_postgres
ensure_kafka
ensure_local_secrets
log "building hcp (release)"
cargo build --release --locked -p hcp --manifest-path "$HCP_ROOT/Cargo.toml" >&2
HCP="$CARGO_TARGET_DIR/release/hcp"
export HCP_HTTP_ADDR="${HCP_HTTP_ADDR:-127.0.0.1:8080}"
export HCP_DEMO_PASSWORD="${HCP_DEMO_PASSWORD:-hcp-demo-2026}"

"$HCP" migrate
"$HCP" topics create
"$HCP" calendar import "$HCP_ROOT/deploy/calendar/cn-workdays-2020-2026.json"
"$HCP" seed demo --ratings "${HCP_DEMO_RATINGS:-3000}"
APP_KEY=$("$HCP" credential add --kind integration --channel app --name "demo app ($(date +%F))")

cat >&2 <<TXT

  hcp is starting on http://$HCP_HTTP_ADDR
    API reference      http://$HCP_HTTP_ADDR/docs
    log in (session)   TOKEN=\$(curl -s -XPOST http://$HCP_HTTP_ADDR/api/v1/auth/login -H 'content-type: application/json' \\
                         -d '{"username":"admin","password":"$HCP_DEMO_PASSWORD"}' \\
                         | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    today's summary    curl -H "Authorization: Bearer \$TOKEN" http://$HCP_HTTP_ADDR/api/v1/stats/summary
    last 24 h, by dept curl -H "Authorization: Bearer \$TOKEN" 'http://$HCP_HTTP_ADDR/api/v1/stats/summary?scope=department&id=D-SJ&from=$(date -u -d '-1 day' +%Y-%m-%dT%H:00:00Z)'
    who may call what  docs/access-matrix.md (GET /api/v1/access as admin or auditor)
    handler console    http://$HCP_HTTP_ADDR/console   (账号 sj = 市场监管局经办人, ga = 公安局经办人,
                       dc = 督查员, hf = 回访专员, admin; 密码 $HCP_DEMO_PASSWORD)
    live board         http://$HCP_HTTP_ADDR/board     (dc = 示范市督查员, sj = 本部门, admin = 全部)
    public results     http://$HCP_HTTP_ADDR/public
    metrics / health   http://$HCP_HTTP_ADDR/metrics  /healthz  /readyz
    post a rating      curl -XPOST http://$HCP_HTTP_ADDR/api/v1/ratings -H 'content-type: application/json' \\
                         -H 'Authorization: Bearer $APP_KEY' \\
                         -d '{"stage":"online","service_record_no":"MY-1","grade":5}'
  Stop with Ctrl-C; deploy/local/stop.sh stops PostgreSQL and Kafka.

TXT
exec "$HCP" serve
