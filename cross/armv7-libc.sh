#!/usr/bin/env bash
# Assembles the C runtime that rust-lld links into armv7-unknown-linux-musleabihf binaries, in
# target/libc/armv7-unknown-linux-musleabihf/ (cross/armv7-unknown-linux-musleabihf.toml points
# there). rustup has no prebuilt std for this target, so no "self-contained" libc either:
#   crt1.o crti.o crtn.o libc.a   Debian's musl-dev:armhf, unpacked, never installed
#   crtbegin.o crtend.o            gcc-arm-linux-gnueabihf (crtbegin.o is its crtbeginT.o, the
#                                  static-executable variant, under the name rustc asks for)
#   libunwind.a                    gcc-arm-linux-gnueabihf's libgcc_eh.a, the unwinder std's
#                                  `unwind` crate links on musl
# Idempotent: a complete directory is left alone. Usage: cross/armv7-libc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source cross/lib.sh

dir=target/libc/armv7-unknown-linux-musleabihf
files=(crt1.o crti.o crtn.o libc.a crtbegin.o crtend.o libunwind.a)
complete=1
for f in "${files[@]}"; do [[ -f $dir/$f ]] || complete=0; done
[[ $complete == 1 ]] && exit 0

apt_install gcc-arm-linux-gnueabihf
gcc_dir=$(dirname "$(arm-linux-gnueabihf-gcc -print-libgcc-file-name)")

work=$(mktemp -d)
chmod 755 "$work" # apt's download user must be able to write there
added_armhf=0
cleanup() {
    # Leave dpkg as we found it: armhf is enabled only for the download.
    [[ $added_armhf == 1 ]] && as_root dpkg --remove-architecture armhf
    rm -rf "$work"
}
trap cleanup EXIT

if ! dpkg --print-foreign-architectures | grep -qx armhf; then
    as_root dpkg --add-architecture armhf
    added_armhf=1
fi
# The armhf security index can fail with a size mismatch; the main suite has musl-dev.
# Their chatter on stderr: stdout is the caller's data (cross/sizes.sh's table).
as_root apt-get update -qq >&2 || log "apt-get update had errors; trying the download anyway"
(cd "$work" && apt-get download musl-dev:armhf >&2)
dpkg -x "$work"/musl-dev_*_armhf.deb "$work/root"
musl_dir="$work/root/usr/lib/arm-linux-musleabihf"

mkdir -p "$work/out"
cp "$musl_dir"/{crt1.o,crti.o,crtn.o,libc.a} "$work/out/"
cp "$gcc_dir/crtbeginT.o" "$work/out/crtbegin.o"
cp "$gcc_dir/crtend.o" "$work/out/"
cp "$gcc_dir/libgcc_eh.a" "$work/out/libunwind.a"
# Which versions went in, for whoever compares two releases.
{
    dpkg-deb -f "$work"/musl-dev_*_armhf.deb Package Version
    dpkg-query -W -f='Package: ${Package}\nVersion: ${Version}\n' gcc-arm-linux-gnueabihf
} >"$work/out/SOURCES"

rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
mv "$work/out" "$dir"
log "assembled $dir"
