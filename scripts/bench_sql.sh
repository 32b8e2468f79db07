#!/usr/bin/env bash
# SQL feature benchmark: shelfcast vs DuckDB on the peers' features.sql over 1M and 10M rows.
# Builds the sql_features bench in release, sets up the peers' Python, then runs
# benches/bench_sql.py, which prints the table and writes benches/results/sql-features.{json,md}.
#
# Usage: scripts/bench_sql.sh [--repeat N] [--rows 1000000,10000000] [--threads N] [--shelfcast-arg FLAG]
# Environment: SHELFCAST_BENCH_DIR (generated inputs and outputs; default ~/.cache/shelfcast/bench),
#              PEER_BENCH_DIR (the peers' harness; default ../shared/bench), PEERS_VENV (see its setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

export OMP_WAIT_POLICY=PASSIVE
export PEER_BENCH_DIR=${PEER_BENCH_DIR:-$(cd .. && pwd)/shared/bench}
data_dir=${SHELFCAST_BENCH_DIR:-$HOME/.cache/shelfcast/bench}

[[ -f "$PEER_BENCH_DIR/sql_features_peer.py" ]] || {
  echo "bench_sql: no peer harness in $PEER_BENCH_DIR (set PEER_BENCH_DIR)" >&2
  exit 1
}
py=$("$PEER_BENCH_DIR/setup.sh" | tail -n 1)

echo "building the sql_features bench (release)..." >&2
bin=$(cargo bench --locked --bench sql_features --no-run --message-format=json-render-diagnostics |
  "$py" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "sql_features" and m.get("executable"):
        print(m["executable"])')
[[ -x "$bin" ]] || { echo "bench_sql: could not find the built sql_features binary" >&2; exit 1; }

exec "$py" benches/bench_sql.py --bin "$bin" --data-dir "$data_dir" "$@"
