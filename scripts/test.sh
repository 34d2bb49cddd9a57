#!/usr/bin/env bash
# THE test command (README and CI both run it): installs what the tests need, then runs
# rustfmt, clippy and every unit and integration test. Nothing is skipped silently: a missing
# tool is installed or the script fails.
#
# Usage: scripts/test.sh [--target TRIPLE]
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 [--target TRIPLE]" >&2
    exit 2
}
die() {
    echo "test.sh: error: $*" >&2
    exit 1
}
warn() { echo "test.sh: warning: $*" >&2; }

# --- arguments (all parsing lives here) -------------------------------------------------------
target=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --target) [[ $# -ge 2 ]] || usage; target="$2"; shift 2 ;;
        --target=*) target="${1#--target=}"; shift ;;
        -h|--help) usage ;;
        *) echo "test.sh: unknown argument: $1" >&2; usage ;;
    esac
done

# rustup installs into ~/.cargo/bin, which a non-login CI shell may not have on PATH; mariadbd
# lives in /usr/sbin, which a non-root PATH may lack, and the tests spawn it by name.
export PATH="$HOME/.cargo/bin:$PATH:/usr/sbin:/sbin"
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"

host="$(rustc -vV | sed -n 's/^host: //p')"
[[ "$target" == "$host" ]] && target=""
if [[ -n "$target" && ! -f "cross/$target.toml" ]]; then
    die "--target $target: no cross/$target.toml (known: $(cd cross && ls *.toml | grep -v release | sed 's/.toml$//' | tr '\n' ' '))"
fi

# --- system packages ------------------------------------------------------------------------
# `need COMMAND PACKAGE...` queues the packages when COMMAND is missing; one apt-get run
# installs them all, and every COMMAND is checked again afterwards.
tools=()
missing=()
need() {
    tools+=("$1")
    command -v "$1" >/dev/null 2>&1 || missing+=("${@:2}")
}

need cc gcc libc6-dev               # the linker cargo calls (crt1.o is in libc6-dev)
need kill procps                    # tests send SIGTERM/SIGSTOP/SIGCONT to mariadbd with kill(1)
need mariadbd mariadb-server        # a throwaway real server per test (tests/common/mariadb.rs)
need mariadb-install-db mariadb-server
need mariadb mariadb-client         # tests run setup SQL and read status with the CLI
# --- peers the integration tests run for real -------------------------------------------------
need haproxy haproxy                # a real HAProxy runs the checks in tests/haproxy.rs
need xinetd xinetd                  # tests/deploy.rs runs a real xinetd with --inetd
need systemd-socket-activate systemd  # socket activation and Accept=yes in tests/deploy.rs
need systemd-analyze systemd        # tests/deploy.rs verifies the unit files
need curl curl                      # scripts/quickstart.sh
need rsync rsync                    # Galera's rsync SST in the cluster tests (tests/common/galera.rs)
need man man-db                     # tests/man.rs renders the man page with warnings on
need lintian lintian                # tests/packages.rs lints the .deb packages
need dpkg-deb dpkg                  # scripts/deb.sh builds them, the tests install them
need qemu-aarch64-static qemu-user-static  # tests/packages.rs runs the arm64/armhf binaries
need groff groff                    # tests/man.rs: groff renders it (groff-base has the command)
need strace strace                  # tests/reactor.rs: the order of the answer and the QUIT
# The Galera provider is a library, not a command: the cluster tests load it into mariadbd.
galera_provider=/usr/lib/galera/libgalera_smm.so
[[ -f $galera_provider ]] || missing+=(galera-4)

