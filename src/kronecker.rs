//! Kronecker factors of KFAC-expand (REFERENCE §5) and the permutation between
//! the Gramian basis and the KFAC basis.
//!
//! For a layer with augmented inputs `ã_{n,s}` and backpropagated output
//! gradients `g_{n,s}` (rows `s` of point `n`; one row on the boundary, `d+2`
//! in the interior): `A = (1/(N·S)) Σ ã ãᵀ`, `B = Σ g gᵀ`, and
//! `B ⊗ A ≈ G_layer` in the KFAC basis.

use crate::gramian::scaled_gram;
use crate::jacobians::{Linearization, every_point_row};
use crate::mlp::{LayerShape, Mlp};
use faer::{Mat, MatRef};
use rayon::prelude::*;

/// The backpropagated error `e_n` (`--KFAC_ggn_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GgnType {
    /// `e_n = 1/√N`.
    #[serde(rename = "type-2")]
    Type2,
    /// `e_n = r_n/√N`, held constant.
    Empirical,
    /// No backpropagation: `B = I`.
    ForwardOnly,
}

impl GgnType {
    pub const NAMES: [&'static str; 3] = ["type-2", "empirical", "forward-only"];
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "type-2" => Some(Self::Type2),
            "empirical" => Some(Self::Empirical),
            "forward-only" => Some(Self::ForwardOnly),
            _ => None,
        }
    }
}

/// `--KFAC_error_scale`: whether `e_n` carries the `1/√N` of the documented fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorScale {
    InvSqrtN,
    One,
}

impl ErrorScale {
    pub const NAMES: [&'static str; 2] = ["inv_sqrt_n", "one"];
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "inv_sqrt_n" => Some(Self::InvSqrtN),
            "one" => Some(Self::One),
            _ => None,
        }
    }
}

/// `--KFAC_interior_B_rows`: which rows of the first layer enter `B_Ω`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InteriorBRows {
    /// The log's code: it backpropagated to the network input, so the first
    /// layer's constant rows (`W e_i`, `W·0`) got no gradient and only its
    /// value rows enter `B_Ω`.
    InputDependent,
    /// Every row, as the mathematics asks.
    All,
}

