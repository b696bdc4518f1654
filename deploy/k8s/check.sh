#!/usr/bin/env bash
# Renders both overlays of deploy/k8s and checks them: check.py against the binary and the
# repository, then checkov (pinned, deploy/local/stack.sh) on the renderings and the Dockerfile.
# Run by deploy/local/test.sh after it builds hcp; alone: deploy/k8s/check.sh [HCP_BINARY].
# No cluster is involved: nothing is applied (docs/deploy.md says what is not run).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../local/stack.sh"
cd "$HCP_ROOT"
ensure_k8s_tools
hcp_bin="${1:-${HCP_BIN:-$CARGO_TARGET_DIR/debug/hcp}}"
[ -x "$hcp_bin" ] || die "k8s: no hcp binary at $hcp_bin (cargo build -p hcp)"
out="$HCP_LOCAL/k8s"
rm -rf "$out" && mkdir -p "$out"

"$HCP_K8S_VENV/bin/python" deploy/k8s/check.py --hcp "$hcp_bin" --kustomize "$HCP_KUSTOMIZE" --out "$out"

# checkov: its findings fail the run; the skips are annotations on the resources they concern
# (and one line in the Dockerfile), each justified in docs/deploy.md (check.py verifies that).
# --skip-download: no call to the vendor's service (this machine reaches none).
"$HCP_K8S_VENV/bin/checkov" --skip-download --quiet --compact --framework kubernetes dockerfile \
  -f "$out/demo.yaml" -f "$out/province.yaml" -f Dockerfile >"$out/checkov.log" 2>&1 \
  || { cat "$out/checkov.log"; die "checkov found problems in deploy/k8s or the Dockerfile (log: $out/checkov.log)"; }
read -r passed failed skipped < <(grep -aoE 'Passed checks: [0-9]+, Failed checks: [0-9]+, Skipped checks: [0-9]+' "$out/checkov.log" \
  | awk -F'[^0-9]+' '{p += $2; f += $3; s += $4} END {print p + 0, f + 0, s + 0}')
[ "$passed" -gt 1000 ] || die "checkov passed only $passed checks: did it read the renderings? (log: $out/checkov.log)"
[ "$failed" = 0 ] || die "checkov: $failed failed (log: $out/checkov.log)"
echo "checkov $CHECKOV_VERSION: $passed passed, $failed failed, $skipped skipped (justified in docs/deploy.md)"
