//! Per-point parameter gradients of the network output, `g_n^Ω = ∇_θ Δu_θ(x_n)`
//! and `g_n^∂ = ∇_θ u_θ(x_n)` (REFERENCE §4), by one backward pass through the
//! forward Laplacian with a unit seed per point.
//!
//! The backward pass also yields what the Kronecker factors need: for every
//! linear layer, the gradient of each point's output with respect to each of
//! the layer's output rows (value, directional derivatives, Laplacian).

use crate::forward_laplacian::{Trace, forward, rows_per_point};
use crate::mlp::{LayerShape, Mlp};
use crate::problem::Points;
use faer::Mat;

/// A network linearised at `θ` on one point set.
#[derive(Clone, Debug)]
pub struct Linearization {
    pub rows_per_point: usize,
    pub n_points: usize,
    pub layers: Vec<LayerShape>,
    /// The network output per point: `Δu_θ(x_n)` (interior) or `u_θ(x_n)`.
    pub output: Vec<f64>,
    /// Per layer, its input rows (`N·S × d_in`, row-major).
    pub inputs: Vec<Vec<f64>>,
    /// Per layer, `∂ output_n / ∂ (layer output row s of point n)` (`N·S × d_out`).
    pub output_grads: Vec<Vec<f64>>,
}

/// Backward through tanh's Taylor rows for one point. With `t = tanh z`,
/// `σ' = 1 − t²`, `σ'' = −2tσ'`, `σ''' = −2σ'² + 4t²σ'` and upstream gradients
/// `ḡ_v, ḡ_i, ḡ_Δ` of `t, σ'∂_i z, σ''Σ(∂_i z)² + σ'Δz`:
/// `∂/∂Δz = σ'ḡ_Δ`, `∂/∂(∂_i z) = σ'ḡ_i + 2σ''∂_i z ḡ_Δ`,
/// `∂/∂z = σ'ḡ_v + σ''Σ_i ∂_i z ḡ_i + (σ'''Σ(∂_i z)² + σ''Δz) ḡ_Δ`.
fn tanh_backward(pre: &[f64], upstream: &[f64], width: usize, rows: usize) -> Vec<f64> {
    let mut out = vec![0.0; pre.len()];
    for ((z, g), y) in pre
        .chunks_exact(rows * width)
        .zip(upstream.chunks_exact(rows * width))
        .zip(out.chunks_exact_mut(rows * width))
    {
        for k in 0..width {
            let t = crate::tanh::tanh(z[k]);
            let d1 = 1.0 - t * t;
            if rows == 1 {
                y[k] = d1 * g[k];
                continue;
            }
            let d2 = -2.0 * t * d1;
            let d3 = -2.0 * d1 * d1 + 4.0 * t * t * d1;
            let lap = (rows - 1) * width + k;
            let g_lap = g[lap];
            let mut sum_sq = 0.0;
            let mut sum_dz_g = 0.0;
            for i in 1..rows - 1 {
                let dz = z[i * width + k];
                sum_sq += dz * dz;
                sum_dz_g += dz * g[i * width + k];
                y[i * width + k] = d1 * g[i * width + k] + 2.0 * d2 * dz * g_lap;
            }
            y[lap] = d1 * g_lap;
            y[k] = d1 * g[k] + d2 * sum_dz_g + (d3 * sum_sq + d2 * z[lap]) * g_lap;
        }
    }
    out
}

/// Gradient with respect to a linear layer's input rows: `ḡ_in = ḡ_out W`.
fn linear_backward(layer: &LayerShape, theta: &[f64], upstream: &[f64]) -> Vec<f64> {
    let weight = &theta[layer.weight_range()];
    let (d_in, d_out) = (layer.d_in, layer.d_out);
    let n_rows = upstream.len() / d_out;
    let mut out = vec![0.0; n_rows * d_in];
    for (g, y) in upstream.chunks_exact(d_out).zip(out.chunks_exact_mut(d_in)) {
        for (i, gi) in g.iter().enumerate() {
            for (yj, w) in y.iter_mut().zip(&weight[i * d_in..(i + 1) * d_in]) {
                *yj += gi * w;
            }
        }
    }
    out
}

impl Linearization {
    /// Forward with a trace, then backward with a unit seed on each point's
    /// output row (the Laplacian row in the interior, the value row on the boundary).
    pub fn new(mlp: &Mlp, theta: &[f64], points: &Points, with_laplacian: bool) -> Self {
        let mut trace = Trace::default();
        let out = forward(mlp, theta, points, with_laplacian, Some(&mut trace));
        let output = out.laplacian.unwrap_or(out.value);
        let rows = rows_per_point(points.dim, with_laplacian);
        let layers = mlp.layers();
        let n_points = points.len();

        let mut seed = vec![0.0; n_points * rows];
        for n in 0..n_points {
            seed[n * rows + rows - 1] = 1.0;
        }
        let mut output_grads = vec![Vec::new(); layers.len()];
        output_grads[layers.len() - 1] = seed;
        for l in (1..layers.len()).rev() {
            let upstream = linear_backward(&layers[l], theta, &output_grads[l]);
            output_grads[l - 1] = tanh_backward(
                &trace.layer_outputs[l - 1],
                &upstream,
                layers[l - 1].d_out,
                rows,
            );
        }
        Self {
            rows_per_point: rows,
            n_points,
            layers,
            output,
            inputs: trace.layer_inputs,
            output_grads,
        }
    }

    /// Augmented input `ã_{n,s}`: the layer input with a trailing 1 on value
    /// rows and 0 on derivative and Laplacian rows.
    pub fn augmented_input(&self, layer: usize, row: usize, j: usize) -> f64 {
        let d_in = self.layers[layer].d_in;
        if j < d_in {
            self.inputs[layer][row * d_in + j]
        } else if row.is_multiple_of(self.rows_per_point) {
            1.0
        } else {
            0.0
        }
    }

    /// Add point `n`'s gradient for one layer, `Σ_s ḡ_{n,s} ã_{n,s}ᵀ`
    /// flattened in the Gramian basis (W row-major, then b), into `row`.
    fn add_point_gradient(&self, layer: usize, n: usize, row: &mut [f64]) {
        let shape = self.layers[layer];
        let (d_in, d_out, rows) = (shape.d_in, shape.d_out, self.rows_per_point);
        let (weights, bias) = row.split_at_mut(d_out * d_in);
        for s in 0..rows {
            let r = n * rows + s;
            let a = &self.inputs[layer][r * d_in..(r + 1) * d_in];
            let g = &self.output_grads[layer][r * d_out..(r + 1) * d_out];
            for (w_row, gi) in weights.chunks_exact_mut(d_in).zip(g) {
                for (w, aj) in w_row.iter_mut().zip(a) {
                    *w += gi * aj;
                }
            }
            if s == 0 {
                for (b, gi) in bias.iter_mut().zip(g) {
                    *b += gi;
                }
            }
        }
    }

    /// All per-point gradients, `N × P` in the Gramian basis.
    pub fn jacobian(&self) -> Mat<f64> {
        let n_params: usize = self.layers.iter().map(LayerShape::n_params).sum();
        // Built row by row (contiguous), then laid out as faer's column-major matrix.
        let mut rows = vec![0.0; self.n_points * n_params];
        for (n, row) in rows.chunks_exact_mut(n_params).enumerate() {
            for (l, shape) in self.layers.iter().enumerate() {
                self.add_point_gradient(l, n, &mut row[shape.range()]);
            }
        }
        Mat::from_fn(self.n_points, n_params, |i, j| rows[i * n_params + j])
    }
}
