# Shared by the bench/ scripts: a throwaway PostgreSQL (scripts/pg.sh), one klingq-sim,
# klingqd configs and processes, and the Node peers. Sourced, not run.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KLINGQ_ROOT=$(cd "$BENCH_DIR/.." && pwd)
BIN=${KLINGQ_BIN:-$KLINGQ_ROOT/build}
source "$KLINGQ_ROOT/scripts/pg.sh"

for b in klingqd klingq klingq-sim; do
  [ -x "$BIN/$b" ] || { echo "bench: $BIN/$b is missing; build first: cmake --build $BIN" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/klingq-bench-XXXXXX)
SIM_PID=; DAEMON_PID=; EXTRA_PIDS=()
API_KEY="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
WEBHOOK_SECRET="bench-secret-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s' "$API_KEY" >"$WORK/api-key"
export KLINGQ_API_KEY="$API_KEY"

bench_cleanup() {
  stop_daemon
  for p in "${EXTRA_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -n "$SIM_PID" ] && { kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; }
  pg_stop
  if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Results go to bench/results/NAME.md (the table rows) and NAME.json; `run` joins them.
RESULTS_DIR=${BENCH_RESULTS:-$BENCH_DIR/results}
mkdir -p "$RESULTS_DIR"

ensure_node_modules() {
  if [ ! -d "$BENCH_DIR/node_modules/graphile-worker" ] || [ ! -d "$BENCH_DIR/node_modules/pg-boss" ]; then
    log "npm ci in bench/"
    (cd "$BENCH_DIR" && npm ci --no-audit --no-fund >/dev/null)
  fi
}

# start_pg: the throwaway cluster, migrated. Sets KLINGQ_DATABASE_URL, PSQL, PG_DIR.
start_pg() {
  pg_start
  "$BIN/klingq" migrate >/dev/null
}

# new_database NAME: a fresh migrated database in the same cluster; echoes its URL.
new_database() {
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
  local url="postgresql://postgres@/$1?host=$PG_DIR"
  "$BIN/klingq" --database "$url" migrate >/dev/null
  echo "$url"
}

# start_sim ARGS...: klingq-sim on a free loopback port. Sets SIM_ADDR.
start_sim() {
  "$BIN/klingq-sim" --listen 127.0.0.1:0 --api-key "$API_KEY" --webhook-secret "$WEBHOOK_SECRET" \
    --log-level warning "$@" >"$WORK/sim.out" 2>"$WORK/sim.log" &
  SIM_PID=$!
  for _ in $(seq 100); do grep -q "listening on" "$WORK/sim.out" 2>/dev/null && break; sleep 0.1; done
  SIM_ADDR=$(awk '/listening on/ {print $3}' "$WORK/sim.out")
  [ -n "$SIM_ADDR" ] || { echo "bench: klingq-sim did not start"; cat "$WORK/sim.log"; exit 1; }
}

sim_get() { curl -sf "http://$SIM_ADDR$1"; }
sim_post() { curl -sf -X POST -H 'Content-Type: application/json' -d "${2:-{\}}" "http://$SIM_ADDR$1"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_daemon CONFIG: klingqd in the background, waits for "klingqd ready". Sets DAEMON_PID.
start_daemon() {
  local config=$1
  # KLINGQ_DATABASE_URL (set by pg_start) would override the config's database.url.
  env -u KLINGQ_DATABASE_URL "$BIN/klingqd" --config "$config" --check-config >/dev/null
  env -u KLINGQ_DATABASE_URL "$BIN/klingqd" --config "$config" >"$WORK/klingqd.out" 2>"$WORK/klingqd.log" &
  DAEMON_PID=$!
  for _ in $(seq 150); do
    grep -q "klingqd ready" "$WORK/klingqd.out" 2>/dev/null && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: klingqd did not start:"; tail -20 "$WORK/klingqd.log"; exit 1
}

stop_daemon() {
  if [ -n "$DAEMON_PID" ]; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=
  fi
}

now_ms() { date +%s%3N; }

# CPU used so far, in clock ticks (getconf CLK_TCK): proc_ticks PID for one living process;
# pg_ticks for the whole cluster, its ended processes included (the postmaster's
# cutime/cstime hold the times of the backends it has reaped).
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pg_ticks() {
  local postmaster
  postmaster=$(head -1 "$PG_DIR/data/postmaster.pid")
  { awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat"
    for child in $(pgrep -P "$postmaster"); do awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || true; done
  } | awk '{t += $1} END {print t + 0}'
}
# us_per_job TICKS JOBS: ticks spread over the jobs, in microseconds.
us_per_job() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%d", t / hz * 1e6 / n}'; }

# drain_config FILE URL POOL_SIZE IN_FLIGHT [CONNECTIONS]: the klingqd config of the drain
# benchmarks (throughput, compare, profile-dispatch): the enterprise plan, CONNECTIONS (64) to the API,
# claims of up to 200 rows, no status polls or balance queries during the run.
# POOL_SIZE "default": the pool, connections, in-flight and claim settings are left at
# klingqd's defaults (what a user who sets nothing runs).
drain_config() {
  local pool="" conns="" dispatch=""
  if [ "$3" != default ]; then
    pool="  pool_size: $3"
    conns="  max_connections: ${5:-64}"
    dispatch="dispatch:
  max_in_flight_requests: $4
  claim_batch: 200"
  fi
  cat >"$1" <<YAML
database:
  url: "$2"
$pool
api:
  base_url: "http://$SIM_ADDR"
  key_file: "$WORK/api-key"
$conns
limits:
  plan: enterprise
$dispatch
poll:
  first_after_seconds: 3600
credits:
  refresh_seconds: 3600
log:
  level: notice
YAML
}

# drain_paused URL DB: resumes the paused klingqd started by start_daemon and returns when
# nothing is left queued or dispatching. Sets DRAIN_JOBS (rows submitted), DRAIN_SECONDS
# (to the last submitted_at: klingqd's own clock, more exact than the 50 ms poll),
# DRAIN_VMHWM_KIB, and the CPU µs per job of klingqd, the simulator and the cluster
# (DRAIN_CLIENT_US, DRAIN_SIM_US, DRAIN_PG_US), all read while klingqd's backends live: one
# ending between the two reads of pg_ticks would be counted in neither. klingqd keeps
# running.
drain_paused() {
  local url=$1 db=$2 client0 sim0 pg0 t0 t1
  client0=$(proc_ticks "$DAEMON_PID"); sim0=$(proc_ticks "$SIM_PID"); pg0=$(pg_ticks)
  t0=$(now_ms)
  "$BIN/klingq" --database "$url" resume >/dev/null
  wait_drained 3600 "$db" || true
  t1=$("${PSQL[@]}" -d "$db" -tAc "SELECT (extract(epoch FROM max(submitted_at)) * 1000)::bigint FROM klingq.jobs")
  DRAIN_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1000}')
  DRAIN_JOBS=$("${PSQL[@]}" -d "$db" -tAc "SELECT count(*) FROM klingq.jobs WHERE state IN ('submitted','completed')")
  DRAIN_VMHWM_KIB=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
  DRAIN_CLIENT_US=$(us_per_job $(( $(proc_ticks "$DAEMON_PID") - client0 )) "$DRAIN_JOBS")
  DRAIN_SIM_US=$(us_per_job $(( $(proc_ticks "$SIM_PID") - sim0 )) "$DRAIN_JOBS")
  DRAIN_PG_US=$(us_per_job $(( $(pg_ticks) - pg0 )) "$DRAIN_JOBS")
}

# wait_drained TIMEOUT_S [DB]: returns when klingqd has no row left to submit (none queued
# or dispatching), polled on one connection by peers.js. A psql process and a count(*)
# over the whole table every 250 ms took 7% of the machine's CPU in a throughput run; a
# DO loop in one backend held a snapshot that kept dead row versions from being pruned.
wait_drained() {
  local url="postgresql://postgres@/${2:-klingq}?host=$PG_DIR"
  timeout "$1" node "$BENCH_DIR/peers.js" klingq-drained klingqd --db "$url"
}

machine_line() {
  echo "$(date -u +%Y-%m-%d), commit $(git -C "$KLINGQ_ROOT" rev-parse --short HEAD), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(uname -sr)"
}
