#!/usr/bin/env python3
"""Python baseline for the generator bench: the same ONNX, the same prompt, greedy decoding
with the KV cache in a plain onnxruntime loop (outputs fed back as inputs).

    python_generator_baseline.py MODEL_DIR PROMPT_FILE NEW_TOKENS THREADS

Prints one JSON line: {"prefill_s", "decode_s", "new_tokens", "prompt_tokens", "peak_rss_mb"}.
"""

import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def main() -> None:
    model_dir, prompt_file, new_tokens, threads = sys.argv[1:5]
    new_tokens, threads = int(new_tokens), int(threads)
    meta = json.load(open(f"{model_dir}/manifest.json"))["generator"]
    layers, kv, hd = meta["layers"], meta["kv_heads"], meta["head_dim"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(f"{model_dir}/model.onnx", so, providers=["CPUExecutionProvider"])
    ids = Tokenizer.from_file(f"{model_dir}/tokenizer.json").encode(open(prompt_file).read()).ids

    def run(tokens, mask_len, positions, past):
        feed = {"input_ids": np.array([tokens], np.int64),
                "attention_mask": np.ones((1, mask_len), np.int64),
                "position_ids": np.array([positions], np.int64)}
        for i in range(layers):
            feed[f"past_key_values.{i}.key"], feed[f"past_key_values.{i}.value"] = past[2 * i], past[2 * i + 1]
        out = sess.run(None, feed)
        return out[0][0, -1], out[1:]

    empty = [np.zeros((1, kv, 0, hd), np.float32) for _ in range(2 * layers)]
    run(ids, len(ids), list(range(len(ids))), empty)  # warm-up
    t0 = time.perf_counter()
    logits, past = run(ids, len(ids), list(range(len(ids))), empty)
    prefill = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = len(ids)
    for _ in range(new_tokens):
        token = int(logits.argmax())
        logits, past = run([token], n + 1, [n], past)
        n += 1
    decode = time.perf_counter() - t0
    print(json.dumps({"prefill_s": prefill, "decode_s": decode, "new_tokens": new_tokens,
                      "prompt_tokens": len(ids),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
