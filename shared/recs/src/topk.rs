//! Exact top-k by dot product over a row-major matrix of unit vectors.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Dot product with eight independent accumulators, so the compiler vectorises the loop
/// (one running sum would serialise every add on the previous one).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

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
    mut keep: impl FnMut(usize) -> bool,
) -> Vec<(usize, f32)> {
    if k == 0 || dim == 0 || query.len() != dim {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Hit> = BinaryHeap::with_capacity(k + 1);
    for (row, v) in matrix.chunks_exact(dim).enumerate() {
        let s = dot(v, query);
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
    fn edge_cases_match_nothing_rather_than_panic() {
        let m = matrix(5, 4, 1);
        assert!(top_k(&m, 4, &[1.0, 0.0], 3, |_| true).is_empty());
        assert!(top_k(&m, 4, &[1.0, 0.0, 0.0, 0.0], 0, |_| true).is_empty());
        assert_eq!(top_k(&m, 4, &[1.0, 0.0, 0.0, 0.0], 50, |_| true).len(), 5);
        assert!(top_k(&m, 4, &[1.0, 0.0, 0.0, 0.0], 3, |_| false).is_empty());
    }
}
