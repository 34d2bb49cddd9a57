#!/usr/bin/env bash
# The one command that shows mysqlchk's job on a fresh machine: build the release binary, start
# a throwaway MariaDB with a `haproxy` user, run mysqlchk against it on a free port, and show
# `curl -i` of the up state, the drain state (drain file: still 200, the agent says drain) and
# the force-fail state (503). Everything is cleaned up.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"

need=()
command -v mariadbd >/dev/null || need+=(mariadb-server)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
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

source scripts/lib/throwaway.sh
throwaway_init

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dbport="$(free_port)"
chkport="$(free_port)"

echo "== starting a throwaway MariaDB on 127.0.0.1:$dbport"
throwaway_mariadb "$dbport"

echo "== starting mysqlchk on 127.0.0.1:$chkport"
printf 'hapass\n' >"$work/password"
chmod 600 "$work/password"
"$bin" --listen "127.0.0.1:$chkport" --mysql "127.0.0.1:$dbport" --user haproxy \
    --password-file "$work/password" --force-fail-file "$work/proxyoff" --drain-file "$work/proxydrain" &
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$chkport/" && break; sleep 0.05; done

echo
echo "== curl -i http://127.0.0.1:$chkport/   (up)"
curl -si "http://127.0.0.1:$chkport/"
echo
echo "== touch $work/proxydrain; curl -i ...   (draining: still 200, HAProxy's agent check says drain)"
touch "$work/proxydrain"
curl -si "http://127.0.0.1:$chkport/"
rm "$work/proxydrain"
echo
echo "== touch $work/proxyoff; curl -i ...   (failed on purpose by the operator: 503)"
touch "$work/proxyoff"
curl -si "http://127.0.0.1:$chkport/"
echo
echo "== done; cleaning up"
