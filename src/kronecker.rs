//! Kronecker factors of KFAC-expand (REFERENCE §5) and the permutation between
//! the Gramian basis and the KFAC basis.
//!
//! For a layer with augmented inputs `ã_{n,s}` and backpropagated output
//! gradients `g_{n,s}` (rows `s` of point `n`; one row on the boundary, `d+2`
//! in the interior): `A = (1/(N·S)) Σ ã ãᵀ`, `B = Σ g gᵀ`, and
//! `B ⊗ A ≈ G_layer` in the KFAC basis.

use crate::gramian::scaled_grams;
use crate::jacobians::{Linearization, every_point_row};
use crate::mlp::{LayerShape, Mlp};
use faer::{Mat, MatRef};

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
    kronecker_factors_of_terms(&[(lin, residual)], settings).remove(0)
}

/// `kronecker_factors` of several terms, with every term's and layer's Gram
/// products formed together (`scaled_grams`, largest first).
pub fn kronecker_factors_of_terms(
    terms: &[(&Linearization, &[f64])],
    settings: &KfacSettings,
) -> Vec<Vec<KroneckerFactors>> {
    let b_rows: Vec<Vec<Option<BRows<'_>>>> = terms
        .iter()
        .map(|&(lin, residual)| {
            (0..lin.layers.len())
                .map(|l| b_rows(lin, l, residual, settings))
                .collect()
        })
        .collect();
    // A's inner block `XᵀX`, then (unless B = I) B, for each term and layer.
    let mut products = Vec::new();
    for (&(lin, _), b_rows) in terms.iter().zip(&b_rows) {
        for ((shape, x), b) in lin.layers.iter().zip(&lin.inputs).zip(b_rows) {
            let x = MatRef::from_row_major_slice(x, x.len() / shape.d_in, shape.d_in);
            products.push((x, a_scale(lin)));
            if let Some(b) = b {
                products.push((b.rows(), b_scale(lin, settings)));
            }
        }
    }
    let mut grams = scaled_grams(&products).into_iter();
    terms
        .iter()
        .zip(&b_rows)
        .map(|(&(lin, _), b_rows)| {
            lin.layers
                .iter()
                .enumerate()
                .map(|(l, shape)| {
                    let inner = grams.next().expect("A's product");
                    let a = augmented_gram(
                        inner,
                        &lin.inputs[l],
                        shape.d_in,
                        lin.rows_per_point,
                        a_scale(lin),
                    );
                    let b = match b_rows[l] {
                        Some(_) => grams.next().expect("B's product"),
                        None => Mat::identity(shape.d_out, shape.d_out),
                    };
                    KroneckerFactors { a, b }
                })
                .collect()
        })
        .collect()
}

/// `A = (1/(N·S)) Σ ã ãᵀ`: the scale of every row's product.
fn a_scale(lin: &Linearization) -> f64 {
    1.0 / (lin.n_points * lin.rows_per_point) as f64
}

/// `B = c² Σ w_n² g gᵀ` with `e_n = w_n · c`, `w_n = r_n` (empirical) or 1
/// (type-2), and `c = 1/√N` or 1: the two error scales differ by exactly
/// the factor `N`, applied once.
fn b_scale(lin: &Linearization, settings: &KfacSettings) -> f64 {
    match settings.error_scale {
        ErrorScale::InvSqrtN => 1.0 / lin.n_points as f64,
        ErrorScale::One => 1.0,
    }
}

/// The rows whose Gram product is `B` (before its scale).
enum BRows<'a> {
    /// The kept rows of `G`, read in place (every row, or each point's
    /// value row through a stride).
    InPlace(MatRef<'a, f64>),
    /// Those rows times the empirical error's `r_n`: a copy.
    Weighted(Mat<f64>),
}

impl BRows<'_> {
    fn rows(&self) -> MatRef<'_, f64> {
        match self {
            Self::InPlace(rows) => *rows,
            Self::Weighted(rows) => rows.as_ref(),
        }
    }
}

/// Layer `l`'s `B` rows, or `None` where `B = I` (forward-only).
fn b_rows<'a>(
    lin: &'a Linearization,
    l: usize,
    residual: &[f64],
    settings: &KfacSettings,
) -> Option<BRows<'a>> {
    if settings.ggn_type == GgnType::ForwardOnly {
        return None;
    }
    let (rows, d_out) = (lin.rows_per_point, lin.layers[l].d_out);
    let value_rows_only =
        rows > 1 && l == 0 && settings.interior_b_rows == InteriorBRows::InputDependent;
    // The kept rows of `G` (`N·S × d_out`): every row, or each point's
    // value row (a stride, not a copy).
    let g = &lin.output_grads[l];
    let grads = if value_rows_only {
        every_point_row(g, d_out, rows, 0)
    } else {
        MatRef::from_row_major_slice(g, lin.n_points * rows, d_out)
    };
    Some(if settings.ggn_type == GgnType::Empirical {
        let per_row = if value_rows_only { 1 } else { rows };
        BRows::Weighted(Mat::from_fn(grads.nrows(), d_out, |r, c| {
            residual[r / per_row] * grads[(r, c)]
        }))
    } else {
        BRows::InPlace(grads)
    })
}

/// `scale · ÃᵀÃ` for `Ã = [X | 1_v]`, `1_v` the indicator of the value rows
/// (every `rows_per_point`-th row, from the first), by blocks and without
/// forming `Ã`: `[[XᵀX, Xᵀ1_v], [1_vᵀX, N]]`, `X` row-major `· × d_in`,
/// from `inner = scale · XᵀX`.
fn augmented_gram(
    inner: Mat<f64>,
    x: &[f64],
    d_in: usize,
    rows_per_point: usize,
    scale: f64,
) -> Mat<f64> {
    let n_rows = x.len() / d_in;
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
    let jacobians = [lin.jacobian_interior(), lin.jacobian_boundary()];
    let (exact, factors) = rayon::join(
        || crate::gramian::layer_blocks_of_all(&jacobians, layers),
        || {
            kronecker_factors_of_terms(
                &[
                    (&lin.interior, &lin.residual_interior),
                    (&lin.boundary, &lin.residual_boundary),
                ],
                settings,
            )
        },
    );
    let mut terms = exact
        .into_iter()
        .zip(factors)
        .map(|(exact, factors)| TermCurvatures { exact, factors });
    [terms.next().unwrap(), terms.next().unwrap()]
}
