#!/usr/bin/env bash
# A/B of micro-batching (docs/decisions/0006): the same earn/redeem load against
# `exchange serve` with EXCHANGE_MICRO_BATCHING on and off, alternating, on one embedded
# PostgreSQL. Prints one `exchange bench` line per run.
# Usage: deploy/bench/microbatch.sh [seconds per run, default 20] [rounds, default 2]
set -euo pipefail
SECONDS_PER_RUN="${1:-20}"
ROUNDS="${2:-2}"
PORT="${BENCH_PORT:-8791}"
export EXCHANGE_HOME="${EXCHANGE_HOME:-$(mktemp -d)/exchange-ab}"
unset DATABASE_URL

for _ in $(seq 1 "$ROUNDS"); do
  for mode in on off; do
    EXCHANGE_MICRO_BATCHING=$mode exchange serve --port "$PORT" --workers 2 \
      >"$EXCHANGE_HOME.$mode.log" 2>&1 &
    server=$!
    for _ in $(seq 1 100); do
      curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
      sleep 0.3
    done
    printf 'micro-batching %-3s ' "$mode"
    exchange bench --url "http://127.0.0.1:$PORT" --concurrency 16 \
      --duration "$SECONDS_PER_RUN" --partners 1 --members 2000 \
      --mix earn=55,redeem=45,wallet=0 2>/dev/null | head -1
    kill "$server"
    wait "$server" 2>/dev/null || true
  done
done
exchange verify >/dev/null && echo "exchange verify: all invariants hold"
