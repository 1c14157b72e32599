#!/usr/bin/env bash
# Builds every Lambda function for provided.al2023 on arm64 with cargo-lambda (through zig), and
# assembles the ONNX Runtime layer: target/lambda/<function>/bootstrap and
# target/lambda-layers/onnxruntime/lib/libonnxruntime.so.1.31.1, where infra/template.yaml
# expects them. Usage: infra/scripts/build-lambda.sh [function ...]  (default: all)
set -euo pipefail
cd "$(dirname "$0")/../.."

bash infra/scripts/setup.sh --arch all
stamp=.venv/.requirements-build.sha256
want=$(sha256sum infra/scripts/requirements-build.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[build-lambda] installing cargo-lambda and zig into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r infra/scripts/requirements-build.txt
    echo "$want" > "$stamp"
fi
if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu || {
        echo "build-lambda: could not add the Rust target aarch64-unknown-linux-gnu (rustup needs to reach its download server); install it and run again" >&2
        exit 1
    }
fi

functions=("$@")
if [ ${#functions[@]} -eq 0 ]; then
    for dir in functions/*/; do functions+=("$(basename "$dir")"); done
fi
args=()
for f in "${functions[@]}"; do args+=(--bin "$f"); done
PATH="$PWD/.venv/bin:$PATH" cargo lambda build --release --arm64 "${args[@]}"

layer=target/lambda-layers/onnxruntime/lib
mkdir -p "$layer"
cp models/onnxruntime-aarch64/libonnxruntime.so.1.31.1 "$layer/"
for f in "${functions[@]}"; do
    file "target/lambda/$f/bootstrap" 2>/dev/null || ls -l "target/lambda/$f/bootstrap"
done
echo "[build-lambda] built ${functions[*]}; ONNX Runtime layer in $layer"
