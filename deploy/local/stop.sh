#!/usr/bin/env bash
# Stops the local PostgreSQL cluster and Tansu started by run.sh / test.sh. Data is kept.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
if [ -f "$HCP_LOCAL/tansu/tansu.pid" ]; then
  kill "$(cat "$HCP_LOCAL/tansu/tansu.pid")" 2>/dev/null || true
  rm -f "$HCP_LOCAL/tansu/tansu.pid"
fi
# Also a broker on our port whose pid file is gone (started by an earlier checkout or run).
pkill -f "tansu broker .*tcp://127.0.0.1:$HCP_KAFKA_PORT" 2>/dev/null || true
for _ in $(seq 50); do port_open "$HCP_KAFKA_PORT" || break; sleep 0.1; done
# A broker whose storage panicked may ignore SIGTERM.
port_open "$HCP_KAFKA_PORT" && pkill -9 -f "tansu broker .*tcp://127.0.0.1:$HCP_KAFKA_PORT" 2>/dev/null || true
bin="$(pg_bin)"
for d in "$HCP_LOCAL/pg" /var/tmp/hcp-"$(printf %s "$HCP_ROOT" | md5sum | cut -c1-8)"/pg; do
  [ -n "$bin" ] && [ -s "$d/PG_VERSION" ] && pg_run "$bin/pg_ctl" -D "$d" -m fast stop >/dev/null 2>&1 || true
done
log "stopped"
