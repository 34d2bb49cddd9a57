#!/usr/bin/env bash
# Installs mysqlchk: the binary in /usr/local/bin, the man page, the systemd units
# (socket-activated on 9200), the /etc/services line, and /etc/mysqlchk/env (mode 600) for the
# password and flags. With --xinetd, also the xinetd service (mode 600, it holds the password).
# Safe to run again: the binary, units and man page are replaced, the env file and an existing
# xinetd file are never touched. Runs from a source checkout (scripts/install.sh) or from an
# unpacked release tarball (./install.sh), whose files sit beside it.
#
# Usage: install.sh [--binary PATH] [--prefix DIR] [--xinetd]
#   --binary PATH  install this binary (default: the mysqlchk beside install.sh in a tarball;
#                  in a source checkout, target/release/mysqlchk, built with cargo)
#   --prefix DIR   install under DIR (DIR/usr/local/bin, DIR/etc/...) and run no systemctl:
#                  for packaging and tests; nothing outside DIR is touched
#   --xinetd       also install /etc/xinetd.d/mysqlchk (not needed with the systemd units;
#                  both at once would fight over port 9200)
set -euo pipefail

usage() {
    sed -n '9,16s/^# \{0,1\}//p' "$0" >&2
    exit 2
}
die() {
    echo "install.sh: error: $*" >&2
    exit 1
}
say() { echo "install.sh: $*"; }

