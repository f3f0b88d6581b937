#!/usr/bin/env bash
# Builds the Debian package m2gw_<version>_<arch>.deb with dpkg-deb (no debhelper needed).
#
#   packaging/deb/build.sh [--out DIR] [m2gw-<version>.tgz]
#
# Without a tarball it runs `npm pack` (whose prepack builds dist/). The package holds:
#   /usr/lib/m2gw/                 the npm package + its production node_modules (npm ci --omit=dev)
#   /usr/bin/m2gw                  wrapper: exec /usr/bin/node /usr/lib/m2gw/bin/m2gw
#   /etc/m2gw/gw.toml              conffile: config/gw.toml with pid_file, [admin] and the
#                                  Mongrel2 chroot /var/lib/mongrel2 set for the systemd unit
#   /etc/logrotate.d/m2gw          conffile: contrib/logrotate/m2gw
#   /lib/systemd/system/m2gw.service
#   postinst: creates the m2gw system user; the service is not enabled (edit gw.toml first).
# <arch> is dpkg's architecture when a native module ships (zeromq's prebuilt), else "all".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo
tarball=
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1"); shift ;;
  esac
done
log() { printf 'deb: %s\n' "$*" >&2; }
for tool in dpkg-deb dpkg node npm; do
  command -v "$tool" >/dev/null || { log "$tool is required"; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$tarball" ]; then
  log "npm pack (builds dist/)"
  (cd "$repo" && npm pack --silent --pack-destination "$work" >/dev/null)
  tarball=$(ls "$work"/m2gw-*.tgz)
fi
tar -xzf "$tarball" -C "$work"
version=$(node -p "require('$work/package/package.json').version")
root=$work/root
lib=$root/usr/lib/m2gw

log "m2gw $version: production node_modules"
mkdir -p "$lib"
cp -a "$work/package/." "$lib/"
cp "$repo/package-lock.json" "$lib/"
# Offline-first from npm's cache; the lock pins every version.
(cd "$lib" && npm ci --omit=dev --no-audit --no-fund --prefer-offline --loglevel=error)
rm -f "$lib/package-lock.json" "$lib/node_modules/.package-lock.json"
# Only what runs here: sql.js's Node WebAssembly build; a native module (zeromq's prebuilt
# libzmq binding), if production code still depends on one, for this OS/arch only, which
# makes the package architecture-specific. Pure JavaScript otherwise: Architecture: all.
find "$lib/node_modules/sql.js/dist" -type f ! -name sql-wasm.js ! -name sql-wasm.wasm -delete
arch=all
zmq=$lib/node_modules/zeromq
if [ -d "$zmq" ]; then
  arch=$(dpkg --print-architecture)
  case $arch in
    amd64) node_arch=x64 ;;
    arm64) node_arch=arm64 ;;
    *) log "no zeromq prebuilt for $arch"; exit 1 ;;
  esac
  [ -d "$zmq/build/linux/$node_arch" ] || { log "zeromq has no prebuilt for linux/$node_arch"; exit 1; }
  find "$zmq/build" -mindepth 1 -maxdepth 1 ! -name linux ! -name manifest.json -exec rm -rf {} +
  find "$zmq/build/linux" -mindepth 1 -maxdepth 1 ! -name "$node_arch" -exec rm -rf {} +
fi
if find "$lib/node_modules" -name '*.node' -print -quit | grep -q .; then
  [ "$arch" != all ] || arch=$(dpkg --print-architecture)
fi

install -d "$root/usr/bin" "$root/etc/m2gw" "$root/etc/logrotate.d" "$root/lib/systemd/system" "$root/usr/share/doc/m2gw" "$root/DEBIAN"
cat >"$root/usr/bin/m2gw" <<'SH'
#!/bin/sh
# m2gw from the Debian package; the program is in /usr/lib/m2gw. exec: under systemd the
# supervisor must be the unit's main process.
exec /usr/bin/node /usr/lib/m2gw/bin/m2gw "$@"
SH
chmod 0755 "$root/usr/bin/m2gw"
install -m 0644 "$lib/systemd/m2gw.service" "$root/lib/systemd/system/m2gw.service"
install -m 0644 "$lib/contrib/logrotate/m2gw" "$root/etc/logrotate.d/m2gw"
install -m 0644 "$lib/README.md" "$root/usr/share/doc/m2gw/README.md"

