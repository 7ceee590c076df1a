#!/usr/bin/env bash
# `aerie serve` under load, with wrk as the sender: (1) webhooks acknowledged
# per second with the 202's latency, (2) runs per second end to end (the time
# from the first request until the queue is empty and every run succeeded).
# The playbook is three steps over a trivial plugin (ioc-extract on a short
# text), the webhook bearer-authenticated, the store SQLite.
#
#   cargo xtask build                 # release aerie, plugins installed
#   sudo apt-get install -y wrk       # Debian's wrk
#   xtask/bench/serve.sh [SECONDS] [CONNECTIONS] [WORKERS]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-20}
connections=${2:-64}
workers=${3:-8}
target=${CARGO_TARGET_DIR:-target}
aerie=$(realpath "$target/release/aerie")
command -v wrk >/dev/null || { echo "bench: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -x "$aerie" ] || { echo "bench: $aerie is missing: run cargo xtask build" >&2; exit 1; }
[ -f plugins/ioc-extract/plugin.wasm ] || { echo "bench: plugins/ioc-extract/plugin.wasm is missing: run cargo xtask build" >&2; exit 1; }

site=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$site"' EXIT
mkdir -p "$site/plugins" "$site/playbooks"
cp -r plugins/ioc-extract "$site/plugins/"
port=18700
cat > "$site/aerie.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
max_queued = 10000000

[engine]
workers = $workers

[webhooks.bench]
auth = { bearer = { env = "BENCH_TOKEN" } }
TOML
cat > "$site/playbooks/bench.yaml" <<'YAML'
name: bench
inputs:
  body: { type: object, required: true }
trigger:
  webhook: { name: bench }
steps:
  - id: iocs
    uses: ioc-extract.extract
    with: { text: "{{ inputs.body.text }}" }
  - id: count
    set: { n: "{{ steps.iocs.output.ipv4 | length }}" }
  - id: done
    set: { ok: true }
output: "{{ steps.count.output.n }}"
YAML
cat > "$site/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"text": "beacon to 203.0.113.9"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-t0ken"
LUA

cd "$site"
BENCH_TOKEN=bench-t0ken "$aerie" serve > serve.log 2>&1 &
server=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done
echo "bench: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "bench: aerie $(git -C "$OLDPWD" rev-parse --short HEAD), $workers workers, wrk -t2 -c$connections -d${seconds}s"
start=$(date +%s.%N)
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s post.lua "http://127.0.0.1:$port/hooks/bench"
sent=$(date +%s.%N)
metric() { curl -s "http://127.0.0.1:$port/metrics" | sed -n "s/^$1 \([0-9]*\).*/\1/p"; }
accepted=$(metric 'aerie_trigger_fires_total{trigger="webhook:bench"}')
finished() {
    local ok failed
    ok=$(metric 'aerie_runs_total{playbook="bench",status="succeeded"}')
    failed=$(metric 'aerie_runs_total{playbook="bench",status="failed"}')
    echo $(( ${ok:-0} + ${failed:-0} ))
}
while [ "$(finished)" -lt "${accepted:-0}" ]; do sleep 0.2; done
done_at=$(date +%s.%N)
succeeded=$(metric 'aerie_runs_total{playbook="bench",status="succeeded"}')
echo "bench: webhooks accepted ${accepted:-0}, runs succeeded ${succeeded:-0} (the rest failed)"
echo "bench: every run finished $(echo "$done_at - $sent" | bc) s after the last request"
echo "bench: end to end $(echo "scale=0; ${succeeded:-0} / ($done_at - $start)" | bc) runs/s"
