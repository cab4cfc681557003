#!/usr/bin/env bash
# Builds the lbo-proxy Debian package with dpkg-deb (no debhelper, no network):
#
#   packaging/build-deb.sh [--binary FILE] [--out DIR] VERSION
#
#   VERSION        the package version, e.g. 0.1.0-1
#   --binary FILE  the lbo-proxy executable to package (default: target/release/lbo-proxy);
#                  it is stripped on the way in
#   --out DIR      where to write lbo-proxy_VERSION_amd64.deb (default: target/debian)
#
# MAINTAINER="Name <address>" overrides the Maintainer field. File dates are the last
# commit's (SOURCE_DATE_EPOCH when set), so the same tree gives the same package.
# Prints the path of the package it wrote.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
deb="$here/deb"

die() { echo "build-deb.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }

binary="$repo/target/release/lbo-proxy"
out="$repo/target/debian"
version=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --binary) binary=${2:?--binary needs a file}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h|--help) usage ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [[ -z $version ]] || usage; version=$1; shift ;;
    esac
done
[[ -n $version ]] || usage
# Debian policy 5.6.12: upstream version starts with a digit; only these characters.
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "$version: not a Debian version"
[[ -f $binary && -x $binary ]] || die "$binary: not an executable file (cargo build --release)"
for tool in dpkg-deb dpkg-shlibdeps strip gzip; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install dpkg-dev binutils)"
done

maintainer=${MAINTAINER:-lbo-proxy maintainers <lbo-proxy@example.org>}
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

work=$(mktemp -d "${TMPDIR:-/tmp}/lbo-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"

# --- files ---------------------------------------------------------------------------

install -d "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/lbo-proxy/allowlists" \
    "$root/usr/share/lbo-proxy/allowlists" "$root/usr/share/lbo-proxy/dashboards" \
    "$root/usr/share/doc/lbo-proxy/examples" "$root/usr/share/man/man1" \
    "$root/usr/share/lintian/overrides" "$root/DEBIAN"

install -m 0755 "$binary" "$root/usr/bin/lbo-proxy"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/lbo-proxy"

# The unit as shipped in systemd/, with the packaged binary's path.
sed 's|/usr/local/bin/lbo-proxy|/usr/bin/lbo-proxy|g; s|^# Install: see systemd/README.md. Binary /usr/bin/lbo-proxy,|# Installed by the lbo-proxy package. Binary /usr/bin/lbo-proxy,|' \
    "$repo/systemd/lbo-proxy.service" > "$root/lib/systemd/system/lbo-proxy.service"
chmod 0644 "$root/lib/systemd/system/lbo-proxy.service"
! grep -q /usr/local "$root/lib/systemd/system/lbo-proxy.service" \
    || die "systemd/lbo-proxy.service names /usr/local in a line this script does not rewrite"

install -m 0644 "$deb/lbo-proxy.toml" "$root/etc/lbo-proxy/lbo-proxy.toml"
install -d "$root/etc/logrotate.d"
install -m 0644 "$repo/systemd/lbo-proxy.logrotate" "$root/etc/logrotate.d/lbo-proxy"
conffiles=(/etc/lbo-proxy/lbo-proxy.toml /etc/logrotate.d/lbo-proxy)

install -m 0644 "$repo"/allowlists/*.toml "$root/usr/share/lbo-proxy/allowlists/"
install -m 0644 "$repo/dashboards/lbo-proxy.json" "$repo/dashboards/alerts.yml" "$root/usr/share/lbo-proxy/dashboards/"

install -m 0644 "$repo/README.md" "$root/usr/share/doc/lbo-proxy/README.md"
install -m 0644 "$repo/systemd/README.md" "$root/usr/share/doc/lbo-proxy/README.systemd.md"
install -m 0644 "$repo/allowlists/README.md" "$root/usr/share/doc/lbo-proxy/README.allowlists.md"
install -m 0644 "$repo/image/README.md" "$root/usr/share/doc/lbo-proxy/README.image.md"
install -m 0644 "$repo"/examples/* "$root/usr/share/doc/lbo-proxy/examples/"
# The examples say dir = "../allowlists": make that resolve where they are installed.
ln -s ../../lbo-proxy/allowlists "$root/usr/share/doc/lbo-proxy/allowlists"
install -m 0644 "$deb/copyright" "$root/usr/share/doc/lbo-proxy/copyright"
install -m 0644 "$deb/lintian-overrides" "$root/usr/share/lintian/overrides/lbo-proxy"
{
    echo "lbo-proxy ($version) unstable; urgency=medium"
    echo
    echo "  * Built from the lbo-proxy source tree$(git -C "$repo" rev-parse --short HEAD 2>/dev/null | sed 's/^/ at commit /')."
    echo
    echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$root/usr/share/doc/lbo-proxy/changelog.Debian.gz"
gzip -9n < "$deb/lbo-proxy.1" > "$root/usr/share/man/man1/lbo-proxy.1.gz"
chmod 0644 "$root/usr/share/doc/lbo-proxy/changelog.Debian.gz" "$root/usr/share/man/man1/lbo-proxy.1.gz"

# --- control -------------------------------------------------------------------------

# Shared-library dependencies of the binary, as dpkg-shlibdeps computes them.
mkdir -p "$work/src/debian"
printf 'Source: lbo-proxy\n\nPackage: lbo-proxy\nArchitecture: any\n' > "$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O -e"$root/usr/bin/lbo-proxy" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ -n $shlibs ]] || die "dpkg-shlibdeps found no dependencies for $binary"

for script in postinst prerm postrm; do
    install -m 0755 "$deb/$script" "$root/DEBIAN/$script"
done
printf '%s\n' "${conffiles[@]}" > "$root/DEBIAN/conffiles"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@MAINTAINER@|$maintainer|" -e "s|@DEPENDS@|$shlibs|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" "$deb/control" > "$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
    | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
package="$out/lbo-proxy_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$package" >/dev/null
echo "$package"
