#!/usr/bin/env bash
# `npm start`: the coordinator with its embedded defaults (SQLite under ./.webpvm, no other server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare.sh
exec node apps/coordinator/bin/webpvm.js start "$@"
