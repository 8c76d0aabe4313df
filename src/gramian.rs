//! Exact Gramians (REFERENCE §4), ENGD's curvature:
//! `G = (1/N) Σ_n g_n g_nᵀ = (1/N) JᵀJ` with `J` the per-point gradients,
//! and its `full`, `per_layer` and `diagonal` approximations.

use crate::mlp::LayerShape;
use faer::linalg::matmul::triangular::{self, BlockStructure};
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

/// `(1/N) JᵀJ` for an `N × P` Jacobian.
pub fn gramian(jacobian: MatRef<'_, f64>) -> Mat<f64> {
    gramians(&[jacobian]).remove(0)
}

/// `gramian` of each Jacobian, all formed together (`scaled_grams`).
pub fn gramians(jacobians: &[MatRef<'_, f64>]) -> Vec<Mat<f64>> {
    let products: Vec<(MatRef<'_, f64>, f64)> =
        jacobians.iter().map(|&j| (j, over_points(j))).collect();
    scaled_grams(&products)
}

/// `1/N`, a Jacobian's Gramian scale: the mean over its `N` points.
fn over_points(jacobian: MatRef<'_, f64>) -> f64 {
    1.0 / jacobian.nrows() as f64
}

/// `scale · XᵀX`, the Gramians here and the Kronecker factors.
pub fn scaled_gram(x: MatRef<'_, f64>, scale: f64) -> Mat<f64> {
    scaled_grams(&[(x, scale)]).remove(0)
}

/// `scale_k · X_kᵀX_k` for every `(X_k, scale_k)`. Only the lower triangle
/// is computed (faer's triangular product), in two fixed halves of the rows
/// whose products are added; the split does not depend on the thread count,
/// so neither do the bits. Every product's halves are formed together,
/// largest first (`halves::largest_first`), which is the same arithmetic as
/// one product after the other. The upper triangle is the mirror image.
pub fn scaled_grams(products: &[(MatRef<'_, f64>, f64)]) -> Vec<Mat<f64>> {
    let halves: Vec<(MatRef<'_, f64>, f64)> = products
        .iter()
        .flat_map(|&(x, scale)| {
            let (top, bottom) = x.split_at_row(crate::halves::split(x.nrows(), 1));
            [(top, scale), (bottom, scale)]
        })
        .collect();
    let costs: Vec<usize> = halves
        .iter()
        .map(|(rows, _)| rows.nrows() * rows.ncols() * rows.ncols())
        .collect();
    let mut parts = crate::halves::largest_first(&costs, |k| {
        let (rows, scale) = halves[k];
        let p = rows.ncols();
        let mut g = Mat::<f64>::zeros(p, p);
        triangular::matmul(
            g.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Replace,
            rows.transpose(),
            BlockStructure::Rectangular,
            rows,
            BlockStructure::Rectangular,
            scale,
            Par::Seq,
        );
        g
    })
    .into_iter();
    products
        .iter()
        .map(|&(x, _)| {
            let p = x.ncols();
            let (mut g, g_bottom) = (parts.next().unwrap(), parts.next().unwrap());
            for j in 0..p {
                let (sum, other) = (g.col_as_slice_mut(j), g_bottom.col_as_slice(j));
                for (s, o) in sum[j..].iter_mut().zip(&other[j..]) {
                    *s += o;
                }
            }
            // Column by column, so that the writes are contiguous and the strided
            // accesses are reads (row by row, this function showed as 7% of ENGD's
            // Jacobians and Gramians in a profile on a Xeon; column by column, 4%).
            for i in 1..p {
                for j in 0..i {
                    g[(j, i)] = g[(i, j)];
                }
            }
            g
        })
        .collect()
}

/// The diagonal blocks `(1/N) J_lᵀ J_l` of each linear layer.
pub fn layer_blocks(jacobian: MatRef<'_, f64>, layers: &[LayerShape]) -> Vec<Mat<f64>> {
    layer_blocks_of_all(&[jacobian], layers).remove(0)
}

/// `layer_blocks` of each Jacobian (`blocks[k][l]` for `jacobians[k]`),
/// all formed together (`scaled_grams`, largest first).
pub fn layer_blocks_of_all(
    jacobians: &[MatRef<'_, f64>],
    layers: &[LayerShape],
) -> Vec<Vec<Mat<f64>>> {
    let products: Vec<(MatRef<'_, f64>, f64)> = jacobians
        .iter()
        .flat_map(|j| {
            layers
                .iter()
                .map(|l| (j.subcols(l.offset, l.n_params()), over_points(*j)))
        })
        .collect();
    let mut blocks = scaled_grams(&products).into_iter();
    jacobians
        .iter()
        .map(|_| blocks.by_ref().take(layers.len()).collect())
        .collect()
}

/// `diag(G)_p = (1/N) Σ_n J_{np}²`.
pub fn diagonal(jacobian: MatRef<'_, f64>) -> Vec<f64> {
    let n = jacobian.nrows() as f64;
    (0..jacobian.ncols())
        .map(|p| jacobian.col(p).iter().map(|x| x * x).sum::<f64>() / n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize, seed: usize) -> Mat<f64> {
        Mat::from_fn(rows, cols, |i, j| {
            ((i * 31 + j * 17 + seed) as f64 * 0.37).sin()
        })
    }

    /// Several products formed together (their halves interleaved on the
    /// workers, largest first) are each the product alone, bit for bit, and
    /// `scale · XᵀX` summed entry by entry to rounding.
    #[test]
    fn products_formed_together_are_each_product_alone() {
        let xs = [
            matrix(37, 5, 1),
            matrix(300, 12, 2),
            matrix(1, 3, 3),
            matrix(64, 12, 4),
        ];
        let scales = [0.5, 1.0 / 300.0, 2.0, 1.0];
        let products: Vec<(MatRef<'_, f64>, f64)> = xs
            .iter()
            .zip(scales)
            .map(|(x, s)| (x.as_ref(), s))
            .collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let together = pool.install(|| scaled_grams(&products));
        assert_eq!(together.len(), xs.len());
        for ((x, scale), g) in products.iter().zip(&together) {
            let alone = scaled_gram(*x, *scale);
            let p = x.ncols();
            assert_eq!((g.nrows(), g.ncols()), (p, p));
            for i in 0..p {
                for j in 0..p {
                    assert_eq!(g[(i, j)].to_bits(), alone[(i, j)].to_bits());
                    let naive: f64 = (0..x.nrows()).map(|n| x[(n, i)] * x[(n, j)]).sum();
                    let tolerance = 1e-13 * (x.nrows() as f64) * scale;
                    assert!((g[(i, j)] - scale * naive).abs() <= tolerance, "({i}, {j})");
                }
            }
        }
    }
}
