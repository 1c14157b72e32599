//! Top-k by dot product over a row-major matrix of unit vectors: exact (f32), and a
//! two-stage scan that reads int8 rows (a quarter of the bytes: the scan is bound by memory
//! bandwidth) and rescores its shortlist with the exact f32 rows.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use bytes::Bytes;

pub use shopmind_inference::dot;

#[derive(Debug, PartialEq)]
struct Hit(f32, usize);

impl Eq for Hit {}
impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Hit {
    // Reversed, so the heap's top is the weakest hit kept; ties go to the lower row.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .total_cmp(&self.0)
            .then_with(|| self.1.cmp(&other.1))
    }
}

/// The `k` rows with the highest dot product with `query` among rows `keep` accepts, best
/// first (ties by row). A query of the wrong length matches nothing.
pub fn top_k(
    matrix: &[f32],
    dim: usize,
    query: &[f32],
    k: usize,
    keep: impl FnMut(usize) -> bool,
) -> Vec<(usize, f32)> {
    if k == 0 || dim == 0 || query.len() != dim {
        return Vec::new();
    }
    scan(
        matrix.len() / dim,
        k,
        |row| dot(&matrix[row * dim..(row + 1) * dim], query),
        keep,
    )
}

/// Little-endian f32 values as the index files store them; `None` when `raw` is not whole
/// values.
pub(crate) fn f32s_from_le(raw: &[u8]) -> Option<Vec<f32>> {
    if !raw.len().is_multiple_of(4) {
        return None;
    }
    Some(
        raw.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

/// Values read from an index file, kept in the file's own verified bytes where their layout
/// allows it (a little-endian target and an aligned buffer: in practice always), so a cold
/// start neither copies nor decodes them; otherwise decoded once into a vector.
#[derive(Clone, Debug)]
pub(crate) enum Rows<T> {
    Owned(Vec<T>),
    Shared(Bytes),
}

impl<T: bytemuck::Pod> Rows<T> {
    /// `None` when `raw` is not whole values; `decode` reads one little-endian value.
    pub(crate) fn from_le_bytes(raw: Bytes, decode: impl Fn(&[u8]) -> T) -> Option<Self> {
        let size = std::mem::size_of::<T>();
        if size == 0 || !raw.len().is_multiple_of(size) {
            return None;
        }
        if cfg!(target_endian = "little") && bytemuck::try_cast_slice::<u8, T>(&raw).is_ok() {
            return Some(Self::Shared(raw));
        }
        Some(Self::Owned(raw.chunks_exact(size).map(decode).collect()))
    }

    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Self::Owned(v) => v,
            // Checked castable when it was made, and `Bytes` never moves its data.
            Self::Shared(b) => bytemuck::try_cast_slice(b).unwrap_or_default(),
        }
    }
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Self::Owned(Vec::new())
    }
}

/// Little-endian f32 rows as the index files store them, without a copy where possible.
pub(crate) fn f32_rows(raw: Bytes) -> Option<Rows<f32>> {
    Rows::from_le_bytes(raw, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The bytes [`f32s_from_le`] reads back.
pub(crate) fn f32s_to_le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Rows quantised to int8 with one scale per row (symmetric: `x ≈ code · scale`).
#[derive(Debug, Clone, Default)]
pub struct QuantRows {
    dim: usize,
    codes: Rows<i8>,
    scales: Vec<f32>,
}

/// How many extra rows the int8 stage keeps for the exact rescoring: the shortlist is
/// `k · SHORTLIST_FACTOR + SHORTLIST_EXTRA`, so near-ties lost to rounding come back.
pub const SHORTLIST_FACTOR: usize = 2;
pub const SHORTLIST_EXTRA: usize = 32;

fn quantise_into(v: &[f32], codes: &mut Vec<i8>) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    codes.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

impl QuantRows {
    pub fn new(matrix: &[f32], dim: usize) -> Self {
        if dim == 0 {
            return Self::default();
        }
        let rows = matrix.len() / dim;
        let mut codes = Vec::with_capacity(rows * dim);
        let scales = matrix
            .chunks_exact(dim)
            .map(|row| quantise_into(row, &mut codes))
            .collect();
        Self {
            dim,
            codes: Rows::Owned(codes),
            scales,
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.codes.as_slice().len() + self.scales.len() * 4
    }

    /// The codes as stored (`vectors.i8`: one byte per value, row-major) and the scales as
    /// stored (`scales.f32`: little-endian), so a published index loads them instead of
    /// quantising again.
    pub fn to_bytes(&self) -> (Vec<u8>, Vec<u8>) {
        let codes = self.codes.as_slice().iter().map(|&c| c as u8).collect();
        (codes, f32s_to_le(&self.scales))
    }

    /// Reads [`Self::to_bytes`]' output for `rows` rows of `dim`; `None` when the sizes do
    /// not fit or a scale is not a positive finite number.
    /// The codes stay in `codes`' own bytes.
    pub fn from_bytes(codes: Bytes, scales: &[u8], rows: usize, dim: usize) -> Option<Self> {
        if dim == 0 || codes.len() != rows * dim || scales.len() != rows * 4 {
            return None;
        }
        let scales = f32s_from_le(scales)?;
        if scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return None;
        }
        Some(Self {
            dim,
            codes: Rows::from_le_bytes(codes, |b| b[0] as i8)?,
            scales,
        })
    }
}

/// Integer dot product. Each block of 32 products is formed in i16 (|127·127| fits) and
/// summed into i32: the shape the compiler turns into widening multiply-adds. (Sixteen i32
/// accumulators with i32 products measured 1.5× slower on x86-64.)
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut total = 0i32;
    let mut ca = a.chunks_exact(32);
    let mut cb = b.chunks_exact(32);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let mut block = [0i32; 32];
        for l in 0..32 {
            block[l] = i32::from(i16::from(x[l]) * i16::from(y[l]));
        }
        total += block.iter().sum::<i32>();
    }
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        total += i32::from(*x) * i32::from(*y);
    }
    total
}

