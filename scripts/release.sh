#!/usr/bin/env bash
# Builds the release with no Docker: for each target two static, stripped builds of mysqlchk,
# plain (no TLS code) and tls (--features tls: --ssl-mode), packed as
# dist/mysqlchk-<version>-<target>.tar.gz and dist/mysqlchk-tls-<version>-<target>.tar.gz (the
# binary `mysqlchk`, its man page, install.sh, the systemd units, the xinetd service,
# services.txt, LICENSE, README.md, CHANGELOG.md), a Debian package
# dist/mysqlchk_<version>-1_<arch>.deb per target (scripts/deb.sh, carrying the TLS build), and
# dist/SHA256SUMS over all of them. Two clean builds of one commit give byte-identical
# SHA256SUMS. Missing rustup and apt pieces are installed; the per-target settings live in
# cross/ (cross/README.md explains them). A version without an entry in CHANGELOG.md is refused.
#
# Usage: scripts/release.sh [TARGET...]     (default: all three musl targets)
set -euo pipefail
cd "$(dirname "$0")/.."
source cross/lib.sh

# The size budget of one stripped binary, per flavour.
plain_max_bytes=$((400 * 1024))
tls_max_bytes=1310720 # 1.25 MiB

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[[ -n $version ]] || die "no version in Cargo.toml"
# What an appliance needs beside the binary: everything install.sh installs, and the docs.
payload=(LICENSE README.md CHANGELOG.md man/mysqlchk.1 scripts/install.sh scripts/services.txt
    scripts/mysqlchk.service scripts/mysqlchk.socket scripts/mysqlchk-inetd.socket
    scripts/mysqlchk-inetd@.service scripts/mysqlchk.xinetd)
for f in "${payload[@]}"; do
    [[ -f $f ]] || die "$f is missing: it goes into every tarball"
done
grep -q "^## \[$version\]" CHANGELOG.md ||
    die "CHANGELOG.md has no entry for $version: add a '## [$version] - YYYY-MM-DD' section first"

# Every timestamp in the tarballs is the last commit's.
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) ||
        die "no commit to date the release from: set SOURCE_DATE_EPOCH"
fi
export SOURCE_DATE_EPOCH

command -v readelf >/dev/null || apt_install binutils
command -v dpkg-deb >/dev/null || apt_install dpkg

# deb_arch TARGET: the Debian architecture of a target triple.
deb_arch() {
    case "$1" in
        x86_64-*) echo amd64 ;;
        aarch64-*) echo arm64 ;;
        armv7-*eabihf) echo armhf ;;
        *) die "no Debian architecture for $1" ;;
    esac
}

# check_binary FILE MAX-BYTES: fails unless FILE is static, stripped and within the size budget.
check_binary() {
    local bin=$1 max_bytes=$2 bytes
    if readelf -lW "$bin" | grep -q 'INTERP' || readelf -dW "$bin" | grep -q 'NEEDED'; then
        die "$bin is dynamically linked"
    fi
    readelf -SW "$bin" | grep -q '\.symtab' && die "$bin is not stripped"
    bytes=$(stat -c %s "$bin")
    ((bytes <= max_bytes)) || die "$bin is $bytes bytes, over the $max_bytes-byte budget (cross/sizes.sh shows where it goes)"
}

rm -rf dist
mkdir -p dist
# Every target in two flavours: plain (no TLS code) and tls (rustls with ring). Each flavour has
# its own target dir, so neither rebuilds the other's dependencies.
builds=()
for target in "${targets[@]}"; do
    builds+=("$target plain" "$target tls")
done
for build in "${builds[@]}"; do
    read -r target flavour <<<"$build"
    case $flavour in
        plain) name="mysqlchk-$version-$target" features=() max=$plain_max_bytes dir=$CARGO_TARGET_DIR ;;
        tls) name="mysqlchk-tls-$version-$target" features=(--features tls) max=$tls_max_bytes dir=$CARGO_TARGET_DIR-tls ;;
    esac
    log "building $name"
    CARGO_TARGET_DIR=$dir release_build "$target" "${features[@]}"
    bin="$dir/$target/release/mysqlchk"
    check_binary "$bin" "$max"

    stage=$(mktemp -d)
    mkdir -m 0755 "$stage/$name"
    install -m 0755 "$bin" "$stage/$name/mysqlchk"
    install -m 0755 scripts/install.sh "$stage/$name/"
    for f in "${payload[@]}"; do
        [[ $f == scripts/install.sh ]] || install -m 0644 "$f" "$stage/$name/"
    done
    # Fixed order, owner and times, and no name or time in the gzip header: same bytes each run.
    tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime="@$SOURCE_DATE_EPOCH" -cf - "$name" | gzip -9 -n >"dist/$name.tar.gz"
    rm -rf "$stage"
    log "dist/$name.tar.gz: mysqlchk is $(stat -c %s "$bin") bytes"
done

# The Debian packages, from the binaries in the tarballs: the TLS build where there is one (a
# Debian host has room for it), else the plain one.
for target in "${targets[@]}"; do
    tarball="dist/mysqlchk-tls-$version-$target.tar.gz"
    [[ -f $tarball ]] || tarball="dist/mysqlchk-$version-$target.tar.gz"
    unpacked=$(mktemp -d)
    tar -C "$unpacked" -xzf "$tarball"
    deb=$(scripts/deb.sh "$unpacked"/*/mysqlchk "$(deb_arch "$target")" dist)
    rm -rf "$unpacked"
    log "$deb: $(stat -c %s "$deb") bytes, from $tarball"
done

(cd dist && LC_ALL=C sha256sum -- *.tar.gz *.deb) >dist/SHA256SUMS
cat dist/SHA256SUMS
