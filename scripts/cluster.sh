#!/usr/bin/env bash
# `npm run cluster`: two coordinators on one PostgreSQL database (installed from Debian when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prepare.sh
exec node --import tsx scripts/cluster.ts
