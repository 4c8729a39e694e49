#!/usr/bin/env bash
# `npm start`: the coordinator with its embedded defaults (SQLite under ./.webpvm, no other server).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
web=apps/volunteer-web
if [ ! -f $web/dist/index.html ] || [ ! -f $web/dist/sandbox.js ] || [ -n "$(find $web/src $web/index.html $web/dashboard packages -newer $web/dist/index.html -type f -print -quit)" ]; then
  npm run build --silent
fi
exec node apps/coordinator/bin/webpvm.js start "$@"
