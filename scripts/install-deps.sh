#!/usr/bin/env bash
# Makes sure everything the tests, the bench and the demo run is installed:
# Debian packages (mongrel2, php-fpm, nginx, wrk and a few tools) and node_modules.
# Idempotent: when everything is there it only says so. Debian 12 with Node preinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'install-deps: %s\n' "$*"; }

# nginx and php-fpm live in /usr/sbin, which is not on a normal user's PATH.
have() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}
have_php_fpm() {
  have php-fpm && return 0
  local f
  for f in /usr/sbin/php-fpm* /usr/local/sbin/php-fpm*; do
    [ -x "$f" ] && return 0
  done
  return 1
}

# command(s) → Debian package providing them
missing=()
need() {
  local pkg=$1 p
  for p in "${missing[@]+"${missing[@]}"}"; do [ "$p" = "$pkg" ] && return 0; done
  missing+=("$pkg")
}
check_commands() {
  missing=()
  { have mongrel2 && have m2sh; } || need mongrel2-core
  have_php_fpm || need php-fpm
  have nginx || need nginx-light
  have wrk || need wrk
  have systemd-analyze || need systemd
  have curl || need curl
  have ps || need procps
  have ss || need iproute2
}

check_commands
if [ ${#missing[@]} -eq 0 ]; then
  log "system packages: all present (mongrel2, m2sh, php-fpm, nginx, wrk, systemd-analyze, curl, ps, ss)"
else
  apt_args=(install -y --no-install-recommends "${missing[@]}")
  if [ "$(id -u)" -ne 0 ]; then
    log "missing packages: ${missing[*]}; run as root or:"
    printf '  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get %s\n' "${apt_args[*]}"
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing packages: ${missing[*]}, and there is no apt-get (not Debian?); install them by hand"
    exit 1
  fi
  # Keep the packages' maintainer scripts from starting nginx (port 80) and php-fpm:
  # the tests start their own private instances. Docker images usually have this already.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  log "installing: ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_args[@]}"
  check_commands
  if [ ${#missing[@]} -ne 0 ]; then
    log "still missing after install: ${missing[*]}"
    exit 1
  fi
  log "system packages installed"
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "node and npm are required (Node >= 20.18)"
  exit 1
fi

# npm writes node_modules/.package-lock.json on every install: older than the lock = stale.
stamp=node_modules/.package-lock.json
[ -e "$stamp" ] || stamp=node_modules
if [ ! -d node_modules ]; then
  reason="node_modules missing"
elif [ -f package-lock.json ] && [ package-lock.json -nt "$stamp" ]; then
  reason="package-lock.json newer than node_modules"
elif [ ! -f package-lock.json ] && [ package.json -nt "$stamp" ]; then
  reason="package.json newer than node_modules"
else
  reason=""
fi
if [ -z "$reason" ]; then
  log "node_modules: up to date"
elif [ -f package-lock.json ]; then
  log "$reason: npm ci"
  npm ci --no-audit --no-fund
else
  log "$reason, no package-lock.json: npm install"
  npm install --no-audit --no-fund
fi