if [[ ${#missing[@]} -gt 0 ]]; then
    # Deduplicate: two commands can come from the same package.
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "test.sh: installing ${missing[*]}" >&2
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "need root or sudo to install: ${missing[*]}"
        sudo="sudo"
    fi
    $sudo apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Fail loudly rather than let the MariaDB tests die confusingly (or get skipped).
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || die "$tool still not found after installing packages"
done
[[ -f $galera_provider ]] || die "$galera_provider still missing after installing galera-4"

# --- a cross target: the whole suite built for it, run under qemu-user ------------------------
# Formatting and lints are the same on every target and ran with the native suite.
if [[ -n "$target" ]]; then
    echo "test.sh: cross/test-target.sh $target" >&2
    exec cross/test-target.sh "$target"
fi

# --- toolchain components -------------------------------------------------------------------
if ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add clippy
fi

# --- checks ---------------------------------------------------------------------------------
if cargo fmt --version >/dev/null 2>&1; then
    echo "test.sh: cargo fmt --check" >&2
    cargo fmt --check
else
    warn "rustfmt is not installed: skipping the format check (rustup component add rustfmt)"
fi

echo "test.sh: cargo clippy (plain and --features tls)" >&2
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --features tls -- -D warnings

echo "test.sh: cargo check the fuzz targets" >&2
# They build on stable; running them needs nightly and cargo-fuzz (scripts/fuzz.sh). Checking
# them here keeps them in step with the library's API.
CARGO_TARGET_DIR="$PWD/target/fuzz-check" cargo check --quiet --manifest-path fuzz/Cargo.toml --bins

echo "test.sh: polling's own tests, on our patched copy (vendor/README.md)" >&2
# All but the two that ask for sub-millisecond timeouts, which the patch gives up on purpose.
CARGO_TARGET_DIR="$PWD/target/vendor-polling" cargo test --quiet --locked \
    --manifest-path vendor/polling/Cargo.toml -- --skip below_ms --skip above_ms

echo "test.sh: async-io's own tests, on our patched copy (vendor/README.md)" >&2
CARGO_TARGET_DIR="$PWD/target/vendor-async-io" cargo test --quiet --locked --manifest-path vendor/async-io/Cargo.toml

echo "test.sh: cargo test" >&2
cargo test
# The TLS build (--ssl-mode): everything again, plus the tests that need it (tests/tls.rs, the
# TLS HAProxy test). The plain run above checked that the plain build refuses --ssl-*.
echo "test.sh: cargo test --features tls" >&2
cargo test --features tls

# --- the release artifacts: tarballs and .deb packages ---------------------------------------
# scripts/release.sh builds all three targets (about 5 minutes from clean on a 2-core box, a
# few seconds when they are built); tests/packages.rs then checks the tarballs, lints and
# rebuilds the .debs, runs the foreign ones under qemu against MariaDB, and installs, upgrades
# and purges the amd64 one: that needs root, as on CI's throwaway machine.
musl="${host%%-*}-unknown-linux-musl"
[[ -f "cross/$musl.toml" ]] || die "no cross/$musl.toml: cannot test a static release build on this host ($host)"
echo "test.sh: scripts/release.sh" >&2
scripts/release.sh >&2

# --- the integration tests again, against the shipped binaries ------------------------------
# Release builds differ where it hurts: a panic is a bare SIGILL and `{:?}` prints nothing
# (cross/release.toml). The binary HAProxy will talk to is the one that must pass: the very
# bytes of this host's tarballs in dist/, plain and TLS.
shipped() { # TARBALL-PREFIX: unpacks this host's binary from dist/PREFIX-<version>-$musl.tar.gz
    local tarballs name
    tarballs=(dist/"$1"-[0-9]*-"$musl".tar.gz)
    [[ ${#tarballs[@]} -eq 1 && -f ${tarballs[0]} ]] || die "want one dist/$1-<version>-$musl.tar.gz, found: ${tarballs[*]}"
    name=$(basename "${tarballs[0]}" .tar.gz)
    rm -rf "target/shipped/$name"
    mkdir -p target/shipped
    tar -C target/shipped -xzf "${tarballs[0]}" "$name/mysqlchk"
    echo "$PWD/target/shipped/$name/mysqlchk"
}
release_bin=$(shipped mysqlchk)
echo "test.sh: cargo test --tests against $release_bin" >&2
MYSQLCHK_TEST_BIN="$release_bin" cargo test --tests
release_bin=$(shipped mysqlchk-tls)
echo "test.sh: cargo test --features tls --tests against $release_bin" >&2
MYSQLCHK_TEST_BIN="$release_bin" cargo test --features tls --tests

echo "test.sh: cargo test --test packages -- --ignored (against dist/)" >&2
if [[ $(id -u) -eq 0 ]]; then
    MYSQLCHK_DIST="$PWD/dist" cargo test --test packages -- --ignored
else
    command -v sudo >/dev/null || die "the package tests install a .deb: run as root (or with sudo)"
    sudo env PATH="$PATH" MYSQLCHK_DIST="$PWD/dist" cargo test --test packages -- --ignored
fi

# --- the README's first command ---------------------------------------------------------------
# scripts/quickstart.sh, as a new user runs it: it must show the three states it promises.
echo "test.sh: scripts/quickstart.sh" >&2
quickstart=$(scripts/quickstart.sh 2>&1) || die "scripts/quickstart.sh failed:
$quickstart"
for shown in "HTTP/1.1 200 OK" "draining (drain file present)" "HTTP/1.1 503 Service Unavailable" "force-fail file present"; do
    grep -qF "$shown" <<<"$quickstart" || die "scripts/quickstart.sh did not show \"$shown\":
$quickstart"
done
echo "quickstart: 4 passed, 0 failed"
