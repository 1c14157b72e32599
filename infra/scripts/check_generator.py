#!/usr/bin/env python3
"""Checks a converted generator (models/smollm2-135m-instruct, or --model NAME) against an
independent numpy implementation of the same model, computed straight from the GGUF's
dequantised weights:

1. full-sequence logits of the ONNX graph equal the numpy forward pass (max abs diff ≤ 1e-3);
2. one cached decoding step equals the full sequence's last position (≤ 1e-4; ≤ 2e-4 for the
   4-bit graph, whose MatMulNBits kernels sum one row and many rows in different orders:
   measured 1.0e-4 to 1.1e-4, and its greedy tokens still equal llama.cpp's);
3. a left-padded batch of two prompts equals the two single runs (≤ 1e-4);
4. greedy decoding of a chat prompt answers "The capital of France is Paris." and stops at
   <|im_end|> (a permutation or RoPE mistake gives fluent garbage, not this).

    .venv/bin/python infra/scripts/check_generator.py [--models-dir models] [--model NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from gguf import GGUFReader
from gguf.quants import dequantize
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_generator import NAME  # noqa: E402
from fetch_models import add_models_dir  # noqa: E402

PROMPT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
          "<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")


def numpy_forward(gguf: Path, ids: list[int]) -> np.ndarray:
    """Llama forward pass in numpy on the GGUF's weights, written independently of the graph:
    llama.cpp's adjacent-pair RoPE on the stored (permuted) Q/K rows, so no un-permuting."""
    r = GGUFReader(str(gguf))
    f = lambda k: r.fields[k].contents()  # noqa: E731
    d, n_layers = f("llama.embedding_length"), f("llama.block_count")
    heads, kv = f("llama.attention.head_count"), f("llama.attention.head_count_kv")
    hd, eps, base = d // heads, f("llama.attention.layer_norm_rms_epsilon"), f("llama.rope.freq_base")
    w = {t.name: dequantize(t.data, t.tensor_type).astype(np.float64).reshape(list(reversed(t.shape.tolist())))
         for t in r.tensors}
    s = len(ids)
    theta = np.outer(np.arange(s), 1.0 / base ** (np.arange(0, hd, 2) / hd))  # [S, hd/2]

    def rope(x):  # x [n, S, hd], pairs (2i, 2i+1) rotated together
        x0, x1 = x[..., 0::2], x[..., 1::2]
        c, sn = np.cos(theta), np.sin(theta)
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = x0 * c - x1 * sn, x0 * sn + x1 * c
        return out

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    x = w["token_embd.weight"][ids]
    causal = np.triu(np.full((s, s), -np.inf), 1)
    for i in range(n_layers):
        p = f"blk.{i}."
        h = rms(x, w[p + "attn_norm.weight"])
        q = (h @ w[p + "attn_q.weight"].T).reshape(s, heads, hd).transpose(1, 0, 2)
        k = (h @ w[p + "attn_k.weight"].T).reshape(s, kv, hd).transpose(1, 0, 2)
        v = (h @ w[p + "attn_v.weight"].T).reshape(s, kv, hd).transpose(1, 0, 2)
        q, k = rope(q), rope(k)
        k, v = np.repeat(k, heads // kv, 0), np.repeat(v, heads // kv, 0)
        a = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + causal
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        x = x + (a @ v).transpose(1, 0, 2).reshape(s, d) @ w[p + "attn_output.weight"].T
        h = rms(x, w[p + "ffn_norm.weight"])
        g, u = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "ffn_down.weight"].T
    return rms(x, w["output_norm.weight"]) @ w["token_embd.weight"].T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_models_dir(ap)
    ap.add_argument("--model", default=NAME)
    args = ap.parse_args()
    model_dir = args.models_dir / args.model
    print(f"check_generator: {args.model}")
    gguf = args.models_dir / ".downloads" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    meta = json.loads((model_dir / "manifest.json").read_text())["generator"]
    n_layers, kv, hd = meta["layers"], meta["kv_heads"], meta["head_dim"]
    gen = json.loads((model_dir / "generation.json").read_text())
    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(str(model_dir / "model.onnx"), so, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))

    def run(ids, mask, pos, past):
        feed = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
        for i in range(n_layers):
            feed[f"past_key_values.{i}.key"], feed[f"past_key_values.{i}.value"] = past[2 * i], past[2 * i + 1]
        out = sess.run(None, feed)
        return out[0], out[1:]

    def empty(b):
        return [np.zeros((b, kv, 0, hd), np.float32) for _ in range(2 * n_layers)]

    failures = []

    def check(name, value, limit):
        ok = value <= limit
        print(f"check_generator: {name}: {value:.2e} (limit {limit:.0e}) {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(name)

    ids = tok.encode(PROMPT).ids
    s = len(ids)
    a, m, p = np.array([ids]), np.ones((1, s), np.int64), np.arange(s)[None]
    full, _ = run(a, m, p, empty(1))
    check("ONNX vs numpy, full-sequence logits", float(np.abs(full[0] - numpy_forward(gguf, ids)).max()), 1e-3)
    _, past = run(a[:, :-1], m[:, :-1], p[:, :-1], empty(1))
    step, _ = run(a[:, -1:], m, p[:, -1:], past)
    four_bit = "q4" in json.loads((model_dir / "manifest.json").read_text())["source"].get("dtype", "")
    check("cached step vs full sequence", float(np.abs(step[0, -1] - full[0, -1]).max()),
          2e-4 if four_bit else 1e-4)

    other = tok.encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n").ids
    t = max(len(ids), len(other))
    batch, mask, pos = np.full((2, t), gen["pad_token_id"]), np.zeros((2, t), np.int64), np.zeros((2, t), np.int64)
    for row, x in enumerate([ids, other]):
        batch[row, t - len(x):], mask[row, t - len(x):], pos[row, t - len(x):] = x, 1, np.arange(len(x))
    both, _ = run(batch, mask, pos, empty(2))
    alone, _ = run(np.array([other]), np.ones((1, len(other)), np.int64), np.arange(len(other))[None], empty(1))
    check("left-padded batch vs single runs",
          float(max(np.abs(both[1, -1] - alone[0, -1]).max(), np.abs(both[0, -1] - full[0, -1]).max())), 1e-4)

    logits, past = run(a, m, p, empty(1))
    out = [int(logits[0, -1].argmax())]
    while out[-1] != gen["eos_token_id"] and len(out) < 32:
        n = s + len(out) - 1
        logits, past = run(np.array([[out[-1]]]), np.ones((1, n + 1), np.int64), np.array([[n]]), past)
        out.append(int(logits[0, -1].argmax()))
    answer = tok.decode(out, skip_special_tokens=True)
    print(f"check_generator: greedy answer {answer!r}")
    if answer.strip() != "The capital of France is Paris." or out[-1] != gen["eos_token_id"]:
        failures.append("greedy answer")
    if failures:
        sys.exit(f"check_generator: failed: {', '.join(failures)}")


if __name__ == "__main__":
    main()
