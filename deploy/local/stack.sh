#!/usr/bin/env bash
# Sourced by run.sh and test.sh: installs (when missing) and starts the local stack, idempotently.
#   PostgreSQL: Debian's package, our own cluster in $HCP_LOCAL/pg, port $HCP_PG_PORT (5439).
#   Apache Kafka: one KRaft node (broker + controller) from Maven Central jars on the JDK
#   (deploy/kafka/kafka.sh), data and logs in $HCP_LOCAL/kafka, port $HCP_KAFKA_PORT (9092),
#   controller on the next port.
# Everything lives under one project-local directory, $HCP_LOCAL (default <repo>/.hcp-local).
set -euo pipefail

HCP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HCP_LOCAL="${HCP_LOCAL:-$HCP_ROOT/.hcp-local}"
HCP_CACHE="${HCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hcp}"
HCP_PG_PORT="${HCP_PG_PORT:-5439}"
HCP_KAFKA_PORT="${HCP_KAFKA_PORT:-9092}"
# PostgreSQL durability: run.sh keeps fsync on (what users start must keep what it acknowledged);
# test.sh sets HCP_PG_FSYNC=off for speed (its databases are thrown away).
HCP_PG_FSYNC="${HCP_PG_FSYNC:-on}"
KAFKA_SH="$HCP_ROOT/deploy/kafka/kafka.sh"
SCHEMATHESIS_VERSION="4.32.5"
JSONSCHEMA_VERSION="4.26.0"
HCP_VENV="$HCP_CACHE/venv"
CHECKOV_VERSION="3.3.30"
KUSTOMIZE_VERSION="v5.5.0"
HCP_K8S_VENV="$HCP_CACHE/venv-checkov"
export HCP_ROOT HCP_LOCAL HCP_CACHE HCP_VENV HCP_K8S_VENV