# --- arguments (all parsing lives here) -------------------------------------------------------
binary=""
prefix=""
xinetd=false
while [[ $# -gt 0 ]]; do
    case "$1" in
        --binary) [[ $# -ge 2 ]] || usage; binary="$2"; shift 2 ;;
        --binary=*) binary="${1#--binary=}"; shift ;;
        --prefix) [[ $# -ge 2 ]] || usage; prefix="$2"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --xinetd) xinetd=true; shift ;;
        -h|--help) usage ;;
        *) echo "install.sh: unknown argument: $1" >&2; usage ;;
    esac
done
# Relative paths are the caller's, so resolve them before moving to the repository.
[[ -z "$binary" || "$binary" == /* ]] || binary="$PWD/$binary"
if [[ -n "$prefix" ]]; then
    [[ "$prefix" == /* ]] || prefix="$PWD/$prefix"
    prefix="${prefix%/}"
    [[ -n "$prefix" ]] || die "--prefix /: leave --prefix out to install into the system"
elif [[ $(id -u) -ne 0 ]]; then
    die "installing into the system needs root (or use --prefix DIR)"
fi
# The shipped files sit beside this script, in a tarball and in scripts/ alike.
here="$(cd "$(dirname "$0")" && pwd)"
if [[ -f "$here/mysqlchk.1" ]]; then
    manpage="$here/mysqlchk.1" # an unpacked tarball
else
    manpage="$here/../man/mysqlchk.1" # a source checkout
fi
for f in mysqlchk.service mysqlchk.socket mysqlchk-inetd.socket mysqlchk-inetd@.service \
    mysqlchk.xinetd services.txt; do
    [[ -f "$here/$f" ]] || die "$here/$f is missing: run install.sh from the unpacked tarball or the source tree"
done
[[ -f "$manpage" ]] || die "$manpage is missing"

# --- the binary -------------------------------------------------------------------------------
if [[ -z "$binary" && -x "$here/mysqlchk" ]]; then
    binary="$here/mysqlchk"
elif [[ -z "$binary" ]]; then
    [[ -f "$here/../Cargo.toml" ]] || die "no mysqlchk beside $0: pass --binary PATH"
    command -v cargo >/dev/null || die "cargo not found: build mysqlchk elsewhere and pass --binary PATH"
    say "building the release binary"
    (cd "$here/.." && cargo build --release --quiet)
    binary="${CARGO_TARGET_DIR:-$here/../target}/release/mysqlchk"
fi
[[ -f "$binary" && -x "$binary" ]] || die "--binary $binary: not an executable file"
"$binary" --version >/dev/null 2>&1 || die "$binary --version failed: is it a mysqlchk built for this machine?"

bindir="$prefix/usr/local/bin"
unitdir="$prefix/etc/systemd/system"
mandir="$prefix/usr/local/share/man/man1"
confdir="$prefix/etc/mysqlchk"
xinetddir="$prefix/etc/xinetd.d"
services="$prefix/etc/services"

# `install` writes a new file and renames nothing in place, so a running mysqlchk keeps going.
install -d -m 755 "$bindir" "$unitdir" "$mandir"
install -m 755 "$binary" "$bindir/mysqlchk"
say "installed $bindir/mysqlchk"
install -m 644 "$manpage" "$mandir/mysqlchk.1"
say "installed $mandir/mysqlchk.1"
install -m 644 "$here"/mysqlchk.service "$unitdir/mysqlchk.service"
install -m 644 "$here"/mysqlchk.socket "$unitdir/mysqlchk.socket"
install -m 644 "$here"/mysqlchk-inetd.socket "$unitdir/mysqlchk-inetd.socket"
install -m 644 "$here"/mysqlchk-inetd@.service "$unitdir/mysqlchk-inetd@.service"
say "installed $unitdir/mysqlchk.service and mysqlchk.socket (and mysqlchk-inetd.socket, Accept=yes)"

# --- /etc/services ----------------------------------------------------------------------------
line="$(cat "$here/services.txt")"
touch "$services"
if grep -Eq '^mysqlchk[[:space:]]' "$services"; then
    say "$services already names mysqlchk"
elif grep -Eq '^[^#[:space:]]+[[:space:]]+9200/tcp([[:space:]]|$)' "$services"; then
    say "warning: $services gives 9200/tcp another name; not adding mysqlchk" >&2
else
    printf '%s\n' "$line" >>"$services"
    say "added '$line' to $services"
fi

# --- /etc/mysqlchk/env: created once, never overwritten (it holds the password) -------------
install -d -m 700 "$confdir"
env_file="$confdir/env"
if [[ -e "$env_file" ]]; then
    say "kept the existing $env_file"
else
    # umask first: the file is never readable by others, not even for a moment.
    (
        umask 077
        cat >"$env_file" <<'EOF'
# mysqlchk settings, read by mysqlchk.service (EnvironmentFile=). Keep this file mode 600.
# The database password for the check user (never put it on the command line):
MYSQLCHK_PASSWORD=
# Flags, split on whitespace (see `mysqlchk --help`); --listen is ignored under mysqlchk.socket:
MYSQLCHK_ARGS=--mysql 127.0.0.1:3306 --user haproxy
EOF
    )
    chmod 600 "$env_file"
    say "created $env_file (mode 600): set MYSQLCHK_PASSWORD there"
fi

# --- xinetd (opt-in) --------------------------------------------------------------------------
if $xinetd; then
    install -d -m 755 "$xinetddir"
    if [[ -e "$xinetddir/mysqlchk" ]]; then
        say "kept the existing $xinetddir/mysqlchk"
    else
        install -m 600 "$here"/mysqlchk.xinetd "$xinetddir/mysqlchk"
        say "installed $xinetddir/mysqlchk (mode 600): set MYSQLCHK_PASSWORD in its env line"
    fi
fi

# --- systemd ----------------------------------------------------------------------------------
if [[ -z "$prefix" && -d /run/systemd/system ]]; then
    systemctl daemon-reload
    say "systemctl daemon-reload done"
fi

# --- next steps -------------------------------------------------------------------------------
echo
echo "Next steps:"
echo "  1. Create the check user in MySQL/MariaDB, e.g."
echo "       CREATE USER 'haproxy'@'127.0.0.1' IDENTIFIED BY '...';"
if $xinetd; then
    echo "  2. Put its password in $xinetddir/mysqlchk (env = MYSQLCHK_PASSWORD=...) and"
    echo "     adjust server_args; then: systemctl reload xinetd (or service xinetd reload)."
    echo "     Do not also enable mysqlchk.socket: both would want port 9200."
else
    echo "  2. Put its password in $env_file (MYSQLCHK_PASSWORD=...) and adjust MYSQLCHK_ARGS."
    echo "  3. systemctl enable --now mysqlchk.socket"
fi
echo "  Then: curl -i http://127.0.0.1:9200/    (200 when the database is up)"
echo "  Drain this node from HAProxy: touch /dev/shm/proxyoff (rm to undo)."
if [[ -n "$prefix" ]]; then
    echo "  (Installed under $prefix: paths above are relative to it; systemctl was not run.)"
fi