impl InteriorBRows {
    pub const NAMES: [&'static str; 2] = ["input_dependent", "all"];
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "input_dependent" => Some(Self::InputDependent),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KfacSettings {
    pub ggn_type: GgnType,
    pub error_scale: ErrorScale,
    pub interior_b_rows: InteriorBRows,
}

impl Default for KfacSettings {
    fn default() -> Self {
        Self {
            ggn_type: GgnType::Type2,
            error_scale: ErrorScale::InvSqrtN,
            interior_b_rows: InteriorBRows::InputDependent,
        }
    }
}

/// The factors `A` (`(d_in+1)²`) and `B` (`d_out²`) of one layer and one term.
#[derive(Clone, Debug)]
pub struct KroneckerFactors {
    pub a: Mat<f64>,
    pub b: Mat<f64>,
}

/// The Kronecker factors of every layer for one term (interior when the
/// linearisation carries Laplacian rows, boundary otherwise), with residuals
/// `r_n` for the empirical error.
pub fn kronecker_factors(
    lin: &Linearization,
    residual: &[f64],
    settings: &KfacSettings,
) -> Vec<KroneckerFactors> {
    let n = lin.n_points;
    let rows = lin.rows_per_point;
    // e_n = w_n · c with w_n = r_n (empirical) or 1 (type-2), and c = 1/√N
    // or 1: B = c² Σ w_n² g gᵀ, so the two error scales differ by exactly
    // the factor N applied once.
    let weight = (settings.ggn_type == GgnType::Empirical).then_some(residual);
    let error_scale_sq = match settings.error_scale {
        ErrorScale::InvSqrtN => 1.0 / n as f64,
        ErrorScale::One => 1.0,
    };
    lin.layers
        .par_iter()
        .enumerate()
        .map(|(l, shape)| {
            let (d_in, d_out) = (shape.d_in, shape.d_out);
            let a = augmented_gram(&lin.inputs[l], d_in, rows, 1.0 / (n * rows) as f64);
            let b = if settings.ggn_type == GgnType::ForwardOnly {
                Mat::identity(d_out, d_out)
            } else {
                let value_rows_only =
                    rows > 1 && l == 0 && settings.interior_b_rows == InteriorBRows::InputDependent;
                // The kept rows of `G` (`N·S × d_out`): every row, or each
                // point's value row (a stride, not a copy).
                let g = &lin.output_grads[l];
                let grads = if value_rows_only {
                    every_point_row(g, d_out, rows, 0)
                } else {
                    MatRef::from_row_major_slice(g, n * rows, d_out)
                };
                let kept = grads.nrows();
                match &weight {
                    None => scaled_gram(grads, error_scale_sq),
                    Some(residual) => {
                        let per_row = if value_rows_only { 1 } else { rows };
                        let weighted =
                            Mat::from_fn(kept, d_out, |r, c| residual[r / per_row] * grads[(r, c)]);
                        scaled_gram(weighted.as_ref(), error_scale_sq)
                    }
                }
            };
            KroneckerFactors { a, b }
        })
        .collect()
}

/// `scale · ÃᵀÃ` for `Ã = [X | 1_v]`, `1_v` the indicator of the value rows
/// (every `rows_per_point`-th row, from the first), by blocks and without
/// forming `Ã`: `[[XᵀX, Xᵀ1_v], [1_vᵀX, N]]`, `X` row-major `· × d_in`.
fn augmented_gram(x: &[f64], d_in: usize, rows_per_point: usize, scale: f64) -> Mat<f64> {
    let n_rows = x.len() / d_in;
    let inner = scaled_gram(MatRef::from_row_major_slice(x, n_rows, d_in), scale);
    // Xᵀ1_v: the value rows added in order.
    let mut bias = vec![0.0; d_in];
    for value_row in x.chunks_exact(rows_per_point * d_in) {
        for (b, v) in bias.iter_mut().zip(value_row) {
            *b += v;
        }
    }
    let n_points = n_rows / rows_per_point;
    Mat::from_fn(d_in + 1, d_in + 1, |i, j| match (i == d_in, j == d_in) {
        (false, false) => inner[(i, j)],
        (true, false) => scale * bias[j],
        (false, true) => scale * bias[i],
        (true, true) => scale * n_points as f64,
    })
}

/// `B ⊗ A` as a dense matrix in the KFAC basis (row-major `vec([W | b])`).
pub fn kron(b: MatRef<'_, f64>, a: MatRef<'_, f64>) -> Mat<f64> {
    let (p, q) = (b.nrows(), a.nrows());
    Mat::from_fn(p * q, p * q, |r, c| b[(r / q, c / q)] * a[(r % q, c % q)])
}

/// A layer's matrix in the Gramian basis, re-indexed into the KFAC basis.
pub fn gramian_to_kfac_basis(layer: &LayerShape, m: MatRef<'_, f64>) -> Mat<f64> {
    let perm = Mlp::kfac_to_gramian(layer);
    Mat::from_fn(perm.len(), perm.len(), |r, c| m[(perm[r], perm[c])])
}

/// A layer's matrix in the KFAC basis, re-indexed into the Gramian basis.
pub fn kfac_to_gramian_basis(layer: &LayerShape, m: MatRef<'_, f64>) -> Mat<f64> {
    let perm = Mlp::kfac_to_gramian(layer);
    let mut out = Mat::<f64>::zeros(perm.len(), perm.len());
    for r in 0..perm.len() {
        for c in 0..perm.len() {
            out[(perm[r], perm[c])] = m[(r, c)];
        }
    }
    out
}

/// A layer's vector in the Gramian basis, re-indexed into the KFAC basis.
pub fn vector_to_kfac_basis(layer: &LayerShape, v: &[f64]) -> Vec<f64> {
    Mlp::kfac_to_gramian(layer).iter().map(|&g| v[g]).collect()
}

/// A layer's vector in the KFAC basis, re-indexed into the Gramian basis.
pub fn vector_to_gramian_basis(layer: &LayerShape, v: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for (k, &g) in Mlp::kfac_to_gramian(layer).iter().enumerate() {
        out[g] = v[k];
    }
    out
}

/// One term's curvature both ways, per layer: the exact Gramian blocks
/// (Gramian basis) and this step's Kronecker factors.
pub struct TermCurvatures {
    pub exact: Vec<Mat<f64>>,
    pub factors: Vec<KroneckerFactors>,
}

/// `[interior, boundary]` curvatures of a linearised PINN: what `dump`,
/// `compare` and the heatmaps lay side by side.
pub fn both_terms(
    lin: &crate::pinn::LinearizedPinn,
    layers: &[LayerShape],
    settings: &KfacSettings,
) -> [TermCurvatures; 2] {
    [
        TermCurvatures {
            exact: crate::gramian::layer_blocks(lin.jacobian_interior(), layers),
            factors: kronecker_factors(&lin.interior, &lin.residual_interior, settings),
        },
        TermCurvatures {
            exact: crate::gramian::layer_blocks(lin.jacobian_boundary(), layers),
            factors: kronecker_factors(&lin.boundary, &lin.residual_boundary, settings),
        },
    ]
}