/// Shared heap logic: keeps the `k` best `(score, row)` pairs among rows `keep` accepts.
fn scan(
    rows: usize,
    k: usize,
    mut score: impl FnMut(usize) -> f32,
    mut keep: impl FnMut(usize) -> bool,
) -> Vec<(usize, f32)> {
    let mut heap: BinaryHeap<Hit> = BinaryHeap::with_capacity(k + 1);
    for row in 0..rows {
        let s = score(row);
        if heap.len() == k {
            if let Some(worst) = heap.peek() {
                if s <= worst.0 {
                    continue;
                }
            }
        }
        if !keep(row) {
            continue;
        }
        heap.push(Hit(s, row));
        if heap.len() > k {
            heap.pop();
        }
    }
    let mut out: Vec<(usize, f32)> = heap.into_iter().map(|h| (h.1, h.0)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The same answer as [`top_k`] up to int8 rounding in the first stage: the int8 rows pick a
/// shortlist, the f32 rows score it exactly. Scores returned are exact.
pub fn top_k_quantised(
    matrix: &[f32],
    quant: &QuantRows,
    query: &[f32],
    k: usize,
    keep: impl FnMut(usize) -> bool,
) -> Vec<(usize, f32)> {
    let dim = quant.dim;
    let codes = quant.codes.as_slice();
    if k == 0 || dim == 0 || query.len() != dim || matrix.len() != codes.len() {
        return Vec::new();
    }
    let mut q = Vec::with_capacity(dim);
    let q_scale = quantise_into(query, &mut q);
    let shortlist = scan(
        quant.scales.len(),
        k.saturating_mul(SHORTLIST_FACTOR)
            .saturating_add(SHORTLIST_EXTRA),
        |row| {
            let codes = &codes[row * dim..(row + 1) * dim];
            dot_i8(codes, &q) as f32 * quant.scales[row] * q_scale
        },
        keep,
    );
    let mut exact: Vec<(usize, f32)> = shortlist
        .into_iter()
        .map(|(row, _)| (row, dot(&matrix[row * dim..(row + 1) * dim], query)))
        .collect();
    exact.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    exact.truncate(k);
    exact
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random matrix (xorshift), no extra dependency.
    fn matrix(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..rows * dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn dot_matches_f64_reference() {
        for n in [0, 1, 7, 8, 9, 384, 385] {
            let a = matrix(1, n, 3);
            let b = matrix(1, n, 5);
            let reference: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            assert!((f64::from(dot(&a, &b)) - reference).abs() < 1e-3, "n={n}");
        }
    }

    #[test]
    fn top_k_equals_a_full_sort_with_filters() {
        let dim = 24;
        let m = matrix(1000, dim, 11);
        let q = matrix(1, dim, 17);
        let keep = |r: usize| !r.is_multiple_of(3);
        // Reference: score every kept row in f64, sort all of them.
        let mut all: Vec<(usize, f64)> = m
            .chunks_exact(dim)
            .enumerate()
            .filter(|(r, _)| keep(*r))
            .map(|(r, v)| {
                (
                    r,
                    v.iter()
                        .zip(&q)
                        .map(|(x, y)| f64::from(*x) * f64::from(*y))
                        .sum(),
                )
            })
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        let got = top_k(&m, dim, &q, 10, keep);
        let want: Vec<usize> = all.iter().take(10).map(|x| x.0).collect();
        assert_eq!(got.iter().map(|x| x.0).collect::<Vec<_>>(), want);
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    #[test]
    fn dot_i8_matches_integer_reference() {
        for n in [0, 1, 31, 32, 33, 384] {
            let a: Vec<i8> = (0..n).map(|i| ((i * 37 + 11) % 255) as i8).collect();
            let b: Vec<i8> = (0..n).map(|i| ((i * 91 + 5) % 255) as i8).collect();
            let reference: i64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| i64::from(*x) * i64::from(*y))
                .sum();
            assert_eq!(i64::from(dot_i8(&a, &b)), reference, "n={n}");
        }
    }

    fn unit_rows(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut m = matrix(rows, dim, seed);
        for r in m.chunks_exact_mut(dim) {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            r.iter_mut().for_each(|x| *x /= n);
        }
        m
    }

    #[test]
    fn quantised_top_k_keeps_the_exact_answer() {
        // Random 384-d unit vectors: scores crowd together (the hard case for rounding).
        let dim = 384;
        let m = unit_rows(4000, dim, 23);
        let quant = QuantRows::new(&m, dim);
        assert_eq!(quant.memory_bytes(), 4000 * (dim + 4));
        let keep = |r: usize| !r.is_multiple_of(7);
        let (mut found, mut wanted) = (0, 0);
        for seed in 0..20 {
            let q = unit_rows(1, dim, 1000 + seed);
            let exact = top_k(&m, dim, &q, 50, keep);
            let got = top_k_quantised(&m, &quant, &q, 50, keep);
            assert_eq!(got.len(), 50);
            assert!(got.iter().all(|(r, _)| keep(*r)));
            // Scores are the exact f32 ones, not the int8 estimates.
            for (r, s) in &got {
                assert_eq!(*s, dot(&m[r * dim..(r + 1) * dim], &q));
            }
            assert!(got.windows(2).all(|w| w[0].1 >= w[1].1));
            wanted += exact.len();
            found += got
                .iter()
                .filter(|g| exact.iter().any(|e| e.0 == g.0))
                .count();
        }
        let recall = found as f64 / wanted as f64;
        assert!(recall >= 0.99, "recall@50 {recall}");
    }

    #[test]
    fn edge_cases_match_nothing_rather_than_panic() {
        let quant = QuantRows::new(&matrix(5, 4, 1), 4);
        assert!(top_k_quantised(&matrix(5, 4, 1), &quant, &[1.0, 0.0], 3, |_| true).is_empty());
        assert!(top_k_quantised(&matrix(4, 4, 1), &quant, &[1.0; 4], 3, |_| true).is_empty());
        assert_eq!(
            top_k_quantised(&matrix(5, 4, 1), &quant, &[1.0, 0.0, 0.0, 0.0], 50, |_| {
                true
            })
            .len(),
            5
        );
        assert!(QuantRows::new(&[], 0).memory_bytes() == 0);
        let m = matrix(5, 4, 1);
        assert!(top_k(&m, 4, &[1.0, 0.0], 3, |_| true).is_empty());
        assert!(top_k(&m, 4, &[1.0, 0.0, 0.0, 0.0], 0, |_| true).is_empty());
        assert_eq!(top_k(&m, 4, &[1.0, 0.0, 0.0, 0.0], 50, |_| true).len(), 5);
        assert!(top_k(&m, 4, &[1.0, 0.0, 0.0, 0.0], 3, |_| false).is_empty());
    }

    #[test]
    fn stored_int8_rows_read_back_exactly_and_bad_ones_are_refused() {
        let m = matrix(50, 16, 3);
        let q = QuantRows::new(&m, 16);
        let (codes, scales) = q.to_bytes();
        let codes = Bytes::from(codes);
        let back = QuantRows::from_bytes(codes.clone(), &scales, 50, 16).unwrap();
        assert!(
            matches!(back.codes, Rows::Shared(_)),
            "codes are used in place"
        );
        assert_eq!(
            (back.codes.as_slice(), &back.scales),
            (q.codes.as_slice(), &q.scales)
        );
        assert!(
            QuantRows::from_bytes(codes.clone(), &scales, 49, 16).is_none(),
            "row count"
        );
        assert!(
            QuantRows::from_bytes(codes.slice(1..), &scales, 50, 16).is_none(),
            "codes"
        );
        let mut zero = scales.clone();
        zero[..4].copy_from_slice(&0f32.to_le_bytes());
        assert!(
            QuantRows::from_bytes(codes.clone(), &zero, 50, 16).is_none(),
            "a zero scale"
        );
        let mut nan = scales;
        nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(
            QuantRows::from_bytes(codes, &nan, 50, 16).is_none(),
            "a NaN scale"
        );
    }

    #[test]
    fn f32_rows_are_used_in_place_when_aligned_and_decoded_when_not() {
        let values = [1.5f32, -0.25, 3.0e-7, f32::MAX, -0.0, 42.0];
        // Independent encoding: the IEEE-754 bit patterns, little-endian.
        let le: Vec<u8> = values
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect();
        let aligned = Bytes::from(le.clone());
        let rows = f32_rows(aligned).unwrap();
        assert!(matches!(rows, Rows::Shared(_)));
        assert_eq!(rows.as_slice(), values);
        // The same bytes one byte into a buffer: not castable, so decoded.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&le);
        let shifted = Bytes::from(shifted).slice(1..);
        let rows = f32_rows(shifted).unwrap();
        assert!(matches!(rows, Rows::Owned(_)));
        assert_eq!(rows.as_slice(), values);
        assert!(
            f32_rows(Bytes::from(le).slice(..7)).is_none(),
            "not whole values"
        );
    }
}
