"""GGUF weight blocks as integer codes with per-block scales: what MatMulNBits (com.microsoft)
and the converter's in-graph embedding lookup take, with no re-quantisation.

Every supported type is written as

    w[e] = scale[b] * (q[e] - zp) + min[b]        (b = the block holding element e)

with `q` small unsigned integers, `zp` one integer per tensor and `min` only where the type
has one (Q4_1, Q5_1, Q4_K, Q5_K). The layouts follow ggml's block structs (ggml-common.h) and
its reference `dequantize_row_*` functions, decoded here independently of gguf-py; the
converter compares a sample of every tensor with gguf-py's own dequantisation before it
writes a model, so a layout mistake stops the conversion instead of producing a wrong model.

| type | block | bits kept | zp | min | MatMulNBits |
| --- | --- | --- | --- | --- | --- |
| Q4_0 | 32 | 4 | 8 | - | bits 4, block 32 |
| Q4_1 | 32 | 4 | 0 | m | bits 4, block 32, + min term |
| Q5_0 | 32 | 5 | 16 | - | bits 8, block 32 |
| Q5_1 | 32 | 5 | 0 | m | bits 8, block 32, + min term |
| Q8_0 | 32 | 8 | 128 | - | bits 8, block 32 |
| Q4_K | 32 (of 256) | 4 | 0 | -dmin*m_j | bits 4, block 32, + min term |
| Q5_K | 32 (of 256) | 5 | 0 | -dmin*m_j | bits 8, block 32, + min term |
| Q6_K | 16 (of 256) | 6 | 32 | - | bits 8, block 16 |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType as T

# Bytes per ggml block and elements per block.
LAYOUT = {
    T.Q4_0: (18, 32), T.Q4_1: (20, 32), T.Q5_0: (22, 32), T.Q5_1: (24, 32), T.Q8_0: (34, 32),
    T.Q4_K: (144, 256), T.Q5_K: (176, 256), T.Q6_K: (210, 256),
}
FLOAT_TYPES = (T.F32, T.F16, T.BF16)
SUPPORTED = tuple(LAYOUT) + FLOAT_TYPES


class UnsupportedTensor(Exception):
    pass


@dataclass
class Blocks:
    q: np.ndarray  # uint8 [rows, blocks, block] codes in element order
    scale: np.ndarray  # float32 [rows, blocks]
    zp: int
    min: np.ndarray | None  # float32 [rows, blocks], or None
    bits: int  # storage width for MatMulNBits: 4 or 8

    @property
    def block(self) -> int:
        return self.q.shape[2]

    def rows(self, index) -> Blocks:
        return Blocks(self.q[index], self.scale[index], self.zp,
                      None if self.min is None else self.min[index], self.bits)

    def dequantize(self) -> np.ndarray:
        """float32 [rows, cols], in ggml's order of operations (scale * (q - zp), then + min)."""
        w = self.scale[..., None] * (self.q.astype(np.float32) - np.float32(self.zp))
        if self.min is not None:
            w = w + self.min[..., None]
        return w.reshape(self.q.shape[0], -1).astype(np.float32)


