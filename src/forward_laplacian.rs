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
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

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

/// `z' = W z + b` on value rows, `W ∂_i z` and `W Δz` on the others: one
/// matrix product `X Wᵀ` over all rows, then the bias on value rows.
fn linear(layer: &LayerShape, theta: &[f64], input: &[f64], rows: usize) -> Vec<f64> {
    let (d_in, d_out) = (layer.d_in, layer.d_out);
    let n_rows = input.len() / d_in;
    let weight = MatRef::from_row_major_slice(&theta[layer.weight_range()], d_out, d_in);
    let bias = &theta[layer.bias_range()];
    let mut out = vec![0.0; n_rows * d_out];
    matmul(
        MatMut::from_row_major_slice_mut(&mut out, n_rows, d_out),
        Accum::Replace,
        MatRef::from_row_major_slice(input, n_rows, d_in),
        weight.transpose(),
        1.0,
        Par::Seq,
    );
    for value_row in out.chunks_exact_mut(rows * d_out) {
        for (y, b) in value_row[..d_out].iter_mut().zip(bias) {
            *y += b;
        }
    }
    out
}

/// Elementwise tanh on the Taylor rows of each point, with `t = tanh z`,
/// `σ' = 1 − t²`, `σ'' = −2tσ'`:
/// `z' = t`, `∂_i z' = σ' ∂_i z`, `Δz' = σ'' Σ_i (∂_i z)² + σ' Δz`.
fn tanh(pre: &[f64], width: usize, rows: usize) -> Vec<f64> {
    // The same IEEE operations vectorised with AVX2 where the CPU has it:
    // identical bits, about twice as fast (the line search lives here).
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 support was checked just above.
        return unsafe { tanh_avx2(pre, width, rows) };
    }
    tanh_rows(pre, width, rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn tanh_avx2(pre: &[f64], width: usize, rows: usize) -> Vec<f64> {
    tanh_rows(pre, width, rows)
}

#[inline(always)]
fn tanh_rows(pre: &[f64], width: usize, rows: usize) -> Vec<f64> {
    let mut out = vec![0.0; pre.len()];
    let mut d1 = vec![0.0; width];
    let mut sum_sq = vec![0.0; width];
    for (z, y) in pre
        .chunks_exact(rows * width)
        .zip(out.chunks_exact_mut(rows * width))
    {
        let (value, taylor) = y.split_at_mut(width);
        crate::tanh::tanh_slice(&z[..width], value);
        if rows == 1 {
            continue;
        }
        for k in 0..width {
            d1[k] = 1.0 - value[k] * value[k];
        }
        sum_sq.fill(0.0);
        for i in 1..rows - 1 {
            let (dz, dy) = (
                &z[i * width..(i + 1) * width],
                &mut taylor[(i - 1) * width..i * width],
            );
            for k in 0..width {
                dy[k] = d1[k] * dz[k];
                sum_sq[k] += dz[k] * dz[k];
            }
        }
        let (lap_z, lap_y) = (&z[(rows - 1) * width..], &mut taylor[(rows - 2) * width..]);
        for k in 0..width {
            let d2 = -2.0 * value[k] * d1[k];
            lap_y[k] = d2 * sum_sq[k] + d1[k] * lap_z[k];
        }
    }
    out
}

/// Points per block of an untraced pass: its activations stay in cache and
/// no large buffer is allocated (and zeroed) per loss evaluation.
const BLOCK_POINTS: usize = 64;

/// One forward pass over all points. With `trace`, every linear layer's input
/// and output rows are recorded (in one batch); without, points go through in
/// cache-sized blocks. Each point's arithmetic is the same either way.
pub fn forward(
    mlp: &Mlp,
    theta: &[f64],
    points: &Points,
    with_laplacian: bool,
    trace: Option<&mut Trace>,
) -> Output {
    if trace.is_some() || points.len() <= BLOCK_POINTS {
        return forward_batch(mlp, theta, points, with_laplacian, trace);
    }
    let mut out = Output {
        value: Vec::with_capacity(points.len()),
        laplacian: with_laplacian.then(|| Vec::with_capacity(points.len())),
    };
    for block in points.coords.chunks(BLOCK_POINTS * points.dim) {
        let block = Points {
            dim: points.dim,
            coords: block.to_vec(),
        };
        let part = forward_batch(mlp, theta, &block, with_laplacian, None);
        out.value.extend(part.value);
        if let (Some(all), Some(part)) = (out.laplacian.as_mut(), part.laplacian) {
            all.extend(part);
        }
    }
    out
}

fn forward_batch(
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
