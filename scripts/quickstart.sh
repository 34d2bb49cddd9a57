#!/usr/bin/env bash
# The one command that shows mysqlchk's job on a fresh machine: build the release binary, start
# a throwaway MariaDB with a `haproxy` user, run mysqlchk against it on a free port, and show
# `curl -i` of the up state and of the force-fail (drain) state. Everything is cleaned up.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"

need=()
command -v mariadbd >/dev/null || need+=(mariadb-server)
command -v curl >/dev/null || need+=(curl)
command -v cc >/dev/null || need+=(gcc libc6-dev)
if [[ ${#need[@]} -gt 0 ]]; then
    echo "quickstart: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "quickstart: cargo not found: install Rust first" >&2; exit 1; }

echo "== building the release binary"
cargo build --release --quiet
bin="$PWD/target/release/mysqlchk"
ls -l "$bin"

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dbport="$(free_port)"
chkport="$(free_port)"

echo "== starting a throwaway MariaDB on 127.0.0.1:$dbport"
mariadb-install-db --no-defaults --datadir="$work/data" --user="$(id -un)" \
    --auth-root-authentication-method=normal --skip-test-db >/dev/null
cat >"$work/init.sql" <<'SQL'
CREATE USER 'haproxy'@'%' IDENTIFIED BY 'hapass';
CREATE USER 'haproxy'@'localhost' IDENTIFIED BY 'hapass';
SQL
mariadbd --no-defaults --user="$(id -un)" --datadir="$work/data" --socket="$work/db.sock" \
    --port="$dbport" --bind-address=127.0.0.1 --skip-name-resolve --skip-log-bin \
    --pid-file="$work/db.pid" --log-error="$work/db.err" --init-file="$work/init.sql" &
pids+=($!)
for _ in $(seq 100); do [[ -S "$work/db.sock" ]] && break; sleep 0.1; done
[[ -S "$work/db.sock" ]] || { cat "$work/db.err"; exit 1; }

echo "== starting mysqlchk on 127.0.0.1:$chkport"
printf 'hapass\n' >"$work/password"
chmod 600 "$work/password"
"$bin" --listen "127.0.0.1:$chkport" --mysql "127.0.0.1:$dbport" --user haproxy \
    --password-file "$work/password" --force-fail-file "$work/proxyoff" &
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$chkport/" && break; sleep 0.05; done

echo
echo "== curl -i http://127.0.0.1:$chkport/   (up)"
curl -si "http://127.0.0.1:$chkport/"
echo
echo "== touch $work/proxyoff; curl -i ...   (drained by the operator)"
touch "$work/proxyoff"
curl -si "http://127.0.0.1:$chkport/"
echo
echo "== done; cleaning up"
