#!/usr/bin/env bash
# What delivering every event costs earn/redeem: `exchange serve` allowed to reach a
# receiver on loopback, then alternating runs of `exchange bench` at 16 clients (earn 55 %
# / redeem 45 %, one partner) without an endpoint and with `--webhook` (an operator
# endpoint subscribed to every event type, so each operation's event is delivered while
# the load runs). Prints ops/s, p99 and the server's CPU per operation for each run, and
# the ratios of the pairs (docs/performance.md, "Partner events"); ends with `exchange
# verify`. Usage: deploy/bench/webhooks.sh [seconds per run, default 20] [pairs, default 3]
set -euo pipefail
SECONDS_PER_RUN="${1:-20}"
PAIRS="${2:-3}"
PORT="${BENCH_PORT:-8791}"
export EXCHANGE_HOME="${EXCHANGE_HOME:-$(mktemp -d)/exchange-bench}"
unset DATABASE_URL

EXCHANGE_WEBHOOK_ALLOW_PRIVATE=true exchange serve --port "$PORT" --workers 2 \
  >"$EXCHANGE_HOME.serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.3
done

bench() {  # [--webhook] -> json
  exchange bench --url "http://127.0.0.1:$PORT" --concurrency 16 --duration "$SECONDS_PER_RUN" \
    --partners 1 --members 500 --mix earn=55,redeem=45,wallet=0 --server-pid "$SERVER" \
    --json "$@" 2>/dev/null
}
RUNS=()
for _ in $(seq 1 "$PAIRS"); do
  RUNS+=("$(bench)" "$(bench --webhook)")
done

python3 - "${RUNS[@]}" <<'PY'
import json, sys
runs = [json.loads(r) for r in sys.argv[1:]]
for n in range(0, len(runs), 2):
    plain, hooked = runs[n], runs[n + 1]
    for name, r in (("no endpoint   ", plain), ("every event   ", hooked)):
        got = f"  {r['webhooks_received']} events received" if r["webhooks_received"] is not None else ""
        print(f"pair {n // 2 + 1} {name} {r['ops_per_s']} ops/s  p99 {r['p99_ms']} ms"
              f"  errors {r['errors']}  throttled {r['throttled']}  server CPU {r['server_cpu_ms_per_op']} ms/op{got}")
    print(f"pair {n // 2 + 1} ratio ops/s {hooked['ops_per_s'] / plain['ops_per_s']:.2f}"
          f"  server CPU/op {hooked['server_cpu_ms_per_op'] / plain['server_cpu_ms_per_op']:.2f}"
          "   (target: ops/s ratio >= 0.90)")
PY
exchange verify >/dev/null && echo "exchange verify: all invariants hold after the benchmark"
