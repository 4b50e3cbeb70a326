#!/usr/bin/env bash
# One run, one machine, one PostgreSQL: pgbench's TPC-B (scale 16, and scale 1 = one hot
# branch row) at 16 clients, then `exchange bench` at 16 clients with one partner (one
# OAuth client, then four: one client's query-cost budget caps it) and with 50 partners,
# and bulk issuance (earnPointsBatch, and POST /bulk/earn) at 4 clients, against
# `exchange serve` on the same embedded server. Prints the ratios the performance
# targets are stated in (docs/performance.md).
# Usage: deploy/bench/compare.sh [seconds per run, default 30] [server workers, default 2]
set -euo pipefail
SECONDS_PER_RUN="${1:-30}"
WORKERS="${2:-2}"
PORT="${BENCH_PORT:-8790}"
export EXCHANGE_HOME="${EXCHANGE_HOME:-$(mktemp -d)/exchange-bench}"
unset DATABASE_URL

exchange serve --port "$PORT" --workers "$WORKERS" >"$EXCHANGE_HOME.serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.3
done

read -r BIN SOCKET < <(python3 - <<'PY'
import os, pathlib, pgserver
home = pathlib.Path(os.environ["EXCHANGE_HOME"]) / "pgdata"
info = (home / "postmaster.pid").read_text().splitlines()
print(pathlib.Path(pgserver.__file__).parent / "pginstall" / "bin", info[4])
PY
)
PG=(-h "$SOCKET" -U postgres)
"$BIN/psql" "${PG[@]}" -qc "DROP DATABASE IF EXISTS pgbench" postgres >/dev/null
"$BIN/psql" "${PG[@]}" -qc "CREATE DATABASE pgbench" postgres >/dev/null

tpcb() {  # scale -> tps
  "$BIN/pgbench" "${PG[@]}" -q -i -s "$1" pgbench >/dev/null 2>&1
  "$BIN/pgbench" "${PG[@]}" -c 16 -j 2 -T "$SECONDS_PER_RUN" pgbench 2>/dev/null \
    | awk '/^tps/ {print int($3)}'
}
TPCB=$(tpcb 16)
HOT=$(tpcb 1)

bench() {  # partners [clients per partner] -> json
  exchange bench --url "http://127.0.0.1:$PORT" --concurrency 16 --duration "$SECONDS_PER_RUN" \
    --partners "$1" --clients "${2:-1}" --members 2000 --mix earn=55,redeem=45,wallet=0 \
    --server-pid "$SERVER" --json 2>/dev/null
}
ONE=$(bench 1)
SPREAD=$(bench 1 4)  # past one client's query-cost budget (~400 mutations a second)
FIFTY=$(bench 50)
BULK=$(exchange bench --url "http://127.0.0.1:$PORT" --concurrency 4 --duration "$SECONDS_PER_RUN" \
  --partners 1 --members 2000 --mix bulk=100 --server-pid "$SERVER" --json 2>/dev/null)
NDJSON=$(exchange bench --url "http://127.0.0.1:$PORT" --concurrency 4 --duration "$SECONDS_PER_RUN" \
  --partners 1 --members 2000 --mix ndjson=100 --server-pid "$SERVER" --json 2>/dev/null)

python3 - "$TPCB" "$HOT" "$ONE" "$FIFTY" "$BULK" "$NDJSON" "$SPREAD" <<'PY'
import json, sys
tpcb, hot = int(sys.argv[1]), int(sys.argv[2])
one, fifty, bulk = json.loads(sys.argv[3]), json.loads(sys.argv[4]), json.loads(sys.argv[5])
ndjson, spread = json.loads(sys.argv[6]), json.loads(sys.argv[7])
print(f"pgbench TPC-B scale 16, 16 clients:      {tpcb} tps")
print(f"pgbench TPC-B scale 1 (hot row), 16 c.:  {hot} tps")
runs = (("exchange earn/redeem, 1 partner ", one),
        ("exchange earn/redeem, 1 partner, 4 OAuth clients", spread),
        ("exchange earn/redeem, 50 partners", fifty))
for name, r in runs:
    print(f"{name}:  {r['ops_per_s']} ops/s  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms"
          f"  errors {r['errors']}  throttled {r['throttled']}  bench CPU {r['bench_cpu_share']:.0%}")
    print(f"    server CPU {r['server_cpu_ms_per_op']} ms per operation"
          f" ({r['server_cpu_cores']} cores; target <= 1.0 ms)"
          f"  machine busy {r['machine_busy_share']:.0%}")
print(f"bulk issuance (earnPointsBatch of 1,000, 4 clients): {bulk['bulk_items_per_s']} items/s"
      f"  p99 {bulk['p99_ms']} ms  errors {bulk['errors']}   (target >= 20,000)"
      f"  server CPU {bulk['server_cpu_ms_per_item']} ms per item")
print(f"bulk issuance (POST /bulk/earn, 5,000 NDJSON items, 4 clients): {ndjson['bulk_items_per_s']}"
      f" items/s  p99 {ndjson['p99_ms']} ms  errors {ndjson['errors']}"
      f"  server CPU {ndjson['server_cpu_ms_per_item']} ms per item")
print(f"ratio exchange (1 partner) / TPC-B:       {one['ops_per_s'] / tpcb:.2f}   (target >= 0.5)")
print(f"   the same over 4 OAuth clients / TPC-B:  {spread['ops_per_s'] / tpcb:.2f}")
print(f"ratio one hot partner / 50 partners:      {one['ops_per_s'] / fifty['ops_per_s']:.2f}   (target >= 0.9)")
PY
exchange verify >/dev/null && echo "exchange verify: all invariants hold after the benchmark"
