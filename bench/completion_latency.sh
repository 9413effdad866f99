#!/usr/bin/env bash
# Issue 6 figures: simulator completion -> row completed, and -> the freed parallel slot
# reused (p50/p99, real clock), plus the share of requests that were not submits.
#   ./bench/completion_latency.sh                       webhooks on, parallel-bound
#   WEBHOOK=off ./bench/completion_latency.sh           polling only
# Env: N jobs (60), GEN sim generation seconds (1:1), PLANARGS/LIMITS for other plans.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg.sh
pg_start
D=$(mktemp -d)
trap 'kill $SIM $KQ 2>/dev/null; pg_stop; rm -rf $D' EXIT
./build/klingq migrate >/dev/null
KLINGQ_SIM_API_KEY=k ./build/klingq-sim --listen 127.0.0.1:0 ${PLANARGS:---plan starter --rpm 0 --daily 0} --gen-seconds ${GEN:-1:1} --webhook-secret s ${SIMARGS:-} >$D/sim.out 2>$D/sim.err &
SIM=$!
for i in $(seq 50); do grep -q listening $D/sim.out && break; sleep 0.1; done
A=$(awk '/listening/{print $3}' $D/sim.out)
P=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
WEBHOOK=${WEBHOOK:-on}
DEFAULT_LIMITS="{plan: starter, rpm: 0, daily: 0}"
{
echo "database: {url: \"$KLINGQ_DATABASE_URL\"}"
echo "api: {base_url: \"http://$A\"}"
echo "limits: ${LIMITS:-$DEFAULT_LIMITS}"
echo "dispatch: {safety_poll_ms: 1000}"
echo "poll: {first_after_seconds: 1, max_interval_seconds: 5}"
if [ "$WEBHOOK" = on ]; then echo "webhook: {listen: \"127.0.0.1:$P\", public_url: \"http://127.0.0.1:$P/h\", secrets: [s]}"; fi
} > $D/k.yaml
"${PSQL[@]}" -c "INSERT INTO klingq.jobs (prompt) SELECT 'p' || g FROM generate_series(1,${N:-60}) g"
KLINGQ_API_KEY=k ./build/klingqd --config $D/k.yaml >$D/d.out 2>$D/d.err &
KQ=$!
while [ "$("${PSQL[@]}" -tAc "SELECT count(*) FROM klingq.jobs WHERE state NOT IN ('completed','failed')")" != 0 ]; do sleep 0.5; done
curl -s http://$A/_sim/jobs > $D/jobs.json
curl -s http://$A/_sim/stats > $D/stats.json
"${PSQL[@]}" -tAc "SELECT remote_id, klingq.epoch_ms(completed_at), klingq.epoch_ms(submitted_at) FROM klingq.jobs" > $D/rows.txt
python3 - $D <<'PY'
import json, sys, datetime
d = sys.argv[1]
jobs = {j["id"]: j for j in json.load(open(d + "/jobs.json"))["jobs"]}
rows = [l.strip().split("|") for l in open(d + "/rows.txt") if l.strip()]
def ms(iso):
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000
lat, reuse = [], []
submits = sorted(int(r[2]) for r in rows)
for rid, done, sub in rows:
    sim_done = jobs[rid]["completedAtMs"]
    lat.append(int(done) - sim_done)
    later = [s for s in submits if s >= sim_done]
    if later: reuse.append(later[0] - sim_done)
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
s = json.load(open(d + "/stats.json"))
if reuse: print("jobs %d  completion->row completed p50 %.1f ms p99 %.1f ms   completion->slot reused p50 %.1f ms p99 %.1f ms" % (len(lat), pct(lat, 50), pct(lat, 99), pct(reuse, 50), pct(reuse, 99)))
print("requests %d accepted %d  non-submit requests %d (%.1f%%)  429s %d dup %d" % (s["requests"], s["accepted"], s["requests"] - s["accepted"], 100.0 * (s["requests"] - s["accepted"]) / s["requests"], s["rate_limited"]["total"], s["duplicate_charges"]))
PY
