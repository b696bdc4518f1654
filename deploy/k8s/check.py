#!/usr/bin/env python3
"""Renders every overlay of deploy/k8s and checks the objects against the binary and the repository.

    python3 deploy/k8s/check.py --hcp PATH_TO_HCP [--kustomize "kubectl kustomize"] [--out DIR]

What is true of hcp is asked of hcp itself: `hcp serve --help` (every variable, its default and
section, the component names) and `hcp topics settings` (names, partitions, replication and
configs from crates/hcp-bus); what each SMS gateway needs is asked of `hcp serve --components sms`
itself (it refuses to start naming the missing settings, before it connects to anything); the
rest is read from the sources it comes from (routes and their access, body limits, the
producer's flush, Kafka's version and broker settings, the Dockerfile's user, registered metric
names). Every failure is printed naming the overlay and the object; the last
line is `k8s: N passed, M failed` (exit 1 on any failure). Each overlay's rendering is written to
--out for checkov.
"""

import argparse
import base64
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["demo", "province"]
# The binary is asked with none of the caller's HCP_* variables (test.sh exports some).
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8"}

# Variables hcp reads outside its clap configuration (crates/hcp-server/src/telemetry.rs reads
# the first two before the configuration; sqlx reads libpq's PGPASSWORD for a URL without one).
EXTRA_VARIABLES = {"HCP_LOG_FORMAT", "RUST_LOG", "PGPASSWORD"}
# Variables without a default that a deployment may leave unset, and why.
MAY_BE_UNSET = {
    "HCP_KAFKA_DEBUG": "librdkafka debug contexts, for diagnosing a broker only",
    "HCP_DATABASE_LISTEN_URL": "DATABASE_URL serves the listeners too where it is direct; ingest behind PgBouncer must set it (checked below)",
}
# Variables with a default that is wrong in a cluster: they must be set.
MUST_BE_SET = {
    "DATABASE_URL": "the default is a local socket address",
    "KAFKA_BROKERS": "the default is 127.0.0.1:9092",
    "HCP_HTTP_ADDR": "the default listens on loopback only",
    "HCP_ENV": "production must be said, not assumed",
    "HCP_INGEST_AUTH": "every channel needs a key",
}
# Values never given inline: keys, tokens and passwords come from files or secretKeyRef (and so
# does every variable of config.rs's SECRET_VARIABLES, e.g. the SMS AccessKeySecret).
SECRET_SHAPED = re.compile(r"^(HCP_.*_KEY|HCP_.*_TOKEN|HCP_.*_SECRET|PGPASSWORD|.*PASSWORD.*)$")
# The crate whose sources register each component's routes; hcp-server's are every process's.
ROUTE_SOURCES = {
    "sessions": ["crates/hcp-http/src"],
    "ingest": ["crates/hcp-ingest/src"],
    "aggregator": [],
    "board": ["crates/hcp-board/src"],
    "alerts": ["crates/hcp-alert/src"],
    "directory": ["crates/hcp-directory/src"],
    "workorders": ["crates/hcp-workorder/src"],
    "webhooks": ["crates/hcp-webhook/src"],
    "sms": ["crates/hcp-sms/src"],
}
# The components the internet may reach (through hcp-public): ingest's API and the citizens'
# pages, the console with its calls, the public board; and sms, but only for the routes whose
# access is an SMS gateway's callback (checked path by path below).
PUBLIC_COMPONENTS = {"ingest", "sessions", "workorders", "board", "sms"}
# What each overlay's SMS gateway must be: the demo sends nothing; a province sends (the measures
# ask for 短信提醒评价), through whichever vendor it contracts.
SMS_GATEWAY_WANTED = {
    "demo": (lambda g: g == "outbox", "the demo must not send SMS (HCP_SMS_GATEWAY=outbox)"),
    "province": (lambda g: g != "outbox", "a province sends SMS through a vendor gateway, not outbox"),
}
# How the SMS gateway probe makes `hcp serve` stop right after its gateway check: a DATABASE_URL
# that does not parse (nothing is connected to), a port the system picks.
SMS_PROBE_ENV = {
    "HCP_ENV": "development",
    "HCP_HTTP_ADDR": "127.0.0.1:0",
    "DATABASE_URL": "postgres://probe@127.0.0.1:1/probe?sslmode=k8s-check-probe",
}
SMS_PROBE_PASSED = "k8s-check-probe"
# What the alerts must watch (the list), by a metric each needs.
RULES_NEEDED = {
    "consumer lag": "hcp_aggregator_consumer_lag",
    "503 rate": 'hcp_http_requests_total{status="503"}',
    "overdue orders": 'hcp_workorders_open{due_status="overdue"}',
    "dead-letter growth": 'hcp_aggregator_records_total{outcome="rejected"}',
    "calendar missing next year": "hcp_calendar_last_year",
}


class Checks:
    """Counts passed checks and collects failures, each named by overlay and object."""

    def __init__(self):
        self.passed = 0
        self.failures = []

    def check(self, ok, where, what):
        if ok:
            self.passed += 1
        else:
            self.failures.append(f"{where}: {what}")
            print(f"k8s: FAIL {where}: {what}", file=sys.stderr)
        return ok


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def read(rel):
    return (ROOT / rel).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# What the binary and the sources say


def binary_settings(hcp):
    """Every variable `hcp serve --help` lists: section, whether it has a default, the default;
    and the component names."""
    text = run([hcp, "serve", "--help"], env=CLEAN_ENV)
    variables, section, components = {}, None, []
    block = []

    def flush():
        body = "\n".join(block)
        env = re.search(r"\[env: ([A-Z_]+)=?[^\]]*\]", body)
        if env:
            default = re.search(r"\[default: ([^\]]*)\]", body)
            variables[env.group(1)] = {
                "section": section,
                "default": default.group(1) if default else None,
            }
        if "--components" in body:
            components.extend(re.findall(r"^\s+- ([a-z]+):", body, re.M))

    for line in text.splitlines():
        if re.match(r"^[A-Z][A-Za-z ]+:$", line):
            flush()
            block = []
            section = line[:-1]
        elif re.match(r"^\s+(-[a-zA-Z], )?--[a-z]", line):
            flush()
            block = [line]
        else:
            block.append(line)
    flush()
    return variables, components


