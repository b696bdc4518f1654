#!/usr/bin/env bash
# Apache Kafka for hcp's local stack and tests, run from Maven Central jars on the machine's JDK.
#
#   kafka.sh fetch                 fetch the pinned broker (pom.xml) once into the cache; print its lib dir
#   kafka.sh fetched               print the lib dir when the jars are there (exit 1 otherwise)
#   kafka.sh java                  print the java that runs Kafka when it is Java 17 or newer (exit 1 otherwise)
#   kafka.sh version               print the pinned Kafka version
#   kafka.sh init DIR PORTS        configure and format a cluster in DIR, once; PORTS is one
#                                  PLAINTEXT:CONTROLLER pair per node, comma-separated
#                                  (e.g. 9092:9093, or 19092:19093,19094:19095,19096:19097)
#   kafka.sh run DIR N             run node N in the foreground (exec: the caller's child is the JVM)
#   kafka.sh start DIR [N…]        start the nodes (all by default) in the background, wait until ready
#   kafka.sh stop DIR [N…]         controlled shutdown (SIGTERM), SIGKILL after 30 s
#   kafka.sh kill DIR [N…]         SIGKILL (the crash a fault test wants)
#   kafka.sh pid DIR N             the pid of node N when it is running (exit 1 otherwise)
#
# A cluster directory holds cluster.id and node-N/{server.properties,data,logs,pid}. Every node
# is a combined broker + controller (KRaft, static quorum of all nodes). Settings: server.properties
# beside this script (shared with docker-compose.yml), then the node's own lines, then the
# replication settings of a cluster of three or more. Environment: HCP_CACHE (default
# ~/.cache/hcp), HCP_KAFKA_HEAP (default 512m), JAVA_HOME.
set -euo pipefail

KAFKA_DEPLOY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HCP_CACHE="${HCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hcp}"
KAFKA_VERSION="$(sed -nE 's|.*<kafka.version>(.+)</kafka.version>.*|\1|p' "$KAFKA_DEPLOY/pom.xml")"
KAFKA_LIB="$HCP_CACHE/kafka-$KAFKA_VERSION/lib"

kafka_die() { printf '\033[1;31m[hcp]\033[0m %s\n' "$*" >&2; exit 1; }
kafka_log() { printf '\033[1;34m[hcp]\033[0m %s\n' "$*" >&2; }

kafka_java() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then echo "$JAVA_HOME/bin/java"; else command -v java || true; fi
}

# Fails with one line unless a Java 17 or newer is on the machine.
kafka_require_java() {
  local java major
  java="$(kafka_java)"
  [ -n "$java" ] || kafka_die "Java 17 or newer is required to run Apache Kafka: apt-get install openjdk-17-jre-headless (or set JAVA_HOME)"
  major="$("$java" -version 2>&1 | sed -nE '1s/.*version "([0-9]+)(\.[0-9]+)?.*/\1/p')"
  [ "${major:-0}" -ge 17 ] 2>/dev/null \
    || kafka_die "Apache Kafka $KAFKA_VERSION needs Java 17 or newer; $java is version ${major:-unknown}: apt-get install openjdk-17-jre-headless (or set JAVA_HOME)"
}

# The broker's jars with their runtime dependencies, fetched once (a second run reuses them).
kafka_fetch() {
  if [ ! -f "$KAFKA_LIB/.complete" ]; then
    command -v mvn >/dev/null || kafka_die "Maven is required to fetch Apache Kafka $KAFKA_VERSION from Maven Central: apt-get install maven"
    local tmp="$KAFKA_LIB.partial" log="$HCP_CACHE/kafka-$KAFKA_VERSION/fetch.log"
    mkdir -p "$(dirname "$KAFKA_LIB")"
    rm -rf "$tmp"
    kafka_log "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_LIB (once)"
    if ! mvn -B -f "$KAFKA_DEPLOY/pom.xml" -Dmaven.repo.local="$HCP_CACHE/m2" \
      org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DoutputDirectory="$tmp" -DincludeScope=runtime >"$log" 2>&1; then
      kafka_die "could not fetch Apache Kafka $KAFKA_VERSION from Maven Central (mvn log: $log); check the network or a Maven mirror in ~/.m2/settings.xml"
    fi
    ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || kafka_die "the fetched jars lack kafka_2.13-$KAFKA_VERSION.jar (mvn log: $log)"
    rm -rf "$KAFKA_LIB"
    mv "$tmp" "$KAFKA_LIB"
    touch "$KAFKA_LIB/.complete"
  fi
  echo "$KAFKA_LIB"
}

