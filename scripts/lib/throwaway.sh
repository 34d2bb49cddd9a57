# Sourced by scripts/quickstart.sh and scripts/bench.sh: a temp dir with cleanup, and a throwaway
# MariaDB in it with a `haproxy`/`hapass` user, on a port of the caller's choosing.

# throwaway_init: makes $work and arranges for it, and every PID added to `pids`, to go at exit.
throwaway_init() {
    work="$(mktemp -d)"
    pids=()
    trap throwaway_cleanup EXIT
}

throwaway_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}

# throwaway_mariadb PORT [EXTRA-SQL [MARIADBD-ARG...]]: a fresh datadir in $work, mariadbd on
# 127.0.0.1:PORT and $work/db.sock (with the extra arguments, e.g. --ssl-cert), the haproxy user,
# then EXTRA-SQL; waits until the socket is up. Sets $dbpid.
throwaway_mariadb() {
    local port=$1 extra=${2:-}
    shift $(($# < 2 ? $# : 2))
    mariadb-install-db --no-defaults --datadir="$work/data" --user="$(id -un)" \
        --auth-root-authentication-method=normal --skip-test-db >/dev/null
    cat >"$work/init.sql" <<SQL
CREATE USER 'haproxy'@'%' IDENTIFIED BY 'hapass';
CREATE USER 'haproxy'@'localhost' IDENTIFIED BY 'hapass';
$extra
SQL
    mariadbd --no-defaults --user="$(id -un)" --datadir="$work/data" --socket="$work/db.sock" \
        --port="$port" --bind-address=127.0.0.1 --skip-name-resolve --skip-log-bin \
        --pid-file="$work/db.pid" --log-error="$work/db.err" --init-file="$work/init.sql" "$@" 2>>"$work/db.err" &
    dbpid=$!
    pids+=("$dbpid")
    for _ in $(seq 200); do [[ -S "$work/db.sock" ]] && return 0; sleep 0.1; done
    cat "$work/db.err" >&2
    return 1
}
