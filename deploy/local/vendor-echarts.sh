#!/usr/bin/env bash
# Vendors Apache ECharts from npm into crates/hcp-board/assets (see its README.md).
# Usage: deploy/local/vendor-echarts.sh [version]   (default: the vendored one)
set -euo pipefail
version=${1:-6.1.0}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
expected=$(npm view "echarts@$version" dist.integrity)
tarball=$(npm pack "echarts@$version" --silent)
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
[ "$expected" = "$actual" ] || { echo "integrity mismatch: registry $expected, got $actual" >&2; exit 1; }
tar xzf "$tarball"
assets="$root/crates/hcp-board/assets"
rm -f "$assets"/echarts-*.common.min.js
cp package/dist/echarts.common.min.js "$assets/echarts-$version.common.min.js"
cp package/NOTICE "$assets/ECHARTS-NOTICE"
echo "echarts $version: $(sha256sum "$assets/echarts-$version.common.min.js" | cut -d' ' -f1)"
echo "update ECHARTS_PATH and ECHARTS_SHA256 in crates/hcp-board/src/board.rs and assets/README.md"
