#!/usr/bin/env bash
# Benchmarks mysqlchk against what it replaces and against its bounds, in one run on one
# machine, all against ONE throwaway MariaDB on loopback (mariadb-install-db + mariadbd in a temp
# dir, user haproxy/hapass, removed on exit):
#
#   floor     MariaDB Connector/C in a C loop: connect, log in, `select @@hostname`, close. No
#             HTTP, no process: what one check cannot beat (scripts/bench/floor.c).
#   floor, kept connection: the same loop on one connection logged in before it, each check the
#             query alone: with the ceiling's HTTP, the bound of a --keep-session check.
#   floor, kept, mysqlchk's statement: the kept loop sending mysqlchk's statement (below): the
#             same database work as a --keep-session check, so its bound with the ceiling.
#   floor, mysqlchk's statement: the floor's loop sending the statement mysqlchk's default check
#             sends (`select @@hostname` from a derived table, which a Galera node refusing
#             queries refuses): the same database work as mysqlchk's check.
#   seed      the seed's connectorchk.sh under a real xinetd configured as the seed does
#             (scripts/bench/connectorchk.*): once with xinetd's default `cps = 50 10`, counting
#             refused checks, once with cps lifted to measure its latency.
#   mysqlchk  the release build: the static x86_64 musl one (cross/) when cross/ has it, else
#             `cargo build --release`; with default flags, again with `--cache-ms 1000`, and
#             with `--keep-session 30` (latency only: one kept session, no login per check).
#   ceiling   examples/ceiling.rs: the same smol server answering 200 without any check.
#   TLS rows  the same MariaDB also serves TLS (a self-signed certificate made with openssl):
#             floor (TLS) is the floor with TLS enforced (MYSQL_OPT_SSL_ENFORCE), mysqlchk-tls the
#             TLS build (--features tls) with --ssl-mode REQUIRED. mysqlchk-tls resumes TLS
#             sessions across checks; Connector/C makes a full handshake every time, and so does
#             mysqlchk-tls --ssl-no-resume, the same build without resumption: the difference
#             between the two mysqlchk-tls rows is what resumption saves. None verifies the
#             certificate (REQUIRED).
#
# Figures, where they make sense: median and p99 latency of a check (a fresh connection,
# `GET / HTTP/1.0`, read to EOF: scripts/bench/tool.c; the floor times its own loop), run in four
# interleaved blocks so that the shared machine's slow spells hit every contender alike; CPU per
# check of the server process(es) over those runs (all threads, from schedstat; the seed adds
# xinetd's reaped children, cutime+cstime) and of mariadbd; RSS idle (VmRSS after warm-up, at
# the default log level as shipped: its start-up and state-change lines run code too; for
# mysqlchk and mysqlchk-tls also with the password in a file, `--password-file`, in the targets)
# and peak (VmHWM; for the seed the largest sampled sum over xinetd and its children); checks/s
# with `wrk -t1 -c50 -d5s` (non-2xx answers not counted); database logins/s during that wrk run
# (MariaDB's `Connections` delta); binary sizes. Then the ratios and the targets, PASS or MISS.
#
# Usage: scripts/bench.sh [--json FILE]      FILE `-` writes the JSON to stdout instead of the
#                                            table (the table then goes to stderr)
# System calls per check: perf's tracepoints on each warmed-up server over BENCH_SYSCALL_N (1000)
# HAProxy-like checks, and mmap+munmap over BENCH_CURL_N (300) checks by curl too. At HAProxy's
# pace: BENCH_PACE_N (200) checks BENCH_PACE_MS (20) ms apart, so that the server idles between
# checks as it does behind HAProxy: latency, CPU and system calls per check, the async-io helper
# thread's apart. On one CPU: BENCH_ONE_CPU_N (1000) checks of the floors, mysqlchk (fresh and
# --keep-session) and the ceiling with every process pinned to one CPU (taskset), the latency and
# CPU of a check without cross-CPU wake-ups, which a VM whose idle vCPUs halt makes dear. These
# explain the targets; the targets are judged on the unpinned runs.
#
# Environment: BENCH_N (2000 latency checks per contender), BENCH_SEED_N (300: the seed forks
# two processes per check), BENCH_WRK_SECONDS (5), BENCH_BUILD=glibc (measure the plain
# `cargo build --release` even where cross/ can build the musl one). Missing Debian packages are
# installed. A run takes under a minute once the binaries are built (the first musl build takes
# a few more: it rebuilds std, in target/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"

