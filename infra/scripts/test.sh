#!/usr/bin/env bash
# The whole test suite with all set-up included: Python tools + models (setup.sh), the AWS
# emulator (moto) on a free 127.0.0.1 port, then every workspace test. The emulator is stopped
# on exit. If it cannot start, the suite fails: the AWS half is never silently skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/scripts/setup.sh
# A one-shot build gains nothing from incremental state but its disk (set 1 to keep it).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp -t shopmind-moto.XXXXXX.log)
# moto's server in one thread: see infra/scripts/moto_server.py for why.
.venv/bin/python infra/scripts/moto_server.py --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; wait $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 $moto_pid 2>/dev/null; then
        echo "test: the AWS emulator exited at start-up:" >&2; cat "$log" >&2; exit 1
    fi
    sleep 0.2
done
export SHOPMIND_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
echo "[test] AWS emulator on $SHOPMIND_TEST_AWS_ENDPOINT"

# The deployment template: cfn-lint, references, and tables equal to what the code creates.
.venv/bin/python infra/scripts/check_template.py --endpoint "$SHOPMIND_TEST_AWS_ENDPOINT"

# With arguments, they replace the default selection (e.g. `-p shopmind-e2e --test reliability`).
if [ $# -gt 0 ]; then
    cargo test "$@"
else
    cargo test --workspace --all-targets
fi
# The build's footprint, so a CI machine running short of disk shows it before it fails.
echo "[test] target/ holds $(du -sh target 2>/dev/null | cut -f1); $(df -h . | awk 'NR==2 {print $4}') free"