def secret_variables():
    m = re.search(r"SECRET_VARIABLES: \[&str; \d+\] = \[([^\]]*)\]", read("crates/hcp-server/src/config.rs"))
    return set(re.findall(r'"([A-Z_]+)"', m.group(1)))


def topic_settings(hcp, partitions=None, replication=3):
    cmd = [hcp, "topics", "settings", "--replication", str(replication)]
    if partitions is not None:
        cmd += ["--partitions", str(partitions)]
    return json.loads(run(cmd, env=CLEAN_ENV))


def refusal(hcp, env):
    """What hcp says of a container's plain settings (its keys' files are not here): every
    setting is a global option, so any command parses them all; a bad value exits 2 naming it."""
    plain = {k: str(v) for k, (how, v) in env.items() if how == "value" and not k.endswith("_FILE")}
    r = subprocess.run([hcp, "topics", "settings"], env={**CLEAN_ENV, **plain}, capture_output=True, text=True)
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[0]


def accepts(hcp, env):
    return refusal(hcp, env) is None


def route_literals(component):
    """The path literals in a component's crate (its routes) and hcp-server's (every process's)."""
    found = set()
    for rel in ROUTE_SOURCES[component] + ["crates/hcp-server/src"]:
        for f in (ROOT / rel).rglob("*.rs"):
            found |= set(re.findall(r'"(/[A-Za-z0-9_./{}-]*)"', f.read_text(encoding="utf-8")))
    return found


def serves(component, path, kind):
    routes = route_literals(component)
    if kind == "Exact":
        return path in routes
    return any(r == path or r.startswith(path.rstrip("/") + "/") for r in routes)


def crate_routes(component):
    """The routes a component's crate registers: (method, path, access kind), from its
    `Routes::new().get("/path", Access::Kind…, handler)` calls."""
    found = set()
    for rel in ROUTE_SOURCES[component]:
        for f in (ROOT / rel).rglob("*.rs"):
            text = f.read_text(encoding="utf-8")
            found |= set(re.findall(r'\.(get|post|put|patch|delete)\(\s*"(/[^"]*)",\s*Access::(\w+)', text))
    return found


def covered(path, kind, paths):
    """Which of `paths` an Ingress path of pathType `kind` sends on (Prefix: whole segments)."""
    if kind == "Exact":
        return {p for p in paths if p == path}
    return {p for p in paths if p == path or p.startswith(path.rstrip("/") + "/")}


def sms_gateway_values(hcp):
    """The values `hcp serve --help` lists for --sms-gateway, and its default."""
    text = run([hcp, "serve", "--help"], env=CLEAN_ENV)
    block = text[text.index("--sms-gateway") :]
    block = block[: block.index("[default:") + 60]
    values = re.findall(r"^\s+- ([a-z]+):", block, re.M)
    default = re.search(r"\[default: ([a-z]+)\]", block).group(1)
    return values, default


def sms_start(hcp, env):
    """Runs `hcp serve --components sms` with `env` (plus SMS_PROBE_ENV) and returns None when it
    passes its SMS gateway check (it then stops at the probe's unparsable DATABASE_URL), else
    the settings it names as missing (a list), or its first error line (a string)."""
    r = subprocess.run([hcp, "serve", "--components", "sms"], env={**CLEAN_ENV, **env, **SMS_PROBE_ENV},
                       capture_output=True, text=True, timeout=30)
    out = r.stderr + r.stdout
    m = re.search(r"HCP_SMS_GATEWAY=[a-z]+ needs ([A-Z_, ]+)", out)
    if m:
        return [v.strip() for v in m.group(1).split(",")]
    if r.returncode != 0 and SMS_PROBE_PASSED in out and "SMS gateway" not in out:
        return None
    return (out.strip().splitlines() or [f"exit {r.returncode}"])[0]


def sms_gateway_needs(hcp):
    """What each SMS gateway needs before `hcp serve --components sms` starts: asked of the binary
    with nothing but the gateway set. Plus what its production check (crates/hcp/src/production.rs)
    adds for a gateway that sends: HCP_SMS_INBOUND_TOKEN (without it the vendor could not report
    退订/TD replies). Returns {gateway: [variables]}, the default gateway and the production rule."""
    values, default = sms_gateway_values(hcp)
    needs = {}
    for g in values:
        got = sms_start(hcp, {"HCP_SMS_GATEWAY": g})
        needs[g] = [] if got is None else got
    production = read("crates/hcp/src/production.rs")
    token_in_production = bool(re.search(
        r"sms_gateway\s*!=\s*[\w:]*SmsGatewayName::Outbox\s*&&\s*config\.sms_inbound_token\.is_none\(\)", production))
    return needs, default, token_in_production


def registered_metrics():
    names = set()
    for f in (ROOT / "crates").rglob("*.rs"):
        names |= set(re.findall(r'"(hcp_[a-z_]+)"', f.read_text(encoding="utf-8")))
    return names


def kafka_version():
    return re.search(r"<kafka.version>(.+)</kafka.version>", read("deploy/kafka/pom.xml")).group(1)


def server_properties():
    props = {}
    for line in read("deploy/kafka/server.properties").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            props[k] = v
    return props


def replicated_settings():
    """The replication settings deploy/kafka/kafka.sh gives a cluster of three (the fault suite's)."""
    text = read("deploy/kafka/kafka.sh")
    block = text[text.index("A cluster of") :]
    return {
        k: v
        for k, v in re.findall(r"([a-z.]+)=(\d+)", block)
        if "replication.factor" in k or "min.isr" in k or "min.insync" in k
    }


def producer_flush_secs():
    return int(re.search(r"producer\.flush\(Duration::from_secs\((\d+)\)\)", read("crates/hcp-server/src/server.rs")).group(1))


