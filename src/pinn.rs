//! The physics-informed least-squares problem (REFERENCE §1): residuals,
//! the two losses and the L2 error of a network on fixed point sets.

use crate::forward_laplacian::{Output, Trace, forward};
use crate::jacobians::Linearization;
use crate::mlp::Mlp;
use crate::problem::{Data, Equation, Points};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

/// A network architecture, an equation and its point sets, with the targets
/// `f(x_n)` (interior), `u*(x_n)` (boundary, evaluation) precomputed.
#[derive(Clone, Debug)]
pub struct Pinn {
    pub mlp: Mlp,
    pub equation: Equation,
    pub data: Data,
    pub source_interior: Vec<f64>,
    pub solution_boundary: Vec<f64>,
    pub solution_eval: Vec<f64>,
}

/// `L_Ω = ½ mean r_Ω²` and `L_∂ = ½ mean r_∂²`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Losses {
    pub interior: f64,
    pub boundary: f64,
}

impl Losses {
    /// `Loss = L_Ω + L_∂`, added in float64.
    pub fn total(&self) -> f64 {
        self.interior + self.boundary
    }
}

/// `½ · mean r²`.
pub fn half_mean_square(residual: &[f64]) -> f64 {
    0.5 * residual.iter().map(|r| r * r).sum::<f64>() / residual.len() as f64
}

impl Pinn {
    pub fn new(mlp: Mlp, equation: Equation, data: Data) -> Self {
        let targets = |p: &Points, f: &dyn Fn(&[f64]) -> f64| p.iter().map(f).collect::<Vec<_>>();
        Self {
            source_interior: targets(&data.interior, &|x| equation.source(x)),
            solution_boundary: targets(&data.boundary, &|x| equation.solution(x)),
            solution_eval: targets(&data.eval, &|x| equation.solution(x)),
            mlp,
            equation,
            data,
        }
    }

    /// Interior residuals `r_n = Δu_θ(x_n) + f(x_n)`, from a forward pass
    /// (traced when `trace` is given).
    pub fn interior_residuals(&self, theta: &[f64], trace: Option<&mut Trace>) -> Vec<f64> {
        let Output { laplacian, .. } = forward(&self.mlp, theta, &self.data.interior, true, trace);
        let laplacian = laplacian.expect("forward with Laplacian");
        laplacian
            .iter()
            .zip(&self.source_interior)
            .map(|(lap, f)| lap + f)
            .collect()
    }

    /// Boundary residuals `r_n = u_θ(x_n) − u*(x_n)`.
    pub fn boundary_residuals(&self, theta: &[f64], trace: Option<&mut Trace>) -> Vec<f64> {
        let out = forward(&self.mlp, theta, &self.data.boundary, false, trace);
        out.value
            .iter()
            .zip(&self.solution_boundary)
            .map(|(u, g)| u - g)
            .collect()
    }

    pub fn losses(&self, theta: &[f64]) -> Losses {
        Losses {
            interior: half_mean_square(&self.interior_residuals(theta, None)),
            boundary: half_mean_square(&self.boundary_residuals(theta, None)),
        }
    }

    /// `sqrt(mean over X_eval of (u_θ − u*)²)`.
    pub fn l2_error(&self, theta: &[f64]) -> f64 {
        let out = forward(&self.mlp, theta, &self.data.eval, false, None);
        let sum: f64 = out
            .value
            .iter()
            .zip(&self.solution_eval)
            .map(|(u, g)| (u - g) * (u - g))
            .sum();
        (sum / out.value.len() as f64).sqrt()
    }
}

/// Everything both optimizers need at one `θ`: residuals, losses, per-point
/// Jacobians (Gramian basis) and the gradient
/// `∇_θ(L_Ω + L_∂) = J_Ωᵀ r_Ω / N_Ω + J_∂ᵀ r_∂ / N_∂`.
#[derive(Clone, Debug)]
pub struct LinearizedPinn {
    pub interior: Linearization,
    pub boundary: Linearization,
    pub residual_interior: Vec<f64>,
    pub residual_boundary: Vec<f64>,
    pub jacobian_interior: Mat<f64>,
    pub jacobian_boundary: Mat<f64>,
    pub losses: Losses,
    pub gradient: Vec<f64>,
}

/// `Jᵀ r / N`.
fn mean_weighted_rows(jacobian: &Mat<f64>, residual: &[f64]) -> Vec<f64> {
    let n = residual.len() as f64;
    let r = MatRef::from_column_major_slice(residual, residual.len(), 1);
    let mut out = Mat::<f64>::zeros(jacobian.ncols(), 1);
    matmul(
        out.as_mut(),
        Accum::Replace,
        jacobian.transpose(),
        r,
        1.0 / n,
        Par::Seq,
    );
    out.col(0).iter().copied().collect()
}

impl Pinn {
    pub fn linearize(&self, theta: &[f64]) -> LinearizedPinn {
        let interior = Linearization::new(&self.mlp, theta, &self.data.interior, true);
        let boundary = Linearization::new(&self.mlp, theta, &self.data.boundary, false);
        let residual_interior: Vec<f64> = interior
            .output
            .iter()
            .zip(&self.source_interior)
            .map(|(lap, f)| lap + f)
            .collect();
        let residual_boundary: Vec<f64> = boundary
            .output
            .iter()
            .zip(&self.solution_boundary)
            .map(|(u, g)| u - g)
            .collect();
        let jacobian_interior = interior.jacobian();
        let jacobian_boundary = boundary.jacobian();
        let gradient = mean_weighted_rows(&jacobian_interior, &residual_interior)
            .iter()
            .zip(mean_weighted_rows(&jacobian_boundary, &residual_boundary))
            .map(|(a, b)| a + b)
            .collect();
        LinearizedPinn {
            losses: Losses {
                interior: half_mean_square(&residual_interior),
                boundary: half_mean_square(&residual_boundary),
            },
            interior,
            boundary,
            residual_interior,
            residual_boundary,
            jacobian_interior,
            jacobian_boundary,
            gradient,
        }
    }
}