json=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --json) json=${2:--}; shift $(($# > 1 ? 2 : 1)) ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
n=${BENCH_N:-2000}
seed_n=${BENCH_SEED_N:-300}
wrk_s=${BENCH_WRK_SECONDS:-5}
# With --json -, stdout carries the JSON alone.
if [[ $json == - ]]; then exec 3>&1 1>&2; else exec 3>&1; fi
t0=$SECONDS
say() { echo "bench: [$((SECONDS - t0)) s] $*" >&2; }

# --- what the run needs ---------------------------------------------------------------------
need=()
for p in gcc libc6-dev libmariadb-dev wrk xinetd mariadb-server mariadb-client bash openssl linux-perf curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [[ ${#need[@]} -gt 0 ]]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { say "cargo not found: install Rust first"; exit 1; }

source scripts/lib/throwaway.sh
throwaway_init

# --- builds ---------------------------------------------------------------------------------
say "building the C tools"
gcc -O2 -Wall -pthread -o "$work/tool" scripts/bench/tool.c
gcc -O2 -Wall $(mariadb_config --cflags) -o "$work/floor" scripts/bench/floor.c $(mariadb_config --libs)
tool="$work/tool"
# The statement mysqlchk's default check sends: `select @@hostname` reading from a derived table,
# so that a Galera node refusing queries refuses it too (src/profile.rs). The floor runs it too,
# once, to tell what the statement costs from what mysqlchk does.
probe_sql=$(sed -n 's/^const DEFAULT_QUERY_PROBED: &str = "\(.*\)";$/\1/p' src/profile.rs)
[[ -n $probe_sql ]] || { say "DEFAULT_QUERY_PROBED not found in src/profile.rs"; exit 1; }

# mysqlchk and the ceiling are built alike, so that their ratio compares servers, not libcs.
musl=x86_64-unknown-linux-musl
build=""
if [[ -f cross/$musl.toml && ${BENCH_BUILD:-} != glibc ]]; then
    say "building mysqlchk and the ceiling: static $musl (cross/)"
    release_cfg=()
    [[ -f cross/release.toml ]] && release_cfg=(--config cross/release.toml)
    # cross/lib.sh: the pinned toolchain, its target and settings (as scripts/release.sh does).
    # A target dir of our own: release.sh's extra flags would make each rebuild the other's.
    bench_target="$PWD/target/bench"
    if (export CARGO_TARGET_DIR="$bench_target" && source cross/lib.sh && cross_setup "$musl" &&
        cross_cargo "$musl" build --quiet --release --bin mysqlchk --example ceiling "${release_cfg[@]}" &&
        export CARGO_TARGET_DIR="$bench_target-tls" &&
        cross_cargo "$musl" build --quiet --release --bin mysqlchk --features tls "${release_cfg[@]}"); then
        dir="$bench_target/$musl/release"
        bin="$dir/mysqlchk" ceiling_bin="$dir/examples/ceiling" tls_bin="$bench_target-tls/$musl/release/mysqlchk"
        build="static $musl (cross/$musl.toml${release_cfg:+ + cross/release.toml})"
    else
        say "the musl build failed: falling back to cargo build --release"
    fi
fi
if [[ -z $build ]]; then
    say "building mysqlchk and the ceiling: cargo build --release"
    cargo build --quiet --release --bin mysqlchk --example ceiling
    dir="${CARGO_TARGET_DIR:-$PWD/target}/release"
    bin="$dir/mysqlchk" ceiling_bin="$dir/examples/ceiling"
    CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/bench-tls" cargo build --quiet --release --bin mysqlchk --features tls
    tls_bin="${CARGO_TARGET_DIR:-$PWD/target}/bench-tls/release/mysqlchk"
    build="cargo build --release (glibc, dynamic)"
fi

# --- the throwaway MariaDB ------------------------------------------------------------------
dbport="$("$tool" port)"
say "starting a throwaway MariaDB on 127.0.0.1:$dbport, with TLS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/tls-key.pem" -out "$work/tls.pem" 2>/dev/null
# The seed's MYSQL_OPTS select database `test`.
throwaway_mariadb "$dbport" "CREATE DATABASE test;
GRANT SELECT ON test.* TO 'haproxy'@'%';
GRANT SELECT ON test.* TO 'haproxy'@'localhost';" --ssl-cert="$work/tls.pem" --ssl-key="$work/tls-key.pem" || exit 1
sql() { mariadb --no-defaults -uroot -S "$work/db.sock" -N -B -e "$1"; }
db_status() { sql "SHOW GLOBAL STATUS LIKE '$1'" | awk '{print $2}'; }

# --- measuring helpers ----------------------------------------------------------------------
declare -A R # R[contender.field] = value
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; } # kv KEY "k=v k=v"
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
cpu_ns() { # PID: its own CPU plus its reaped children's, in ns
    local c
    c=$("$tool" cpu "$1")
    echo $(($(kv self_ns "$c") + $(kv children_ns "$c")))
}
metric() { # PORT NAME: one value from mysqlchk's /metrics
    local out
    exec 4<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET /metrics HTTP/1.0\r\n\r\n' >&4
    out=$(cat <&4)
    exec 4<&-
    awk -v m="$2" '$1 == m { print $2 }' <<<"$out"
}
wait_up() { # PORT: until one check answers 200
    for _ in $(seq 100); do
        [[ $(kv ok "$("$tool" http "$1" 1)") == 1 ]] && return 0
        sleep 0.1
    done
    say "nothing answers 200 on port $1"
    return 1
}

# Each contender's server: PID[name], PORT[name]. Totals over its latency blocks: R[name.checks],
# .ok, .refused, .cpu_ns, .db_ns; its ok durations (µs) pile up in $work/NAME.lat.
declare -A PID PORT
add() { R[$1.$2]=$((${R[$1.$2]:-0} + $3)); }

# run_floor NAME COUNT RAW [WRAPPER...]: COUNT checks of the floor row NAME (floor, floor_probe,
# floor_keep, floor_keep_probe, floor_tls), run through WRAPPER (e.g. taskset) if given; prints
# the floor's line.
run_floor() {
    local name=$1 count=$2 raw=$3
    shift 3
    # With TLS, the server's own certificate as the CA file: without one, Connector/C (GnuTLS)
    # loads the system's whole trust store for every connection, 17 ms of CPU a check.
    FLOOR_TLS=$([[ $name == floor_tls ]] && echo 1 || echo 0) FLOOR_TLS_CA="$work/tls.pem" \
        FLOOR_KEEP=$([[ $name == floor_keep* ]] && echo 1 || echo 0) \
        FLOOR_QUERY=$([[ $name == *_probe ]] && echo "$probe_sql") \
        "$@" "$work/floor" 127.0.0.1 "$dbport" haproxy hapass "$count" "$raw"
}

# nth_ms FILE RANK: the RANK-th smallest of FILE's durations (µs, one a line), in ms.
nth_ms() { calc "$(sort -g "$1" | sed -n "${2}p") / 1000"; }

# block NAME COUNT: COUNT checks of one contender, one after another, with the CPU they cost
# its server (its process tree) and mariadbd.
block() {
    local name=$1 count=$2 out c0 d0
    d0=$(cpu_ns "$dbpid")
    if [[ $name == floor* ]]; then
        out=$(run_floor "$name" "$count" "$work/$name.lat")
        add "$name" cpu_ns $(($(kv cpu_us "$out") * 1000))
        add "$name" wall_us "$(calc "$(kv wall_s "$out") * 1e6" 0)"
        ((${R[$name.rss_peak_kb]:-0} > $(kv hwm_kb "$out"))) || R[$name.rss_peak_kb]=$(kv hwm_kb "$out")
    else
        c0=$(cpu_ns "${PID[$name]}")
        out=$("$tool" http "${PORT[$name]}" "$count" "$work/$name.lat")
        [[ $name != seed* ]] || sleep 0.3 # until xinetd has reaped its last children
        c0=$(($(cpu_ns "${PID[$name]}") - c0))
        add "$name" cpu_ns "$c0"
        add "$name" refused "$(kv refused "$out")"
        # The quietest block's CPU per check, to tell the machine's noise from the program's cost.
        c0=$(calc "$c0 / 1e6 / ($(kv ok "$out") > 0 ? $(kv ok "$out") : 1)" 4)
        if awk "BEGIN { exit !(${R[$name.cpu_best_ms]:-1e9} > $c0) }"; then R[$name.cpu_best_ms]=$c0; fi
    fi
    add "$name" db_ns $(($(cpu_ns "$dbpid") - d0))
    add "$name" checks "$count"
    add "$name" ok "$(kv ok "$out")"
}

# summarize NAME: median and p99 (nearest rank) of its pooled durations, CPU per check.
summarize() {
    local name=$1 ok=${R[$1.ok]:-0}
    R[$name.failed]=$((R[$name.checks] - ok))
    if ((ok > 0)); then
        R[$name.median_ms]=$(nth_ms "$work/$name.lat" $(((ok - 1) / 2 + 1)))
        R[$name.p99_ms]=$(nth_ms "$work/$name.lat" $(((99 * (ok - 1) + 50) / 100 + 1)))
    fi
    R[$name.cpu_ms]=$(calc "${R[$name.cpu_ns]} / 1e6 / ($ok > 0 ? $ok : 1)" 4)
    R[$name.db_cpu_ms]=$(calc "${R[$name.db_ns]} / 1e6 / ($ok > 0 ? $ok : 1)" 4)
}

# load NAME: 50 concurrent clients for wrk_s seconds (wrk; `tool load` for the seed, whose
# header-less answer and unread request wrk reads as errors), with database logins per second.
load() {
    local name=$1 port=${PORT[$1]} out c0 c1 total non2xx secs errors good
    c0=$(db_status Connections)
    if [[ $name == seed* ]]; then
        out=$("$tool" load "$port" 50 "$wrk_s")
        secs=$(kv secs "$out") non2xx=0
        errors=$(($(kv fail "$out") + $(kv refused "$out") + $(kv reset "$out")))
        good=$(kv ok "$out") total=$(($(kv ok "$out") + errors))
    else
        out=$(wrk -t1 -c50 -d"${wrk_s}s" "http://127.0.0.1:$port/")
        total=$(awk '/requests in/ { print $1 }' <<<"$out")
        secs=$(awk '/requests in/ { sub(/s,$/, "", $4); print $4 }' <<<"$out")
        non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
        errors=$(awk '/Socket errors/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' <<<"$out")
        good=$((total - ${non2xx:-0}))
    fi
    c1=$(db_status Connections)
    R[$name.wrk_requests]=$total R[$name.wrk_non2xx]=${non2xx:-0} R[$name.wrk_errors]=${errors:-0}
    R[$name.wrk_rate]=$(calc "$good / $secs" 0)
    # The second status query's own connection is counted too.
    R[$name.logins_s]=$(calc "($c1 - $c0 - 1) / $secs" 0)
    R[$name.wrk_secs]=$secs
}

# start NAME PORT CMD...: starts an HTTP contender, warms it up, notes its idle RSS. Its log goes
# to $work/NAME.log.
start() {
    local name=$1 port=$2
    shift 2
    "$@" 2>>"$work/$name.log" &
    PID[$name]=$! PORT[$name]=$port
    pids+=($!)
    wait_up "$port"
    "$tool" http "$port" 20 >/dev/null
    sleep 0.2
    R[$name.rss_idle_kb]=$(proc_kb "${PID[$name]}" VmRSS)
}

# loaded NAME: its wrk run, its peak RSS, then stops it; mysqlchk's own metrics tell how many
# logins were in flight during wrk.
loaded() {
    local name=$1 port=${PORT[$1]} l0 s0
    if [[ $name == mysqlchk* ]]; then
        l0=$(metric "$port" mysqlchk_db_logins_total) s0=$(metric "$port" mysqlchk_check_duration_seconds_sum)
        sql "FLUSH STATUS"
    fi
    load "$name"
    if [[ $name == mysqlchk* ]]; then
        R[$name.db_logins]=$(($(metric "$port" mysqlchk_db_logins_total) - l0))
        R[$name.in_flight]=$(calc "($(metric "$port" mysqlchk_check_duration_seconds_sum) - $s0) / ${R[$name.wrk_secs]}" 2)
        # Since FLUSH STATUS, whose own connection was closed during wrk.
        R[$name.db_peak_connections]=$(db_status Max_used_connections)
    fi
    R[$name.rss_peak_kb]=$(proc_kb "${PID[$name]}" VmHWM)
    kill "${PID[$name]}"
    wait "${PID[$name]}" 2>/dev/null || true
}

# --- floor, mysqlchk and the ceiling: latency in interleaved blocks, then wrk -----------------
chk_flags() { echo --listen "127.0.0.1:$1" --mysql "127.0.0.1:$dbport" --user haproxy \
    --force-fail-file /nonexistent/path; }
export MYSQLCHK_PASSWORD=hapass
say "starting mysqlchk, mysqlchk --cache-ms 1000 and the ceiling"
port=$("$tool" port)
start mysqlchk "$port" "$bin" $(chk_flags "$port")
port=$("$tool" port)
start mysqlchk_cache "$port" "$bin" $(chk_flags "$port") --cache-ms 1000
port=$("$tool" port)
start mysqlchk_keep "$port" "$bin" $(chk_flags "$port") --keep-session 30
port=$("$tool" port)
start ceiling "$port" "$ceiling_bin" "127.0.0.1:$port"
port=$("$tool" port)
start mysqlchk_tls "$port" "$tls_bin" $(chk_flags "$port") --ssl-mode REQUIRED
port=$("$tool" port)
start mysqlchk_tls_full "$port" "$tls_bin" $(chk_flags "$port") --ssl-mode REQUIRED --ssl-no-resume
# Idle RSS with the password in a file (--password-file, as the README's TLS recipe has it), not
# in the environment: start-up reads and checks it, code that an idle daemon may keep mapped.
(umask 077 && printf 'hapass\n' >"$work/password")
for r in mysqlchk mysqlchk_tls; do
    port=$("$tool" port)
    [[ $r == mysqlchk ]] && set -- "$bin" || set -- "$tls_bin" --ssl-mode REQUIRED
    start "${r}_file" "$port" "$@" $(chk_flags "$port") --password-file "$work/password"
    R[$r.rss_idle_file_kb]=${R[${r}_file.rss_idle_kb]}
    kill "${PID[${r}_file]}"
    wait "${PID[${r}_file]}" 2>/dev/null || true
done
# A fresh MariaDB is slower for its first few hundred logins.
"$work/floor" 127.0.0.1 "$dbport" haproxy hapass 300 >/dev/null
# The machine is shared: interleaving spreads its slow spells over every contender alike.
blocks=4
http_rows=(floor floor_probe floor_keep floor_keep_probe mysqlchk mysqlchk_cache mysqlchk_keep ceiling floor_tls mysqlchk_tls mysqlchk_tls_full)
say "latency: $n checks each of ${http_rows[*]}, in $blocks interleaved blocks"
for _ in $(seq "$blocks"); do
    for r in "${http_rows[@]}"; do block "$r" $((n / blocks)); done
done
for r in "${http_rows[@]}"; do summarize "$r"; done
R[floor.logins_s]=$(calc "${R[floor.ok]} / (${R[floor.wall_us]} / 1e6)" 0)
R[floor_tls.logins_s]=$(calc "${R[floor_tls.ok]} / (${R[floor_tls.wall_us]} / 1e6)" 0)
# TLS handshakes by kind over the latency blocks, from the daemons' /metrics.
for r in mysqlchk_tls mysqlchk_tls_full; do
    R[$r.tls_resumed]=$(metric "${PORT[$r]}" 'mysqlchk_tls_handshakes_total{resumed="yes"}')
    R[$r.tls_full]=$(metric "${PORT[$r]}" 'mysqlchk_tls_handshakes_total{resumed="no"}')
done

# --- on one CPU -----------------------------------------------------------------------------
# The same checks with every process of them on one CPU (taskset: mariadbd's, each server's and
# the client's threads): no wake-up crosses CPUs. On a VM whose idle vCPUs halt, waking one costs
# the hypervisor a round trip, and the scheduler wakes a task on an idle CPU where it can; a
# check is a relay of wake-ups (client, server, mariadbd, back), so those costs, not the program,
# can decide the figures above. These figures are the program's own cost. They explain the
# targets and judge none; the targets stay judged on the unpinned runs above.
one_n=${BENCH_ONE_CPU_N:-1000}
all_cpus=$(taskset -cp $$ | sed 's/.*: *//')
one_cpu=${all_cpus%%[-,]*}
one_rows=(floor floor_probe floor_keep floor_keep_probe mysqlchk mysqlchk_keep ceiling)
pin() { # CPULIST PID...: every thread of each (taskset -a says nothing of a PID that is gone)
    local cpus=$1 p
    shift
    for p in "$@"; do
        taskset -cp "$cpus" "$p" >/dev/null && taskset -a -cp "$cpus" "$p" >/dev/null || return 1
    done
}
# one NAME COUNT: COUNT checks of one contender on one_cpu; R[NAME.one_cpu_ns], .one_db_ns, .one_ok.
one() {
    local name=$1 count=$2 out c0 d0
    d0=$(cpu_ns "$dbpid")
    if [[ $name == floor* ]]; then
        out=$(run_floor "$name" "$count" "$work/$name.one.lat" taskset -c "$one_cpu")
        add "$name" one_cpu_ns $(($(kv cpu_us "$out") * 1000))
    else
        c0=$(cpu_ns "${PID[$name]}")
        out=$(taskset -c "$one_cpu" "$tool" http "${PORT[$name]}" "$count" "$work/$name.one.lat")
        add "$name" one_cpu_ns $(($(cpu_ns "${PID[$name]}") - c0))
    fi
    add "$name" one_db_ns $(($(cpu_ns "$dbpid") - d0))
    add "$name" one_ok "$(kv ok "$out")"
}
one_servers=("$dbpid" "${PID[mysqlchk]}" "${PID[mysqlchk_keep]}" "${PID[ceiling]}")
if pin "$one_cpu" "${one_servers[@]}"; then
    say "on one CPU: $one_n checks each of ${one_rows[*]}, every process pinned to CPU $one_cpu"
    for _ in 1 2; do
        for r in "${one_rows[@]}"; do one "$r" $((one_n / 2)); done
    done
    pin "$all_cpus" "${one_servers[@]}"
    for r in "${one_rows[@]}"; do
        ok=${R[$r.one_ok]:-0}
        ((ok > 0)) || continue
        R[$r.one_median_ms]=$(nth_ms "$work/$r.one.lat" $(((ok - 1) / 2 + 1)))
        R[$r.one_cpu_ms]=$(calc "${R[$r.one_cpu_ns]} / 1e6 / $ok" 4)
        R[$r.one_db_cpu_ms]=$(calc "${R[$r.one_db_ns]} / 1e6 / $ok" 4)
    done
    one_ratio_floor=$(calc "${R[mysqlchk.one_median_ms]} / ${R[floor.one_median_ms]}" 2)
    one_ratio_floor_probe=$(calc "${R[mysqlchk.one_median_ms]} / ${R[floor_probe.one_median_ms]}" 2)
    one_ratio_keep=$(calc "${R[mysqlchk_keep.one_median_ms]} / ${R[mysqlchk.one_median_ms]}" 2)
    one_keep_bound_ms=$(calc "${R[ceiling.one_median_ms]} + ${R[floor_keep.one_median_ms]}")
    one_ratio_keep_bound=$(calc "$one_keep_bound_ms / ${R[mysqlchk.one_median_ms]}" 2)
    one_keep_probe_bound_ms=$(calc "${R[ceiling.one_median_ms]} + ${R[floor_keep_probe.one_median_ms]}")
    one_ratio_keep_probe_bound=$(calc "$one_keep_probe_bound_ms / ${R[mysqlchk.one_median_ms]}" 2)
else
    say "taskset could not pin the servers to CPU $one_cpu: no figures on one CPU"
    pin "$all_cpus" "${one_servers[@]}" || true
    one_ratio_floor=- one_ratio_floor_probe=- one_ratio_keep=- one_keep_bound_ms=- one_ratio_keep_bound=-
    one_keep_probe_bound_ms=- one_ratio_keep_probe_bound=-
fi

# --- system calls per check -----------------------------------------------------------------
# perf's tracepoints on the warmed-up server, all its threads, while `tool http` makes sys_n
# HAProxy-like checks (a fresh connection, GET / HTTP/1.0, read to EOF); and for mysqlchk's
# allocations also curl_n checks by curl, which sends a longer head. perf counts from the moment
# it is attached, so the idle server's few calls of that moment count too (about 0.01 a check).
sys_n=${BENCH_SYSCALL_N:-1000}
curl_n=${BENCH_CURL_N:-300}
syscalls() { # NAME [curl]: R[NAME.sys], .epoll_ctl, .maps per check (with curl: .curl_maps)
    local name=$1 client=${2:-tool} pid=${PID[$1]} port=${PORT[$1]} count perf_pid
    count=$([[ $client == curl ]] && echo "$curl_n" || echo "$sys_n")
    perf stat -x, -o "$work/$name.$client.perf" -p "$pid" -e raw_syscalls:sys_enter \
        -e syscalls:sys_enter_epoll_ctl -e syscalls:sys_enter_mmap -e syscalls:sys_enter_munmap &
    perf_pid=$!
    sleep 0.5
    if [[ $client == curl ]]; then
        for _ in $(seq "$count"); do curl -s -o /dev/null "http://127.0.0.1:$port/"; done
    else
        "$tool" http "$port" "$count" >/dev/null
    fi
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    ev() { awk -F, -v e="$1" '$3 == e { s += $1 } END { printf "%d", s }' "$work/$name.$client.perf"; }
    if ! grep -q raw_syscalls "$work/$name.$client.perf" 2>/dev/null; then
        say "perf could not count system calls of $name: $(head -c 300 "$work/$name.$client.perf" 2>/dev/null)"
        return 0
    fi
    local maps=$(($(ev syscalls:sys_enter_mmap) + $(ev syscalls:sys_enter_munmap)))
    if [[ $client == curl ]]; then
        R[$name.curl_maps]=$(calc "$maps / $count" 3)
    else
        R[$name.sys]=$(calc "$(ev raw_syscalls:sys_enter) / $count" 1)
        R[$name.epoll_ctl]=$(calc "$(ev syscalls:sys_enter_epoll_ctl) / $count" 1)
        R[$name.maps]=$(calc "$maps / $count" 3)
    fi
}
sys_rows=(mysqlchk mysqlchk_keep mysqlchk_cache ceiling mysqlchk_tls)
say "system calls: $sys_n checks each of ${sys_rows[*]}, and $curl_n curl checks of mysqlchk"
for r in "${sys_rows[@]}"; do syscalls "$r"; done
syscalls mysqlchk curl
syscalls mysqlchk_keep curl

# At HAProxy's pace: checks pace_ms apart (HAProxy's `inter` is 2 s by default), so the server
# goes idle between them. Stock async-io's helper thread ("async-io") then waits for the reactor
# while the main thread sleeps in it, takes it over at the next wake-up, and hands that check's
# events to the main thread (futex), then backs off in timed sleeps. mysqlchk and the ceiling run
# without it (vendor/README.md); its calls and the futexes are counted apart, to show that.
pace_ms=${BENCH_PACE_MS:-20}
pace_n=${BENCH_PACE_N:-200}
paced() { # NAME: R[NAME.pace_median_ms], .pace_cpu_ms, .pace_sys, .pace_helper_sys, .pace_futex
    local name=$1 pid=${PID[$1]} port=${PORT[$1]} perf_pid out c0
    # Latency and CPU first, untraced; then the same checks again under perf.
    c0=$(cpu_ns "$pid")
    out=$(TOOL_GAP_MS=$pace_ms "$tool" http "$port" "$pace_n")
    R[$name.pace_cpu_ms]=$(calc "($(cpu_ns "$pid") - $c0) / $pace_n / 1e6" 4)
    R[$name.pace_median_ms]=$(calc "$(kv median_us "$out") / 1000")
    perf stat --per-thread -x, -o "$work/$name.pace.perf" -p "$pid" -e raw_syscalls:sys_enter \
        -e syscalls:sys_enter_futex &
    perf_pid=$!
    sleep 0.5
    TOOL_GAP_MS=$pace_ms "$tool" http "$port" "$pace_n" >/dev/null
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    # --per-thread lines: COMM-TID,COUNT,,EVENT,...
    pev() { awk -F, -v e="$1" -v t="${2:-}" '$4 == e && (t == "" || index($1, t) == 1) { s += $2 } END { printf "%d", s }' \
        "$work/$name.pace.perf"; }
    grep -q raw_syscalls "$work/$name.pace.perf" 2>/dev/null || return 0
    R[$name.pace_sys]=$(calc "$(pev raw_syscalls:sys_enter) / $pace_n" 1)
    R[$name.pace_helper_sys]=$(calc "$(pev raw_syscalls:sys_enter async-io-) / $pace_n" 1)
    R[$name.pace_futex]=$(calc "$(pev syscalls:sys_enter_futex) / $pace_n" 1)
}
# The floor at the same pace: what idling between checks costs a C client too (caches gone cold,
# a CPU woken from idle), and so what of mysqlchk's figures is the machine's.
out=$(FLOOR_GAP_MS=$pace_ms "$work/floor" 127.0.0.1 "$dbport" haproxy hapass "$pace_n")
R[floor.pace_median_ms]=$(calc "$(kv median_us "$out") / 1000")
R[floor.pace_cpu_ms]=$(calc "$(kv cpu_us "$out") / $pace_n / 1000" 4)
pace_rows=(floor mysqlchk mysqlchk_keep ceiling)
say "at HAProxy's pace: $pace_n checks ${pace_ms} ms apart, each of ${pace_rows[*]}"
for r in "${pace_rows[@]:1}"; do paced "$r"; done

for r in mysqlchk mysqlchk_cache ceiling mysqlchk_tls mysqlchk_tls_full; do
    say "$r: wrk for ${wrk_s}s"
    loaded "$r"
done

# --- seed under xinetd ----------------------------------------------------------------------
sed -e "s/^MYSQL_HOST=.*/MYSQL_HOST=127.0.0.1/" -e "s/^MYSQL_PORT=\"3306\"/MYSQL_PORT=\"$dbport\"/" \
    -e 's/^MYSQL_PASSWORD="secret"/MYSQL_PASSWORD="hapass"/' scripts/bench/connectorchk.sh >"$work/connectorchk.sh"
chmod 700 "$work/connectorchk.sh"

# seed NAME CPS_LINE: xinetd with the seed's service; latency, then load with the tree's RSS
# sampled (xinetd and every child).
seed() {
    local name=$1 cps=$2 port spid
    port=$("$tool" port)
    sed -e "/^#/!s|@PORT@|$port|; /^#/!s|@SERVER@|$work/connectorchk.sh|" \
        -e "/^#/!s|@LOG@|$work/$name.log|; /^#/!s|@CPS@|$cps|" scripts/bench/connectorchk.xinetd >"$work/$name.conf"
    start "$name" "$port" xinetd -f "$work/$name.conf" -pidfile "$work/$name.pid" -dontfork
    sleep 1 # a fresh second for xinetd's cps count
    "$tool" rss "${PID[$name]}" >"$work/$name.rss" &
    spid=$!
    pids+=($spid)
    block "$name" "$seed_n"
    summarize "$name"
    load "$name"
    kill "$spid"
    wait "$spid" || true
    R[$name.rss_peak_kb]=$(kv peak_kb "$(cat "$work/$name.rss")")
    R[$name.pss_peak_kb]=$(kv peak_pss_kb "$(cat "$work/$name.rss")")
    R[$name.max_procs]=$(kv procs "$(cat "$work/$name.rss")")
    R[$name.xinetd_deactivations]=$(grep -c 'FAIL: connectorchk connections per second' "$work/$name.log" || true)
    kill "${PID[$name]}"
    wait "${PID[$name]}" 2>/dev/null || true
}
say "seed, xinetd default cps (50 10): $seed_n checks, then 50 concurrent clients for ${wrk_s}s"
seed seed_cps50 ""
say "seed, cps lifted: $seed_n checks, then 50 concurrent clients for ${wrk_s}s"
seed seed "cps             = 100000 1"

# --- sizes ----------------------------------------------------------------------------------
kib() { stat -L -c %s "$@" | awk '{ s += $1 } END { printf "%.0f", s / 1024 }'; }
libmariadb=$(ldd "$work/floor" | awk '/libmariadb/ { print $3 }')
mysql_cli=$(readlink -f "$(command -v mysql)")
R[floor.size_kb]=$(kib "$work/floor" "$libmariadb")
R[seed.size_kb]=$(kib scripts/bench/connectorchk.sh "$mysql_cli" "$(command -v xinetd)" "$(command -v bash)")
R[seed_cps50.size_kb]=${R[seed.size_kb]}
R[mysqlchk.size_kb]=$(kib "$bin")
R[mysqlchk_cache.size_kb]=${R[mysqlchk.size_kb]}
R[mysqlchk_keep.size_kb]=${R[mysqlchk.size_kb]}
R[ceiling.size_kb]=$(kib "$ceiling_bin")
R[floor_tls.size_kb]=${R[floor.size_kb]}
R[floor_probe.size_kb]=${R[floor.size_kb]}
R[mysqlchk_tls.size_kb]=$(kib "$tls_bin")
linkage() { if readelf -lW "$1" | grep -q INTERP; then echo dynamic; else echo static; fi; }

# --- report ---------------------------------------------------------------------------------
rows=(floor floor_probe floor_keep floor_keep_probe seed_cps50 seed mysqlchk mysqlchk_cache mysqlchk_keep ceiling floor_tls mysqlchk_tls mysqlchk_tls_full)
declare -A label=([floor]="floor (Connector/C loop)" [floor_probe]="floor, mysqlchk's statement" [floor_keep]="floor, kept connection"
    [floor_keep_probe]="floor, kept, its statement" [seed_cps50]="seed, xinetd cps 50 10"
    [seed]="seed, xinetd cps lifted" [mysqlchk]="mysqlchk" [mysqlchk_cache]="mysqlchk --cache-ms 1000"
    [mysqlchk_keep]="mysqlchk --keep-session 30"
    [ceiling]="ceiling (no check)" [floor_tls]="floor (TLS)" [mysqlchk_tls]="mysqlchk-tls REQUIRED"
    [mysqlchk_tls_full]="mysqlchk-tls no resume")
v() { echo "${R[$1.$2]:--}"; }
# What TLS session resumption saves per check: --ssl-no-resume minus the default.
tls_saves_median_ms=$(calc "${R[mysqlchk_tls_full.median_ms]} - ${R[mysqlchk_tls.median_ms]}")
tls_saves_cpu_ms=$(calc "${R[mysqlchk_tls_full.cpu_ms]} - ${R[mysqlchk_tls.cpu_ms]}" 4)
tls_saves_db_cpu_ms=$(calc "${R[mysqlchk_tls_full.db_cpu_ms]} - ${R[mysqlchk_tls.db_cpu_ms]}" 4)
{
    echo
    echo "mysqlchk: $build"
    echo "MariaDB $(sql 'SELECT VERSION()') on 127.0.0.1:$dbport; $(nproc) cores; $n latency checks per contender ($seed_n for the seed); wrk -t1 -c50 -d${wrk_s}s"
    echo
    printf '%-26s %8s %8s %9s %9s %8s %8s %9s %7s %8s %9s\n' contender "median" "p99" "CPU/chk" "DB CPU" \
        "RSS idle" "RSS peak" "wrk" "wrk" "DB" "failed/"
    printf '%-26s %8s %8s %9s %9s %8s %8s %9s %7s %8s %9s\n' "" ms ms ms "ms/chk" KiB KiB "checks/s" errors \
        logins/s checks
    for r in "${rows[@]}"; do
        printf '%-26s %8s %8s %9s %9s %8s %8s %9s %7s %8s %9s\n' "${label[$r]}" "$(v "$r" median_ms)" \
            "$(v "$r" p99_ms)" "$(v "$r" cpu_ms)" "$(v "$r" db_cpu_ms)" "$(v "$r" rss_idle_kb)" \
            "$(v "$r" rss_peak_kb)" "$(v "$r" wrk_rate)" \
            "$([[ -n ${R[$r.wrk_requests]:-} ]] && echo $((R[$r.wrk_non2xx] + R[$r.wrk_errors])) || echo -)" \
            "$(v "$r" logins_s)" "$(v "$r" failed)/$(v "$r" checks)"
    done
    echo
    echo "system calls per check (perf tracepoints over $sys_n HAProxy-like checks; curl: $curl_n checks by curl):"
    printf '  %-26s %9s %9s %12s %12s\n' contender "syscalls" epoll_ctl "mmap+munmap" "(curl)"
    for r in "${sys_rows[@]}"; do
        printf '  %-26s %9s %9s %12s %12s\n' "${label[$r]}" "$(v "$r" sys)" "$(v "$r" epoll_ctl)" "$(v "$r" maps)" \
            "$(v "$r" curl_maps)"
    done
    echo
    echo "at HAProxy's pace ($pace_n checks ${pace_ms} ms apart; system calls of all threads from perf's tracepoints, in a second run):"
    printf '  %-26s %9s %9s %9s %17s %9s\n' contender "median ms" "CPU ms" syscalls "(async-io thread)" futex
    for r in "${pace_rows[@]}"; do
        printf '  %-26s %9s %9s %9s %17s %9s\n' "${label[$r]}" "$(v "$r" pace_median_ms)" "$(v "$r" pace_cpu_ms)" \
            "$(v "$r" pace_sys)" "$(v "$r" pace_helper_sys)" "$(v "$r" pace_futex)"
    done
    echo
    echo "on one CPU (every process of the check pinned to CPU $one_cpu: no cross-CPU wake-ups; $one_n checks each, in 2 blocks):"
    printf '  %-26s %9s %9s %9s\n' contender "median ms" "CPU ms" "DB CPU ms"
    for r in "${one_rows[@]}"; do
        printf '  %-26s %9s %9s %9s\n' "${label[$r]}" "$(v "$r" one_median_ms)" "$(v "$r" one_cpu_ms)" \
            "$(v "$r" one_db_cpu_ms)"
    done
    echo "  mysqlchk/floor median ${one_ratio_floor}x (the floor with mysqlchk's statement: ${one_ratio_floor_probe}x); --keep-session/fresh ${one_ratio_keep}x (its bound, ceiling + kept floor:" \
        "${one_keep_bound_ms} ms, ${one_ratio_keep_bound}x; with mysqlchk's statement ${one_keep_probe_bound_ms} ms, ${one_ratio_keep_probe_bound}x); CPU per check: mysqlchk's whole check $(v mysqlchk one_cpu_ms) ms," \
        "the floor's client's login and query $(v floor one_cpu_ms) ms"
    echo
    echo "floor: DB logins/s is its sequential rate (one login per check); CPU/check is the client's own; timer slack 1 ns"
    echo "       (Connector/C's connect sleeps usleep(1), which the default 50 us slack turns into ~50 us idle per check)."
    echo "CPU/check in the quietest of the $blocks blocks: mysqlchk $(v mysqlchk cpu_best_ms) ms, --cache-ms 1000 $(v mysqlchk_cache cpu_best_ms) ms, ceiling $(v ceiling cpu_best_ms) ms;" \
        "load average $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "seed: checks/s from 50 threads of scripts/bench/tool.c (wrk reads its answers as errors); RSS peak is the largest"
    echo "      sampled sum over xinetd and its children, up to $(v seed max_procs) processes at once (Pss, shared pages shared out: $(v seed pss_peak_kb) KiB)."
    echo "seed, cps 50 10: $(v seed_cps50 refused) of $(v seed_cps50 checks) sequential checks refused, xinetd deactivated the service $(v seed_cps50 xinetd_deactivations) time(s); under load $(v seed_cps50 wrk_rate) checks/s answered 200, and $(v seed_cps50 wrk_errors) checks failed or were refused."
    echo "TLS resumption: mysqlchk-tls resumed $(v mysqlchk_tls tls_resumed) of $(($(v mysqlchk_tls tls_resumed) + $(v mysqlchk_tls tls_full))) handshakes" \
        "(--ssl-no-resume: $(v mysqlchk_tls_full tls_resumed) of $(($(v mysqlchk_tls_full tls_resumed) + $(v mysqlchk_tls_full tls_full))));" \
        "it saves ${tls_saves_median_ms} ms of median latency, ${tls_saves_cpu_ms} ms of mysqlchk's CPU and ${tls_saves_db_cpu_ms} ms of mariadbd's per check."
    for r in mysqlchk mysqlchk_cache mysqlchk_tls mysqlchk_tls_full; do
        echo "${label[$r]} under wrk: ${R[$r.wrk_requests]} requests, ${R[$r.db_logins]} logins ($(calc "${R[$r.wrk_requests]} / (${R[$r.db_logins]} > 0 ? ${R[$r.db_logins]} : 1)" 1) checks per login), $(v "$r" in_flight) logins in flight on average, peak $(v "$r" db_peak_connections) database connection(s)."
    done
    echo
    echo "sizes:"
    echo "  floor     $(stat -c %s "$work/floor") bytes + $(basename "$libmariadb") $(stat -L -c %s "$libmariadb") bytes (dynamic)"
    echo "  seed      connectorchk.sh $(stat -c %s scripts/bench/connectorchk.sh) + mysql (mariadb) $(stat -c %s "$mysql_cli") + xinetd $(stat -c %s "$(command -v xinetd)") + bash $(stat -L -c %s "$(command -v bash)") bytes, and their shared libraries"
    echo "  mysqlchk  $(stat -c %s "$bin") bytes ($(linkage "$bin"))"
    echo "  mysqlchk-tls  $(stat -c %s "$tls_bin") bytes ($(linkage "$tls_bin"))"
    echo "  ceiling   $(stat -c %s "$ceiling_bin") bytes ($(linkage "$ceiling_bin"))"
    if [[ -f cross/sizes.sh ]]; then
        echo
        echo "cross/sizes.sh:"
        # Its stderr (installing the cross compilers on a fresh machine) is progress, not report.
        if ! bash cross/sizes.sh 2>"$work/sizes.err" | sed 's/^/  /'; then
            echo "  (cross/sizes.sh failed: $(tail -n 1 "$work/sizes.err"))"
        fi
        sed 's/^/sizes.sh: /' "$work/sizes.err" >&2
    fi
}

ratio_floor=$(calc "${R[mysqlchk.median_ms]} / ${R[floor.median_ms]}" 2)
ratio_floor_probe=$(calc "${R[mysqlchk.median_ms]} / ${R[floor_probe.median_ms]}" 2)
ratio_seed=$(calc "${R[seed.median_ms]} / ${R[mysqlchk.median_ms]}" 1)
ratio_ceiling=$(calc "${R[mysqlchk.wrk_rate]} / ${R[ceiling.wrk_rate]}" 2)
ratio_ceiling_cache=$(calc "${R[mysqlchk_cache.wrk_rate]} / ${R[ceiling.wrk_rate]}" 2)
ratio_keep=$(calc "${R[mysqlchk_keep.median_ms]} / ${R[mysqlchk.median_ms]}" 2)
# A kept check is at least an HTTP exchange (the ceiling) and a query round trip (the kept floor).
keep_bound_ms=$(calc "${R[ceiling.median_ms]} + ${R[floor_keep.median_ms]}")
ratio_keep_bound=$(calc "$keep_bound_ms / ${R[mysqlchk.median_ms]}" 2)
ratio_keep_over=$(calc "${R[mysqlchk_keep.median_ms]} / $keep_bound_ms" 2)
# The same with the kept floor sending mysqlchk's statement: the same database work.
keep_probe_bound_ms=$(calc "${R[ceiling.median_ms]} + ${R[floor_keep_probe.median_ms]}")
ratio_keep_probe_bound=$(calc "$keep_probe_bound_ms / ${R[mysqlchk.median_ms]}" 2)
ratio_keep_probe_over=$(calc "${R[mysqlchk_keep.median_ms]} / $keep_probe_bound_ms" 2)
ratio_tls=$(calc "${R[mysqlchk_tls.median_ms]} / ${R[floor_tls.median_ms]}" 2)
ratio_tls_cpu=$(calc "${R[mysqlchk_tls.cpu_ms]} / ${R[floor_tls.cpu_ms]}" 2)
verdict() { awk "BEGIN { exit !($1) }" && echo PASS || echo MISS; }
targets=(
    "median latency <= 1.25x floor|mysqlchk/floor = ${ratio_floor}x (the floor with mysqlchk's statement: ${ratio_floor_probe}x; one CPU: ${one_ratio_floor}x, ${one_ratio_floor_probe}x)|$ratio_floor <= 1.25"
    ">= 20x faster than the seed|seed/mysqlchk = ${ratio_seed}x|$ratio_seed >= 20"
    "CPU per check <= 0.11 ms|${R[mysqlchk.cpu_ms]} ms, the floor's client ${R[floor.cpu_ms]} (one CPU: $(v mysqlchk one_cpu_ms), the client $(v floor one_cpu_ms))|${R[mysqlchk.cpu_ms]} <= 0.11"
    "system calls per check <= 40|$(v mysqlchk sys) (--keep-session: $(v mysqlchk_keep sys))|$(v mysqlchk sys) <= 40"
    "epoll_ctl per check <= 10|$(v mysqlchk epoll_ctl) (--keep-session: $(v mysqlchk_keep epoll_ctl))|$(v mysqlchk epoll_ctl) <= 10"
    "--keep-session: system calls per check <= 40|$(v mysqlchk_keep sys)|$(v mysqlchk_keep sys) <= 40"
    "--keep-session: epoll_ctl per check <= 10|$(v mysqlchk_keep epoll_ctl)|$(v mysqlchk_keep epoll_ctl) <= 10"
    "mmap+munmap per check <= 0.01 (HAProxy-like)|$(v mysqlchk maps) (--keep-session: $(v mysqlchk_keep maps))|$(v mysqlchk maps) <= 0.01 && $(v mysqlchk_keep maps) <= 0.01"
    "mmap+munmap per check <= 0.01 (curl)|$(v mysqlchk curl_maps) (--keep-session: $(v mysqlchk_keep curl_maps))|$(v mysqlchk curl_maps) <= 0.01 && $(v mysqlchk_keep curl_maps) <= 0.01"
    "RSS idle <= 512 KiB|${R[mysqlchk.rss_idle_kb]} KiB (--password-file: ${R[mysqlchk.rss_idle_file_kb]})|${R[mysqlchk.rss_idle_kb]} <= 512 && ${R[mysqlchk.rss_idle_file_kb]} <= 512"
    "RSS peak under wrk <= 800 KiB (0.2.0's)|${R[mysqlchk.rss_peak_kb]} KiB|${R[mysqlchk.rss_peak_kb]} <= 800"
    "wrk rate >= 0.5x ceiling (single-flight)|mysqlchk/ceiling = ${ratio_ceiling}x|$ratio_ceiling >= 0.5"
    "wrk rate >= 0.5x ceiling (--cache-ms 1000)|mysqlchk/ceiling = ${ratio_ceiling_cache}x|$ratio_ceiling_cache >= 0.5"
    "--keep-session median <= 0.5x fresh login|mysqlchk --keep-session 30/mysqlchk = ${ratio_keep}x (its bound, ceiling + kept floor: ${ratio_keep_bound}x, with mysqlchk's statement ${ratio_keep_probe_bound}x; one CPU: ${one_ratio_keep}x)|$ratio_keep <= 0.5"
    "<= 1 login per in-flight window|${R[mysqlchk.in_flight]} logins in flight on average|${R[mysqlchk.in_flight]} <= 1"
    "TLS median latency <= 1.3x TLS floor|mysqlchk-tls/floor (TLS) = ${ratio_tls}x|$ratio_tls <= 1.3"
    "TLS CPU per check <= 1.3x TLS floor's|mysqlchk-tls/floor (TLS) = ${ratio_tls_cpu}x|$ratio_tls_cpu <= 1.3"
    "TLS RSS idle <= 1 MiB|${R[mysqlchk_tls.rss_idle_kb]} KiB (--password-file: ${R[mysqlchk_tls.rss_idle_file_kb]})|${R[mysqlchk_tls.rss_idle_kb]} <= 1024 && ${R[mysqlchk_tls.rss_idle_file_kb]} <= 1024"
    "TLS RSS peak under wrk <= 6 MiB|${R[mysqlchk_tls.rss_peak_kb]} KiB|${R[mysqlchk_tls.rss_peak_kb]} <= 6144"
)
{
    echo
    echo "ratios: mysqlchk/floor median latency ${ratio_floor}x; seed/mysqlchk median latency ${ratio_seed}x;" \
        "mysqlchk/ceiling wrk rate ${ratio_ceiling}x (--cache-ms 1000: ${ratio_ceiling_cache}x);" \
        "mysqlchk-tls/floor (TLS) median latency ${ratio_tls}x, CPU per check ${ratio_tls_cpu}x"
    echo "--keep-session: its bound is the ceiling plus the kept floor, ${R[ceiling.median_ms]} + ${R[floor_keep.median_ms]} = ${keep_bound_ms} ms" \
        "(${ratio_keep_bound}x the fresh-login check); mysqlchk --keep-session 30 answers in ${ratio_keep_over}x that bound;" \
        "with the kept floor sending mysqlchk's statement, ${R[ceiling.median_ms]} + ${R[floor_keep_probe.median_ms]} = ${keep_probe_bound_ms} ms" \
        "(${ratio_keep_probe_bound}x), ${ratio_keep_probe_over}x"
    echo
    echo "targets:"
    for t in "${targets[@]}"; do
        IFS='|' read -r what value test <<<"$t"
        printf '  %-4s %-44s %s\n' "$(verdict "$test")" "$what" "$value"
    done
}

# --- JSON -----------------------------------------------------------------------------------
if [[ -n $json ]]; then
    num() { [[ ${1:--} =~ ^-?[0-9.]+$ ]] && echo "$1" || echo null; }
    {
        printf '{\n  "mysqlchk_build": "%s",\n  "checks_per_contender": %s,\n  "seed_checks": %s,\n  "wrk_seconds": %s,\n' \
            "$build" "$n" "$seed_n" "$wrk_s"
        printf '  "contenders": {\n'
        sep=""
        for r in "${rows[@]}"; do
            printf '%s    "%s": {' "$sep" "$r"
            fsep=""
            for k in $(printf '%s\n' "${!R[@]}" | sed -n "s/^$r\\.//p" | sort); do
                printf '%s"%s": %s' "$fsep" "$k" "$(num "${R[$r.$k]}")"
                fsep=", "
            done
            printf '}'
            sep=$',\n'
        done
        printf '\n  },\n  "ratios": {"mysqlchk_over_floor_median": %s, "seed_over_mysqlchk_median": %s, "mysqlchk_over_ceiling_wrk": %s, "mysqlchk_cache_over_ceiling_wrk": %s, "mysqlchk_tls_over_floor_tls_median": %s, "mysqlchk_tls_over_floor_tls_cpu": %s},\n' \
            "$ratio_floor" "$ratio_seed" "$ratio_ceiling" "$ratio_ceiling_cache" "$ratio_tls" "$ratio_tls_cpu"
        printf '  "tls_resumption_saves_per_check": {"median_ms": %s, "cpu_ms": %s, "db_cpu_ms": %s},\n' \
            "$tls_saves_median_ms" "$tls_saves_cpu_ms" "$tls_saves_db_cpu_ms"
        printf '  "targets": [\n'
        sep=""
        for t in "${targets[@]}"; do
            IFS='|' read -r what value test <<<"$t"
            printf '%s    {"target": "%s", "value": "%s", "pass": %s}' "$sep" "$what" "$value" \
                "$([[ $(verdict "$test") == PASS ]] && echo true || echo false)"
            sep=$',\n'
        done
        printf '\n  ]\n}\n'
    } >"$work/bench.json"
    if [[ $json == - ]]; then cat "$work/bench.json" >&3; else cp "$work/bench.json" "$json"; fi
fi
