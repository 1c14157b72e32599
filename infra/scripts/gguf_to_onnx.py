#!/usr/bin/env python3
"""Convert a Llama- or Qwen2-architecture GGUF into an ONNX decoder with a KV cache, in the
layout Hugging Face optimum exports (so the Rust generator also runs optimum exports as-is):

    inputs   input_ids [B,S] int64, attention_mask [B,P+S] int64, position_ids [B,S] int64,
             past_key_values.{i}.key / .value [B, kv_heads, P, head_dim] float32
    outputs  logits [B,1,vocab] float32 (the last position only: what decoding uses; a
             prompt of 300 tokens would otherwise cost 300 LM-head rows),
             present.{i}.key / .value [B, kv_heads, P+S, head_dim]

Weights (`--weights gguf`, the default) keep the GGUF's own quantised blocks, exactly, in
MatMulNBits (com.microsoft): Q4_0/Q4_1/Q4_K as 4-bit, Q5_0/Q5_1/Q5_K/Q6_K/Q8_0 as 8-bit codes
(Q6_K with its 16-value blocks), each with its own scales and zero point; the types with a
per-block minimum (Q4_1, Q5_1, Q4_K, Q5_K) add it exactly as (blockwise sums of x) @ min —
llama.cpp's own bsums trick. See gguf_blocks.py. F16/BF16/F32 matrices stay float.
`--weights float32` dequantises everything (small models and exactness tests only).
The token embedding stays quantised too: the graph gathers the prompt's rows of codes and
scales and dequantises just those (a float copy of Qwen2.5-1.5B's table would be 933 MB).
A tied LM head reads the same codes through MatMulNBits.

Fused ONNX Runtime ops where they pay: SimplifiedLayerNormalization and
SkipSimplifiedLayerNormalization (residual add + RMSNorm), RotaryEmbedding; grouped-query
attention multiplies each KV head with its query group instead of copying the cache per head.
`--accuracy-level 4` lets MatMulNBits quantise activations to int8 (AVX-512 VNNI / AVX2
kernels; changes logits by ~1e-2 relative, like llama.cpp's own Q8 activations); 0 keeps fp32
activations (exact to the GGUF's weights).

`llama` GGUF files store Q and K rows permuted for llama.cpp's RoPE; they are un-permuted so
the graph uses the rotate-half RoPE of the original model. Qwen2 files are not permuted and
add q/k/v biases. Any other architecture, tensor type or pre-tokenizer stops the conversion
with a message naming it; a sample of every quantised tensor is compared with gguf-py's own
dequantisation before anything is written. Also writes tokenizer.json (byte-level BPE from
the GGUF's vocab, merges and pre-tokenizer type), the chat template, and a manifest with
every file's sha256. Weights go to model.onnx.data beside model.onnx (ONNX external data).

No PyTorch: numpy, gguf, onnx, tokenizers.

    python gguf_to_onnx.py MODEL.gguf OUT_DIR [--name NAME] [--weights gguf|float32]
                           [--accuracy-level 0|4] [--max-context N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
from gguf import GGMLQuantizationType as T, GGUFReader
from gguf.quants import dequantize
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_models import sha256  # noqa: E402
from gguf_blocks import LAYOUT, SUPPORTED, Blocks, UnsupportedTensor, decode, pack_matmulnbits  # noqa: E402

OPSET = 18
ARCHITECTURES = ("llama", "qwen2")
DATA_FILE = "model.onnx.data"


def fail(msg: str) -> None:
    sys.exit(f"gguf_to_onnx: {msg}")


def field(reader: GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def need(reader: GGUFReader, key: str):
    """A metadata value the model cannot be built without."""
    value = field(reader, key)
    if value is None:
        fail(f"the GGUF has no {key!r}: not a complete model file")
    return value


class Weights:
    """The GGUF's tensors by name, decoded on demand."""

    def __init__(self, reader: GGUFReader):
        self.t = {t.name: t for t in reader.tensors}
        for t in reader.tensors:
            if t.tensor_type not in SUPPORTED:
                fail(f"tensor {t.name} has type {t.tensor_type.name}; supported: "
                     + ", ".join(x.name for x in SUPPORTED))

    def __contains__(self, name: str) -> bool:
        return name in self.t

    def shape(self, name: str) -> tuple[int, ...]:  # numpy order: [rows, cols]
        return tuple(reversed([int(x) for x in self.t[name].shape]))

    def quantised(self, name: str) -> bool:
        return self.t[name].tensor_type in LAYOUT

    def bits(self, name: str) -> int:
        """MatMulNBits storage width of a quantised matrix (gguf_blocks' table)."""
        return 4 if self.t[name].tensor_type in (T.Q4_0, T.Q4_1, T.Q4_K) else 8

    def floats(self, name: str) -> np.ndarray:
        t = self.t[name]
        if t.tensor_type in LAYOUT:
            return self.blocks(name).dequantize()
        return dequantize(t.data, t.tensor_type).astype(np.float32).reshape(self.shape(name))

    def blocks(self, name: str) -> Blocks:
        t = self.t[name]
        rows, cols = self.shape(name)
        raw = np.asarray(t.data).reshape(rows, -1)
        try:
            blk = decode(raw, t.tensor_type, cols)
        except UnsupportedTensor as e:
            fail(f"tensor {name}: {e}")
        # Never a wrong model: a sample of rows must equal gguf-py's dequantisation exactly.
        sample = np.unique(np.linspace(0, rows - 1, min(rows, 16)).astype(int))
        ref = dequantize(raw[sample], t.tensor_type).reshape(len(sample), cols)
        if not np.array_equal(blk.rows(sample).dequantize(), ref):
            fail(f"decoding {name} ({t.tensor_type.name}) disagrees with gguf-py; not converting")
        return blk


