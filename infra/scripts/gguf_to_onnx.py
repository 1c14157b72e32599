#!/usr/bin/env python3
"""Convert a Llama- or Qwen2-architecture GGUF into an ONNX decoder with a KV cache, in the
layout Hugging Face optimum exports (so the Rust generator also runs optimum exports as-is):

    inputs   input_ids [B,S] int64, attention_mask [B,P+S] int64, position_ids [B,S] int64,
             past_key_values.{i}.key / .value [B, kv_heads, P, head_dim] float32
    outputs  logits [B,S,vocab] float32, present.{i}.key / .value [B, kv_heads, P+S, head_dim]

Weights are dequantised to float32 (`--weights float32`), or, with `--weights q4`, every Q4_1
matrix keeps its own 4-bit blocks in a MatMulNBits node (com.microsoft): Q4_1 stores
w = d*q + m per block of 32; MatMulNBits takes q with scale d and zero point 0, and the m part
is added exactly as (blockwise sums of x) @ m (a fractional zero point would be slow in
onnxruntime 1.31). Both give the model's own values; re-quantising would change the output.
A tied LM head (no `output.weight`) reads the embedding through Gemm(transB=1) instead of a
second, transposed copy.
`llama` GGUF files store Q and K rows permuted for llama.cpp's RoPE; they are un-permuted so
the graph uses the rotate-half RoPE of the original model. Qwen2 files are not permuted and
add q/k/v biases. Also writes tokenizer.json (byte-level BPE from the GGUF's vocab, merges and
pre-tokenizer type), the chat template, and a manifest with every file's sha256.

No PyTorch: numpy, gguf, onnx, tokenizers.

    python gguf_to_onnx.py MODEL.gguf OUT_DIR [--name NAME] [--weights float32|q4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_models import sha256  # noqa: E402

OPSET = 18


def field(reader: GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def load_weights(reader: GGUFReader) -> dict[str, np.ndarray]:
    out = {}
    for t in reader.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float32)
        out[t.name] = a.reshape(list(reversed(t.shape.tolist())))
    return out


def q4_1_blocks(reader: GGUFReader) -> dict[str, np.ndarray]:
    """The raw Q4_1 tensors: name -> uint8 [rows, blocks * 20]."""
    return {t.name: np.asarray(t.data) for t in reader.tensors
            if t.tensor_type == GGMLQuantizationType.Q4_1}


def split_q4_1(raw: np.ndarray):
    """Q4_1 rows [N, nb*20] (per block: d f16, m f16, 16 bytes holding q[0..16] in the low
    nibbles and q[16..32] in the high ones) -> MatMulNBits' packed q [N, nb, 16] (element 2i
    in the low nibble, 2i+1 in the high one), scales d [N*nb] and mins m [N, nb]."""
    n = raw.shape[0]
    blocks = raw.reshape(n, -1, 20)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    qs = blocks[..., 4:20]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # [N, nb, 32] in element order
    packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    return packed, d.reshape(-1), m


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's convert-time permutation of Q/K rows (rows interleaved per pair)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def const(self, values, dtype=np.int64) -> str:
        return self.init(self.name("c"), np.array(values, dtype=dtype))

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type), **attrs))
        return outs[0] if n_out == 1 else outs


def build(reader: GGUFReader, weights: dict[str, np.ndarray],
          q4: dict[str, np.ndarray] | None = None) -> onnx.ModelProto:
    arch = field(reader, "general.architecture")
    if arch not in ("llama", "qwen2"):
        sys.exit(f"gguf_to_onnx: architecture {arch!r} is not supported (llama, qwen2)")
    d = int(field(reader, f"{arch}.embedding_length"))
    layers = int(field(reader, f"{arch}.block_count"))
    heads = int(field(reader, f"{arch}.attention.head_count"))
    kv_heads = int(field(reader, f"{arch}.attention.head_count_kv", heads))
    head_dim = d // heads
    eps = float(field(reader, f"{arch}.attention.layer_norm_rms_epsilon"))
    base = float(field(reader, f"{arch}.rope.freq_base", 10000.0))
    ctx = int(field(reader, f"{arch}.context_length"))
    embed = weights["token_embd.weight"]
    vocab = embed.shape[0]

    g = Graph()
    g.init("embed", embed)
    lm_head = weights.get("output.weight")
    inv = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    freqs = np.outer(np.arange(ctx, dtype=np.float64), inv)
    emb = np.concatenate([freqs, freqs], axis=-1)
    g.init("rope_cos", np.cos(emb).astype(np.float32))
    g.init("rope_sin", np.sin(emb).astype(np.float32))

    x = g.op("Gather", ["embed", "input_ids"])  # [B,S,D]
    cos = g.op("Unsqueeze", [g.op("Gather", ["rope_cos", "position_ids"]), g.const([1])])  # [B,1,S,hd]
    sin = g.op("Unsqueeze", [g.op("Gather", ["rope_sin", "position_ids"]), g.const([1])])

    # Additive mask [B,1,S,T]: key j is visible to query i when j <= P + i and not padding.
    s_len = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const(1)], axis=0)
    t_len = g.op("Gather", [g.op("Shape", ["attention_mask"]), g.const(1)], axis=0)
    p_len = g.op("Sub", [t_len, s_len])
    rows = g.op("Add", [g.op("Range", [g.const(0), s_len, g.const(1)]), p_len])  # [S]
    cols = g.op("Range", [g.const(0), t_len, g.const(1)])  # [T]
    causal = g.op("LessOrEqual", [g.op("Unsqueeze", [cols, g.const([0])]),
                                  g.op("Unsqueeze", [rows, g.const([1])])])  # [S,T]
    pad = g.op("Equal", [g.op("Unsqueeze", ["attention_mask", g.const([1, 2])]), g.const(1)])  # [B,1,1,T]
    allowed = g.op("And", [pad, causal])  # [B,1,S,T]
    bias = g.op("Where", [allowed, g.const(0.0, np.float32), g.const(-1e9, np.float32)])

    def rms(h, w_name):
        w = g.init(g.name("norm"), weights[w_name])
        var = g.op("ReduceMean", [g.op("Mul", [h, h]), g.const([-1])], keepdims=1)
        return g.op("Mul", [g.op("Div", [h, g.op("Sqrt", [g.op("Add", [var, g.const(eps, np.float32)])])]), w])

    def linear(h, w_name, b_name=None, permute_heads=None):
        raw = (q4 or {}).get(w_name)
        n, k = weights[w_name].shape
        if raw is None or k % 32:
            w = g.init(g.name("w"), np.ascontiguousarray(weights[w_name].T))
            y = g.op("MatMul", [h, w])
        else:
            if permute_heads:
                # The same row order the float path gets from unpermute().
                raw = raw[unpermute(np.arange(n)[:, None], permute_heads)[:, 0]]
            packed, scales, mins = split_q4_1(raw)
            nb = k // 32
            y = g.op("MatMulNBits", [h, g.init(g.name("q4"), packed), g.init(g.name("scale"), scales),
                                     g.init(g.name("zp"), np.zeros(n * ((nb + 1) // 2), np.uint8))],
                     domain="com.microsoft", K=k, N=n, bits=4, block_size=32)
            if np.any(mins):
                sums = g.op("ReduceSum", [g.op("Reshape", [h, g.const([0, 0, nb, 32])]), g.const([-1])],
                            keepdims=0)  # [B,S,nb]
                y = g.op("Add", [y, g.op("MatMul", [sums, g.init(g.name("min"), np.ascontiguousarray(mins.T))])])
        if b_name and b_name in weights:
            y = g.op("Add", [y, g.init(g.name("b"), weights[b_name])])
        return y

    def heads_first(h, n):  # [B,S,n*hd] -> [B,n,S,hd]
        return g.op("Transpose", [g.op("Reshape", [h, g.const([0, 0, n, head_dim])])], perm=[0, 2, 1, 3])

    def rope(h):
        half = head_dim // 2
        x1 = g.op("Slice", [h, g.const([0]), g.const([half]), g.const([3])])
        x2 = g.op("Slice", [h, g.const([half]), g.const([head_dim]), g.const([3])])
        rot = g.op("Concat", [g.op("Neg", [x2]), x1], axis=3)
        return g.op("Add", [g.op("Mul", [h, cos]), g.op("Mul", [rot, sin])])

    group = heads // kv_heads
    scale = g.const(1.0 / np.sqrt(head_dim), np.float32)
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"]),
    ]
    outputs = []
    for i in range(layers):
        p = f"blk.{i}."
        wq, wk = weights[p + "attn_q.weight"], weights[p + "attn_k.weight"]
        if arch == "llama":
            weights[p + "attn_q.weight"] = unpermute(wq, heads)
            weights[p + "attn_k.weight"] = unpermute(wk, kv_heads)
        h = rms(x, p + "attn_norm.weight")
        permuted = arch == "llama"
        q = rope(heads_first(linear(h, p + "attn_q.weight", p + "attn_q.bias",
                                    heads if permuted else None), heads))
        k = rope(heads_first(linear(h, p + "attn_k.weight", p + "attn_k.bias",
                                    kv_heads if permuted else None), kv_heads))
        v = heads_first(linear(h, p + "attn_v.weight", p + "attn_v.bias"), kv_heads)
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(
                f"past_key_values.{i}.{kind}", TensorProto.FLOAT, ["batch", kv_heads, "past", head_dim]))
        k_all = g.op("Concat", [f"past_key_values.{i}.key", k], axis=2)
        v_all = g.op("Concat", [f"past_key_values.{i}.value", v], axis=2)
        g.nodes.append(helper.make_node("Identity", [k_all], [f"present.{i}.key"]))
        g.nodes.append(helper.make_node("Identity", [v_all], [f"present.{i}.value"]))
        for kind in ("key", "value"):
            outputs.append(helper.make_tensor_value_info(
                f"present.{i}.{kind}", TensorProto.FLOAT, ["batch", kv_heads, "total", head_dim]))

        def repeat(t):  # [B,kv,T,hd] -> [B,heads,T,hd]
            if group == 1:
                return t
            e = g.op("Expand", [g.op("Unsqueeze", [t, g.const([2])]), g.const([1, 1, group, 1, 1])])
            return g.op("Reshape", [e, g.const([0, heads, -1, head_dim])])

        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [repeat(k_all)], perm=[0, 1, 3, 2])]),
                                           scale]), bias])
        att = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), repeat(v_all)])  # [B,H,S,hd]
        att = g.op("Reshape", [g.op("Transpose", [att], perm=[0, 2, 1, 3]), g.const([0, 0, d])])
        x = g.op("Add", [x, linear(att, p + "attn_output.weight")])
        h = rms(x, p + "ffn_norm.weight")
        gate = linear(h, p + "ffn_gate.weight")
        up = linear(h, p + "ffn_up.weight")
        act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up])
        x = g.op("Add", [x, linear(act, p + "ffn_down.weight")])
    x = rms(x, "output_norm.weight")
    if lm_head is not None:
        g.nodes.append(helper.make_node("Identity", [linear(x, "output.weight")], ["logits"]))
    else:
        # Tied head: logits = x @ embed^T through Gemm(transB=1) on the embedding itself.
        flat = g.op("Reshape", [x, g.const([-1, d])])
        out_shape = g.op("Concat", [g.op("Slice", [g.op("Shape", [x]), g.const([0]), g.const([2])]),
                                    g.const([vocab])], axis=0)
        g.nodes.append(helper.make_node("Reshape", [g.op("Gemm", [flat, "embed"], transB=1), out_shape],
                                        ["logits"]))
    outputs.insert(0, helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab]))
    graph = helper.make_graph(g.nodes, "decoder", inputs, outputs, g.inits)
    opsets = [helper.make_opsetid("", OPSET)]
    if q4:
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    model = helper.make_model(graph, opset_imports=opsets,
                              producer_name="shopmind gguf_to_onnx")
    model.ir_version = 10
    meta = {"layers": layers, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
            "vocab": vocab, "context_length": ctx, "architecture": arch}
    return model, meta


# Pre-tokenizer regexes by GGUF `tokenizer.ggml.pre`, as llama.cpp splits them.
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def build_tokenizer(reader: GGUFReader):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    if field(reader, "tokenizer.ggml.model") != "gpt2":
        sys.exit("gguf_to_onnx: only byte-level BPE (tokenizer.ggml.model = gpt2) vocabularies are supported")
    tokens = [t.decode("utf-8", "replace") if isinstance(t, bytes) else t
              for t in field(reader, "tokenizer.ggml.tokens")]
    merges = [tuple(m.split(" ", 1)) for m in field(reader, "tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                               fuse_unk=False, byte_fallback=False))
    pre = field(reader, "tokenizer.ggml.pre", "default")
    if pre in ("smollm", "starcoder", "refact", "codeshell"):
        # Each digit on its own, then GPT-2's split.
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif pre == "qwen2":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    elif pre in ("default", "gpt2"):
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        sys.exit(f"gguf_to_onnx: pre-tokenizer {pre!r} is not supported yet")
    tok.decoder = decoders.ByteLevel()
    types = field(reader, "tokenizer.ggml.token_type")
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i, t in enumerate(types) if t == 3])
    return tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gguf", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--name", default=None)
    ap.add_argument("--weights", choices=["float32", "q4"], default="float32",
                    help="q4: keep Q4_1 matrices as 4-bit MatMulNBits blocks (exact, ~6x smaller)")
    args = ap.parse_args()
    reader = GGUFReader(str(args.gguf))
    weights = load_weights(reader)
    q4 = q4_1_blocks(reader) if args.weights == "q4" else None
    model, meta = build(reader, weights, q4)
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / ".model.onnx.tmp"
    onnx.save_model(model, str(tmp))
    os.replace(tmp, args.out / "model.onnx")
    build_tokenizer(reader).save(str(args.out / "tokenizer.json"))
    template = field(reader, "tokenizer.chat_template")
    config = {
        "chat_template": template,
        "bos_token_id": int(field(reader, "tokenizer.ggml.bos_token_id", -1)),
        "eos_token_id": int(field(reader, "tokenizer.ggml.eos_token_id", -1)),
        "pad_token_id": int(field(reader, "tokenizer.ggml.padding_token_id", -1)),
        "add_bos_token": bool(field(reader, "tokenizer.ggml.add_bos_token", False)),
    }
    (args.out / "generation.json").write_text(json.dumps(config, indent=2) + "\n")
    files = ["model.onnx", "tokenizer.json", "generation.json"]
    manifest = {
        "name": args.name or args.gguf.stem.lower(),
        "version": "1.0.0",
        "kind": "generator",
        "files": [{"path": f, "sha256": sha256(args.out / f), "bytes": (args.out / f).stat().st_size}
                  for f in files],
        "generator": meta,
        "source": {"gguf": args.gguf.name, "gguf_sha256": sha256(args.gguf),
                   "converted_by": "infra/scripts/gguf_to_onnx.py",
                   "dtype": "q4_1 blocks in MatMulNBits, float32 otherwise" if q4 else "float32"},
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"gguf_to_onnx: wrote {args.out} ({meta['layers']} layers, vocab {meta['vocab']})")


if __name__ == "__main__":
    main()
