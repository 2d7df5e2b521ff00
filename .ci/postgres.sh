# Starts and stops a throwaway PostgreSQL cluster from the Debian binaries: private data directory,
# loopback only, a free port. Sourced by .ci/run (and usable by hand: `. .ci/postgres.sh; start_postgres`).
# Sets PG_URL. initdb refuses to run as root, so as root the cluster runs as the `postgres` user.

start_postgres() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  PG_DIR=$(mktemp -d /tmp/samplan-pg.XXXXXX)
  PG_PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$PG_DIR"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U samplan --auth=trust -E UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log"; return 1; }
  # fsync off: these are functional tests on a throwaway cluster, not durability tests. Benchmarks
  # and crash tests set PG_DURABLE=1 for PostgreSQL's durable defaults.
  local durability="-c fsync=off -c synchronous_commit=off"
  [ "${PG_DURABLE:-0}" = 1 ] && durability=""
  "${as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 $durability -c max_connections=200 ${PG_OPTS:-}" start >/dev/null \
    || { cat "$PG_DIR/server.log"; return 1; }
  PG_URL="postgres://samplan@127.0.0.1:$PG_PORT/postgres"
  export PG_URL PG_DIR PG_BIN
  echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on port $PG_PORT"
}

stop_postgres() {
  [ -n "${PG_DIR:-}" ] || return 0
  local as=()
  [ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
  "${as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
