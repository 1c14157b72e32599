#!/usr/bin/env bash
# The Lambda build tools, idempotent: cargo-lambda and zig (pinned, from the Python package
# registry) into .venv, and the Rust standard library for aarch64-unknown-linux-gnu (the arm64
# Lambda target). Used by build-lambda.sh and by the test command (the cargo-lambda test and
# the arm64 build check).
set -euo pipefail
cd "$(dirname "$0")/../.."

[ -x .venv/bin/python ] || bash infra/scripts/setup.sh
stamp=.venv/.requirements-build.sha256
want=$(sha256sum infra/scripts/requirements-build.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[build-tools] installing cargo-lambda and zig into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r infra/scripts/requirements-build.txt
    echo "$want" > "$stamp"
fi
if [ "${SHOPMIND_SKIP_ARM64_BUILD:-}" = 1 ]; then
    echo "[build-tools] not adding the arm64 Rust target (SHOPMIND_SKIP_ARM64_BUILD=1)" >&2
elif ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    echo "[build-tools] adding the Rust target aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu || {
        echo "build-tools: could not add the Rust target aarch64-unknown-linux-gnu (rustup needs to reach its download server); install it and run again" >&2
        exit 1
    }
fi
