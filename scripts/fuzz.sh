#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/, one after another (never in parallel), each seeded from
# the committed seeds in fuzz/seeds/<target>/ (real MariaDB captures, HAProxy requests). The
# corpus grows in fuzz/corpus/<target>/ (git-ignored); crashes land in fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   fuzz (default: 60 s, every target)
#        scripts/fuzz.sh --check                            build every target, replay the seeds once
#
# Exits non-zero if any target crashed. Needs the nightly toolchain; installs cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...] | --check" >&2
    exit 2
}
die() {
    echo "fuzz.sh: error: $*" >&2
    exit 1
}

# --- arguments ---------------------------------------------------------------------------------
check=false
seconds=60
targets=()
if [[ $# -gt 0 ]]; then
    case "$1" in
        --check) check=true; shift; [[ $# -eq 0 ]] || usage ;;
        -h|--help) usage ;;
        *[!0-9]*|'') ;;
        *) seconds="$1"; shift ;;
    esac
fi
targets=("$@")

# --- tools -------------------------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
if ! cargo +nightly --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal || die "no nightly toolchain, and it could not be installed"
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo +nightly install cargo-fuzz --locked || die "could not install cargo-fuzz"
fi

cd fuzz
mapfile -t all < <(cargo +nightly fuzz list)
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")
for t in "${targets[@]}"; do
    printf '%s\n' "${all[@]}" | grep -qx "$t" || die "unknown target $t (known: ${all[*]})"
done

# The http target needs room past the 8 KiB head limit; the rest are small messages.
max_len() {
    case "$1" in
        http_request) echo 10000 ;;
        *) echo 4096 ;;
    esac
}

if $check; then
    cargo +nightly fuzz build
    for t in "${targets[@]}"; do
        # -runs=0 runs each seed once and stops: a seed that crashes fails the check.
        cargo +nightly fuzz run "$t" "seeds/$t" -- -runs=0 -max_len="$(max_len "$t")"
    done
    echo "fuzz.sh: ${#targets[@]} targets built, seeds replayed"
    exit 0
fi

# --- fuzz, one target at a time ----------------------------------------------------------------
# Not -jobs=1: that forks a worker and hides its output in fuzz-0.log. One plain process is one
# job already.
mkdir -p logs
failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    cp -n "seeds/$t"/* "corpus/$t/"
    log="logs/$t.log"
    echo "fuzz.sh: $t for ${seconds}s (log: fuzz/$log)"
    if cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1; then
        status=ok
    else
        status=CRASHED
        failed+=("$t")
    fi
    # libFuzzer's last status line and the executions count.
    summary="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    echo "fuzz.sh: $t: $status, ${runs:-?} execs, last: ${summary:-none}"
    if [[ $status == CRASHED ]]; then
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written to' "$log" | head -5 || true
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    die "crashes in: ${failed[*]} (inputs in fuzz/artifacts/<target>/; minimize with: cargo +nightly fuzz tmin <target> <file>)"
fi
echo "fuzz.sh: ${#targets[@]} targets, no crashes"
