#!/usr/bin/env bash
# Runs the whole test suite for one cross target: unit and integration tests built for TARGET,
# run under qemu-user (the runner in cross/TARGET.toml), with the mysqlchk binary they start
# run through the same emulator (MYSQLCHK_TEST_RUNNER) against a MariaDB running natively.
# Installs the target's toolchain pieces and qemu; MariaDB itself comes from scripts/test.sh,
# which calls this for `--target TRIPLE`.
#
# Usage: cross/test-target.sh TARGET [CARGO-TEST-ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
source cross/lib.sh

[[ $# -ge 1 ]] || die "usage: $0 TARGET [CARGO-TEST-ARGS...]"
target=$1
shift
# The tests start mariadbd and friends by name; they live in /usr/sbin.
export PATH="$PATH:/usr/sbin:/sbin"

cross_setup "$target" run

# Some integration tests start mysqlchk through other programs (xinetd, systemd-socket-activate,
# scripts/install.sh) that exec it directly. For those, register qemu with binfmt_misc, as
# Debian's systemd-binfmt would at boot, so the kernel runs the foreign binary through it. Needs
# root; lasts until reboot. Without it only MYSQLCHK_TEST_RUNNER (tests/common) applies.
register_binfmt() {
    local name=$1 dir=/proc/sys/fs/binfmt_misc
    [[ -e $dir/register ]] || as_root mount -t binfmt_misc binfmt_misc "$dir" || return 1
    [[ -e $dir/$name ]] || grep -v '^#' "/usr/lib/binfmt.d/$name.conf" | as_root tee "$dir/register" >/dev/null
}
case "$target" in
    aarch64-*) qemu=qemu-aarch64 ;;
    armv7-*) qemu=qemu-arm ;;
    *) qemu="" ;;
esac
if [[ -n $qemu ]] && ! register_binfmt "$qemu" 2>/dev/null; then
    log "warning: could not register $qemu with binfmt_misc: tests that exec mysqlchk through xinetd, systemd-socket-activate or install.sh will fail"
fi
log "cargo test --target $target"
cross_cargo "$target" test --locked "$@"
# The TLS build's own tests (the rest of the suite is the same code as above).
log "cargo test --features tls --target $target"
cross_cargo "$target" test --locked --features tls --test tls --test haproxy "$@"
