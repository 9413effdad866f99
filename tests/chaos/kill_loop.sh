#!/usr/bin/env bash
# Long crash test (issue 9): kill -9 klingqd at random moments across a batch, restart
# it, and check with the simulator's own counters that every row ends terminal, nothing
# was charged twice and accepted jobs map one-to-one to rows.
#   tests/chaos/kill_loop.sh [--jobs 500] [--kills 100] [--faults]
# --faults adds 20 % 5xx and 10 % accepted-then-reset answers on top of the kills.
set -euo pipefail
cd "$(dirname "$0")/../.."
JOBS=500 KILLS=100 FAULTS=""
while [ $# -gt 0 ]; do
  case $1 in
    --jobs) JOBS=$2; shift 2 ;;
    --kills) KILLS=$2; shift 2 ;;
    --faults) FAULTS="--fault-500 0.2 --fault-reset-after 0.1"; shift ;;
    *) echo "unknown argument $1"; exit 2 ;;
  esac
done
source scripts/pg.sh
pg_start
D=$(mktemp -d)
SIM=; KQ=
trap 'kill -9 $KQ 2>/dev/null; kill $SIM 2>/dev/null; pg_stop; rm -rf $D' EXIT
./build/klingq migrate >/dev/null
# Pro plan at 10x: 60 requests a simulated minute (6 real seconds), 10 parallel jobs.
KLINGQ_SIM_API_KEY=k ./build/klingq-sim --listen 127.0.0.1:0 --plan pro --time-scale 10 --gen-seconds 5:20 \
  --webhook-secret s --seed 42 $FAULTS >$D/sim.out 2>$D/sim.err &
SIM=$!
for _ in $(seq 100); do grep -q listening $D/sim.out && break; sleep 0.1; done
A=$(awk '/listening/{print $3}' $D/sim.out)
P=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >$D/k.yaml <<Y
database: {url: "$KLINGQ_DATABASE_URL"}
api: {base_url: "http://$A", request_timeout_ms: 2000}
limits: {plan: pro, window_seconds: 6}
dispatch: {lease_seconds: 5, safety_poll_ms: 500, retry_base_ms: 50, retry_max_ms: 500}
poll: {first_after_seconds: 1, max_interval_seconds: 2, webhook_grace_seconds: 2}
webhook: {listen: "127.0.0.1:$P", public_url: "http://127.0.0.1:$P/h", secrets: [s]}
log: {level: warning}
Y
"${PSQL[@]}" -c "INSERT INTO klingq.jobs (prompt) SELECT 'chaos ' || g FROM generate_series(1, $JOBS) g"
left() { "${PSQL[@]}" -tAc "SELECT count(*) FROM klingq.jobs WHERE state NOT IN ('completed','failed','cancelled')"; }
start=$(date +%s)
kills=0
while [ "$kills" -lt "$KILLS" ] && [ "$(left)" != 0 ]; do
  KLINGQ_API_KEY=k ./build/klingqd --config $D/k.yaml >>$D/d.out 2>>$D/d.err &
  KQ=$!
  sleep "$(python3 -c 'import random; print(round(random.uniform(0.2, 1.5), 2))')"
  kill -9 $KQ 2>/dev/null || true; wait $KQ 2>/dev/null || true; KQ=
  kills=$((kills + 1))
done
KLINGQ_API_KEY=k ./build/klingqd --config $D/k.yaml >>$D/d.out 2>>$D/d.err &
KQ=$!
deadline=$(( $(date +%s) + 600 ))
while [ "$(left)" != 0 ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
curl -s "http://$A/_sim/stats" >$D/stats.json
rows=$("${PSQL[@]}" -tAc "SELECT count(*) FROM klingq.jobs WHERE remote_id IS NOT NULL")
distinct=$("${PSQL[@]}" -tAc "SELECT count(DISTINCT remote_id) FROM klingq.jobs WHERE remote_id IS NOT NULL")
states=$("${PSQL[@]}" -tAc "SELECT string_agg(state || '=' || n, ' ') FROM (SELECT state::text, count(*) n FROM klingq.jobs GROUP BY 1 ORDER BY 1) s")
python3 - "$D/stats.json" "$rows" "$distinct" "$kills" "$JOBS" "$(( $(date +%s) - start ))" "$states" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rows, distinct, kills, jobs, secs, states = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
ok = s["duplicate_charges"] == 0 and s["accepted"] == rows == distinct and "queued" not in states and "submitted" not in states and "dispatching" not in states
print(f"jobs {jobs}, kills {kills}, {secs} s: rows {states}; accepted {s['accepted']}, rows with remote id {rows} "
      f"(distinct {distinct}), duplicate charges {s['duplicate_charges']}, idempotent replays {s['idempotent_replays']}, "
      f"429s {s['rate_limited']['total']} -> {'OK' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
PY
