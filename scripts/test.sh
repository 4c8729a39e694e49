#!/usr/bin/env bash
# `npm test`: installs what it needs, then type-checks, runs the unit tests and the browser e2e suite.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser || exit 1
mkdir -p test-results
status=0
npm run typecheck --silent || status=1
npx vitest run --reporter=default --reporter=json --outputFile.json=test-results/unit.json || status=1
npm run build --silent || exit 1
PLAYWRIGHT_JSON_OUTPUT_NAME="$PWD/test-results/e2e.json" npx playwright test -c e2e/playwright.config.ts --reporter=list,json || status=1
node scripts/test-summary.mjs test-results/unit.json test-results/e2e.json || status=1
exit $status
