# A throwaway PostgreSQL in a temp dir: pg_start sets KLINGQ_DATABASE_URL, pg_stop
# removes everything. Sourced by scripts/demo and the benchmarks.
PG_BIN=/usr/lib/postgresql/15/bin

pg_start() {
  PG_DIR=$(mktemp -d /tmp/klingq-pg-XXXXXX)
  local run=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 \
    --no-sync --no-instructions >"$PG_DIR/initdb.log" 2>&1
  "${run[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w \
    -o "-k $PG_DIR -p 5432 -c fsync=off -c synchronous_commit=off -c listen_addresses='' -c max_connections=200" \
    start >/dev/null
  "$PG_BIN/createdb" -h "$PG_DIR" -U postgres klingq
  export KLINGQ_DATABASE_URL="postgresql://postgres@/klingq?host=$PG_DIR"
  PSQL=(psql -X -q -h "$PG_DIR" -U postgres -d klingq)
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  local run=()
  [ "$(id -u)" -eq 0 ] && run=(runuser -u postgres --)
  "${run[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=
}
