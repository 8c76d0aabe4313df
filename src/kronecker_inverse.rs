//! `K⁻¹ v` for a sum of two Kronecker products
//! `K = B₁ ⊗ A₁ + B₂ ⊗ A₂` (each factor symmetric, `A₂`, `B₂` positive
//! definite), through generalized symmetric eigendecompositions (REFERENCE §6).
//!
//! With `Q_Aᵀ A₂ Q_A = I`, `Q_Aᵀ A₁ Q_A = diag(α)` and likewise `Q_B, β`:
//! `K = (Q_B ⊗ Q_A)⁻ᵀ (diag(β) ⊗ diag(α) + I) (Q_B ⊗ Q_A)⁻¹`, so in the
//! KFAC basis (`(B ⊗ A) vec(V) = vec(B V Aᵀ)`, row-major `vec`)
//! `K⁻¹ vec(V) = vec(Q_B [(Q_Bᵀ V Q_A) ⊘ (β αᵀ + 1)] Q_Aᵀ)`.

use crate::least_squares::sequential_linear_algebra;
use anyhow::{Result, anyhow};
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::{Mat, MatRef, Par, Side};

/// `Q` and `λ` with `Qᵀ M₂ Q = I`, `Qᵀ M₁ Q = diag(λ)`: Cholesky `M₂ = L Lᵀ`,
/// eigendecomposition of `L⁻¹ M₁ L⁻ᵀ = U diag(λ) Uᵀ`, `Q = L⁻ᵀ U`.
fn generalized_eigen(
    m1: MatRef<'_, f64>,
    m2: MatRef<'_, f64>,
    what: &str,
) -> Result<(Mat<f64>, Vec<f64>)> {
    let llt = m2.llt(Side::Lower).map_err(|_| {
        anyhow!("{what} is not positive definite (singular Kronecker factor; is the damping 0?)")
    })?;
    let l = llt.L();
    let mut x = m1.to_owned();
    solve_lower_triangular_in_place(l, x.as_mut(), Par::Seq);
    let mut c = x.transpose().to_owned();
    solve_lower_triangular_in_place(l, c.as_mut(), Par::Seq);
    // Symmetrise: rounding leaves C symmetric only to ε.
    let c = Mat::from_fn(c.nrows(), c.ncols(), |i, j| 0.5 * (c[(i, j)] + c[(j, i)]));
    let evd = c
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| anyhow!("eigendecomposition for {what} failed: {e:?}"))?;
    let mut q = evd.U().to_owned();
    solve_upper_triangular_in_place(l.transpose(), q.as_mut(), Par::Seq);
    Ok((q, evd.S().column_vector().iter().copied().collect()))
}

#[derive(Clone, Debug)]
pub struct KroneckerSumInverse {
    q_a: Mat<f64>,
    alpha: Vec<f64>,
    q_b: Mat<f64>,
    beta: Vec<f64>,
}

impl KroneckerSumInverse {
    pub fn new(
        a1: MatRef<'_, f64>,
        b1: MatRef<'_, f64>,
        a2: MatRef<'_, f64>,
        b2: MatRef<'_, f64>,
    ) -> Result<Self> {
        sequential_linear_algebra();
        let (q_a, alpha) = generalized_eigen(a1, a2, "the input factor A")?;
        let (q_b, beta) = generalized_eigen(b1, b2, "the output factor B")?;
        Ok(Self {
            q_a,
            alpha,
            q_b,
            beta,
        })
    }

    /// `K⁻¹ vec(V)` for `V` of shape `d_out × (d_in+1)`.
    pub fn apply(&self, v: MatRef<'_, f64>) -> Mat<f64> {
        let mut w = self.q_b.transpose() * v * &self.q_a;
        for i in 0..w.nrows() {
            for j in 0..w.ncols() {
                w[(i, j)] /= self.beta[i] * self.alpha[j] + 1.0;
            }
        }
        &self.q_b * w * self.q_a.transpose()
    }
}
