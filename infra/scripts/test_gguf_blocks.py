#!/usr/bin/env python3
"""gguf_blocks.decode against gguf-py's own dequantisation (an independent implementation of
ggml's reference code) on random blocks of every supported type, and MatMulNBits in onnxruntime
on the packed result against numpy: the layouts the converter relies on, checked in CI.

    .venv/bin/python infra/scripts/test_gguf_blocks.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gguf_blocks import LAYOUT, UnsupportedTensor, decode, pack_matmulnbits  # noqa: E402

# Byte offsets of each block's f16 fields (random bytes there could be NaN or huge).
F16_AT = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
          T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def random_rows(qtype: T, rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    size, per = LAYOUT[qtype]
    raw = rng.integers(0, 256, (rows, cols // per, size), dtype=np.uint8)
    for at in F16_AT[qtype]:
        raw[..., at:at + 2] = rng.uniform(-0.05, 0.05, (rows, cols // per)).astype(np.float16)[..., None].view(np.uint8)
    return raw.reshape(rows, -1)


def matmulnbits(x: np.ndarray, blk, k: int, level: int) -> np.ndarray:
    n = blk.q.shape[0]
    packed, scales, zp = pack_matmulnbits(blk)
    inits = [numpy_helper.from_array(packed, "b"), numpy_helper.from_array(scales, "s")]
    ins = ["x", "b", "s"]
    if zp is not None:
        inits.append(numpy_helper.from_array(zp, "zp"))
        ins.append("zp")
    node = helper.make_node("MatMulNBits", ins, ["y"], domain="com.microsoft", K=k, N=n,
                            bits=blk.bits, block_size=blk.block, accuracy_level=level)
    g = helper.make_graph([node], "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 10
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": x})[0]
    if blk.min is not None:  # the converter adds this term with blockwise sums of x
        y = y + x.reshape(x.shape[0], -1, blk.block).sum(-1) @ blk.min.T
    return y


def main() -> None:
    rng = np.random.default_rng(7)
    failures = []
    for qtype in LAYOUT:
        rows, cols = 24, 512
        raw = random_rows(qtype, rows, cols, rng)
        blk = decode(raw, qtype, cols)
        ref = dequantize(raw, qtype).reshape(rows, cols)
        exact = np.array_equal(blk.dequantize(), ref)
        x = rng.standard_normal((3, cols)).astype(np.float32)
        want = x.astype(np.float64) @ ref.T.astype(np.float64)
        scale = np.abs(want).max()
        err0 = float(np.abs(matmulnbits(x, blk, cols, 0) - want).max() / scale)
        err4 = float(np.abs(matmulnbits(x, blk, cols, 4) - want).max() / scale)
        ok = exact and err0 < 1e-5 and err4 < 3e-2
        print(f"test_gguf_blocks: {qtype.name}: decode equals gguf-py: {exact}; MatMulNBits rel. error "
              f"{err0:.1e} (fp32 activations), {err4:.1e} (int8 activations) {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(qtype.name)
    try:
        decode(np.zeros((1, 18), np.uint8), T.Q2_K, 256)
        failures.append("Q2_K accepted")
    except UnsupportedTensor:
        pass
    failures += converter_refusals()
    if failures:
        sys.exit(f"test_gguf_blocks: failed: {failures}")
    print("test_gguf_blocks: 11 passed, 0 failed")


def converter_refusals() -> list[str]:
    """gguf_to_onnx.py refuses what it cannot convert exactly, naming it, and writes nothing."""
    import subprocess
    import tempfile

    from gguf import GGUFWriter

    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "an unsupported tensor type": ("Q2_K", "tensor token_embd.weight has type Q2_K"),
            "missing model metadata": ("F32", "the GGUF has no 'llama.embedding_length'"),
        }
        for case, (qtype, expect) in cases.items():
            path = Path(tmp) / f"{qtype}.gguf"
            w = GGUFWriter(str(path), "llama")
            if qtype == "Q2_K":
                w.add_embedding_length(256)
                w.add_tensor("token_embd.weight", np.zeros((4, 84), np.uint8), raw_dtype=T.Q2_K)
            else:
                w.add_tensor("token_embd.weight", np.zeros((4, 64), np.float32))
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()
            out = Path(tmp) / f"{qtype}-out"
            r = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "gguf_to_onnx.py"),
                                str(path), str(out)], capture_output=True, text=True)
            ok = r.returncode != 0 and expect in r.stderr and not out.exists()
            print(f"test_gguf_blocks: the converter refuses {case}: {'ok' if ok else 'FAIL: ' + r.stderr[-300:]}")
            if not ok:
                failures.append(case)
    return failures


if __name__ == "__main__":
    main()
