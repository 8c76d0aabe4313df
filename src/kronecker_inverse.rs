//! `K⁻¹ v` for a sum of two Kronecker products
//! `K = B₁ ⊗ A₁ + B₂ ⊗ A₂` (each factor symmetric, `A₂`, `B₂` positive
//! definite), through generalized symmetric eigendecompositions (REFERENCE §6:
//! the original's method; any sound one will do).
//!
//! With `Q_Aᵀ A₂ Q_A = I`, `Q_Aᵀ A₁ Q_A = diag(α)` and likewise `Q_B, β`:
//! `K = (Q_B ⊗ Q_A)⁻ᵀ (diag(β) ⊗ diag(α) + I) (Q_B ⊗ Q_A)⁻¹`, so in the
//! KFAC basis (`(B ⊗ A) vec(V) = vec(B V Aᵀ)`, row-major `vec`)
//! `K⁻¹ vec(V) = vec(Q_B [(Q_Bᵀ V Q_A) ⊘ (β αᵀ + 1)] Q_Aᵀ)`.
//!
//! When one side is small (a layer with few inputs, or the scalar output
//! layer), only that side is diagonalised. With `X = Y Q_Aᵀ`,
//! `K vec(X) = vec(V)` becomes `B₁ Y diag(α) + B₂ Y = V Q_A`: column `j` of
//! `Y` solves `(α_j B₁ + B₂) y_j = (V Q_A)_j`, by Cholesky. Its cost is
//! `d_A` Cholesky factorisations of the large side instead of its
//! eigendecomposition, which is 20× dearer (faer at 64 × 64: 0.135 against
//! 0.007 ms); the output side is the same with the roles swapped.

use crate::least_squares::sequential_linear_algebra;
use anyhow::{Result, anyhow};
use faer::linalg::solvers::Llt;
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::prelude::Solve;
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

/// The largest side diagonalised on its own (see the module's text): below
/// it, `d_small` Cholesky factorisations of the other side cost less than
/// the two eigendecompositions.
const SMALL_SIDE: usize = 16;

#[derive(Clone, Debug)]
pub struct KroneckerSumInverse(Method);

#[derive(Clone, Debug)]
enum Method {
    BothSides {
        q_a: Mat<f64>,
        alpha: Vec<f64>,
        q_b: Mat<f64>,
        beta: Vec<f64>,
    },
    /// The input side (`A`) diagonalised.
    InputSide(OneSide),
    /// The output side (`B`) diagonalised: the input side's solve on `Vᵀ`,
    /// since `vec(B X A)` transposed is `vec(A Xᵀ B)`.
    OutputSide(OneSide),
}

/// `Q` of the diagonalised side, and one Cholesky factor of
/// `λ_j M₁ + M₂` (the other side) per eigenvalue `λ_j`.
#[derive(Clone, Debug)]
struct OneSide {
    q: Mat<f64>,
    blocks: Vec<Llt<f64>>,
}

impl OneSide {
    fn new(
        small: (MatRef<'_, f64>, MatRef<'_, f64>),
        large: (MatRef<'_, f64>, MatRef<'_, f64>),
        small_name: &str,
        large_name: &str,
    ) -> Result<Self> {
        let (q, lambda) = generalized_eigen(small.0, small.1, small_name)?;
        let (m1, m2) = large;
        let blocks = lambda
            .iter()
            .map(|&l| {
                Mat::from_fn(m2.nrows(), m2.ncols(), |i, k| l * m1[(i, k)] + m2[(i, k)])
                    .llt(Side::Lower)
                    .map_err(|_| {
                        anyhow!(
                            "{large_name} plus a multiple of its boundary term is not positive \
                             definite (singular Kronecker factor; is the damping 0?)"
                        )
                    })
            })
            .collect::<Result<_>>()?;
        Ok(Self { q, blocks })
    }

    /// `X = Y Qᵀ` with column `j` of `Y` solving block `j` against `(W Q)_j`.
    fn apply(&self, w: MatRef<'_, f64>) -> Mat<f64> {
        let mut y = w * &self.q;
        for (j, block) in self.blocks.iter().enumerate() {
            block.solve_in_place(y.as_mut().col_mut(j).as_mat_mut());
        }
        y * self.q.transpose()
    }
}

impl KroneckerSumInverse {
    pub fn new(
        a1: MatRef<'_, f64>,
        b1: MatRef<'_, f64>,
        a2: MatRef<'_, f64>,
        b2: MatRef<'_, f64>,
    ) -> Result<Self> {
        sequential_linear_algebra();
        let (input, output) = ("the input factor A", "the output factor B");
        let method = if a1.nrows().min(b1.nrows()) > SMALL_SIDE {
            let (q_a, alpha) = generalized_eigen(a1, a2, input)?;
            let (q_b, beta) = generalized_eigen(b1, b2, output)?;
            Method::BothSides {
                q_a,
                alpha,
                q_b,
                beta,
            }
        } else if a1.nrows() <= b1.nrows() {
            Method::InputSide(OneSide::new((a1, a2), (b1, b2), input, output)?)
        } else {
            Method::OutputSide(OneSide::new((b1, b2), (a1, a2), output, input)?)
        };
        Ok(Self(method))
    }

    /// `K⁻¹ vec(V)` for `V` of shape `d_out × (d_in+1)`.
    pub fn apply(&self, v: MatRef<'_, f64>) -> Mat<f64> {
        match &self.0 {
            Method::BothSides {
                q_a,
                alpha,
                q_b,
                beta,
            } => {
                let mut w = q_b.transpose() * v * q_a;
                for i in 0..w.nrows() {
                    for j in 0..w.ncols() {
                        w[(i, j)] /= beta[i] * alpha[j] + 1.0;
                    }
                }
                q_b * w * q_a.transpose()
            }
            Method::InputSide(side) => side.apply(v),
            Method::OutputSide(side) => side.apply(v.transpose()).transpose().to_owned(),
        }
    }
}
