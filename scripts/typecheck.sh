#!/usr/bin/env bash
# One TypeScript config per runtime (worker, page, Node), so one runtime's globals cannot leak into another's code.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for project in packages/vm-protocol/tsconfig.json packages/local-servers/tsconfig.json packages/task-sdk/tsconfig.json packages/task-sdk/tsconfig.node.json \
  apps/coordinator/tsconfig.json apps/volunteer-web/tsconfig.json apps/volunteer-web/tsconfig.node.json examples/tsconfig.json e2e/tsconfig.json bench/tsconfig.json scripts/tsconfig.json; do
  echo "typecheck $project"
  npx tsc -p "$project" || status=1
done
exit $status
