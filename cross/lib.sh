# Sourced by scripts/release.sh and cross/*.sh (from the repository root): the pinned toolchain
# and the installers they share. Everything here is idempotent.

# A pinned stable release, not "nightly": a clean clone next year builds the same bytes. Its
# unstable flags (build-std, immediate-abort) are unlocked with RUSTC_BOOTSTRAP=1.
toolchain=1.95.0
all_targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)

# rustup installs into ~/.cargo/bin, which a non-login shell may not have on PATH.
export PATH="$HOME/.cargo/bin:$PATH"
# Cross builds get their own target dir so they never lock or thrash the everyday debug build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/cross}"

die() {
    echo "${0##*/}: error: $*" >&2
    exit 1
}
log() { echo "${0##*/}: $*" >&2; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    else
        command -v sudo >/dev/null || die "need root or sudo for: $*"
        sudo "$@"
    fi
}

# apt_install PACKAGE...: installs the packages that are not installed yet, in one apt-get run.
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return
    log "installing ${missing[*]}"
    # On stderr: stdout is the scripts' data (cross/sizes.sh's table, which bench.sh reports).
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# cross_setup TARGET [run]: installs what building for TARGET needs; with "run", also what
# running its binaries here needs (qemu-user for a foreign architecture).
cross_setup() {
    local target=$1 run=${2:-}
    command -v rustup >/dev/null || die "rustup not found: install Rust (https://rustup.rs) first"
    rustup run "$toolchain" rustc -V >/dev/null 2>&1 || rustup toolchain install "$toolchain" --profile minimal
    # rust-src: build-std compiles std from it. rust-std: the prebuilt std and, for musl, the
    # self-contained libc.a and crt*.o that rust-lld links. armv7 has no rust-std here.
    local have
    have=$(rustup component list --toolchain "$toolchain" --installed)
    grep -qx rust-src <<<"$have" || rustup component add --toolchain "$toolchain" rust-src
    case "$target" in
        armv7-unknown-linux-musleabihf) cross/armv7-libc.sh ;;
        *) grep -qx "rust-std-$target" <<<"$have" || rustup target add --toolchain "$toolchain" "$target" ;;
    esac
    # The C compiler and headers for ring (TLS build, and the tests' certificates):
    # CC_<target> in cross/TARGET.toml names it.
    case "$target" in
        x86_64-*) apt_install gcc libc6-dev ;;
        aarch64-*) apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross ;;
        armv7-*) apt_install gcc-arm-linux-gnueabihf libc6-dev-armhf-cross ;;
    esac
    if [[ $run == run && ${target%%-*} != "$(uname -m)" ]]; then
        apt_install qemu-user-static
    fi
}

# cross_cargo TARGET SUBCOMMAND ARGS...: `cargo SUBCOMMAND --target TARGET ARGS...` with the
# pinned toolchain and TARGET's settings from cross/TARGET.toml. ARGS may add --config files.
cross_cargo() {
    local target=$1 sub=$2
    shift 2
    [[ -f cross/$target.toml ]] || die "unknown target $target (no cross/$target.toml)"
    # (Every --config goes after the subcommand: cargo drops those before it when both are given.)
    RUSTC_BOOTSTRAP=1 cargo "+$toolchain" "$sub" --config "cross/$target.toml" --target "$target" "$@"
}

# The paths of this clone, of cargo's registry and of the toolchain's std sources would show in
# the binary (panic and debug strings); each becomes a fixed name, for reproducible builds. In
# rustc the last matching prefix wins. Prints them as the items of a TOML array.
remap_flags() {
    printf '"--remap-path-prefix=%s=%s",' \
        "$PWD" /build/mysqlchk \
        "$CARGO_TARGET_DIR" /build/target \
        "${CARGO_HOME:-$HOME/.cargo}" /cargo \
        "$(rustc "+$toolchain" --print sysroot)" /rust
}

# release_build TARGET [CARGO-ARGS...]: builds the release binary for TARGET with the size
# settings of cross/release.toml; its path is $CARGO_TARGET_DIR/TARGET/release/mysqlchk.
release_build() {
    local target=$1
    shift
    cross_setup "$target"
    cross_cargo "$target" build --release --locked --bin mysqlchk --config cross/release.toml \
        --config "target.$target.rustflags=[$(remap_flags)]" "$@"
}