def listen_connections():
    """Most LISTEN connections one process opens (hcp_store's LISTEN_CONNECTIONS)."""
    return int(re.search(r"const LISTEN_CONNECTIONS: u32 = (\d+);", read("crates/hcp-store/src/lib.rs")).group(1))


def body_limits():
    """Largest request bodies hcp accepts: a rating batch, a directory import (bytes)."""
    handlers = read("crates/hcp-ingest/src/handlers.rs")
    batch = re.search(r"ApiJsonBytes<BatchRequest, \{ ([0-9 *]+) \}>", handlers).group(1)
    imports = re.search(r"MAX_IMPORT_BYTES: usize = ([0-9 *]+);", read("crates/hcp-directory/src/handlers.rs")).group(1)
    return eval(batch), eval(imports)  # integer products like 4 * 1024 * 1024


def dockerfile_user():
    m = re.search(r"^USER (\d+)(?::(\d+))?$", read("Dockerfile"), re.M)
    return (int(m.group(1)), int(m.group(2) or m.group(1))) if m else None


def size_bytes(text):
    m = re.fullmatch(r"(\d+)([kmg]?)", str(text).lower())
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2)]


def key_material(value):
    """Pieces of a string that decode from base64 to 32 bytes or more (a key's shape)."""
    out = []
    for token in re.split(r"[^A-Za-z0-9+/=]", value):
        if len(token) >= 43:
            try:
                if len(base64.b64decode(token, validate=True)) >= 32:
                    out.append(token)
            except ValueError:
                pass
    return out


def strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


# ---------------------------------------------------------------------------------------------
# The checks of one rendered overlay


