//! The forward Laplacian (REFERENCE §3): per point, propagate the value `z`,
//! the `d` directional derivatives `∂_i z` and the Laplacian `Δz` of every
//! hidden vector, so that one forward pass yields `u_θ(x)` and `Δu_θ(x)`.
//!
//! Activations are stored as `rows × width` row-major matrices with
//! `rows_per_point` consecutive rows per point: row 0 the value, rows
//! `1..=d` the directional derivatives, row `d+1` the Laplacian. Without the
//! Laplacian (boundary and L2-error points) there is one row per point.

use crate::mlp::{LayerShape, Mlp};
use crate::problem::Points;

/// Rows per point: `S = d + 2` with the Laplacian, 1 without.
pub fn rows_per_point(dim: usize, with_laplacian: bool) -> usize {
    if with_laplacian { dim + 2 } else { 1 }
}

/// Every linear layer's input and output rows, kept for the backward pass and
/// the Kronecker factors.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub layer_inputs: Vec<Vec<f64>>,
    pub layer_outputs: Vec<Vec<f64>>,
}

/// `u_θ` at each point, and `Δu_θ` when asked for.
#[derive(Clone, Debug)]
pub struct Output {
    pub value: Vec<f64>,
    pub laplacian: Option<Vec<f64>>,
}

/// Start rows: `z = x`, `∂_i z = e_i`, `Δz = 0`.
fn input_rows(points: &Points, with_laplacian: bool) -> Vec<f64> {
    let dim = points.dim;
    let rows = rows_per_point(dim, with_laplacian);
    let mut out = vec![0.0; points.len() * rows * dim];
    for (n, x) in points.iter().enumerate() {
        let block = &mut out[n * rows * dim..(n + 1) * rows * dim];
        block[..dim].copy_from_slice(x);
        if with_laplacian {
            for i in 0..dim {
                block[(1 + i) * dim + i] = 1.0;
            }
        }
    }
    out
}

/// `z' = W z + b` on value rows, `W ∂_i z` and `W Δz` on the others.
fn linear(layer: &LayerShape, theta: &[f64], input: &[f64], rows: usize) -> Vec<f64> {
    let weight = &theta[layer.weight_range()];
    let bias = &theta[layer.bias_range()];
    let (d_in, d_out) = (layer.d_in, layer.d_out);
    let n_rows = input.len() / d_in;
    let mut out = vec![0.0; n_rows * d_out];
    for (r, (x, y)) in input
        .chunks_exact(d_in)
        .zip(out.chunks_exact_mut(d_out))
        .enumerate()
    {
        let is_value_row = r % rows == 0;
        for (i, yi) in y.iter_mut().enumerate() {
            let w = &weight[i * d_in..(i + 1) * d_in];
            let dot: f64 = w.iter().zip(x).map(|(a, b)| a * b).sum();
            *yi = if is_value_row { dot + bias[i] } else { dot };
        }
    }
    out
}

/// Elementwise tanh on the Taylor rows of each point, with `t = tanh z`,
/// `σ' = 1 − t²`, `σ'' = −2tσ'`:
/// `z' = t`, `∂_i z' = σ' ∂_i z`, `Δz' = σ'' Σ_i (∂_i z)² + σ' Δz`.
fn tanh(pre: &[f64], width: usize, rows: usize) -> Vec<f64> {
    let mut out = vec![0.0; pre.len()];
    for (z, y) in pre
        .chunks_exact(rows * width)
        .zip(out.chunks_exact_mut(rows * width))
    {
        for k in 0..width {
            let t = z[k].tanh();
            y[k] = t;
            if rows == 1 {
                continue;
            }
            let d1 = 1.0 - t * t;
            let d2 = -2.0 * t * d1;
            let mut sum_sq = 0.0;
            for i in 1..rows - 1 {
                let dz = z[i * width + k];
                y[i * width + k] = d1 * dz;
                sum_sq += dz * dz;
            }
            let lap = (rows - 1) * width + k;
            y[lap] = d2 * sum_sq + d1 * z[lap];
        }
    }
    out
}

/// One forward pass over all points. With `trace`, every linear layer's input
/// and output rows are recorded.
pub fn forward(
    mlp: &Mlp,
    theta: &[f64],
    points: &Points,
    with_laplacian: bool,
    mut trace: Option<&mut Trace>,
) -> Output {
    let rows = rows_per_point(points.dim, with_laplacian);
    let layers = mlp.layers();
    let mut activation = input_rows(points, with_laplacian);
    if let Some(t) = trace.as_deref_mut() {
        t.layer_inputs.clear();
        t.layer_outputs.clear();
    }
    for (l, layer) in layers.iter().enumerate() {
        let pre = linear(layer, theta, &activation, rows);
        let next = if l + 1 < layers.len() {
            tanh(&pre, layer.d_out, rows)
        } else {
            Vec::new()
        };
        if let Some(t) = trace.as_deref_mut() {
            t.layer_inputs.push(std::mem::take(&mut activation));
            t.layer_outputs.push(pre.clone());
        }
        activation = if l + 1 < layers.len() { next } else { pre };
    }
    // The last layer has one output: its rows are the Taylor rows of u.
    let value = activation.iter().step_by(rows).copied().collect();
    let laplacian = with_laplacian.then(|| {
        activation
            .iter()
            .skip(rows - 1)
            .step_by(rows)
            .copied()
            .collect()
    });
    Output { value, laplacian }
}