def unpermute_rows(n_rows: int, n_head: int) -> np.ndarray:
    """Row order that undoes llama.cpp's convert-time Q/K permutation (pairs interleaved)."""
    idx = np.arange(n_rows)
    return idx.reshape(n_head, n_rows // n_head // 2, 2).swapaxes(1, 2).reshape(-1)


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0
        self.ms = False

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(self, values, dtype=np.int64) -> str:
        return self.init(self.name("c"), np.array(values, dtype=dtype))

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "", **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        if domain:
            self.ms = True
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type),
                                           domain=domain or None, **attrs))
        return outs[0] if n_out == 1 else outs


def build(reader: GGUFReader, w: Weights, quantised: bool, accuracy_level: int, max_context: int):
    arch = need(reader, "general.architecture")
    if arch not in ARCHITECTURES:
        fail(f"architecture {arch!r} is not supported (supported: {', '.join(ARCHITECTURES)})")
    d = int(need(reader, f"{arch}.embedding_length"))
    layers = int(need(reader, f"{arch}.block_count"))
    heads = int(need(reader, f"{arch}.attention.head_count"))
    kv_heads = int(field(reader, f"{arch}.attention.head_count_kv", heads))
    head_dim = d // heads
    eps = float(need(reader, f"{arch}.attention.layer_norm_rms_epsilon"))
    base = float(field(reader, f"{arch}.rope.freq_base", 10000.0))
    ctx = min(int(need(reader, f"{arch}.context_length")), max_context)
    if f"{arch}.rope.scaling.type" in reader.fields and field(reader, f"{arch}.rope.scaling.type") not in ("none",):
        fail(f"RoPE scaling {field(reader, f'{arch}.rope.scaling.type')!r} is not supported")
    vocab = w.shape("token_embd.weight")[0]
    permuted = arch == "llama"

    g = Graph()
    inv = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    freqs = np.outer(np.arange(ctx, dtype=np.float64), inv)  # [ctx, hd/2]
    g.init("rope_cos", np.cos(freqs).astype(np.float32))
    g.init("rope_sin", np.sin(freqs).astype(np.float32))

    packed_cache: dict[str, tuple] = {}

    def packed(name: str, rows: np.ndarray | None = None):
        """MatMulNBits initializers of a quantised matrix (shared by the tied head and the
        embedding lookup)."""
        if name not in packed_cache:
            blk = w.blocks(name)
            if rows is not None:
                blk = blk.rows(rows)
            b, s, zp = pack_matmulnbits(blk)
            names = (g.init(g.name("q"), b), g.init(g.name("scale"), s),
                     None if zp is None else g.init(g.name("zp"), zp))
            mins = None if blk.min is None else g.init(g.name("min"), blk.min.T)  # [nb, N]
            packed_cache[name] = (blk, names, mins)
        return packed_cache[name]

    def as_blocks(name) -> bool:
        """Whether a matrix goes into MatMulNBits. onnxruntime 1.31 has no fp32-activation
        kernel for 8-bit MatMulNBits: at accuracy level 0 it dequantises the whole matrix on
        every call (91 ms instead of 0.76 ms for SmolLM2's 49,152 x 576 head), so an exact
        graph keeps 8-bit matrices as float (exact too) and only 4-bit ones as blocks."""
        if not (quantised and w.quantised(name)):
            return False
        return accuracy_level != 0 or w.bits(name) == 4

    def linear(h, name, bias=None, rows=None):
        n, k = w.shape(name)
        if as_blocks(name):
            blk, (b, s, zp), mins = packed(name, rows)
            ins = [h, b, s] + ([zp] if zp else [])
            y = g.op("MatMulNBits", ins, domain="com.microsoft", K=k, N=n, bits=blk.bits,
                     block_size=blk.block, accuracy_level=accuracy_level)
            if mins is not None:
                nb = k // blk.block
                sums = g.op("ReduceSum", [g.op("Reshape", [h, g.const([0, 0, nb, blk.block])]), g.const([-1])],
                            keepdims=0)  # [B,S,nb]
                y = g.op("Add", [y, g.op("MatMul", [sums, mins])])
        else:
            m = w.floats(name)
            if rows is not None:
                m = m[rows]
            y = g.op("MatMul", [h, g.init(g.name("w"), m.T)])
        if bias and bias in w:
            b = w.floats(bias)
            if rows is not None:
                b = b[rows]
            y = g.op("Add", [y, g.init(g.name("b"), b)])
        return y

    # Token embedding: gather the rows, dequantise only those.
    tied = "output.weight" not in w
    if quantised and w.quantised("token_embd.weight"):
        if tied and as_blocks("token_embd.weight"):
            blk, (b, _, _), _ = packed("token_embd.weight")
        else:  # only the codes; scales and minimums are gathered from [V, nb] tables below
            blk = w.blocks("token_embd.weight")
            b = g.init(g.name("embed_q"), pack_matmulnbits(blk)[0])
        nb, bs = blk.q.shape[1], blk.block
        codes = g.op("Gather", [b, "input_ids"], axis=0)  # [B,S,nb,blob]
        if blk.bits == 4:
            lo = g.op("BitwiseAnd", [codes, g.const(15, np.uint8)])
            hi = g.op("BitShift", [codes, g.const(4, np.uint8)], direction="RIGHT")
            codes = g.op("Reshape", [g.op("Concat", [g.op("Unsqueeze", [lo, g.const([-1])]),
                                                     g.op("Unsqueeze", [hi, g.const([-1])])], axis=-1),
                                     g.const([0, 0, nb, bs])])
        x = g.op("Sub", [g.op("Cast", [codes], to=TensorProto.FLOAT), g.const(float(blk.zp), np.float32)])
        scale2d = g.init(g.name("embed_scale"), blk.scale)  # [V, nb]
        x = g.op("Mul", [x, g.op("Unsqueeze", [g.op("Gather", [scale2d, "input_ids"], axis=0), g.const([-1])])])
        if blk.min is not None:
            min2d = g.init(g.name("embed_min"), blk.min)
            x = g.op("Add", [x, g.op("Unsqueeze", [g.op("Gather", [min2d, "input_ids"], axis=0), g.const([-1])])])
        x = g.op("Reshape", [x, g.const([0, 0, d])])
        # A tied head the blocks cannot serve (see as_blocks) reads a float copy.
        embed_float = None if not tied or as_blocks("token_embd.weight") else \
            g.init("embed", w.floats("token_embd.weight"))
    else:
        embed_float = g.init("embed", w.floats("token_embd.weight"))
        x = g.op("Gather", [embed_float, "input_ids"])  # [B,S,D]

    # Additive mask [B,1,S,T]: key j is visible to query i when j <= P + i and not padding.
    s_len = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const(1)], axis=0)
    t_len = g.op("Gather", [g.op("Shape", ["attention_mask"]), g.const(1)], axis=0)
    p_len = g.op("Sub", [t_len, s_len])
    rows_idx = g.op("Add", [g.op("Range", [g.const(0), s_len, g.const(1)]), p_len])  # [S]
    cols_idx = g.op("Range", [g.const(0), t_len, g.const(1)])  # [T]
    causal = g.op("LessOrEqual", [g.op("Unsqueeze", [cols_idx, g.const([0])]),
                                  g.op("Unsqueeze", [rows_idx, g.const([1])])])  # [S,T]
    pad = g.op("Equal", [g.op("Unsqueeze", ["attention_mask", g.const([1, 2])]), g.const(1)])  # [B,1,1,T]
    bias = g.op("Where", [g.op("And", [pad, causal]), g.const(0.0, np.float32), g.const(-1e9, np.float32)])
    group = heads // kv_heads
    if group > 1:  # queries are grouped per KV head as [group, S]: the mask repeats per group
        bias = g.op("Concat", [bias] * group, axis=2)  # [B,1,group*S,T]

    q_scale = g.const(1.0 / np.sqrt(head_dim), np.float32)
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"]),
    ]
    outputs = []

    def rope(h, n):  # [B,S,n*hd] rotate-half RoPE
        return g.op("RotaryEmbedding", [h, "position_ids", "rope_cos", "rope_sin"], domain="com.microsoft",
                    num_heads=n, interleaved=0)

    def norm(h, name):
        return g.op("SimplifiedLayerNormalization", [h, g.init(g.name("norm"), w.floats(name))],
                    axis=-1, epsilon=eps, stash_type=1)

    def add_norm(h, skip, name):
        """(norm(h + skip), h + skip) in one SkipSimplifiedLayerNormalization."""
        out = [g.name("skipnorm"), "", "", g.name("residual")]
        g.nodes.append(helper.make_node("SkipSimplifiedLayerNormalization",
                                        [h, skip, g.init(g.name("norm"), w.floats(name))], out,
                                        name=g.name("SkipSimplifiedLayerNormalization"),
                                        domain="com.microsoft", epsilon=eps))
        g.ms = True
        return out[0], out[3]

    h = norm(x, "blk.0.attn_norm.weight")
    for i in range(layers):
        p = f"blk.{i}."
        q_rows = unpermute_rows(heads * head_dim, heads) if permuted else None
        k_rows = unpermute_rows(kv_heads * head_dim, kv_heads) if permuted else None
        q = rope(linear(h, p + "attn_q.weight", p + "attn_q.bias", q_rows), heads)
        k = rope(linear(h, p + "attn_k.weight", p + "attn_k.bias", k_rows), kv_heads)
        v = linear(h, p + "attn_v.weight", p + "attn_v.bias")
        # q [B,S,H*hd] -> [B,kv,group*S,hd]: head h = kv_head * group + g, as repeat_kv.
        q = g.op("Transpose", [g.op("Reshape", [g.op("Mul", [q, q_scale]), g.const([0, 0, kv_heads, group, head_dim])])],
                 perm=[0, 2, 3, 1, 4])
        q = g.op("Reshape", [q, g.const([0, kv_heads, -1, head_dim])])
        k = g.op("Transpose", [g.op("Reshape", [k, g.const([0, 0, kv_heads, head_dim])])], perm=[0, 2, 1, 3])
        v = g.op("Transpose", [g.op("Reshape", [v, g.const([0, 0, kv_heads, head_dim])])], perm=[0, 2, 1, 3])
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(
                f"past_key_values.{i}.{kind}", TensorProto.FLOAT, ["batch", kv_heads, "past", head_dim]))
        # The cache grows by one Concat per layer whose output *is* the present value (an
        # Identity after it copied the whole cache again: 6% of a decoding step).
        k_all, v_all = f"present.{i}.key", f"present.{i}.value"
        g.nodes.append(helper.make_node("Concat", [f"past_key_values.{i}.key", k], [k_all], axis=2,
                                        name=g.name("Concat")))
        g.nodes.append(helper.make_node("Concat", [f"past_key_values.{i}.value", v], [v_all], axis=2,
                                        name=g.name("Concat")))
        for kind in ("key", "value"):
            outputs.append(helper.make_tensor_value_info(
                f"present.{i}.{kind}", TensorProto.FLOAT, ["batch", kv_heads, "total", head_dim]))
        scores = g.op("Add", [g.op("MatMul", [q, g.op("Transpose", [k_all], perm=[0, 1, 3, 2])]), bias])
        att = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v_all])  # [B,kv,group*S,hd]
        att = g.op("Reshape", [att, g.const([0, kv_heads, group, -1, head_dim])])
        att = g.op("Reshape", [g.op("Transpose", [att], perm=[0, 3, 1, 2, 4]), g.const([0, 0, d])])
        h, x = add_norm(linear(att, p + "attn_output.weight"), x, p + "ffn_norm.weight")
        gate = linear(h, p + "ffn_gate.weight")
        up = linear(h, p + "ffn_up.weight")
        act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up])
        down = linear(act, p + "ffn_down.weight")
        if i + 1 < layers:
            h, x = add_norm(down, x, f"blk.{i + 1}.attn_norm.weight")
        else:
            x = g.op("Add", [x, down])
    # The last position only: [B,1,D].
    x = norm(g.op("Slice", [x, g.const([-1]), g.const([2**62]), g.const([1])]), "output_norm.weight")
    if not tied:
        logits = linear(x, "output.weight")
    elif embed_float is None:
        logits = linear(x, "token_embd.weight")  # tied: the embedding's own MatMulNBits codes
    else:
        logits = g.op("Reshape", [g.op("Gemm", [g.op("Reshape", [x, g.const([-1, d])]), embed_float], transB=1),
                                  g.const([-1, 1, vocab])])
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
    outputs.insert(0, helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1, vocab]))
    graph = helper.make_graph(g.nodes, "decoder", inputs, outputs, g.inits)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="shopmind gguf_to_onnx")
    model.ir_version = 10
    types = sorted({t.tensor_type.name for t in w.t.values() if len(t.shape) == 2})
    meta = {"layers": layers, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
            "vocab": vocab, "context_length": ctx, "architecture": arch,
            "logits": "last_position", "gguf_types": types,
            "accuracy_level": accuracy_level if quantised else None}
    return model, meta


