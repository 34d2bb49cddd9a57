#!/usr/bin/env bash
# Writes cross/hot-text.ld, the linker script build.rs gives every musl release build, plain and
# TLS: the functions a running daemon executes, placed first and together in an output section
# .text.hot before .text. The kernel maps a binary's pages a window at a time around each page
# fault (64 KiB of fault-around, or a whole 128 KiB large folio on Linux 6.18), so code spread
# over the whole binary makes nearly all of it resident; packed together it costs a few windows,
# and the cold code's windows are never mapped.
#
# How: an unstripped x86_64 TLS release build (its linker map and a --reproduce archive) runs
# under valgrind's callgrind against a throwaway MariaDB with TLS: start-up, then checks with
# --ssl-mode REQUIRED (with a P-256 and with an RSA server certificate, and with --ssl-no-resume),
# VERIFY_IDENTITY and DISABLED and with --keep-session, down (a refused login, a refused
# connection), /metrics and an agent check, at the default log level as shipped. Every
# executed instruction names its input section in the map; functions the linker folded together
# (--icf=all) come along. Crate disambiguators and back-references in the mangled names become
# `*`, so one list serves every target and both flavours. To it come, by hand, code that callgrind
# cannot see or that depends on the machine (EARLY and LATE below). Then, with perf, the same
# checks run natively on the TLS build and on the plain one, each linked with the list, recording
# page faults: code that still faults outside .text.hot joins the list, round after round until
# none does (cross/hot-text.py does the arithmetic). The last round tests the layout written.
#
# The list is in order: the code every way of checking runs, then the code any of them may run
# (EARLY, and what the native rounds found: a contended lock, a timed wait), then each way's own,
# the most common first (`ways` below). The rare paths (LATE) go after it, in .text.late. The
# native rounds look for faults there as in the cold .text, and in the code of a way after the
# run's own (valgrind's slow runs take a connection's slow path in one way or another). A daemon
# maps the windows that hold code it ran, so one that checks one way keeps the start of .text.hot
# resident and little of the rest; build.rs aligns the segments to 64 KiB, so those windows are
# the same at every start.
#
# A name missing from the list only costs memory, never correctness: the function lands in .text
# as before. Run it again when the code changes much (`cross/sizes.sh` and scripts/bench.sh show
# the effect). Needs valgrind, gcc, openssl and MariaDB (installed if missing), and perf for the
# native rounds. HOT_TEXT_KEEP=1 keeps the traces, the map and the logs in target/hot-text/work.
#
# Usage: cross/hot-text.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source cross/lib.sh
export PATH="$PATH:/usr/sbin:/sbin"

target=x86_64-unknown-linux-musl
apt_install valgrind gcc libc6-dev openssl mariadb-server mariadb-client python3
source scripts/lib/throwaway.sh
throwaway_init
gcc -O2 -Wall -pthread -o "$work/tool" scripts/bench/tool.c
tool="$work/tool"

# The release build itself (any other profile setting, even strip, changes which copies of
# generic functions LTO keeps and what they are called), linked once more without --strip-all
# from its --reproduce archive: the same code at the same addresses, with symbols.
log "building the x86_64 TLS release build"
export CARGO_TARGET_DIR=$PWD/target/hot-text
release_build "$target" --quiet --features tls \
    --config "target.$target.rustflags=[\"-Clink-arg=--reproduce=$work/link.tar\"]"