log() { printf '\033[1;34m[hcp]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[hcp]\033[0m %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Installs Debian packages, or stops with one line naming them and how to install them.
apt_install() {
  log "installing Debian packages: $*"
  mkdir -p "$HCP_LOCAL"
  { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
      && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >"$HCP_LOCAL/apt.log" 2>&1 \
    || die "could not install $* (log: $HCP_LOCAL/apt.log); install them as root: apt-get install $*"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-; }

wait_port() { # port seconds what
  local i
  for ((i = 0; i < $2 * 10; i++)); do port_open "$1" && return 0; sleep 0.1; done
  die "$3 did not open port $1 within $2 s"
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# Runs a PostgreSQL server binary as the cluster owner (postgres refuses to run as root).
pg_run() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_postgres() {
  [ -n "$(pg_bin)" ] || apt_install postgresql
  local bin; bin="$(pg_bin)"
  export PGHOST=127.0.0.1 PGPORT="$HCP_PG_PORT" PGUSER=hcp HCP_PG_BIN="$bin"
  if port_open "$HCP_PG_PORT" && "$bin/psql" -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
    # A server of ours (another checkout's, or an earlier run) is already up on the port: use it,
    # unless it runs without fsync (a test run started it) and this command needs durability.
    local fsync; fsync="$("$bin/psql" -d postgres -tAc 'SHOW fsync')"
    if [ "$HCP_PG_FSYNC" = on ] && [ "$fsync" = off ]; then
      pg_run "$bin/pg_ctl" -D "$(pg_data_dir)" status >/dev/null 2>&1 \
        || die "PostgreSQL on 127.0.0.1:$HCP_PG_PORT runs with fsync=off and is not this checkout's: restart it with fsync on, or set HCP_PG_PORT"
      log "restarting PostgreSQL with fsync on (a test run had started it without)"
      pg_run "$bin/pg_ctl" -D "$(pg_data_dir)" -w -t 60 stop -m fast >/dev/null
      start_postgres "$bin"
    else
      log "using PostgreSQL already running on 127.0.0.1:$HCP_PG_PORT (fsync $fsync)"
    fi
  else
    start_postgres "$bin"
  fi
  "$bin/psql" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='hcp'" | grep -q 1 \
    || "$bin/psql" -d postgres -qc "CREATE DATABASE hcp" >/dev/null
  export DATABASE_URL="postgres://hcp@127.0.0.1:$HCP_PG_PORT/hcp"
}

# Where this checkout's cluster lives: $HCP_LOCAL/pg, or beside it in /var/tmp when the cluster
# owner cannot reach the checkout (root running from e.g. /root).
pg_data_dir() {
  if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$HCP_LOCAL" 2>/dev/null; then
    echo "/var/tmp/hcp-$(printf %s "$HCP_ROOT" | md5sum | cut -c1-8)/pg"
  else
    echo "$HCP_LOCAL/pg"
  fi
}

start_postgres() {
  local bin="$1"
  mkdir -p "$HCP_LOCAL"
  PGDATA_DIR="$(pg_data_dir)"
  [ "$PGDATA_DIR" = "$HCP_LOCAL/pg" ] || log "postgres cannot traverse $HCP_LOCAL; using $PGDATA_DIR"
  if [ ! -s "$PGDATA_DIR/PG_VERSION" ]; then
    log "initialising PostgreSQL cluster in $PGDATA_DIR"
    mkdir -p "$PGDATA_DIR"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$(dirname "$PGDATA_DIR")" "$PGDATA_DIR"
    pg_run "$bin/initdb" -D "$PGDATA_DIR" -U hcp --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! pg_run "$bin/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$HCP_PG_PORT (fsync $HCP_PG_FSYNC)"
    pg_run "$bin/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/server.log" -w -t 60 start \
      -o "-p $HCP_PG_PORT -k $PGDATA_DIR -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=$HCP_PG_FSYNC -c shared_buffers=256MB" >/dev/null
  fi
}

# Java 17+ and Maven from Debian when missing, the pinned Kafka jars once, the node formatted
# once, and started unless this checkout's node already runs. A port held by anything else is
# reported, never reused.
ensure_kafka() {
  local missing=()
  "$KAFKA_SH" java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || "$KAFKA_SH" fetched >/dev/null 2>&1 || missing+=(maven)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  local dir="$HCP_LOCAL/kafka" controller=$((HCP_KAFKA_PORT + 1))
  if ! "$KAFKA_SH" pid "$dir" 1 >/dev/null 2>&1; then
    for port in "$HCP_KAFKA_PORT" "$controller"; do
      port_open "$port" && die "port $port is held by $(port_holder "$port"), not this checkout's Kafka: stop it, or set HCP_KAFKA_PORT to a free pair of ports"
    done
    "$KAFKA_SH" init "$dir" "$HCP_KAFKA_PORT:$controller"
    log "starting Apache Kafka $("$KAFKA_SH" version) on 127.0.0.1:$HCP_KAFKA_PORT (logs: $dir/node-1/logs)"
    "$KAFKA_SH" start "$dir"
  fi
  export KAFKA_BROKERS="127.0.0.1:$HCP_KAFKA_PORT"
}

# Who listens on a local TCP port, as well as we can tell.
port_holder() {
  local who
  who="$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -oE 'users:\(\("[^"]+",pid=[0-9]+' | head -n 1 | sed -E 's/users:\(\("([^"]+)",pid=([0-9]+)/pid \2 (\1)/')"
  echo "${who:-another process}"
}

# API fuzzing (schemathesis) and the event schemas' second validator (Python jsonschema), both
# from PyPI, pinned, in a virtualenv in the cache, outside the repo.
ensure_fuzzer() {
  "$HCP_VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" \
    && "$HCP_VENV/bin/pip" show jsonschema 2>/dev/null | grep -qx "Version: $JSONSCHEMA_VERSION" && return 0
  log "installing schemathesis $SCHEMATHESIS_VERSION and jsonschema $JSONSCHEMA_VERSION into $HCP_VENV"
  [ -x "$HCP_VENV/bin/pip" ] || python3 -m venv "$HCP_VENV" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$HCP_VENV"; }
  "$HCP_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" "jsonschema==$JSONSCHEMA_VERSION" >&2
}

# deploy/k8s/check.sh's tools: the static analyser checkov (pinned, in a virtualenv of its own
# beside the fuzzer's: it pins about a hundred packages and would downgrade one schemathesis
# shares), and a kustomize to render the overlays: kubectl's own when it embeds kustomize v5, else
# the pinned kustomize built from its Go module (needs Go >= 1.22). Sets HCP_KUSTOMIZE.
ensure_k8s_tools() {
  if ! "$HCP_K8S_VENV/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
    log "installing checkov $CHECKOV_VERSION into $HCP_K8S_VENV"
    [ -x "$HCP_K8S_VENV/bin/pip" ] || python3 -m venv "$HCP_K8S_VENV" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$HCP_K8S_VENV"; }
    "$HCP_K8S_VENV/bin/pip" install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION" >&2
  fi
  if command -v kubectl >/dev/null && kubectl version --client 2>/dev/null | grep -q '^Kustomize Version: v5\.'; then
    HCP_KUSTOMIZE="kubectl kustomize"
  else
    local dir="$HCP_CACHE/kustomize-$KUSTOMIZE_VERSION"
    if [ ! -x "$dir/kustomize" ]; then
      command -v go >/dev/null || die "rendering deploy/k8s needs kubectl with kustomize v5, or Go >= 1.22 to build kustomize $KUSTOMIZE_VERSION"
      log "building kustomize $KUSTOMIZE_VERSION (Go module sigs.k8s.io/kustomize/kustomize/v5) into $dir"
      GOBIN="$dir" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
    fi
    HCP_KUSTOMIZE="$dir/kustomize build"
  fi
  export HCP_KUSTOMIZE
}

ensure_build_tools() {
  command -v cargo >/dev/null || die "cargo is required (rustup)"
  local missing=()
  command -v cc >/dev/null || missing+=(build-essential)
  command -v make >/dev/null || missing+=(make)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

# Browser tests: Debian's Chromium, CJK fonts (legible zh-CN screenshots), Node.js and the
# pinned playwright-core from tests/browser/package-lock.json.
ensure_browser() {
  local missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -n "$(fc-list :lang=zh 2>/dev/null | head -1)" ] || missing+=(fonts-noto-cjk)
  command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  if [ ! -d "$HCP_ROOT/tests/browser/node_modules/playwright-core" ]; then
    log "installing playwright-core (npm ci, tests/browser)"
    (cd "$HCP_ROOT/tests/browser" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}

# Secrets of a local run, made once and kept in $HCP_LOCAL (never in the repo): the AES-256-GCM
# key that seals raters' identities, the key that signs operator sessions and the key that signs
# invitation links.
ensure_local_secrets() {
  # Local runs and tests are not production: demo accounts and these local keys are fine here.
  export HCP_ENV="${HCP_ENV:-development}"
  mkdir -p "$HCP_LOCAL"
  [ -s "$HCP_LOCAL/pii.key" ] || (umask 077; printf 'local1:%s\n' "$(head -c 32 /dev/urandom | base64)" >"$HCP_LOCAL/pii.key")
  [ -s "$HCP_LOCAL/session.key" ] || (umask 077; head -c 32 /dev/urandom | base64 >"$HCP_LOCAL/session.key")
  [ -s "$HCP_LOCAL/invitation.key" ] || (umask 077; head -c 32 /dev/urandom | base64 >"$HCP_LOCAL/invitation.key")
  export HCP_PII_KEY="${HCP_PII_KEY:-$(cat "$HCP_LOCAL/pii.key")}"
  export HCP_SESSION_KEY="${HCP_SESSION_KEY:-$(cat "$HCP_LOCAL/session.key")}"
  export HCP_INVITATION_KEY="${HCP_INVITATION_KEY:-$(cat "$HCP_LOCAL/invitation.key")}"
}

# Cargo output lives outside the clone by default so a fresh checkout reuses a warm build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HCP_CACHE/target}"