# init DIR PORTS: writes each node's properties (every time: they follow this script) and formats
# the storage of a node that has none yet (never twice: Kafka refuses a formatted directory).
kafka_init() {
  local dir="$1" ports="$2"
  kafka_require_java
  kafka_fetch >/dev/null
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local -a pairs
  IFS=, read -r -a pairs <<<"$ports"
  local n=${#pairs[@]} voters="" i
  for ((i = 1; i <= n; i++)); do voters+="${voters:+,}$i@127.0.0.1:${pairs[i - 1]#*:}"; done
  [ -s "$dir/cluster.id" ] || "$(kafka_java)" -cp "$KAFKA_LIB/*" kafka.tools.StorageTool random-uuid >"$dir/cluster.id"
  local id; id="$(cat "$dir/cluster.id")"
  for ((i = 1; i <= n; i++)); do
    local node="$dir/node-$i" port="${pairs[i - 1]%%:*}" controller="${pairs[i - 1]#*:}"
    mkdir -p "$node/data" "$node/logs"
    {
      cat "$KAFKA_DEPLOY/server.properties"
      printf '\n# Node %s of %s (written by deploy/kafka/kafka.sh).\n' "$i" "$n"
      printf 'node.id=%s\n' "$i"
      printf 'listeners=PLAINTEXT://127.0.0.1:%s,CONTROLLER://127.0.0.1:%s\n' "$port" "$controller"
      printf 'advertised.listeners=PLAINTEXT://127.0.0.1:%s\n' "$port"
      printf 'controller.quorum.voters=%s\n' "$voters"
      printf 'log.dirs=%s\n' "$node/data"
      if [ "$n" -ge 3 ]; then
        # Replication factor 3 everywhere, acks=all needs two copies, and a broker that stops
        # heartbeating is fenced (its partitions led elsewhere) within 3 s instead of 9 s.
        printf '\n# A cluster of %s: replicated.\n' "$n"
        printf '%s\n' offsets.topic.replication.factor=3 transaction.state.log.replication.factor=3 \
          transaction.state.log.min.isr=2 share.coordinator.state.topic.replication.factor=3 \
          share.coordinator.state.topic.min.isr=2 default.replication.factor=3 min.insync.replicas=2 \
          broker.heartbeat.interval.ms=500 broker.session.timeout.ms=3000
      fi
    } >"$node/server.properties"
  done
  # Format the nodes that have no storage yet, side by side (a JVM start each).
  local -a formatting=()
  for ((i = 1; i <= n; i++)); do
    local node="$dir/node-$i"
    [ -s "$node/data/meta.properties" ] && continue
    "$(kafka_java)" -Xmx256m -Dlog4j2.configurationFile="$KAFKA_DEPLOY/log4j2.properties" -Dkafka.logs.dir="$node/logs" \
      -cp "$KAFKA_LIB/*" kafka.tools.StorageTool format -t "$id" -c "$node/server.properties" >"$node/logs/format.log" 2>&1 &
    formatting+=("$!:$i")
  done
  local f
  for f in "${formatting[@]}"; do
    wait "${f%%:*}" || kafka_die "formatting Kafka node ${f#*:} failed (log: $dir/node-${f#*:}/logs/format.log)"
  done
}

kafka_nodes() { # DIR [N…]: the nodes named, or every node of DIR
  local dir="$1"; shift
  if [ $# -gt 0 ]; then printf '%s\n' "$@"; else ls -d "$dir"/node-* 2>/dev/null | sed 's|.*/node-||' | sort -n; fi
}

kafka_port() { sed -nE 's|^listeners=PLAINTEXT://[^:]+:([0-9]+),.*|\1|p' "$1/node-$2/server.properties"; }

# The pid of node N when the process is alive and is that node's broker.
kafka_pid() {
  local node="$1/node-$2" pid
  pid="$(cat "$node/pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && grep -qa "$node/server.properties" "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

kafka_run() {
  local node="$1/node-$2"
  [ -s "$node/server.properties" ] || kafka_die "no Kafka node $2 in $1 (kafka.sh init first)"
  kafka_require_java
  echo $$ >"$node/pid"
  exec "$(kafka_java)" -Xms"${HCP_KAFKA_HEAP:-512m}" -Xmx"${HCP_KAFKA_HEAP:-512m}" \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DEPLOY/log4j2.properties" -Dkafka.logs.dir="$node/logs" \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$node/server.properties"
}

port_accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

kafka_start() {
  local dir="$1"; shift
  local -a started=()
  local i
  for i in $(kafka_nodes "$dir" "$@"); do
    kafka_pid "$dir" "$i" >/dev/null && continue
    local port; port="$(kafka_port "$dir" "$i")"
    port_accepts "$port" && kafka_die "port $port is held by a process that is not Kafka node $i of $dir: stop it, or choose another port"
    nohup "$KAFKA_DEPLOY/kafka.sh" run "$dir" "$i" >"$dir/node-$i/logs/stdout.log" 2>&1 &
    started+=("$i")
  done
  # Nodes wait for a controller quorum before they open PLAINTEXT (only once unfenced): start
  # them all, then wait for each.
  for i in "${started[@]}"; do
    local port t; port="$(kafka_port "$dir" "$i")"
    for ((t = 0; t < 1200; t++)); do
      port_accepts "$port" && break
      if ((t > 10)) && ! kafka_pid "$dir" "$i" >/dev/null; then
        tail -n 20 "$dir/node-$i/logs/server.log" "$dir/node-$i/logs/stdout.log" >&2 2>/dev/null || true
        kafka_die "Kafka node $i exited during start (logs: $dir/node-$i/logs)"
      fi
      sleep 0.1
    done
    port_accepts "$port" || kafka_die "Kafka node $i did not open port $port within 120 s (logs: $dir/node-$i/logs)"
  done
}

kafka_signal() { # SIGNAL GRACE_SECONDS DIR [N…]
  local signal="$1" grace="$2" dir="$3"; shift 3
  local -a pids=()
  local i pid t
  for i in $(kafka_nodes "$dir" "$@"); do
    pid="$(kafka_pid "$dir" "$i")" && kill -"$signal" "$pid" 2>/dev/null && pids+=("$pid")
  done
  for pid in "${pids[@]}"; do
    for ((t = 0; t < grace * 10; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  done
  return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  command="${1:-}"
  shift || true
  case "$command" in
    fetch) kafka_require_java; kafka_fetch ;;
    fetched) [ -f "$KAFKA_LIB/.complete" ] && echo "$KAFKA_LIB" ;;
    java) kafka_require_java; kafka_java ;;
    version) echo "$KAFKA_VERSION" ;;
    init) [ $# -eq 2 ] || kafka_die "usage: kafka.sh init DIR PORT:CONTROLLER_PORT[,…]"; kafka_init "$@" ;;
    run) [ $# -eq 2 ] || kafka_die "usage: kafka.sh run DIR N"; kafka_run "$@" ;;
    start) [ $# -ge 1 ] || kafka_die "usage: kafka.sh start DIR [N…]"; kafka_start "$@" ;;
    stop) [ $# -ge 1 ] || kafka_die "usage: kafka.sh stop DIR [N…]"; kafka_signal TERM 30 "$@" ;;
    kill) [ $# -ge 1 ] || kafka_die "usage: kafka.sh kill DIR [N…]"; kafka_signal KILL 5 "$@" ;;
    pid) [ $# -eq 2 ] || kafka_die "usage: kafka.sh pid DIR N"; kafka_pid "$@" ;;
    *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
fi
