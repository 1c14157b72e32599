#!/usr/bin/env python3
"""Independent reference embeddings for the Rust encoder's tests.

Python onnxruntime + the `tokenizers` package, one sentence per run (no padding at all), mean
pooling and L2 normalisation written here in numpy, as sentence-transformers does for
all-MiniLM-L6-v2 (max_seq_length 256). The output is committed as a fixture; regenerate with

    .venv/bin/python shared/inference/tests/reference/reference_embeddings.py \
        --model models/all-minilm-l6-v2-int8 > shared/inference/tests/fixtures/reference_embeddings.json
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

LONG = (
    "This handcrafted walnut coffee table is finished with natural oil and wax, built from solid "
    "hardwood boards that are kiln dried, planed and joined with traditional mortise and tenon "
    "joints so that it lasts for generations. "
)

SENTENCES = [
    "Where is my order?",
    "How do I return a pair of shoes that do not fit?",
    "red dress",
    "Men's waterproof hiking boots, size 44, brown leather",
    "Organic cotton T-shirt with a relaxed fit and ribbed crew neck.",
    "I want to speak to a human right now!!!",
    "Can I change the delivery address after I placed order #A-10293?",
    "The blender broke after two days. Terrible quality, I want a refund.",
    "Free shipping on orders over $50 — does that include furniture?",
    "",
    "a",
    LONG * 12,  # far past 256 tokens: must be truncated the same way
    "Ünïcödé façade: crème brûlée, jalapeño, Straße, Ærøskøbing",
    "Смартфон с большим экраном и хорошей камерой",
    "这款连衣裙是纯棉的吗？",
    "我的订单什么时候发货？订单号是 2024-8891",
    "無線イヤホンのバッテリーは何時間もちますか",
    "🔥🔥 Summer sale: 30% off all sunglasses 😎🕶️",
    "Do you ship to 🇨🇦 Canada?",
    "   leading and trailing spaces   ",
    "MIXED case SKU: ZX-9000-PRO/blk",
    "price: 19.99 EUR, weight 1.2 kg, 3 x 4 x 5 cm",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "\t tabs\nand\nnewlines\r\n",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    args = ap.parse_args()
    manifest = json.loads((args.model / "manifest.json").read_text())
    max_length = manifest["encoder"]["max_length"]

    tok = Tokenizer.from_file(str(args.model / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    sess = ort.InferenceSession(str(args.model / "model.onnx"), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in sess.get_inputs()}

    out = []
    for text in SENTENCES:
        enc = tok.encode(text)
        feed = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
        }
        feed = {k: v for k, v in feed.items() if k in wanted}
        hidden = sess.run(["last_hidden_state"], feed)[0][0]  # [seq, 384]
        mask = feed["attention_mask"][0][:, None].astype(np.float32)
        vec = (hidden * mask).sum(axis=0) / max(mask.sum(), 1e-9)
        vec = vec / max(np.linalg.norm(vec), 1e-12)
        out.append({
            "text": text,
            "tokens": len(enc.ids),
            "truncated": len(enc.overflowing) > 0,
            "vector": [round(float(x), 7) for x in vec],
        })
    print(json.dumps({
        "model": manifest["name"],
        "generator": "onnxruntime " + ort.__version__ + " (Python), tokenizers (Python), numpy",
        "sentences": out,
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