mkdir "$work/link"
tar -xf "$work/link.tar" -C "$work/link"
link_dir=$(echo "$work/link"/*)
lld="$(rustc "+$toolchain" --print sysroot)/lib/rustlib/$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')/bin/rust-lld"
# relink DIR NAME LLD-ARGS...: DIR/NAME.bin and NAME.map, unstripped, from the --reproduce
# archive unpacked in DIR.
relink() {
    local dir=$1 name=$2
    shift 2
    (cd "$dir" && grep -v -e '^--strip-all$' -e '^--script ' response.txt >relink.txt &&
        "$lld" -flavor gnu @relink.txt "$@" --Map "$name.map" -o "$name.bin")
}
relink "$link_dir" traced --script "$(grep -m1 '^--script ' "$link_dir/response.txt" | cut -d' ' -f2-)"
bin=$link_dir/traced.bin
cp "$link_dir/traced.map" "$work/map.txt"

# The folded sections: the same link again without this script (the linker folds only within
# one output section, so the script would split the groups), printing them.
relink "$link_dir" unordered --print-icf-sections >"$work/icf.txt"

# The plain build the same way, for the native rounds below: it runs the plain paths alone, and
# LTO keeps and names some of their generic functions differently.
log "building the x86_64 plain release build"
CARGO_TARGET_DIR=$PWD/target/hot-text-plain release_build "$target" --quiet \
    --config "target.$target.rustflags=[\"-Clink-arg=--reproduce=$work/plain.tar\"]"
mkdir "$work/plain"
tar -xf "$work/plain.tar" -C "$work/plain"
plain_dir=$(echo "$work/plain"/*)

# A CA and a server certificate for localhost and 127.0.0.1, so that VERIFY_IDENTITY passes.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=hot-text-ca \
    -keyout "$work/ca-key.pem" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$work/tls-key.pem" -out "$work/tls.csr" 2>/dev/null
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca-key.pem" -days 2 \
    -extfile <(echo "subjectAltName=DNS:localhost,IP:127.0.0.1") -out "$work/tls.pem" 2>/dev/null
# And an RSA one, as MySQL makes for itself and most managed databases use.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -keyout "$work/rsa-key.pem" -out "$work/rsa.pem" 2>/dev/null
cp "$work/tls.pem" "$work/ec.pem"
cp "$work/tls-key.pem" "$work/ec-key.pem"
dbport=$("$tool" port)
# A port nothing listens on, for the refused way.
closed_port=$("$tool" port)
# The password as a file (--password-file), as the TLS recipe and many deployments give it: its
# reading and checks at start-up are code a daemon runs too.
(umask 077 && printf 'hapass\n' >"$work/password")
log "starting a throwaway MariaDB with TLS on 127.0.0.1:$dbport"
throwaway_mariadb "$dbport" "" --ssl-cert="$work/tls.pem" --ssl-key="$work/tls-key.pem" || exit 1
# server_cert ec|rsa: the certificate MariaDB presents from its next handshake on.
server_cert() {
    cp "$work/$1.pem" "$work/tls.pem"
    cp "$work/$1-key.pem" "$work/tls-key.pem"
    mariadb --no-defaults -uroot -S "$work/db.sock" -e "FLUSH SSL"
}

# run NAME HOST COMMAND...: the daemon as COMMAND ... mysqlchk FLAGS (the end of COMMAND is the
# binary; FLAGS follow after --), checking HOST:$dbport at the default log level: start-up, 20
# checks, an idle moment past the deadline, 25 checks 20 ms apart, /metrics, one agent check,
# SIGTERM (SIGINT for perf, which stops the daemon with it). RUN_PASSWORD and RUN_DBPORT replace
# the password and the port, for the ways a check fails; RUN_DOWN=1 says it must.
run() {
    local name=$1 host=$2 port agent pid cmd=() flags=() want=ok=1
    shift 2
    while [[ $1 != -- ]]; do cmd+=("$1"); shift; done
    shift
    flags=("$@")
    [[ ${RUN_DOWN:-} == 1 ]] && want=fail=1
    port=$("$tool" port) agent=$("$tool" port)
    MYSQLCHK_PASSWORD=${RUN_PASSWORD:-hapass} "${cmd[@]}" --listen "127.0.0.1:$port" \
        --agent-listen "127.0.0.1:$agent" --mysql "$host:${RUN_DBPORT:-$dbport}" --user haproxy \
        --force-fail-file /nonexistent/path --timeout 1000 "${flags[@]}" 2>"$work/$name.log" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 300); do
        [[ $("$tool" http "$port" 1) == *"$want"* ]] && break
        sleep 0.1
    done
    "$tool" http "$port" 20 >/dev/null
    # The shared deadline timer (src/deadline.rs) fires a --timeout after it was armed, and at
    # HAProxy's pace async-io's helper thread takes the reactor between checks: code that checks
    # back to back never reach, and that a daemon in service runs every few seconds.
    sleep 1.2
    TOOL_GAP_MS=20 "$tool" http "$port" 25 >/dev/null
    exec 4<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET /metrics HTTP/1.0\r\n\r\n' >&4
    cat <&4 >/dev/null
    exec 4<>"/dev/tcp/127.0.0.1/$agent"
    printf '/\n' >&4
    cat <&4 >/dev/null
    exec 4<&-
    kill "$([[ ${cmd[0]} == perf ]] && echo -INT || echo -TERM)" "$pid"
    wait "$pid" || true
}
# scenarios NAME WRAPPER...: the ways of checking the list is made from, the daemon run as
# WRAPPER ... BINARY, where @ in WRAPPER becomes each run's name.
scenarios() {
    local name=$1
    shift
    run "$name-required" 127.0.0.1 "${@//@/$name-required}" -- --ssl-mode REQUIRED
    run "$name-verify" localhost "${@//@/$name-verify}" -- --ssl-mode VERIFY_IDENTITY --ssl-ca "$work/ca.pem"
    run "$name-noresume" 127.0.0.1 "${@//@/$name-noresume}" -- --ssl-mode REQUIRED --ssl-no-resume
    server_cert rsa
    run "$name-rsa" 127.0.0.1 "${@//@/$name-rsa}" -- --ssl-mode REQUIRED
    server_cert ec
    plain_scenarios "$name" "$@"
}
# plain_scenarios NAME WRAPPER...: the same without TLS, which the plain build runs too.
plain_scenarios() {
    local name=$1
    shift
    run "$name-plain" 127.0.0.1 "${@//@/$name-plain}" --
    run "$name-file" 127.0.0.1 "${@//@/$name-file}" -- --password-file "$work/password"
    run "$name-keep" 127.0.0.1 "${@//@/$name-keep}" -- --keep-session 30
    # Down: a refused login and a refused connection, each logged once as a state change. A
    # daemon that has seen either would otherwise keep their windows mapped ever after.
    RUN_DOWN=1 RUN_PASSWORD=wrong run "$name-denied" 127.0.0.1 "${@//@/$name-denied}" --
    RUN_DOWN=1 RUN_DBPORT=$closed_port run "$name-refused" 127.0.0.1 "${@//@/$name-refused}" --
}
log "tracing under callgrind"
scenarios trace valgrind --tool=callgrind --demangle=no --dump-instr=yes --callgrind-out-file="$work/@.cg" "$bin"
# The ways of checking, most common first: .text.hot is laid out in this order (hot-text.py).
# The password file comes right after REQUIRED, as the README's TLS recipe has them together:
# third, after plain, its start-up code still cost a TLS daemon 132 KiB of idle RSS.
ways=(required file rsa verify noresume plain keep denied refused)
for s in "${ways[@]}"; do
    [[ -s $work/trace-$s.cg ]] || die "callgrind wrote nothing for $s: $(cat "$work/trace-$s.log")"
done

# Added by hand, because callgrind cannot see them or they depend on the machine:
# - libc's string functions: valgrind runs its own instead;
# - ring's assembly (whole objects) and ring::aead: picked by CPU feature at run time (SHA-NI,
#   AVX2, VAES, ADX on x86_64; NEON and the crypto extensions on ARM), and valgrind's CPU has
#   fewer features than the real one;
# - async-io's timer map, which the traced checks may not reach (below);
# - dlmalloc's trim, which runs once every 4,095 frees: after a few hundred checks.
# They go right after the code every trace ran; LATE, the rare paths, at the very end.
EARLY=(
    '*(.text.memcpy)' '*(.text.memmove)' '*(.text.memset)' '*(.text.memcmp)' '*(.text.bcmp)'
    '*(.text.memchr)' '*(.text.strlen)' '*(.text.strnlen)' '*(.text.strcmp)' '*(.text.strncmp)'
    '*(.text.strchr)' '*(.text.strchrnul)'
    '*memcpy.o(.text)' '*memmove.o(.text)' '*memset.o(.text)' '*memcpy.lo(.text)' '*memmove.lo(.text)'
    '*memset.lo(.text)'
    '*aes*(.text*)' '*ghash*(.text*)' '*gcm*(.text*)' '*sha256*(.text*)' '*sha512*(.text*)' '*p256*(.text*)'
    '*x25519*(.text*)' '*curve25519*(.text*)'
    '*(.text._R*4ring4aead*)'
    # async-io's timer map (a BTreeMap of Instant and Waker): deadlines share one timer
    # (src/deadline.rs), armed about once per --timeout, so a short trace may not see it.
    '*(.text._R*5alloc11collections5btree*4time7Instant*)' '*(.text._R*5alloc11collections5btree*4wake5Waker*)'
    # dlmalloc's trim, and the unmapping of a segment it frees.
    '*(.text._R*8dlmalloc*23release_unused_segments*)' '*(.text._R*8dlmalloc3sys*9Allocator4free*)'
)
# And the async runtime and the daemon's serving modules whole: their rare paths (contention,
# eviction, timers under load) would otherwise each fault in a cold window some day.
LATE=()
for crate in 3std 8dlmalloc 8async_io 14async_executor 10async_task 13async_channel 16concurrent_queue \
    14event_listener 7polling 7parking 4slab 9async_net 12async_signal 20signal_hook_registry \
    8mysqlchk6server 8mysqlchk5check 8mysqlchk4http 8mysqlchk7profile 8mysqlchk7metrics 8mysqlchk4link; do
    # A crate's own functions (its name first in the path), cold-marked ones too.
    LATE+=("*(.text._R*C*${crate}*)" "*(.text.unlikely._R*C*${crate}*)")
done

nm -S --defined-only "$bin" >"$work/nm.txt"
traces=()
for s in "${ways[@]}"; do traces+=("$work/trace-$s.cg"); done
python3 cross/hot-text.py trace "$work/map.txt" "$work/icf.txt" "$work/nm.txt" "$work/sections.txt" "${traces[@]}"
write_script() {
    python3 cross/hot-text.py script "$work/icf.txt" "$work/sections.txt" "$work/faults.txt" \
        -- "${EARLY[@]}" -- "${LATE[@]}" >"$work/hot-text.ld"
}
write_script

# Then natively: the traced build's objects, and the plain build's, linked with the script and
# run under perf recording page faults. An instruction fetch that faults in the cold .text is code
# the traces missed (another CPU's paths, a race, the plain build's own copies of generics); it
# joins the list, until a round finds none. A fault maps a whole window of the binary (64 KiB of
# fault-around, or a 128 KiB large folio on Linux 6.18), so one cold function hides the others
# in its window until it has moved: hence the rounds.
if command -v perf >/dev/null; then
    record=(perf record -q -e page-faults -c 1 -o "$work/@.perf")
    for round in $(seq 12); do
        for dir in "$link_dir" "$plain_dir"; do
            cp "$work/hot-text.ld" "$dir/refine.ld"
            relink "$dir" refine --script refine.ld
            nm -S --defined-only "$dir/refine.bin" >"$dir/refine-nm.txt"
        done
        rm -f "$work"/*.perf "$work"/*.faults
        for n in 1 2 3; do
            scenarios "refine-$n" "${record[@]}" "$link_dir/refine.bin"
            plain_scenarios "plain-$n" "${record[@]}" "$plain_dir/refine.bin"
        done
        for f in "$work"/*.perf; do perf script --no-demangle -i "$f" -F ip,sym,symoff >"${f%.perf}.faults" 2>/dev/null; done
        new=0
        for flavour in "$link_dir refine" "$plain_dir plain"; do
            read -r dir runs <<<"$flavour"
            n=$(python3 cross/hot-text.py faults "$dir/refine.map" "$dir/refine-nm.txt" \
                "$work/sections.txt" "$work/faults.txt" "$work/$runs"-*.faults)
            new=$((new + n))
        done
        log "native round $round: $new function(s) executed outside the list"
        [[ $new == 0 ]] && break
        write_script
    done
    [[ $new == 0 ]] || log "functions still fault outside the list after $round rounds: run it again"
else
    log "no perf: the list is callgrind's alone (Debian: apt-get install linux-perf)"
fi

mv "$work/hot-text.ld" cross/hot-text.ld
# HOT_TEXT_KEEP=1: the map, the traces and the logs stay in target/hot-text/work.
if [[ ${HOT_TEXT_KEEP:-} == 1 ]]; then
    rm -rf target/hot-text/work
    mkdir target/hot-text/work
    cp "$work"/*.cg "$work"/*.log "$work"/*.txt "$work"/*.faults target/hot-text/work/ 2>/dev/null || true
fi
log "wrote cross/hot-text.ld: $(grep -c '^    ' cross/hot-text.ld) patterns"