# Pre-tokenizer regexes by GGUF `tokenizer.ggml.pre`, as llama.cpp splits them.
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def build_tokenizer(reader: GGUFReader):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    if field(reader, "tokenizer.ggml.model") != "gpt2":
        fail("only byte-level BPE (tokenizer.ggml.model = gpt2) vocabularies are supported")
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
        fail(f"pre-tokenizer {pre!r} is not supported (smollm, starcoder, qwen2, gpt2)")
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
    ap.add_argument("--weights", choices=["gguf", "q4", "float32"], default="gguf",
                    help="gguf: keep the GGUF's quantised blocks (exact; q4 is an old name for it); "
                         "float32: dequantise everything")
    ap.add_argument("--accuracy-level", type=int, choices=[0, 4], default=4,
                    help="MatMulNBits activations: 4 = int8 (fast), 0 = fp32 (exact)")
    ap.add_argument("--max-context", type=int, default=32768,
                    help="positions the RoPE tables cover (the GGUF's context length if smaller)")
    args = ap.parse_args()
    quantised = args.weights != "float32"
    reader = GGUFReader(str(args.gguf))
    weights = Weights(reader)
    model, meta = build(reader, weights, quantised, args.accuracy_level, args.max_context)
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.onnx", DATA_FILE):
        (args.out / stale).unlink(missing_ok=True)
    tmp = args.out / ".model.onnx.tmp"
    onnx.save_model(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=DATA_FILE, size_threshold=1024)
    os.replace(tmp, args.out / "model.onnx")
    os.chmod(args.out / DATA_FILE, 0o644)
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
    files = ["model.onnx", DATA_FILE, "tokenizer.json", "generation.json"]
    manifest = {
        "name": args.name or args.gguf.stem.lower(),
        "version": "1.0.0",
        "kind": "generator",
        "files": [{"path": f, "sha256": sha256(args.out / f), "bytes": (args.out / f).stat().st_size}
                  for f in files],
        "generator": meta,
        "source": {"gguf": args.gguf.name, "gguf_sha256": sha256(args.gguf),
                   "converted_by": "infra/scripts/gguf_to_onnx.py",
                   "dtype": ("the GGUF's quantised blocks in MatMulNBits, float32 otherwise"
                             if quantised else "float32"),
                   "accuracy_level": args.accuracy_level if quantised else None},
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    size = sum((args.out / f).stat().st_size for f in files)
    print(f"gguf_to_onnx: wrote {args.out} ({meta['layers']} layers, vocab {meta['vocab']}, "
          f"{size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
