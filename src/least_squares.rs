//! The minimum-norm least-squares solve `x = M⁺ b` for symmetric `M`, with
//! LAPACK `gelsd`'s default cutoff: singular values `σ_i ≤ ε·max(m,n)·σ_max`
//! are dropped (REFERENCE §6). For symmetric `M` the singular values are the
//! `|λ_i|` of its eigendecomposition `M = U diag(λ) Uᵀ`, so
//! `M⁺ b = Σ_{|λ_i| > cutoff} u_i (u_iᵀ b) / λ_i`.

use anyhow::{Result, bail};
use faer::{Mat, MatRef, Par, Side};

/// All decompositions run sequentially, so results do not depend on the
/// number of threads.
pub fn sequential_linear_algebra() {
    faer::set_global_parallelism(Par::Seq);
}

/// The eigenpairs of a symmetric matrix that survive the cutoff.
#[derive(Clone, Debug)]
pub struct PseudoInverse {
    eigenvectors: Mat<f64>,
    inverse_eigenvalues: Vec<f64>,
}

impl PseudoInverse {
    pub fn new(m: MatRef<'_, f64>) -> Result<Self> {
        sequential_linear_algebra();
        if !m.is_all_finite() {
            bail!("non-finite entry in the matrix to pseudo-invert");
        }
        let n = m.nrows();
        let evd = m
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| anyhow::anyhow!("symmetric eigendecomposition failed: {e:?}"))?;
        let eigenvalues: Vec<f64> = evd.S().column_vector().iter().copied().collect();
        let sigma_max = eigenvalues.iter().fold(0.0f64, |a, l| a.max(l.abs()));
        let cutoff = f64::EPSILON * n as f64 * sigma_max;
        let keep: Vec<usize> = (0..n).filter(|&i| eigenvalues[i].abs() > cutoff).collect();
        let u = evd.U();
        Ok(Self {
            eigenvectors: Mat::from_fn(n, keep.len(), |r, k| u[(r, keep[k])]),
            inverse_eigenvalues: keep.iter().map(|&i| 1.0 / eigenvalues[i]).collect(),
        })
    }

    /// `M⁺ b`.
    pub fn apply(&self, b: &[f64]) -> Vec<f64> {
        let u = &self.eigenvectors;
        let coeffs: Vec<f64> = (0..u.ncols())
            .map(|k| {
                let dot: f64 = u.col(k).iter().zip(b).map(|(x, y)| x * y).sum();
                dot * self.inverse_eigenvalues[k]
            })
            .collect();
        (0..u.nrows())
            .map(|r| (0..u.ncols()).map(|k| u[(r, k)] * coeffs[k]).sum())
            .collect()
    }

    /// How many singular values survived the cutoff.
    pub fn rank(&self) -> usize {
        self.inverse_eigenvalues.len()
    }
}

/// Solve `M x = b` in the least-squares sense with minimum norm.
pub fn solve(m: MatRef<'_, f64>, b: &[f64]) -> Result<Vec<f64>> {
    Ok(PseudoInverse::new(m)?.apply(b))
}
