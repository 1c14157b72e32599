#!/usr/bin/env bash
# Runs one command beside a fresh AWS emulator, e.g. the cold-start bench:
#   infra/scripts/with-emulator.sh cargo bench -p recommend --bench cold_start
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/setup.sh >/dev/null
source infra/scripts/emulator.sh
start_emulator
"$@"
