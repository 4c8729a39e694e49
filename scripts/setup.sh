#!/usr/bin/env bash
# Installs what the project needs on a fresh machine: npm dependencies, and when asked (`--browser`)
# what the tests need besides: Chromium, openssl (certificates for the https tests), and the
# servers the cluster tests start (PostgreSQL, nats-server): installed here once, before test
# files that run in parallel would each try to install them.
# Nothing is downloaded at run time: Chromium comes from Debian, never from a browser CDN.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies (npm ci; better-sqlite3 builds from source, ~2 min)"
  npm ci --no-audit --no-fund
fi

if [ "${1:-}" = "--browser" ]; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v openssl >/dev/null || missing+=(openssl)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null || missing+=(postgresql)
  command -v nats-server >/dev/null || missing+=(nats-server)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing from Debian: apt-get install ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
