#!/usr/bin/env bash
# What `npm start` and `npm run cluster` need first: dependencies (setup.sh), and the pages built when missing or older than their sources.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
web=apps/volunteer-web
if [ ! -f $web/dist/index.html ] || [ ! -f $web/dist/sandbox.js ] || [ -n "$(find $web/src $web/index.html $web/dashboard packages -newer $web/dist/index.html -type f -print -quit)" ]; then
  npm run build --silent
fi
