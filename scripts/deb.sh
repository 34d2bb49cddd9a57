#!/usr/bin/env bash
# Packs one release binary as a Debian package: OUTDIR/mysqlchk_<version>-1_<arch>.deb with
# /usr/bin/mysqlchk, the systemd units, /etc/mysqlchk/env (a conffile, mode 600), the man page,
# the xinetd example and the docs. The same inputs give the same bytes: every mtime is
# SOURCE_DATE_EPOCH (default: the last commit's), owners are root, entries sorted, gzip without
# names or times. The package's own files live in debian/.
#
# Usage: scripts/deb.sh BINARY ARCH OUTDIR      (ARCH: amd64, arm64 or armhf)
set -euo pipefail

die() {
    echo "deb.sh: error: $*" >&2
    exit 1
}
[[ $# -eq 3 ]] || die "usage: scripts/deb.sh BINARY ARCH OUTDIR"
# Paths are the caller's: resolve them before moving to the repository.
binary=$(realpath -e -- "$1") || die "$1: no such file"
arch=$2
outdir=$(realpath -m -- "$3")
cd "$(dirname "$0")/.."
case "$arch" in amd64 | arm64 | armhf) ;; *) die "unknown architecture $arch (amd64, arm64 or armhf)" ;; esac
[[ -f $binary ]] || die "$binary: not a file"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"

upstream=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[[ -n $upstream ]] || die "no version in Cargo.toml"
version="$upstream-1"
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) || die "set SOURCE_DATE_EPOCH"
fi
export SOURCE_DATE_EPOCH
maintainer=$(sed -n 's/^Maintainer: //p' debian/control.in)

root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
umask 022
doc="$root/usr/share/doc/mysqlchk"
units="$root/usr/lib/systemd/system"
install -d "$root/DEBIAN" "$root/usr/bin" "$units" "$doc/examples" "$root/usr/share/man/man1" \
    "$root/usr/share/lintian/overrides" "$root/etc/mysqlchk"

# The files point at /usr/bin, where the package puts the binary (install.sh uses /usr/local).
to_usr_bin() { sed 's#/usr/local/bin/mysqlchk#/usr/bin/mysqlchk#g' "$1"; }
install -m 0755 "$binary" "$root/usr/bin/mysqlchk"
for unit in mysqlchk.service mysqlchk.socket mysqlchk-inetd.socket mysqlchk-inetd@.service; do
    to_usr_bin "scripts/$unit" >"$units/$unit"
    chmod 0644 "$units/$unit"
done
install -m 0600 debian/env "$root/etc/mysqlchk/env"
to_usr_bin scripts/mysqlchk.xinetd >"$doc/examples/mysqlchk.xinetd"
install -m 0644 scripts/services.txt "$doc/examples/services.txt"
chmod 0644 "$doc/examples/mysqlchk.xinetd"
gzip -9n <man/mysqlchk.1 >"$root/usr/share/man/man1/mysqlchk.1.gz"
gzip -9n <CHANGELOG.md >"$doc/changelog.gz"
gzip -9n <README.md >"$doc/README.md.gz"
{
    echo "mysqlchk ($version) unstable; urgency=medium"
    echo
    echo "  * Packaged from the static release binary of mysqlchk $upstream; the upstream"
    echo "    changes are in /usr/share/doc/mysqlchk/changelog.gz."
    echo
    echo " -- $maintainer  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/changelog.Debian.gz"
license=$(sed 's/^$/./; s/^/ /' LICENSE)
awk -v text="$license" '{ if ($0 == "@LICENSE@") print text; else print }' debian/copyright >"$doc/copyright"
install -m 0644 debian/lintian-overrides "$root/usr/share/lintian/overrides/mysqlchk"
chmod 0644 "$root"/usr/share/man/man1/* "$doc"/*.gz "$doc/copyright"

# DEBIAN/: control, conffiles, md5sums and the maintainer scripts.
size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" debian/control.in >"$root/DEBIAN/control"
echo /etc/mysqlchk/env >"$root/DEBIAN/conffiles"
install -m 0755 debian/postinst debian/prerm debian/postrm "$root/DEBIAN/"
(cd "$root" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

find "$root" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$outdir"
deb="$outdir/mysqlchk_${version}_$arch.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