# /etc/m2gw/gw.toml: the example config, set up for the systemd unit. Each edit must apply.
conf=$root/etc/m2gw/gw.toml
{
  cat <<'HEAD'
# /etc/m2gw/gw.toml, installed by the m2gw Debian package (a conffile: your edits survive
# upgrades). Edit the [[handler]] specs, upstreams and routes for your site, then:
#   m2gw check --config /etc/m2gw/gw.toml [--mongrel2 /var/lib/mongrel2/config.sqlite]
#   systemctl enable --now m2gw
# `m2gw init --http URL --php DOCROOT --dir DIR` writes a matching mongrel2.conf + gw.toml pair.
#
HEAD
  cat "$lib/config/gw.toml"
} >"$conf"
edit() {  # edit SED-EXPR GREP-PATTERN-THAT-MUST-MATCH-AFTERWARDS
  sed -i "$1" "$conf"
  grep -q "$2" "$conf" || { log "gw.toml edit did not apply: $1"; exit 1; }
}
edit 's|^# pid_file = "/run/m2gw/m2gw.pid"|pid_file = "/run/m2gw/m2gw.pid"|' '^pid_file = "/run/m2gw/m2gw.pid"'
edit 's|^# \[admin\]$|[admin]|; s|^# listen = "127.0.0.1:9180"|listen = "127.0.0.1:9180"|' '^listen = "127.0.0.1:9180"'
edit 's|^chroot = "\."$|chroot = "/var/lib/mongrel2"|' '^chroot = "/var/lib/mongrel2"'

cat >"$root/DEBIAN/conffiles" <<'EOF2'
/etc/m2gw/gw.toml
/etc/logrotate.d/m2gw
EOF2

cat >"$root/DEBIAN/postinst" <<'SH'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd m2gw >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin m2gw
  fi
  # The config may name secrets (FastCGI params): readable by root and the service only.
  chown root:m2gw /etc/m2gw/gw.toml
  chmod 0640 /etc/m2gw/gw.toml
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
  fi
  if [ -z "$2" ]; then
    echo "m2gw: edit /etc/m2gw/gw.toml, then: systemctl enable --now m2gw"
  elif [ -d /run/systemd/system ] && systemctl is-active --quiet m2gw.service; then
    # An upgrade: the new code takes over; stop drains in-flight requests first.
    systemctl restart m2gw.service || true
  fi
fi
exit 0
SH
cat >"$root/DEBIAN/prerm" <<'SH'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl disable --now m2gw.service >/dev/null 2>&1 || true
fi
exit 0
SH
cat >"$root/DEBIAN/postrm" <<'SH'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
  rmdir /etc/m2gw 2>/dev/null || true
  # The m2gw user stays (Debian practice: files it owned may remain); userdel m2gw to remove it.
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
SH
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

node_min=$(node -p "require('$lib/package.json').engines.node.replace(/^>=\s*/, '')")
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF2
Package: m2gw
Version: $version
Architecture: $arch
Maintainer: m2gw maintainers <m2gw@localhost>
Installed-Size: $size
Depends: nodejs (>= $node_min), passwd
Recommends: mongrel2-core
Suggests: php-fpm
Section: web
Priority: optional
Description: Mongrel2 handler gateway to HTTP and FastCGI (PHP-FPM) upstreams
 m2gw PULLs requests from Mongrel2 over ZeroMQ, forwards them to HTTP application
 servers or PHP-FPM over pooled keep-alive connections, and streams the responses
 back, with flow control, async uploads, zero-loss reloads and Prometheus metrics.
EOF2
(cd "$root" && find usr lib etc -type f ! -path 'etc/*' -print0 | xargs -0 md5sum >DEBIAN/md5sums)

mkdir -p "$out"
deb=$out/m2gw_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
log "built $deb ($(du -h "$deb" | cut -f1))"
echo "$deb"
