//! EASE^R (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): the
//! item-item weights B = −P / diag(P) with P = (G + λI)⁻¹, G the item Gram matrix over
//! sessions and diag(B) = 0. A shopper's score for item i is Σ_j x_j · B[j][i], so B's rows are
//! neighbour lists the blend already knows how to use. Dense: cost n³ and memory 8n² bytes for n
//! items with behaviour, hence the cap in `SignalsConfig::ease_max_items`.

/// Inverts a symmetric positive definite row-major `n × n` matrix in place (Gauss–Jordan; no
/// pivoting is needed for SPD). `false` when a pivot is not positive (not SPD).
pub(crate) fn invert_spd(a: &mut [f64], n: usize) -> bool {
    if a.len() != n * n {
        return false;
    }
    let mut pivot_row = vec![0.0; n];
    for k in 0..n {
        let p = a[k * n + k];
        if p <= 0.0 || !p.is_finite() {
            return false;
        }
        {
            let row = &mut a[k * n..(k + 1) * n];
            row[k] = 1.0;
            for x in row.iter_mut() {
                *x /= p;
            }
            pivot_row.copy_from_slice(row);
        }
        for i in 0..n {
            if i == k {
                continue;
            }
            let row = &mut a[i * n..(i + 1) * n];
            let f = row[k];
            if f == 0.0 {
                continue;
            }
            row[k] = 0.0;
            for (x, y) in row.iter_mut().zip(&pivot_row) {
                *x -= f * y;
            }
        }
    }
    true
}

/// B from the Gram matrix `g` (row-major `n × n`, consumed). `None` when G + λI is not SPD.
pub(crate) fn weights(mut g: Vec<f64>, n: usize, lambda: f64) -> Option<Vec<f64>> {
    for i in 0..n {
        g[i * n + i] += lambda;
    }
    if !invert_spd(&mut g, n) {
        return None;
    }
    let diag: Vec<f64> = (0..n).map(|i| g[i * n + i]).collect();
    for j in 0..n {
        for i in 0..n {
            g[j * n + i] = if i == j { 0.0 } else { -g[j * n + i] / diag[i] };
        }
    }
    Some(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_times_matrix_is_the_identity() {
        // A random-looking SPD matrix: M Mᵀ + I.
        let n = 7;
        let m: Vec<f64> = (0..n * n)
            .map(|k| ((k * 37 + 11) % 17) as f64 / 5.0 - 1.5)
            .collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| m[i * n + k] * m[j * n + k]).sum::<f64>()
                    + f64::from(u8::from(i == j));
            }
        }
        let mut inv = a.clone();
        assert!(invert_spd(&mut inv, n));
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                assert!(
                    (v - f64::from(u8::from(i == j))).abs() < 1e-9,
                    "{i},{j}: {v}"
                );
            }
        }
        let mut not_spd = vec![1.0, 2.0, 2.0, 1.0];
        assert!(!invert_spd(&mut not_spd, 2));
    }

    /// Reference from numpy (`np.linalg.inv`; `B = P / -np.diag(P)`, diagonal zeroed) on
    /// X = [[1,1,0,0],[0,1,1,0],[1,1,1,0],[0,0,1,1],[1,0,0,1]], λ = 0.5, G = XᵀX.
    #[test]
    fn ease_weights_match_numpy() {
        let g = vec![
            3.0, 2.0, 1.0, 1.0, 2.0, 3.0, 2.0, 0.0, 1.0, 2.0, 3.0, 1.0, 1.0, 0.0, 1.0, 2.0,
        ];
        let b = weights(g, 4, 0.5).unwrap();
        let want = [
            0.0,
            0.5405405405405405,
            -0.2773722627737226,
            0.4516129032258064,
            0.72992700729927,
            0.0,
            0.7299270072992701,
            -0.5161290322580644,
            -0.27737226277372257,
            0.5405405405405405,
            0.0,
            0.4516129032258064,
            0.5109489051094889,
            -0.43243243243243246,
            0.510948905109489,
            0.0,
        ];
        for (got, want) in b.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{b:?}");
        }
    }
}