def _f16(b: np.ndarray) -> np.ndarray:
    return b.copy().view(np.float16)[..., 0].astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """[..., 16] bytes -> [..., 32] codes: low nibbles are elements 0..15, high ones 16..31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=-1)


def _k_scales(s: np.ndarray):
    """The 12 packed bytes of Q4_K/Q5_K -> 6-bit (scale, min) for the 8 sub-blocks
    (ggml's get_scale_min_k4)."""
    sc = np.empty(s.shape[:-1] + (8,), np.uint8)
    mn = np.empty_like(sc)
    sc[..., :4] = s[..., 0:4] & 63
    mn[..., :4] = s[..., 4:8] & 63
    sc[..., 4:] = (s[..., 8:12] & 0x0F) | ((s[..., 0:4] >> 6) << 4)
    mn[..., 4:] = (s[..., 8:12] >> 4) | ((s[..., 4:8] >> 6) << 4)
    return sc.astype(np.float32), mn.astype(np.float32)


def decode(raw: np.ndarray, qtype: T, cols: int) -> Blocks:
    """Raw GGUF rows (uint8 [rows, bytes per row]) of a quantised type -> Blocks."""
    if qtype not in LAYOUT:
        raise UnsupportedTensor(qtype.name)
    size, per = LAYOUT[qtype]
    if cols % per:
        raise UnsupportedTensor(f"{qtype.name} rows of {cols} values (not a multiple of {per})")
    rows = raw.shape[0]
    b = np.ascontiguousarray(raw).reshape(rows, cols // per, size)
    if qtype == T.Q4_0:
        q, d = _nibbles(b[..., 2:18]), _f16(b[..., 0:2])
        return Blocks(q, d, 8, None, 4)
    if qtype == T.Q4_1:
        q = _nibbles(b[..., 4:20])
        return Blocks(q, _f16(b[..., 0:2]), 0, _f16(b[..., 2:4]), 4)
    if qtype in (T.Q5_0, T.Q5_1):
        at = 2 if qtype == T.Q5_0 else 4
        qh = b[..., at:at + 4].copy().view("<u4")[..., 0]  # [rows, nb]
        bit = (qh[..., None] >> np.arange(32, dtype=np.uint32)) & 1  # bit j -> element j
        q = _nibbles(b[..., at + 4:at + 20]) | (bit.astype(np.uint8) << 4)
        if qtype == T.Q5_0:
            return Blocks(q, _f16(b[..., 0:2]), 16, None, 8)
        return Blocks(q, _f16(b[..., 0:2]), 0, _f16(b[..., 2:4]), 8)
    if qtype == T.Q8_0:
        q = (b[..., 2:34].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
        return Blocks(q, _f16(b[..., 0:2]), 128, None, 8)
    if qtype in (T.Q4_K, T.Q5_K):
        d, dmin = _f16(b[..., 0:2]), _f16(b[..., 2:4])  # [rows, nsb]
        sc, mn = _k_scales(b[..., 4:16])  # [rows, nsb, 8]
        if qtype == T.Q4_K:
            qs = b[..., 16:144].reshape(rows, -1, 4, 32)  # 4 chunks of 64 elements
            q = np.stack([qs & 0x0F, qs >> 4], axis=3)  # [rows, nsb, 4, 2, 32]
        else:
            qh = b[..., 16:48]  # [rows, nsb, 32]: bit 2c / 2c+1 is chunk c's low / high half
            qs = b[..., 48:176].reshape(rows, -1, 4, 32)
            shift = np.arange(8, dtype=np.uint8).reshape(4, 2, 1)
            high = ((qh[:, :, None, None, :] >> shift) & 1) << 4  # [rows, nsb, 4, 2, 32]
            q = np.stack([qs & 0x0F, qs >> 4], axis=3) | high
        q = q.reshape(rows, -1, 32)  # sub-block j = chunk j//2, half j%2
        scale = (d[..., None] * sc).reshape(rows, -1)
        m = -(dmin[..., None] * mn).reshape(rows, -1)
        return Blocks(q.astype(np.uint8), scale, 0, m, 4 if qtype == T.Q4_K else 8)
    # Q6_K: ql[128] qh[64] scales int8[16] d f16; two halves of 128 elements.
    ql = b[..., 0:128].reshape(rows, -1, 2, 64)
    qh = b[..., 128:192].reshape(rows, -1, 2, 32)
    sc = b[..., 192:208].view(np.int8).astype(np.float32)
    d = _f16(b[..., 208:210])
    lo = np.stack([ql[..., :32] & 0x0F, ql[..., 32:] & 0x0F, ql[..., :32] >> 4, ql[..., 32:] >> 4], axis=3)
    hi = np.stack([(qh >> s) & 3 for s in (0, 2, 4, 6)], axis=3)  # [rows, nsb, 2, 4, 32]
    q = (lo | (hi << 4)).reshape(rows, -1, 16)
    scale = (d[..., None] * sc).reshape(rows, -1)
    return Blocks(q.astype(np.uint8), scale, 32, None, 8)


def pack_matmulnbits(blk: Blocks):
    """Blocks -> MatMulNBits' (B [N, nb, blob] uint8, scales [N*nb], zero_points or None).
    4-bit: element 2i in the low nibble and 2i+1 in the high one; zero points two per byte
    per row. The operator's default zero point (8 for 4 bits, 128 for 8) is left implicit."""
    n, nb, bs = blk.q.shape
    if blk.bits == 4:
        packed = (blk.q[..., 0::2] | (blk.q[..., 1::2] << 4)).astype(np.uint8)
        default = 8
        zp = np.full(n * ((nb + 1) // 2), blk.zp | (blk.zp << 4), np.uint8)
    else:
        packed = blk.q.astype(np.uint8)
        default = 128
        zp = np.full(n * nb, blk.zp, np.uint8)
    return np.ascontiguousarray(packed), blk.scale.reshape(-1).astype(np.float32), \
        (None if blk.zp == default else zp)
