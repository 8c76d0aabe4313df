//! The physics-informed least-squares problem (REFERENCE §1): residuals,
//! the two losses and the L2 error of a network on fixed point sets.

use crate::forward_laplacian::{Output, Trace, forward, forward_until};
use crate::jacobians::{Jacobian, Linearization};
use crate::mlp::Mlp;
use crate::problem::{Data, Equation, Points};
use faer::MatRef;
use std::sync::OnceLock;

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
    0.5 * add_squares(0.0, residual.iter().copied()) / residual.len() as f64
}

/// `sum + Σ r²`, added in order: the running sum of `half_mean_square`, so
/// that a sum continued block by block has the same bits.
fn add_squares(sum: f64, residual: impl Iterator<Item = f64>) -> f64 {
    residual.fold(sum, |s, r| s + r * r)
}

/// `r = Δu_θ(x) + f(x)` (REFERENCE §1).
pub(crate) fn interior_residual(laplacian: f64, source: f64) -> f64 {
    laplacian + source
}

/// `r = u_θ(x) − u*(x)` (REFERENCE §1).
pub(crate) fn boundary_residual(u: f64, solution: f64) -> f64 {
    u - solution
}

/// `rule(output_n, target_n)` for every point.
fn residuals(outputs: &[f64], targets: &[f64], rule: fn(f64, f64) -> f64) -> Vec<f64> {
    outputs
        .iter()
        .zip(targets)
        .map(|(&o, &t)| rule(o, t))
        .collect()
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
        let laplacian = forward(&self.mlp, theta, &self.data.interior, true, trace);
        residuals(&laplacian, &self.source_interior, interior_residual)
    }

    /// Boundary residuals `r_n = u_θ(x_n) − u*(x_n)`.
    pub fn boundary_residuals(&self, theta: &[f64], trace: Option<&mut Trace>) -> Vec<f64> {
        let u = forward(&self.mlp, theta, &self.data.boundary, false, trace);
        residuals(&u, &self.solution_boundary, boundary_residual)
    }

    pub fn losses(&self, theta: &[f64]) -> Losses {
        Losses {
            interior: half_mean_square(&self.interior_residuals(theta, None)),
            boundary: half_mean_square(&self.boundary_residuals(theta, None)),
        }
    }

    /// `losses(θ)`, unless a lower bound of `L_Ω + L_∂` already exceeds
    /// `bound` part of the way through the points: then `Err` with that
    /// lower bound, and the rest is never computed. The squares are
    /// non-negative and added in order (rounding is monotone), so the
    /// running `½ Σ r² / N` only grows; a completed evaluation has the bits
    /// of `losses(θ)`.
    pub fn losses_below(&self, theta: &[f64], bound: f64) -> Result<Losses, f64> {
        let half_mean_until = |points: &Points,
                               with_laplacian: bool,
                               residual: &dyn Fn(usize, f64) -> f64,
                               before: f64|
         -> Result<f64, f64> {
            let (n, mut sum, mut done) = (points.len() as f64, 0.0, 0);
            let mut above = |outputs: &Output| {
                let new = (done..outputs.len()).map(|i| residual(i, outputs[i]));
                sum = add_squares(sum, new);
                done = outputs.len();
                before + 0.5 * sum / n > bound
            };
            // Only a sum above the bound stops the pass early.
            forward_until(&self.mlp, theta, points, with_laplacian, &mut above);
            let half_mean = 0.5 * sum / n;
            if before + half_mean > bound {
                Err(before + half_mean)
            } else {
                Ok(half_mean)
            }
        };
        let interior = half_mean_until(
            &self.data.interior,
            true,
            &|i, lap| interior_residual(lap, self.source_interior[i]),
            0.0,
        )?;
        let boundary = half_mean_until(
            &self.data.boundary,
            false,
            &|i, u| boundary_residual(u, self.solution_boundary[i]),
            interior,
        )?;
        Ok(Losses { interior, boundary })
    }

    /// `sqrt(mean over X_eval of (u_θ − u*)²)`. The values come from two
    /// fixed halves of the points in parallel (a point's value does not
    /// depend on the others); the sum runs in order.
    pub fn l2_error(&self, theta: &[f64]) -> f64 {
        let eval = &self.data.eval;
        let mid = crate::halves::split(eval.len(), 1);
        let values = |points: std::ops::Range<usize>| {
            let coords = eval.coords[points.start * eval.dim..points.end * eval.dim].to_vec();
            let half = Points {
                dim: eval.dim,
                coords,
            };
            forward(&self.mlp, theta, &half, false, None)
        };
        let (first, second) = rayon::join(|| values(0..mid), || values(mid..eval.len()));
        let u = [first, second].concat();
        let sum: f64 = u
            .iter()
            .zip(&self.solution_eval)
            .map(|(u, g)| (u - g) * (u - g))
            .sum();
        (sum / u.len() as f64).sqrt()
    }
}

/// Everything both optimizers need at one `θ`: residuals, losses, the
/// gradient `∇_θ(L_Ω + L_∂) = J_Ωᵀ r_Ω / N_Ω + J_∂ᵀ r_∂ / N_∂`, and, formed
/// on first use (KFAC without an exact term never needs them), the per-point
/// Jacobians in the Gramian basis.
#[derive(Clone, Debug)]
pub struct LinearizedPinn {
    pub interior: Linearization,
    pub boundary: Linearization,
    pub residual_interior: Vec<f64>,
    pub residual_boundary: Vec<f64>,
    pub losses: Losses,
    pub gradient: Vec<f64>,
    jacobians: [OnceLock<Jacobian>; 2],
}

impl LinearizedPinn {
    /// `J_Ω` (`N_Ω × P`), rows `g_n^Ω = ∇_θ Δu_θ(x_n)`.
    pub fn jacobian_interior(&self) -> MatRef<'_, f64> {
        self.jacobians[0]
            .get_or_init(|| self.interior.jacobian())
            .as_ref()
    }

    /// `J_∂` (`N_∂ × P`), rows `g_n^∂ = ∇_θ u_θ(x_n)`.
    pub fn jacobian_boundary(&self) -> MatRef<'_, f64> {
        self.jacobians[1]
            .get_or_init(|| self.boundary.jacobian())
            .as_ref()
    }
}

impl Pinn {
    pub fn linearize(&self, theta: &[f64]) -> LinearizedPinn {
        // The two point sets are independent: the boundary's pass runs
        // beside the interior's serial parts.
        let (interior, boundary) = rayon::join(
            || Linearization::new(&self.mlp, theta, &self.data.interior, true),
            || Linearization::new(&self.mlp, theta, &self.data.boundary, false),
        );
        let residual_interior =
            residuals(&interior.output, &self.source_interior, interior_residual);
        let residual_boundary =
            residuals(&boundary.output, &self.solution_boundary, boundary_residual);
        let over_n = |r: &[f64]| r.iter().map(|x| x / r.len() as f64).collect::<Vec<_>>();
        let (gradient_interior, gradient_boundary) = rayon::join(
            || interior.weighted_gradient(&over_n(&residual_interior)),
            || boundary.weighted_gradient(&over_n(&residual_boundary)),
        );
        let gradient = gradient_interior
            .iter()
            .zip(gradient_boundary)
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
            gradient,
            jacobians: Default::default(),
        }
    }
}
