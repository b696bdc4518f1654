#!/usr/bin/env bash
# Stops the local Apache Kafka node and PostgreSQL cluster started by run.sh / test.sh. Data is kept.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
# A controlled shutdown (SIGTERM), SIGKILL after 30 s.
"$KAFKA_SH" stop "$HCP_LOCAL/kafka"
bin="$(pg_bin)"
for d in "$HCP_LOCAL/pg" /var/tmp/hcp-"$(printf %s "$HCP_ROOT" | md5sum | cut -c1-8)"/pg; do
  [ -n "$bin" ] && [ -s "$d/PG_VERSION" ] && pg_run "$bin/pg_ctl" -D "$d" -m fast stop >/dev/null 2>&1 || true
done
log "stopped"
