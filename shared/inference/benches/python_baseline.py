#!/usr/bin/env python3
"""Python baselines for the encoder benchmark (run by `cargo bench --bench encoder`).

    python_baseline.py MODEL_DIR SENTENCES_JSON THREADS BATCH MODE

MODE `fixed128`: the tokenizer file as shipped (MiniLM's truncates and pads every input to 128;
one without padding settings pads to the batch's longest), batches in input order. MODE `sorted`: a careful pipeline that truncates at the manifest's max length,
sorts by length and pads each batch to its longest input. Both mean-pool and L2-normalise in
numpy. Prints one JSON line: {"mode", "threads", "seconds", "sentences_per_s"}.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "infra" / "scripts"))
from onnx_encoder import pooled  # noqa: E402


def main() -> None:
    model_dir, sentences_path, threads, batch, mode = sys.argv[1:6]
    threads, batch = int(threads), int(batch)
    texts = json.load(open(sentences_path))
    manifest = json.load(open(f"{model_dir}/manifest.json"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(f"{model_dir}/model.onnx", so, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    if mode == "sorted":
        tok.no_padding()
        tok.enable_truncation(manifest["encoder"]["max_length"])
    elif mode != "fixed128":
        sys.exit(f"unknown mode {mode}")

    def run(items):
        out = [None] * len(items)
        encs = tok.encode_batch(items)
        order = sorted(range(len(items)), key=lambda i: len(encs[i].ids)) if mode == "sorted" \
            else list(range(len(items)))
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            seq = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), seq), dtype=np.int64)
            mask = np.zeros((len(idx), seq), dtype=np.int64)
            types = np.zeros((len(idx), seq), dtype=np.int64)
            for r, i in enumerate(idx):
                e = encs[i]
                n = len(e.ids)
                ids[r, :n], mask[r, :n], types[r, :n] = e.ids, e.attention_mask, e.type_ids
            vec = pooled(sess, manifest, ids, mask, types)
            for r, i in enumerate(idx):
                out[i] = vec[r]
        return out

    run(texts[:64])  # warm-up
    t0 = time.perf_counter()
    run(texts)
    seconds = time.perf_counter() - t0
    print(json.dumps({"mode": mode, "threads": threads, "seconds": seconds,
                      "sentences_per_s": len(texts) / seconds}))


if __name__ == "__main__":
    main()
