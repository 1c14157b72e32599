#!/usr/bin/env bash
# Builds every Lambda function for provided.al2023 on arm64 with cargo-lambda (through zig), and
# assembles the ONNX Runtime layer: target/lambda/<function>/bootstrap and
# target/lambda-layers/onnxruntime/lib/libonnxruntime.so.1.31.1, where infra/template.yaml
# expects them. Usage: infra/scripts/build-lambda.sh [function ...]  (default: all)
set -euo pipefail
cd "$(dirname "$0")/../.."

bash infra/scripts/setup.sh --arch all
bash infra/scripts/build-tools.sh

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
