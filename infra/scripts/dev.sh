#!/usr/bin/env bash
# Run Shopmind locally on the embedded default, all set-up included (no AWS account).
# Extra arguments go to `shopmind serve`, e.g. --addr 127.0.0.1:9000.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/setup.sh
exec cargo run --quiet -p shopmind-local --bin shopmind -- serve --demo "$@"
