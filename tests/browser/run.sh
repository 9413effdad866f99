#!/usr/bin/env bash
# The console in a real browser: headless Chromium (Debian's package, /usr/bin/chromium)
# driven by puppeteer-core (npm, no browser download) against a real PostgreSQL
# (scripts/pg.sh), klingq-sim and two klingqd instances with the console on. What the
# test checks is console.test.js's; this script only builds the stack and tears it down.
# Screenshots are kept in ARTIFACT_DIR. Usage: run.sh BUILD_DIR ARTIFACT_DIR
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$(cd "$1" && pwd)
ARTIFACTS=$2
mkdir -p "$ARTIFACTS"
[ -x /usr/bin/chromium ] || { echo "browser test: /usr/bin/chromium is missing (scripts/common.sh installs it)" >&2; exit 1; }
if [ ! -d "$HERE/node_modules/puppeteer-core" ]; then
  (cd "$HERE" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund >/dev/null)
fi

source "$ROOT/scripts/pg.sh"
WORK=$(mktemp -d /tmp/klingq-browser-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  pg_stop
  rm -rf "$WORK"
}
trap cleanup EXIT
pg_start
"$BIN/klingq" migrate >/dev/null

API_KEY="browser-key-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
SECRET="browser-secret-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
OP_TOKEN="op-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
VIEWER_TOKEN="viewer-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$OP_TOKEN" >"$WORK/operators"
printf '%s\n' "$VIEWER_TOKEN" >"$WORK/viewers"
printf '%s' "$API_KEY" >"$WORK/api-key"

# The simulator on a free port; a slow generation keeps some jobs in flight.
"$BIN/klingq-sim" --listen 127.0.0.1:0 --api-key "$API_KEY" --webhook-secret "$SECRET" --plan starter \
  --time-scale 60 --gen-seconds 60:120 >"$WORK/sim.out" 2>"$WORK/sim.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -qs "listening on" "$WORK/sim.out" && break; sleep 0.1; done
SIM=$(grep -o "listening on [0-9.:]*" "$WORK/sim.out" | awk '{print $3}')
[ -n "$SIM" ] || { echo "klingq-sim did not start" >&2; cat "$WORK/sim.err" >&2; exit 1; }

# Jobs the daemons will work on, and rows they leave alone for the job-page checks.
"${PSQL[@]}" <<'SQL'
INSERT INTO klingq.jobs (prompt, batch) SELECT 'a lighthouse in a storm, take ' || g, 'storm' FROM generate_series(1, 40) g;
INSERT INTO klingq.jobs (prompt, batch, run_after) VALUES ('a queued job for the cancel button', 'later', now() + interval '1 day');
INSERT INTO klingq.jobs (prompt, batch, state, attempts, last_error) VALUES
  ('a failed job for the retry button', 'later', 'failed', 3,
   '{"last": {"class": "invalid_job", "message": "prompt refused"}}');
-- The unlabelled batch (batch NULL): a failed job for its row's "Retry failed", and a
-- queued one for tomorrow that keeps the row on the overview.
INSERT INTO klingq.jobs (prompt, run_after) VALUES ('an unlabelled job for tomorrow', now() + interval '1 day');
INSERT INTO klingq.jobs (prompt, state, attempts, last_error) VALUES
  ('an unlabelled failed job', 'failed', 3, '{"last": {"class": "invalid_job", "message": "prompt refused"}}');
SQL

start_daemon() {
  local name=$1
  cat >"$WORK/$name.yaml" <<YAML
database:
  url: "$KLINGQ_DATABASE_URL"
api:
  base_url: "http://$SIM"
  key_file: "$WORK/api-key"
limits:
  plan: starter
  window_seconds: 1
dispatch:
  instance_id: "$name"
  safety_poll_ms: 500
credits:
  refresh_seconds: 2
poll:
  first_after_seconds: 1
  max_interval_seconds: 2
http:
  listen: "127.0.0.1:0"
console:
  operator_token_file: "$WORK/operators"
  viewer_token_file: "$WORK/viewers"
YAML
  "$BIN/klingqd" --config "$WORK/$name.yaml" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=($!)
  for _ in $(seq 150); do grep -qs "klingqd ready" "$WORK/$name.out" && break; sleep 0.1; done
  grep -q "klingqd ready" "$WORK/$name.out" || { echo "$name did not start" >&2; cat "$WORK/$name.err" >&2; exit 1; }
}
start_daemon browser-a
start_daemon browser-b
CONSOLE_A=$(grep -o "http listening on [0-9.:]*" "$WORK/browser-a.out" | awk '{print $4}')
CONSOLE_B=$(grep -o "http listening on [0-9.:]*" "$WORK/browser-b.out" | awk '{print $4}')

export CONSOLE_A CONSOLE_B OP_TOKEN VIEWER_TOKEN ARTIFACTS KLINGQ_DATABASE_URL
export PSQL_ARGS="-X -q -At -h $PG_DIR -U postgres -d klingq"
node "$HERE/console.test.js"
status=$?
# No token in any log of either instance.
for f in "$WORK"/browser-*.err "$WORK"/browser-*.out; do
  if grep -q -e "$OP_TOKEN" -e "$VIEWER_TOKEN" -e "$API_KEY" "$f"; then echo "a secret is in $f" >&2; exit 1; fi
done
grep -q "console_action" "$WORK/browser-a.err" "$WORK/browser-b.err" || { echo "no console_action log line" >&2; exit 1; }
exit $status