def check_overlay(c, name, docs, hcp, variables, components, secrets, sms):
    where = f"k8s {name}"
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def one(kind, obj_name=None):
        found = [d for d in by_kind.get(kind, []) if obj_name is None or d["metadata"]["name"] == obj_name]
        return found[0] if len(found) == 1 else None

    # --- Not vacuous: the objects are there, in their numbers.
    expected = {
        "Deployment": len(components), "Service": len(components), "PodDisruptionBudget": len(components),
        "Job": 1, "Kafka": 1, "KafkaTopic": 4, "Cluster": 1, "Pooler": 1, "ServiceMonitor": 1,
        "PrometheusRule": 1, "Ingress": 2, "ServiceAccount": 1, "ConfigMap": 1,
    }
    for kind, n in expected.items():
        c.check(len(by_kind.get(kind, [])) == n, where, f"{len(by_kind.get(kind, []))} {kind} objects, expected {n}")
    c.check(len(components) == 9, where, f"hcp serve --help names {len(components)} components, expected 9")
    c.check(len(by_kind.get("KafkaNodePool", [])) >= 1, where, "no KafkaNodePool")
    c.check(len(by_kind.get("NetworkPolicy", [])) >= 4, where, "fewer than 4 NetworkPolicies")
    c.check(not by_kind.get("Secret"), where, "a Secret object is rendered: secrets are created by hand, never committed")

    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in by_kind.get("ConfigMap", [])}
    services = {d["metadata"]["name"]: d for d in by_kind.get("Service", [])}
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    topics = by_kind.get("KafkaTopic", [])
    kafka = one("Kafka")
    cluster = one("Cluster")
    pooler = one("Pooler")
    uid_gid = dockerfile_user()
    c.check(uid_gid is not None, "Dockerfile", "no numeric USER uid:gid")
    secret_names = set()

    # --- Topics: exactly what `hcp topics create` makes, for the rendered partition count.
    partition_counts = {t["spec"].get("partitions") for t in topics}
    c.check(len(partition_counts) == 1, where, f"KafkaTopics differ in partitions {partition_counts} (create makes them alike)")
    partitions = min(partition_counts) if partition_counts else 0
    expected_topics = topic_settings(hcp, partitions, 3)
    c.check(len(expected_topics) == len(topics), where, f"{len(topics)} KafkaTopics, hcp has {len(expected_topics)} topics")
    rendered = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in topics}
    for want in expected_topics:
        t = rendered.get(want["name"])
        if not c.check(t is not None, where, f"no KafkaTopic for {want['name']}"):
            continue
        spec = t["spec"]
        c.check(spec.get("partitions") == want["partitions"], where, f"{want['name']}: partitions {spec.get('partitions')} != {want['partitions']}")
        c.check(spec.get("replicas") == want["replication"], where, f"{want['name']}: replicas {spec.get('replicas')} != {want['replication']}")
        got = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (spec.get("config") or {}).items()}
        c.check(got == want["config"], where, f"{want['name']}: config {got} != hcp's {want['config']}")
        c.check(t["metadata"].get("labels", {}).get("strimzi.io/cluster") == (kafka or {}).get("metadata", {}).get("name"),
                where, f"{want['name']}: strimzi.io/cluster is not the Kafka's name")
    if name == "demo":
        default = topic_settings(hcp, None, 3)[0]["partitions"]
        c.check(partitions == default, where, f"demo partitions {partitions} != hcp topics create's default {default}")

    # --- Kafka: the tests' version and broker settings, KRaft pools, only hcp as a client.
    if c.check(kafka is not None, where, "no Kafka"):
        kspec = kafka["spec"]["kafka"]
        c.check(kspec.get("version") == kafka_version(), where, f"Kafka version {kspec.get('version')} != deploy/kafka/pom.xml's {kafka_version()}")
        config = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in kspec.get("config", {}).items()}
        props = server_properties()
        for key in ("auto.create.topics.enable", "unclean.leader.election.enable", "log.retention.hours"):
            c.check(config.get(key) == props.get(key), where, f"Kafka {key}={config.get(key)} != server.properties' {props.get(key)}")
        replicated = replicated_settings()
        c.check(len(replicated) >= 7, "deploy/kafka/kafka.sh", f"found only {len(replicated)} replication settings")
        for key, value in replicated.items():
            c.check(config.get(key) == value, where, f"Kafka {key}={config.get(key)} != a three-node cluster's {value} (deploy/kafka/kafka.sh)")
        c.check(kafka["metadata"].get("annotations", {}).get("strimzi.io/kraft") == "enabled", where, "Kafka is not KRaft")
        listeners = kspec.get("listeners", [])
        c.check(bool(listeners), where, "Kafka has no listener")
        for l in listeners:
            peers = l.get("networkPolicyPeers") or []
            c.check(peers == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "hcp"}}}], where,
                    f"Kafka listener {l.get('name')} admits more than hcp's pods: {peers}")
        plain = [l for l in listeners if not l.get("tls")]
        bootstrap = {f"{kafka['metadata']['name']}-kafka-bootstrap:{l['port']}" for l in plain}
        pools = by_kind.get("KafkaNodePool", [])
        brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
        controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
        c.check(brokers >= 3, where, f"{brokers} brokers cannot hold replication factor 3")
        c.check(controllers >= 3 and controllers % 2 == 1, where, f"{controllers} KRaft controllers (want an odd number, at least 3)")
        for p in pools:
            c.check(p["metadata"].get("labels", {}).get("strimzi.io/cluster") == kafka["metadata"]["name"], where,
                    f"KafkaNodePool {p['metadata']['name']} belongs to another cluster")
    else:
        bootstrap = set()

    # --- PostgreSQL: three synchronous instances, PgBouncer fit for sqlx, the app secret.
    if c.check(cluster is not None and pooler is not None, where, "no CloudNativePG Cluster and Pooler"):
        cspec = cluster["spec"]
        cname = cluster["metadata"]["name"]
        c.check(cspec.get("instances") == 3, where, f"Cluster has {cspec.get('instances')} instances, expected 3")
        sync = cspec.get("postgresql", {}).get("synchronous", {})
        c.check(sync.get("number", 0) >= 1 and sync.get("method") in ("any", "first"), where, "Cluster replication is not synchronous")
        initdb = cspec.get("bootstrap", {}).get("initdb", {})
        pgb = pooler["spec"].get("pgbouncer", {})
        params = pgb.get("parameters", {})
        c.check(pooler["spec"].get("cluster", {}).get("name") == cname, where, "Pooler serves another cluster")
        c.check(pgb.get("poolMode") == "transaction", where, "Pooler is not in transaction mode")
        c.check("extra_float_digits" in params.get("ignore_startup_parameters", ""), where,
                "PgBouncer must ignore extra_float_digits (sqlx sends it at startup)")
        c.check(int(params.get("max_prepared_statements", 0)) > 0, where, "PgBouncer max_prepared_statements off (sqlx prepares named statements)")
        direct_host, pooled_host = f"{cname}-rw", pooler["metadata"]["name"]
        max_connections = int(cspec.get("postgresql", {}).get("parameters", {}).get("max_connections", 100))
    else:
        cname = initdb = direct_host = pooled_host = None
        params, max_connections = {}, 100

    # --- Each hcp Deployment: its component, its variables, ports, probes, grace, security.
    seen_components, mounted_secrets, public_backends = [], set(), set()
    pooled_clients = direct_clients = 0
    flush, listen_conns = producer_flush_secs(), listen_connections()
    for dname, d in sorted(deployments.items()):
        w = f"{where} Deployment {dname}"
        pod = d["spec"]["template"]["spec"]
        containers = [x for x in pod["containers"] if x["name"] == "hcp"]
        if not c.check(len(containers) == 1, w, "no container named hcp"):
            continue
        ctr = containers[0]
        args = ctr.get("args", [])
        ok = c.check(len(args) == 3 and args[:2] == ["serve", "--components"], w, f"args {args} are not `serve --components C`")
        comp = args[2] if ok else None
        c.check(comp in components, w, f"component {comp} is not one hcp serve knows ({components})")
        seen_components.append(comp)
        c.check(d["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component") == comp, w, "selector's component label differs from --components")

        # Its environment: ConfigMaps first, then env (which wins).
        env = {}
        for src in ctr.get("envFrom", []):
            ref = src.get("configMapRef", {}).get("name")
            c.check(ref in configmaps, w, f"envFrom names a ConfigMap {ref} not rendered")
            env.update({k: ("value", v) for k, v in configmaps.get(ref, {}).items()})
            c.check("secretRef" not in src, w, "envFrom a Secret: every secret is named, by file or key")
        for e in ctr.get("env", []):
            if "value" in e:
                env[e["name"]] = ("value", e["value"])
            else:
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                c.check(ref is not None, w, f"{e['name']} comes from neither a value nor a secret")
                if ref:
                    secret_names.add(ref["name"])
                env[e["name"]] = ("secret", ref)
        known = set(variables) | {f"{s}_FILE" for s in secrets} | EXTRA_VARIABLES
        for var in env:
            c.check(var in known, w, f"sets {var}, which hcp does not read (a typo?)")
        relevant = {v for v, info in variables.items() if info["section"] in ("Shared settings", f"Component {comp}")}
        for var in sorted(relevant):
            info = variables[var]
            is_set = var in env or f"{var}_FILE" in env
            # A gateway's settings are needed by that gateway only: checked below, per gateway.
            if info["default"] is None and var not in MAY_BE_UNSET and var not in sms["variables"]:
                c.check(is_set, w, f"{var} has no default and is not set (nor {var}_FILE)")
            if var in MUST_BE_SET:
                c.check(var in env, w, f"{var} must be set: {MUST_BE_SET[var]}")
        for var, (how, value) in env.items():
            if SECRET_SHAPED.match(var) or var in secrets:
                c.check(how == "secret", w, f"{var} given inline: keys and passwords come from files or secretKeyRef")
            if how == "value":
                c.check(not key_material(str(value)), w, f"{var}'s value looks like key material")
        c.check(accepts(hcp, env), w, f"hcp refuses these settings: {refusal(hcp, env)}")
        c.check(env.get("HCP_ENV", ("", ""))[1] == "production", w, "HCP_ENV is not production")
        c.check(env.get("HCP_INGEST_AUTH", ("", "required"))[1] == "required", w, "HCP_INGEST_AUTH is not required")
        c.check(env.get("KAFKA_BROKERS", ("", ""))[1] in bootstrap, w, f"KAFKA_BROKERS {env.get('KAFKA_BROKERS')} is not the Kafka's plain bootstrap {bootstrap}")

        # Secret files: each <NAME>_FILE is a mounted item of a secret.
        mounts = {m["name"]: m for m in ctr.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        files = {}
        for vname, m in mounts.items():
            secret = volumes.get(vname, {}).get("secret")
            c.check(vname in volumes, w, f"mount {vname} has no volume")
            if secret:
                secret_names.add(secret["secretName"])
                mounted_secrets.add(secret["secretName"])
                c.check(m.get("readOnly") is True, w, f"secret mount {vname} is writable")
                for item in secret.get("items", []):
                    files[f"{m['mountPath'].rstrip('/')}/{item['path']}"] = (secret["secretName"], item["key"])
        for s in secrets:
            if f"{s}_FILE" in env:
                path = env[f"{s}_FILE"][1]
                c.check(path in files, w, f"{s}_FILE={path} is no mounted secret item")

        # The SMS gateway: what the configured one needs (the binary says) is set, secrets from a
        # secret; the others' settings may stay unset. Then hcp itself passes its gateway check.
        if comp == "sms":
            gateway = env.get("HCP_SMS_GATEWAY", ("value", sms["default"]))[1]
            wanted, why = SMS_GATEWAY_WANTED[name]
            c.check(wanted(gateway), w, f"HCP_SMS_GATEWAY={gateway}: {why}")
            need = list(sms["needs"].get(gateway, []))
            if sms["token_in_production"] and gateway != "outbox":
                need.append("HCP_SMS_INBOUND_TOKEN")
            c.check(gateway in sms["needs"], w, f"HCP_SMS_GATEWAY={gateway} is not one of hcp's gateways {sorted(sms['needs'])}")
            for var in need:
                how, value = env.get(var, env.get(f"{var}_FILE", (None, None)))
                given = how == "secret" or (how == "value" and str(value).strip() != "")
                c.check(given, w, f"HCP_SMS_GATEWAY={gateway} needs {var}, which is not set (nor {var}_FILE)")
                if var in secrets and f"{var}_FILE" in env:
                    c.check(env[f"{var}_FILE"][1] in files, w, f"{var}_FILE is no mounted secret item")
            # What a pod would have: its SMS settings from secrets (by reference or file) stand in
            # as placeholders (the other keys have formats of their own, and no part in this).
            trial = {k: str(v) for k, (how, v) in env.items() if how == "value" and not k.endswith("_FILE")}
            for k, (how, _) in env.items():
                base = k.removesuffix("_FILE") if k.endswith("_FILE") and k.removesuffix("_FILE") in secrets else k
                if (how == "secret" or base != k) and base in sms["variables"]:
                    trial[base] = "k8s-check-placeholder-secret-0123456789"
            refused = sms_start(hcp, trial)
            if isinstance(refused, list):
                refused = f"HCP_SMS_GATEWAY={gateway} needs {', '.join(refused)}"
            c.check(refused is None, w, f"hcp serve --components sms refuses these settings: {refused}")

        # The database: pooled, or direct where a session is needed (the board's LISTEN).
        url = urlparse(env.get("DATABASE_URL", ("", ""))[1])
        c.check(url.password is None, w, "DATABASE_URL carries a password (PGPASSWORD from the secret does)")
        c.check(url.hostname in (pooled_host, direct_host), w, f"DATABASE_URL host {url.hostname} is neither {pooled_host} nor {direct_host}")
        if comp == "board":
            c.check(url.hostname == direct_host, w, "the board's LISTEN needs a session: connect to the primary, not PgBouncer")
        # A LISTEN through a transaction-pooling PgBouncer hears nothing: whoever LISTENs (ingest's
        # key cache) behind it names the primary for its listeners.
        listen = urlparse(env.get("HCP_DATABASE_LISTEN_URL", ("", ""))[1])
        if comp == "ingest" and url.hostname == pooled_host:
            c.check(listen.hostname == direct_host, w,
                    "ingest's key cache LISTENs: HCP_DATABASE_LISTEN_URL must name the primary when DATABASE_URL is PgBouncer")
        if listen.hostname:
            c.check(listen.password is None, w, "HCP_DATABASE_LISTEN_URL carries a password (PGPASSWORD from the secret does)")
            c.check(listen.hostname == direct_host, w, f"HCP_DATABASE_LISTEN_URL host {listen.hostname} is not the primary {direct_host}")
        if initdb:
            c.check(url.username == initdb.get("owner") and url.path.lstrip("/") == initdb.get("database"), w,
                    f"DATABASE_URL user/database {url.username}/{url.path} differ from the Cluster's {initdb}")
        pg = env.get("PGPASSWORD", (None, None))
        c.check(pg[0] == "secret" and pg[1]["name"] == f"{cname}-app" and pg[1]["key"] == "password", w,
                f"PGPASSWORD is not the key password of {cname}-app (CloudNativePG's application secret)")
        pool = int(env.get("HCP_DB_POOL", ("", variables["HCP_DB_POOL"]["default"]))[1])
        replicas = d["spec"].get("replicas", 1)
        hpa = [h for h in hpas if h["spec"]["scaleTargetRef"]["name"] == dname]
        most = max([replicas] + [h["spec"]["maxReplicas"] for h in hpa])
        if url.hostname == pooled_host:
            pooled_clients += most * pool
        else:
            direct_clients += most * pool
        if listen.hostname == direct_host and url.hostname != direct_host:
            direct_clients += most * listen_conns

        # Port, probes, the drain.
        addr = env.get("HCP_HTTP_ADDR", ("", ""))[1]
        host, _, port = addr.rpartition(":")
        c.check(host not in ("127.0.0.1", "localhost", "[::1]"), w, f"HCP_HTTP_ADDR {addr} listens on loopback")
        ports = {p["name"]: p["containerPort"] for p in ctr.get("ports", [])}
        c.check(ports.get("http") == int(port or 0), w, f"container port http {ports.get('http')} != HCP_HTTP_ADDR's {port}")
        probes = {p: ctr.get(p, {}).get("httpGet", {}) for p in ("startupProbe", "livenessProbe", "readinessProbe")}
        for probe, want in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            got = probes[probe]
            c.check(got.get("path") == want and got.get("port") in ("http", int(port or 0)), w, f"{probe} is not GET {want} on the http port: {got}")
            c.check(f'.get("{want}"' in read("crates/hcp-server/src/server.rs"), w, f"hcp serves no {want}")
        stop = ctr.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pre_stop = int(stop[1]) if stop[:1] == ["sleep"] else 0
        timeout = int(env.get("HCP_REQUEST_TIMEOUT_SECS", ("", variables["HCP_REQUEST_TIMEOUT_SECS"]["default"]))[1])
        need = pre_stop + timeout + flush
        grace = pod.get("terminationGracePeriodSeconds", 30)
        c.check(grace >= need, w, f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + request timeout {timeout} + producer flush {flush}")
        # Sized from measurements (docs/deploy.md): every container has requests and limits.
        res = ctr.get("resources", {})
        c.check(all(res.get(k, {}).get(r) for k in ("requests", "limits") for r in ("cpu", "memory")), w, "missing CPU/memory requests or limits")
        # Runs as the image's numeric user, non-root, read-only, no privileges.
        sc, csc = pod.get("securityContext", {}), ctr.get("securityContext", {})
        if uid_gid:
            c.check((sc.get("runAsUser"), sc.get("runAsGroup")) == uid_gid, w, f"runs as {sc.get('runAsUser')}:{sc.get('runAsGroup')}, the image's USER is {uid_gid}")
        c.check(sc.get("runAsNonRoot") is True and csc.get("readOnlyRootFilesystem") is True
                and csc.get("allowPrivilegeEscalation") is False and csc.get("capabilities", {}).get("drop") == ["ALL"],
                w, "not non-root, read-only, without privilege escalation and capabilities")
        c.check(pod.get("automountServiceAccountToken") is False, w, "mounts a service account token (hcp calls no Kubernetes API)")
        svc = services.get(dname)
        if c.check(svc is not None, w, "no Service of the same name"):
            sel = svc["spec"]["selector"]
            c.check(all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items()), w, "its Service selects other pods")
            c.check(all(p["targetPort"] in ("http", int(port or 0)) for p in svc["spec"]["ports"]), w, "its Service targets another port")
        pdbs = [p for p in by_kind.get("PodDisruptionBudget", []) if p["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        c.check(len(pdbs) == 1, w, f"{len(pdbs)} PodDisruptionBudgets")

        # Scaling rules per component.
        if comp == "aggregator":
            surge = d["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", "25%")
            c.check(replicas <= partitions, w, f"{replicas} aggregators exceed the {partitions} partitions (one would own none)")
            c.check(surge == 0, w, f"a rollout may add an aggregator beyond the replicas (maxSurge {surge}, must be 0)")
            c.check(not hpa, w, "aggregators are autoscaled: their count is bounded by partitions")
        if comp == "ingest":
            if name == "province":
                c.check(len(hpa) == 1 and hpa[0]["spec"]["minReplicas"] >= 2, w, "ingest has no HorizontalPodAutoscaler with at least 2 replicas")
                c.check("replicas" not in d["spec"], w, "ingest sets replicas: an apply would reset the autoscaler's count")
        if comp == "alerts":
            c.check(replicas == 1 and d["spec"].get("strategy", {}).get("type") == "Recreate", w, "the alert evaluator must run once (1 replica, Recreate)")
        if name == "demo":
            c.check(replicas == 1 and not hpa, w, "the demo runs one replica of each component")
        if name == "province" and comp not in ("alerts", "ingest"):
            c.check(replicas >= 2, w, "a province runs every component but the evaluator at least twice")

    c.check(sorted(seen_components) == sorted(components), where, f"components deployed {sorted(seen_components)} != hcp's {sorted(components)}")

    # --- Connections: PgBouncer's clients and PostgreSQL's server connections suffice.
    if pooler is not None:
        max_client = int(params.get("max_client_conn", 100))
        c.check(pooled_clients <= max_client, where, f"hcp may open {pooled_clients} pooled connections, PgBouncer takes {max_client}")
        pool_size = int(params.get("default_pool_size", 20)) * pooler["spec"].get("instances", 1)
        migrate_conns = 2
        c.check(direct_clients + pool_size + migrate_conns + 10 <= max_connections, where,
                f"direct {direct_clients} + PgBouncer {pool_size} + migrate {migrate_conns} + 10 reserved > max_connections {max_connections}")

    # --- The migrations Job: hcp migrate, straight to the primary.
    job = one("Job", "hcp-migrate")
    if c.check(job is not None, where, "no Job hcp-migrate"):
        jc = job["spec"]["template"]["spec"]["containers"][0]
        c.check(jc.get("args") == ["migrate"], where, f"hcp-migrate runs {jc.get('args')}, not `hcp migrate`")
        jenv = {e["name"]: e.get("value") for e in jc.get("env", [])}
        full = {k: ("value", v) for src in jc.get("envFrom", []) for k, v in configmaps.get(src.get("configMapRef", {}).get("name"), {}).items()}
        full.update({k: ("value", v) for k, v in jenv.items() if v is not None})
        c.check(accepts(hcp, full), where, f"hcp-migrate: hcp refuses its settings: {refusal(hcp, full)}")
        c.check(urlparse(jenv.get("DATABASE_URL", "")).hostname == direct_host, where, "hcp-migrate must connect to the primary (its lock is a session's)")
        c.check(job["spec"]["template"]["spec"].get("restartPolicy") == "Never", where, "hcp-migrate restarts in place")

    # --- Ingress: TLS, served paths, the public host is HCP_PUBLIC_URL's, bodies fit.
    public_url = urlparse(next(iter(configmaps.values()), {}).get("HCP_PUBLIC_URL", ""))
    c.check(public_url.scheme == "https", where, "HCP_PUBLIC_URL is not https")
    batch_limit, import_limit = body_limits()
    sms_covered = {}
    for ing in by_kind.get("Ingress", []):
        iname = ing["metadata"]["name"]
        w = f"{where} Ingress {iname}"
        tls_hosts = {h for t in ing["spec"].get("tls", []) for h in t.get("hosts", [])}
        for t in ing["spec"].get("tls", []):
            secret_names.add(t["secretName"])
        rules = ing["spec"]["rules"]
        c.check(bool(rules), w, "no rules")
        for r in rules:
            c.check(r.get("host") in tls_hosts, w, f"host {r.get('host')} without TLS")
            for p in r["http"]["paths"]:
                svc = p["backend"]["service"]["name"]
                comp = svc.removeprefix("hcp-")
                c.check(svc in services and p["backend"]["service"]["port"].get("name") == "http", w, f"{p['path']} goes to {svc}:{p['backend']['service']['port']}, no such Service port")
                c.check(comp in ROUTE_SOURCES and serves(comp, p["path"], p["pathType"]), w, f"{p['path']} ({p['pathType']}) is not a route of {comp}")
                c.check(p["path"] not in ("/metrics", "/healthz", "/readyz") and (p["path"] != "/" or p["pathType"] == "Exact"), w,
                        f"{p['path']} ({p['pathType']}) exposes the operational endpoints")
                if comp == "sms":
                    sms_covered.setdefault(iname, {})[(p["path"], p["pathType"])] = covered(p["path"], p["pathType"], sms["routes"])
        limit = size_bytes(ing["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/proxy-body-size", "1m"))
        if iname == "hcp-public":
            c.check(public_url.hostname in tls_hosts, w, f"HCP_PUBLIC_URL's host {public_url.hostname} is not this Ingress's")
            c.check(limit > batch_limit, w, f"body limit {limit} below a rating batch's {batch_limit} (hcp's 413 would not be the answer)")
            public_backends = {p["backend"]["service"]["name"].removeprefix("hcp-") for r in rules for p in r["http"]["paths"]}
        else:
            c.check(limit > import_limit, w, f"body limit {limit} below a directory import's {import_limit}")

    # --- NetworkPolicies: default deny; from outside only what hcp-public routes to; the data
    # layer only from hcp.
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind.get("NetworkPolicy", [])}
    deny = policies.get("hcp-default-deny", {})
    c.check(deny.get("podSelector") == {} and "Ingress" in deny.get("policyTypes", []) and not deny.get("ingress"), where, "no default-deny ingress policy")
    pub = policies.get("hcp-from-public-ingress", {})
    selected = next((e["values"] for e in pub.get("podSelector", {}).get("matchExpressions", []) if e["key"] == "app.kubernetes.io/component"), [])
    c.check(set(selected) == public_backends, where, f"the public ingress may reach {sorted(selected)}, hcp-public routes to {sorted(public_backends)}")
    c.check(set(selected) <= PUBLIC_COMPONENTS, where, f"components reachable from outside: {selected}")
    # sms from outside: exactly the SMS gateway's callbacks, each an Exact path; the rest of its
    # routes (status, opt-outs: administrators) on the internal door, and no callback there.
    callbacks, admin = sms["callbacks"], set(sms["routes"]) - sms["callbacks"]
    public_sms = sms_covered.get("hcp-public", {})
    c.check(set(public_sms) == {(r, "Exact") for r in callbacks}, where,
            f"hcp-public routes {sorted(public_sms)} to sms, not exactly the gateway callbacks {sorted(callbacks)} (Exact)")
    internal_sms = set().union(*sms_covered.get("hcp-internal", {}).values())
    c.check(internal_sms == admin, where,
            f"hcp-internal sends {sorted(internal_sms)} to sms, its administrators' routes are {sorted(admin)}")
    for iname, paths in sms_covered.items():
        for (path, kind), routes in paths.items():
            c.check(bool(routes), f"{where} Ingress {iname}", f"{path} ({kind}) covers no route of sms")
    if cluster is not None:
        pgp = [p for p in policies.values() if p.get("podSelector", {}).get("matchLabels") == {"cnpg.io/cluster": cname}]
        poolp = [p for p in policies.values() if p.get("podSelector", {}).get("matchLabels") == {"cnpg.io/poolerName": pooled_host}]
        c.check(len(pgp) == 1 and len(poolp) == 1, where, "PostgreSQL or PgBouncer has no policy of its own")
        for p in pgp + poolp:
            for rule in p.get("ingress", []):
                for peer in rule.get("from", []):
                    labels = peer.get("podSelector", {}).get("matchLabels", {})
                    exprs = {e["key"]: e["values"] for e in peer.get("podSelector", {}).get("matchExpressions", [])}
                    ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                    ok = (labels in ({"cnpg.io/cluster": cname}, {"cnpg.io/poolerName": pooled_host}, {"app.kubernetes.io/name": "hcp"})
                          or exprs.get("app.kubernetes.io/name") == ["hcp"]
                          or (ns is not None and "podSelector" not in peer))
                    c.check(ok and "ipBlock" not in peer, where, f"PostgreSQL admits a peer that is not hcp, itself, its operator or monitoring: {peer}")

    # --- Monitoring: the rules' metrics are hcp's, and cover what the issue asks.
    rule = one("PrometheusRule")
    registered = registered_metrics()
    if c.check(rule is not None, where, "no PrometheusRule"):
        exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
        c.check(len(exprs) >= len(RULES_NEEDED), where, f"only {len(exprs)} alert rules")
        for e in exprs:
            for m in re.findall(r"\b(hcp_[a-z_]+)", e):
                base = re.sub(r"_(bucket|count|sum)$", "", m)
                c.check(m in registered or base in registered, where, f"alert expression uses {m}, which hcp does not register")
        for what, needle in RULES_NEEDED.items():
            c.check(any(needle in e for e in exprs), where, f"no alert on {what} ({needle})")
    sm = one("ServiceMonitor")
    if c.check(sm is not None, where, "no ServiceMonitor"):
        ep = sm["spec"]["endpoints"]
        c.check(all(e.get("port") == "http" and e.get("path") == "/metrics" for e in ep), where, "ServiceMonitor does not scrape http /metrics")
        token = [e.get("authorization", {}).get("credentials", {}) for e in ep]
        c.check(all(t.get("name") in mounted_secrets for t in token), where, f"ServiceMonitor's token secret {token} is not one hcp reads")
        sel = sm["spec"]["selector"]["matchLabels"]
        c.check(all(sel.items() <= s["metadata"].get("labels", {}).items() for s in services.values()), where, "ServiceMonitor misses an hcp Service")

    # --- No secret value anywhere in the rendering.
    for d in docs:
        bad = [s[:12] + "…" for s in strings(d) if key_material(s)]
        c.check(not bad, f"{where} {d['kind']} {d['metadata']['name']}", f"values look like key material: {bad}")
    return secret_names


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hcp", required=True, help="the hcp binary")
    ap.add_argument("--kustomize", default="kubectl kustomize", help="command that renders a kustomization directory")
    ap.add_argument("--out", help="directory for each overlay's rendering (for checkov)")
    args = ap.parse_args()
    variables, components = binary_settings(args.hcp)
    secrets = secret_variables()
    c = Checks()
    c.check(len(variables) >= 30, "hcp serve --help", f"only {len(variables)} variables parsed")
    c.check(secrets and secrets <= set(variables), "config.rs", f"SECRET_VARIABLES {secrets} not all in --help")
    # The SMS gateways and what each needs, from the binary; not vacuous: several gateways, one
    # sends nothing, every `need(…)` of config.rs is seen, each a setting of Component sms.
    needs, default, token_in_production = sms_gateway_needs(args.hcp)
    sms_vars = {v for v, info in variables.items() if info["section"] == "Component sms"}
    for g, got in needs.items():
        c.check(isinstance(got, list), "hcp serve --components sms", f"HCP_SMS_GATEWAY={g}: no verdict on its settings: {got}")
    needs = {g: got for g, got in needs.items() if isinstance(got, list)}
    c.check(len(needs) >= 3 and needs.get("outbox") == [] and default in needs, "hcp serve --help",
            f"SMS gateways {needs} (default {default}): expected several, outbox needing nothing")
    named = set(re.findall(r'need\(\s*"(HCP_SMS_[A-Z_]+)"', read("crates/hcp-server/src/config.rs")))
    seen = {v for got in needs.values() for v in got}
    c.check(named and named == seen, "hcp serve --components sms", f"the gateways need {sorted(seen)}, config.rs names {sorted(named)}")
    c.check(seen <= sms_vars and all(variables[v]["default"] is None for v in seen), "hcp serve --help",
            f"a gateway's setting {sorted(seen - sms_vars)} is not a Component sms setting without default")
    c.check(token_in_production, "crates/hcp/src/production.rs", "no production rule on HCP_SMS_INBOUND_TOKEN for a sending gateway")
    sms_routes = crate_routes("sms")
    sms = {
        "needs": needs, "default": default, "token_in_production": token_in_production,
        "variables": seen | {"HCP_SMS_INBOUND_TOKEN"},
        "routes": {path for _, path, _ in sms_routes},
        "callbacks": {path for _, path, access in sms_routes if access == "SmsGateway"},
    }
    c.check(len(sms["callbacks"]) == 2 and len(sms["routes"]) > len(sms["callbacks"]), "crates/hcp-sms",
            f"routes {sorted(sms_routes)}: expected two gateway callbacks and administrators' routes")
    print(f"k8s: SMS gateways (hcp serve --components sms): "
          + "; ".join(f"{g} needs {', '.join(v) or 'nothing'}" for g, v in needs.items())
          + ("; a sending gateway needs HCP_SMS_INBOUND_TOKEN in production" if token_in_production else ""))
    skips = set(re.findall(r"checkov:skip=([A-Z0-9_]+)", read("Dockerfile")))
    for name in OVERLAYS:
        text = run(shlex.split(args.kustomize) + [str(K8S / "overlays" / name)])
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / f"{name}.yaml").write_text(text, encoding="utf-8")
        docs = [d for d in yaml.safe_load_all(text) if d]
        names = check_overlay(c, name, docs, args.hcp, variables, components, secrets, sms)
        print(f"k8s: {name}: {len(docs)} objects; secrets it references: {', '.join(sorted(names))}")
        skips |= {v.split("=", 1)[0] for d in docs for k, v in d["metadata"].get("annotations", {}).items() if k.startswith("checkov.io/skip")}
    # Every checkov skip is justified in docs/deploy.md's table.
    justified = set(re.findall(r"^\| `(CKV[A-Z0-9_]+)`", read("docs/deploy.md"), re.M))
    c.check(len(skips) >= 1, "checkov", "no skip found: the annotations moved?")
    for skip in sorted(skips):
        c.check(skip in justified, "checkov", f"skip {skip} is not justified in docs/deploy.md's table")
    # No file under deploy/k8s carries key material either (rendered or not).
    for f in sorted(K8S.rglob("*")):
        if f.is_file():
            c.check(not key_material(f.read_text(encoding="utf-8")), str(f.relative_to(ROOT)), "looks like it holds key material")
    print(f"k8s: {c.passed} passed, {len(c.failures)} failed")
    if c.failures:
        for f in c.failures:
            print(f"  {f}")
        sys.exit(1)


if __name__ == "__main__":
    main()
