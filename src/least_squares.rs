//! The minimum-norm least-squares solve `x = M⁺ b` for symmetric `M`, as
//! LAPACK's `gelsd` with its default cutoff (REFERENCE §6): from the SVD
//! `M = U diag(σ) Vᵀ`, singular values `σ_i ≤ ε·max(m,n)·σ_max` are dropped
//! and `M⁺ b = Σ_{σ_i > cutoff} v_i (u_iᵀ b) / σ_i`.

use anyhow::{Result, bail};
use faer::{Mat, MatRef, Par};

/// All decompositions run sequentially, so results do not depend on the
/// number of threads.
pub fn sequential_linear_algebra() {
    faer::set_global_parallelism(Par::Seq);
}

/// The singular triplets that survive the cutoff.
#[derive(Clone, Debug)]
pub struct PseudoInverse {
    left: Mat<f64>,
    right: Mat<f64>,
    inverse_singular_values: Vec<f64>,
}

impl PseudoInverse {
    pub fn new(m: MatRef<'_, f64>) -> Result<Self> {
        sequential_linear_algebra();
        if !m.is_all_finite() {
            bail!("non-finite entry in the matrix to pseudo-invert");
        }
        let svd = m
            .thin_svd()
            .map_err(|e| anyhow::anyhow!("singular value decomposition failed: {e:?}"))?;
        let sigma: Vec<f64> = svd.S().column_vector().iter().copied().collect();
        let sigma_max = sigma.iter().fold(0.0f64, |a, &s| a.max(s));
        let cutoff = f64::EPSILON * m.nrows().max(m.ncols()) as f64 * sigma_max;
        let keep: Vec<usize> = (0..sigma.len()).filter(|&i| sigma[i] > cutoff).collect();
        let (u, v) = (svd.U(), svd.V());
        Ok(Self {
            left: Mat::from_fn(u.nrows(), keep.len(), |r, k| u[(r, keep[k])]),
            right: Mat::from_fn(v.nrows(), keep.len(), |r, k| v[(r, keep[k])]),
            inverse_singular_values: keep.iter().map(|&i| 1.0 / sigma[i]).collect(),
        })
    }

    /// `M⁺ b`.
    pub fn apply(&self, b: &[f64]) -> Vec<f64> {
        let coeffs: Vec<f64> = (0..self.left.ncols())
            .map(|k| {
                let dot: f64 = self.left.col(k).iter().zip(b).map(|(x, y)| x * y).sum();
                dot * self.inverse_singular_values[k]
            })
            .collect();
        (0..self.right.nrows())
            .map(|r| {
                (0..self.right.ncols())
                    .map(|k| self.right[(r, k)] * coeffs[k])
                    .sum()
            })
            .collect()
    }

    /// How many singular values survived the cutoff.
    pub fn rank(&self) -> usize {
        self.inverse_singular_values.len()
    }
}

/// Solve `M x = b` in the least-squares sense with minimum norm.
pub fn solve(m: MatRef<'_, f64>, b: &[f64]) -> Result<Vec<f64>> {
    Ok(PseudoInverse::new(m)?.apply(b))
}

/// `(C + λI)⁺ b` for symmetric positive semidefinite `C` (a Gramian or its
/// moving average), with gelsd's cutoff. Every singular value of `C + λI` is
/// at least `λ`, and the cutoff is at most `ε·n·(tr C + λ)`, because
/// `σ_max = λ_max(C) + λ ≤ tr C + λ`. When `λ` exceeds that bound nothing is
/// dropped and `M⁺ = M⁻¹`: a Cholesky solve gives the same solution at a
/// fraction of the SVD's cost. Otherwise the SVD decides.
pub fn solve_damped_psd(c: MatRef<'_, f64>, damping: f64, b: &[f64]) -> Result<Vec<f64>> {
    use faer::Side;
    use faer::linalg::solvers::Solve;
    sequential_linear_algebra();
    let n = c.nrows();
    let mut m = c.to_owned();
    for i in 0..n {
        m[(i, i)] += damping;
    }
    let trace: f64 = (0..n).map(|i| c[(i, i)]).sum();
    let cutoff_bound = f64::EPSILON * n as f64 * (trace + damping);
    if damping > cutoff_bound
        && let Ok(llt) = m.llt(Side::Lower)
    {
        let x = llt.solve(MatRef::from_column_major_slice(b, n, 1));
        return Ok(x.col(0).iter().copied().collect());
    }
    solve(m.as_ref(), b)
}
