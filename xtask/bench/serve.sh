#!/usr/bin/env bash
# `aerie serve` under load, with wrk as the sender: (1) webhooks acknowledged
# per second with the 202's latency, (2) runs per second end to end (the time
# from the first request until every accepted run has finished). The playbook
# is three steps over a trivial plugin (ioc-extract on a short text), the
# webhook bearer-authenticated.
#
#   cargo xtask build                 # release aerie, plugins installed
#   sudo apt-get install -y wrk       # Debian's wrk (and postgresql for the second form)
#   xtask/bench/serve.sh [SECONDS] [CONNECTIONS] [WORKERS]             # SQLite, one server
#   AERIE_BENCH_STORE=postgres xtask/bench/serve.sh [SECONDS] [CONNECTIONS] [WORKERS]
#
# The PostgreSQL form starts a throwaway cluster (Debian's binaries, as the
# tests do) and two servers sharing it, each sent half the connections by
# its own wrk; WORKERS is per server.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-20}
connections=${2:-64}
workers=${3:-8}
store=${AERIE_BENCH_STORE:-sqlite}
target=${CARGO_TARGET_DIR:-target}
aerie=$(realpath "$target/release/aerie")
command -v wrk >/dev/null || { echo "bench: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -x "$aerie" ] || { echo "bench: $aerie is missing: run cargo xtask build" >&2; exit 1; }
[ -f plugins/ioc-extract/plugin.wasm ] || { echo "bench: plugins/ioc-extract/plugin.wasm is missing: run cargo xtask build" >&2; exit 1; }
repo=$PWD

site=$(mktemp -d)
servers=()
pg=
cleanup() {
    for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$pg" ] && runuser -u postgres -- "$pg/pg_ctl" stop -m immediate -D "$site/pg/data" >/dev/null 2>&1
    rm -rf "$site"
}
trap cleanup EXIT
mkdir -p "$site/plugins" "$site/playbooks"
cp -r plugins/ioc-extract "$site/plugins/"

case $store in
sqlite)
    ports=(18700)
    url="sqlite://$site/aerie.db"
    ;;
postgres)
    pg=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    [ -x "$pg/initdb" ] || { echo "bench: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
    # The cluster belongs to, and runs as, the `postgres` user (initdb refuses root).
    chmod 711 "$site" && mkdir -p "$site/pg" && chown postgres "$site/pg"
    runuser -u postgres -- "$pg/initdb" --auth=trust --username=postgres --no-sync --encoding=UTF8 --locale=C -D "$site/pg/data" >/dev/null
    runuser -u postgres -- "$pg/pg_ctl" start --wait --silent -l "$site/pg/log" -D "$site/pg/data" \
        -o "-c listen_addresses=127.0.0.1 -p 18799 -c unix_socket_directories='' -c max_connections=100"
    runuser -u postgres -- "$pg/createdb" -h 127.0.0.1 -p 18799 -U postgres aerie
    ports=(18700 18701)
    url="postgres://postgres@127.0.0.1:18799/aerie"
    ;;
*) echo "bench: AERIE_BENCH_STORE is sqlite or postgres, not $store" >&2; exit 1 ;;
esac

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
for port in "${ports[@]}"; do
    cat > "aerie-$port.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
max_queued = 10000000

[store]
url = "$url"

[engine]
workers = $workers

[webhooks.bench]
auth = { bearer = { env = "BENCH_TOKEN" } }
TOML
    BENCH_TOKEN=bench-t0ken "$aerie" serve --config "aerie-$port.toml" > "serve-$port.log" 2>&1 &
    servers+=($!)
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
        sleep 0.1
    done
done

metric() { curl -s "http://127.0.0.1:$1/metrics" | sed -n "s/^$2 \([0-9]*\).*/\1/p"; }
# The sum over every server.
total() {
    local sum=0 port value
    for port in "${ports[@]}"; do
        value=$(metric "$port" "$1")
        sum=$(( sum + ${value:-0} ))
    done
    echo "$sum"
}
succeeded() { total 'aerie_runs_total{playbook="bench",status="succeeded"}'; }
finished() { echo $(( $(succeeded) + $(total 'aerie_runs_total{playbook="bench",status="failed"}') )); }

echo "bench: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
per=$(( connections / ${#ports[@]} ))
echo "bench: aerie $(git -C "$repo" rev-parse --short HEAD), $store, ${#ports[@]} server(s) × $workers workers, wrk -t2 -c$per -d${seconds}s against each"
start=$(date +%s.%N)
senders=()
for port in "${ports[@]}"; do
    wrk -t2 -c"$per" -d"${seconds}s" --latency -s post.lua "http://127.0.0.1:$port/hooks/bench" > "wrk-$port.txt" &
    senders+=($!)
done
wait "${senders[@]}"
sent=$(date +%s.%N)
for port in "${ports[@]}"; do
    echo "bench: wrk against :$port"
    cat "wrk-$port.txt"
done
# Read again each time: requests in flight when wrk stopped are still stored
# and counted after it.
accepted() { total 'aerie_trigger_fires_total{trigger="webhook:bench"}'; }
while [ "$(finished)" -lt "$(accepted)" ]; do sleep 0.2; done
accepted=$(accepted)
done_at=$(date +%s.%N)
ok=$(succeeded)
echo "bench: webhooks accepted $accepted, runs succeeded $ok (the rest failed)"
echo "bench: every run finished $(echo "$done_at - $sent" | bc) s after the last request"
echo "bench: end to end $(echo "scale=0; $ok / ($done_at - $start)" | bc) runs/s"
