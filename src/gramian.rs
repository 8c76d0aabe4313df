//! Exact Gramians (REFERENCE §4), ENGD's curvature:
//! `G = (1/N) Σ_n g_n g_nᵀ = (1/N) JᵀJ` with `J` the per-point gradients,
//! and its `full`, `per_layer` and `diagonal` approximations.

use crate::mlp::LayerShape;
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approximation {
    Full,
    PerLayer,
    Diagonal,
}

impl Approximation {
    pub const NAMES: [&'static str; 3] = ["full", "per_layer", "diagonal"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "full" => Some(Self::Full),
            "per_layer" => Some(Self::PerLayer),
            "diagonal" => Some(Self::Diagonal),
            _ => None,
        }
    }
}

/// `(1/N) JᵀJ` for an `N × P` Jacobian, as one matrix product.
pub fn gramian(jacobian: MatRef<'_, f64>) -> Mat<f64> {
    let n = jacobian.nrows();
    let p = jacobian.ncols();
    let mut g = Mat::<f64>::zeros(p, p);
    matmul(
        g.as_mut(),
        Accum::Replace,
        jacobian.transpose(),
        jacobian,
        1.0 / n as f64,
        Par::Seq,
    );
    g
}

/// The diagonal blocks `(1/N) J_lᵀ J_l` of each linear layer.
pub fn layer_blocks(jacobian: MatRef<'_, f64>, layers: &[LayerShape]) -> Vec<Mat<f64>> {
    layers
        .iter()
        .map(|l| gramian(jacobian.subcols(l.offset, l.n_params())))
        .collect()
}

/// `diag(G)_p = (1/N) Σ_n J_{np}²`.
pub fn diagonal(jacobian: MatRef<'_, f64>) -> Vec<f64> {
    let n = jacobian.nrows() as f64;
    (0..jacobian.ncols())
        .map(|p| jacobian.col(p).iter().map(|x| x * x).sum::<f64>() / n)
        .collect()
}
