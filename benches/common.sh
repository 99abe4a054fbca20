# Shared by the benchmark scripts (sourced, not run): tools, a work folder, a throwaway
# PostgreSQL and PgBouncer on loopback. Everything listens on 127.0.0.1 only; `bench_cleanup`
# (installed as the EXIT trap by `bench_init`) stops what was started and removes the folder.

# bench_init NAME: installs the tools, builds blastwall, makes $WORK; sets BIN, PGBOUNCER,
# PGBENCH, WORK and AS (the command prefix that runs a server as the postgres user under root).
bench_init() {
  BLASTWALL_BENCH_DEPS=1 scripts/install-deps
  cargo build --release --quiet
  BIN=$(pg_config --bindir 2>/dev/null || true)
  [ -x "$BIN/initdb" ] || BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
  PGBENCH=$(command -v pgbench || echo "$BIN/pgbench")
  WORK=$(mktemp -d "/tmp/blastwall-$1-XXXXXX")
  chmod 755 "$WORK"
  AS=()
  if [ "$(id -u)" = 0 ]; then chown postgres "$WORK"; AS=(runuser -u postgres --); fi
  BENCH_PIDS=()
  trap bench_cleanup EXIT
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# bench_started PID: stopped by bench_cleanup.
bench_started() { BENCH_PIDS+=("$1"); }

bench_cleanup() {
  local p
  for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "${AS[@]}" "$BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}

# start_postgres PORT [SETTING...]: initdb (trust), the given postgresql.conf lines, start.
start_postgres() {
  local port=$1; shift
  "${AS[@]}" "$BIN/initdb" -D "$WORK/data" -U postgres -A trust --no-sync >/dev/null
  {
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$WORK'"
    echo "fsync = off"
    printf '%s\n' "$@"
  } >> "$WORK/data/postgresql.conf"
  "${AS[@]}" "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w start >/dev/null
}

# write_pgbouncer_ini PORT PG_PORT DATABASE [SETTING...]: $WORK/pgbouncer.ini (trust auth).
write_pgbouncer_ini() {
  local port=$1 pgport=$2 db=$3; shift 3
  {
    echo "[databases]"
    echo "$db = host=127.0.0.1 port=$pgport dbname=$db"
    echo "[pgbouncer]"
    echo "listen_addr = 127.0.0.1"
    echo "listen_port = $port"
    echo "unix_socket_dir ="
    echo "auth_type = trust"
    echo "auth_file = $WORK/userlist.txt"
    echo "logfile = $WORK/pgbouncer.log"
    printf '%s\n' "$@"
  } > "$WORK/pgbouncer.ini"
  echo '"postgres" ""' > "$WORK/userlist.txt"
  if [ "$(id -u)" = 0 ]; then chown postgres "$WORK/pgbouncer.ini" "$WORK/userlist.txt"; fi
}

# start_pgbouncer: runs $WORK/pgbouncer.ini; sets BOUNCER_PID to the pgbouncer process itself
# (runuser forks), whose CPU the scripts read.
start_pgbouncer() {
  # runuser resets limits (pam_limits): raise the open-files limit again inside.
  "${AS[@]}" bash -c 'ulimit -n "$(ulimit -Hn)"; exec "$0" "$1"' "$PGBOUNCER" "$WORK/pgbouncer.ini" >/dev/null 2>&1 &
  bench_started $!
  local i
  for i in $(seq 50); do
    BOUNCER_PID=$(pgrep -f "^$PGBOUNCER $WORK/pgbouncer.ini" | tail -1 || true)
    if [ -n "$BOUNCER_PID" ]; then bench_started "$BOUNCER_PID"; return 0; fi
    sleep 0.1
  done
  echo "pgbouncer did not start: $(cat "$WORK/pgbouncer.log" 2>/dev/null)" >&2
  return 1
}
