//! Per-point parameter gradients of the network output, `g_n^Ω = ∇_θ Δu_θ(x_n)`
//! and `g_n^∂ = ∇_θ u_θ(x_n)` (REFERENCE §4), by one backward pass through the
//! forward Laplacian with a unit seed per point.
//!
//! The backward pass also yields what the Kronecker factors need: for every
//! linear layer, the gradient of each point's output with respect to each of
//! the layer's output rows (value, directional derivatives, Laplacian).

use crate::forward_laplacian::{Trace, forward, rows_per_point};
use crate::halves::for_each_half;
use crate::mlp::{LayerShape, Mlp};
use crate::problem::Points;
use faer::linalg::matmul::matmul;
use faer::reborrow::ReborrowMut;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use multiversion::multiversion;
use rayon::prelude::*;
use std::borrow::Cow;

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

/// Row `row` of every point of a row-major `N·S × width` array (the
/// linearisation's layout, `S = rows_per_point`), as an `N × width` view
/// through a stride, not a copy.
pub fn every_point_row(
    x: &[f64],
    width: usize,
    rows_per_point: usize,
    row: usize,
) -> MatRef<'_, f64> {
    let stride = rows_per_point * width;
    let n_points = x.len() / stride;
    // From that row of the first point to the end of that row of the last.
    let used = n_points
        .checked_sub(1)
        .map_or(0, |last| last * stride + width);
    let rows = x.get(row * width..).unwrap_or_default();
    MatRef::from_row_major_slice_with_stride(&rows[..used], n_points, width, stride)
}

/// Per-point blocks of rows, point `p`'s at `p · stride`; stride 0 when every
/// point has the same block.
#[derive(Clone, Copy)]
struct Strided<'a>(&'a [f64], usize);

impl<'a> Strided<'a> {
    #[inline(always)]
    fn block(self, point: usize, len: usize) -> &'a [f64] {
        &self.0[point * self.1..][..len]
    }
}

/// Backward through tanh's Taylor rows. With `t = tanh z`, `σ' = 1 − t²`,
/// `σ'' = −2tσ'`, `σ''' = −2σ'² + 4t²σ'` and upstream gradients
/// `ḡ_v, ḡ_i, ḡ_Δ` of `t, σ'∂_i z, σ''Σ(∂_i z)² + σ'Δz`:
/// `∂/∂Δz = σ'ḡ_Δ`, `∂/∂(∂_i z) = σ'ḡ_i + 2σ''∂_i z ḡ_Δ`,
/// `∂/∂z = σ'ḡ_v + σ''Σ_i ∂_i z ḡ_i + (σ'''Σ(∂_i z)² + σ''Δz) ḡ_Δ`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn tanh_backward(
    pre: Strided,
    activation: &[f64],
    upstream: Strided,
    width: usize,
    rows: usize,
    out: &mut [f64],
) {
    let block = rows * width;
    for (p, (h, y)) in activation
        .chunks_exact(block)
        .zip(out.chunks_exact_mut(block))
        .enumerate()
    {
        let (z, g) = (pre.block(p, block), upstream.block(p, block));
        // `t = tanh z` is the activation's value row, kept by the forward pass.
        let t = &h[..width];
        if rows == 1 {
            for ((y, &g), &t) in y.iter_mut().zip(g).zip(t) {
                *y = (-t).mul_add(t, 1.0) * g;
            }
            continue;
        }
        let (y_value, y_rest) = y.split_at_mut(width);
        let (y_derivatives, y_lap) = y_rest.split_at_mut((rows - 2) * width);
        let (g_value, g_rest) = g.split_at(width);
        let (g_derivatives, g_lap) = g_rest.split_at((rows - 2) * width);
        let (z_derivatives, z_lap) = z[width..].split_at((rows - 2) * width);
        // y_value first collects Σ_i ∂_i z ḡ_i, y_lap Σ_i (∂_i z)².
        y_value.fill(0.0);
        y_lap.fill(0.0);
        for ((dz, gi), yi) in z_derivatives
            .chunks_exact(width)
            .zip(g_derivatives.chunks_exact(width))
            .zip(y_derivatives.chunks_exact_mut(width))
        {
            derivative_row_backward(t, dz, gi, g_lap, yi, y_value, y_lap);
        }
        value_and_laplacian_backward(t, g_value, g_lap, z_lap, y_value, y_lap);
    }
}

// Row kernels over separate slices, so that they vectorise once inlined.

/// `∂/∂(∂_i z) = σ'ḡ_i + 2σ''∂_i z ḡ_Δ`, accumulating `Σ_i ∂_i z ḡ_i` and `Σ_i (∂_i z)²`.
#[inline(always)]
fn derivative_row_backward(
    t: &[f64],
    dz: &[f64],
    gi: &[f64],
    g_lap: &[f64],
    yi: &mut [f64],
    sum_dz_g: &mut [f64],
    sum_sq: &mut [f64],
) {
    let n = yi.len();
    let (t, dz, gi, g_lap) = (&t[..n], &dz[..n], &gi[..n], &g_lap[..n]);
    let (sum_dz_g, sum_sq) = (&mut sum_dz_g[..n], &mut sum_sq[..n]);
    for k in 0..n {
        let d1 = (-t[k]).mul_add(t[k], 1.0);
        let d2 = -2.0 * t[k] * d1;
        sum_sq[k] = dz[k].mul_add(dz[k], sum_sq[k]);
        sum_dz_g[k] = dz[k].mul_add(gi[k], sum_dz_g[k]);
        yi[k] = d1.mul_add(gi[k], 2.0 * d2 * dz[k] * g_lap[k]);
    }
}

/// `∂/∂Δz = σ'ḡ_Δ` and `∂/∂z`, in place of the two sums.
#[inline(always)]
fn value_and_laplacian_backward(
    t: &[f64],
    g_value: &[f64],
    g_lap: &[f64],
    z_lap: &[f64],
    y_value: &mut [f64],
    y_lap: &mut [f64],
) {
    let n = y_value.len();
    let (t, g_value, g_lap, z_lap, y_lap) = (
        &t[..n],
        &g_value[..n],
        &g_lap[..n],
        &z_lap[..n],
        &mut y_lap[..n],
    );
    for k in 0..n {
        let d1 = (-t[k]).mul_add(t[k], 1.0);
        let d2 = -2.0 * t[k] * d1;
        let d3 = (4.0 * t[k] * t[k]).mul_add(d1, -2.0 * d1 * d1);
        let (sum_dz_g, sum_sq) = (y_value[k], y_lap[k]);
        let lap_term = d3.mul_add(sum_sq, d2 * z_lap[k]);
        y_value[k] = lap_term.mul_add(g_lap[k], d1.mul_add(g_value[k], d2 * sum_dz_g));
        y_lap[k] = d1 * g_lap[k];
    }
}

/// `ḡ_in = ḡ_out W` through the scalar output layer for one point, whose
/// `ḡ_out` is the unit seed on its last row: zero rows, then `W`.
fn output_layer_upstream(layer: &LayerShape, theta: &[f64], rows: usize) -> Vec<f64> {
    assert_eq!(layer.d_out, 1, "the network's output is a scalar");
    let mut block = vec![0.0; rows * layer.d_in];
    block[(rows - 1) * layer.d_in..].copy_from_slice(&theta[layer.weight_range()]);
    block
}

/// Gradient with respect to a linear layer's input rows: `ḡ_in = ḡ_out W`.
fn linear_backward(layer: &LayerShape, theta: &[f64], upstream: &[f64]) -> Vec<f64> {
    let (d_in, d_out) = (layer.d_in, layer.d_out);
    let n_rows = upstream.len() / d_out;
    let mut out = crate::buffers::take(n_rows * d_in);
    matmul(
        MatMut::from_row_major_slice_mut(&mut out, n_rows, d_in),
        Accum::Replace,
        MatRef::from_row_major_slice(upstream, n_rows, d_out),
        MatRef::from_row_major_slice(&theta[layer.weight_range()], d_out, d_in),
        1.0,
        Par::Seq,
    );
    out
}

impl Linearization {
    /// Forward with a trace, then backward with a unit seed on each point's
    /// output row (the Laplacian row in the interior, the value row on the boundary).
    pub fn new(mlp: &Mlp, theta: &[f64], points: &Points, with_laplacian: bool) -> Self {
        let mut trace = Trace::default();
        let output = forward(mlp, theta, points, with_laplacian, Some(&mut trace));
        let rows = rows_per_point(points.dim, with_laplacian);
        let layers = mlp.layers();
        let n_points = points.len();

        let mut seed = crate::buffers::take(n_points * rows);
        for point_rows in seed.chunks_exact_mut(rows) {
            point_rows.fill(0.0);
            point_rows[rows - 1] = 1.0;
        }
        let mut output_grads = vec![Vec::new(); layers.len()];
        output_grads[layers.len() - 1] = seed;
        let output_layer = layers.len() - 1;
        for l in (1..layers.len()).rev() {
            let per_point = rows * layers[l - 1].d_out;
            // ḡ at layer l's input rows. Through the output layer the seed is
            // the same unit row at every point, so ḡ = e_out ⊗ W_out is one
            // block shared by all points (stride 0): not an `N·S × width`
            // array to write and read back.
            let (upstream, upstream_stride) = if l == output_layer {
                (output_layer_upstream(&layers[l], theta, rows), 0)
            } else {
                (
                    linear_backward(&layers[l], theta, &output_grads[l]),
                    per_point,
                )
            };
            // The first layer's pre-activations are one block (`Trace`).
            let pre_stride = if l == 1 { 0 } else { per_point };
            let (pre, activation) = (&trace.pre_activations[l - 1], &trace.layer_inputs[l]);
            let mut grads = crate::buffers::take(activation.len());
            for_each_half(&mut grads, per_point, |points, out| {
                let r = points.start * per_point..points.end * per_point;
                tanh_backward(
                    Strided(&pre[points.start * pre_stride..], pre_stride),
                    &activation[r],
                    Strided(&upstream[points.start * upstream_stride..], upstream_stride),
                    layers[l - 1].d_out,
                    rows,
                    out,
                );
            });
            output_grads[l - 1] = grads;
            // Only arrays from the pool go back to it: a small shared block
            // would sit there unasked for and push out a buffer in use.
            if upstream_stride != 0 {
                crate::buffers::give(upstream);
            }
        }
        trace
            .pre_activations
            .into_iter()
            .skip(1)
            .for_each(crate::buffers::give);
        Self {
            rows_per_point: rows,
            n_points,
            layers,
            output,
            inputs: trace.layer_inputs,
            output_grads,
        }
    }

    /// `Σ_n w_n g_n` in the Gramian basis, per layer as the product
    /// `∇W = Ḡᵀ (w ⊙ Ã)` over all rows, `∇b = Σ_n w_n ḡ_{n,0}`: with
    /// `w = r/N` this is the gradient `Jᵀr/N`, without forming `J`.
    pub fn weighted_gradient(&self, weights: &[f64]) -> Vec<f64> {
        // Layers are independent: computed in parallel, laid out in order.
        let per_layer: Vec<Vec<f64>> = (0..self.layers.len())
            .into_par_iter()
            .map(|l| self.layer_weighted_gradient(l, weights))
            .collect();
        per_layer.concat()
    }

    /// Layer `l`'s part of `weighted_gradient`: `∇W` row-major, then `∇b`.
    fn layer_weighted_gradient(&self, l: usize, weights: &[f64]) -> Vec<f64> {
        let rows = self.rows_per_point;
        let shape = &self.layers[l];
        let (d_in, d_out) = (shape.d_in, shape.d_out);
        let mut gradient = vec![0.0; shape.n_params()];
        let (weight_part, bias) = gradient.split_at_mut(d_out * d_in);
        let g = &self.output_grads[l];
        // w ⊙ goes on the narrower of the two row sets.
        let weighted = |x: &[f64], width: usize| {
            let mut x = x.to_vec();
            for (point_rows, &w) in x.chunks_exact_mut(rows * width).zip(weights) {
                point_rows.iter_mut().for_each(|v| *v *= w);
            }
            x
        };
        let a = &self.inputs[l];
        let mut weight_part = MatMut::from_row_major_slice_mut(weight_part, d_out, d_in);
        if l == self.layers.len() - 1 {
            // Through the output layer only each point's output row has a
            // gradient, the unit seed (`new`): `∇W = wᵀ Ã_out` over those N
            // rows, read in place with a stride, not over all N·S.
            let output_rows = every_point_row(a, d_in, rows, rows - 1);
            let w = MatRef::from_column_major_slice(weights, weights.len(), 1);
            matmul(
                weight_part,
                Accum::Replace,
                w.transpose(),
                output_rows,
                1.0,
                Par::Seq,
            );
        } else {
            let (gw, aw): (Cow<[f64]>, Cow<[f64]>) = if d_out <= d_in {
                (weighted(g, d_out).into(), a.into())
            } else {
                (g.into(), weighted(a, d_in).into())
            };
            // Into a column-major `d_out × d_in` first: faer runs its kernel
            // along the destination's contiguous dimension, which in the
            // row-major `∇W` is `d_in` (2 on the documented network), and
            // the product took 2.3× as long (82 against 35 µs, same bits).
            let mut product = Mat::<f64>::zeros(d_out, d_in);
            matmul(
                product.as_mut(),
                Accum::Replace,
                MatRef::from_row_major_slice(&gw, gw.len() / d_out, d_out).transpose(),
                MatRef::from_row_major_slice(&aw, aw.len() / d_in, d_in),
                1.0,
                Par::Seq,
            );
            weight_part.copy_from(&product);
        }
        for (w, value_row) in weights.iter().zip(g.chunks_exact(rows * d_out)) {
            for (b, &g) in bias.iter_mut().zip(&value_row[..d_out]) {
                *b += w * g;
            }
        }
        gradient
    }

    /// All per-point gradients, `N × P` in the Gramian basis.
    pub fn jacobian(&self) -> Jacobian {
        let n_params: usize = self.layers.iter().map(LayerShape::n_params).sum();
        let mut entries = crate::buffers::take(self.n_points * n_params);
        let jacobian = MatMut::from_column_major_slice_mut(&mut entries, self.n_points, n_params);
        // Two fixed halves of the points, built in parallel.
        let half = crate::halves::split(self.n_points, JACOBIAN_BLOCK);
        let (top, bottom) = jacobian.split_at_row_mut(half);
        rayon::join(
            || jacobian_rows(self, n_params, 0, top),
            || jacobian_rows(self, n_params, half, bottom),
        );
        Jacobian {
            entries,
            n_points: self.n_points,
            n_params,
        }
    }
}

/// An `N × P` Jacobian, column-major, in a pooled buffer (`buffers`):
/// `jacobian_rows` writes every entry, so none of the buffer's old contents
/// remain. Zeroed afresh at every step it took half of ENGD's Jacobian time
/// on a Xeon (310 against 165 µs for the documented step's two).
#[derive(Clone, Debug)]
pub struct Jacobian {
    entries: Vec<f64>,
    n_points: usize,
    n_params: usize,
}

impl Jacobian {
    pub fn as_ref(&self) -> MatRef<'_, f64> {
        MatRef::from_column_major_slice(&self.entries, self.n_points, self.n_params)
    }
}

impl Drop for Jacobian {
    fn drop(&mut self) {
        crate::buffers::give(std::mem::take(&mut self.entries));
    }
}

impl Drop for Linearization {
    /// Its arrays serve the next linearisation (`buffers`).
    fn drop(&mut self) {
        for buffer in self.inputs.drain(..).chain(self.output_grads.drain(..)) {
            crate::buffers::give(buffer);
        }
    }
}

/// Points whose Jacobian rows are built together, then copied into the
/// column-major matrix as one contiguous run per column.
const JACOBIAN_BLOCK: usize = 8;

/// Row `n` of the Jacobian is, layer by layer, `Σ_s ḡ_{n,s} ã_{n,s}ᵀ` (with
/// `ã`'s trailing 1 on the value row). A layer's weight block is built with
/// its longer side innermost, so the update runs over a contiguous row: as
/// `W` (`j` outer) when `d_in ≥ d_out`, else transposed (`i` outer). Each
/// entry then goes to its Gramian-basis column (W row-major, then b).
/// Transposed, inputs that are exactly 0 (the first layer's Laplacian and
/// off-axis derivative rows) add nothing and are skipped.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn jacobian_rows<'a>(
    lin: &Linearization,
    n_params: usize,
    first_point: usize,
    mut out: MatMut<'a, f64>,
) {
    let rows = lin.rows_per_point;
    let transposed = |shape: &LayerShape| shape.d_in < shape.d_out;
    // Gramian-basis column p reads built-row entry source[p].
    let mut source: Vec<usize> = (0..n_params).collect();
    for shape in lin.layers.iter().filter(|s| transposed(s)) {
        for j in 0..shape.d_out {
            for i in 0..shape.d_in {
                source[shape.offset + j * shape.d_in + i] = shape.offset + i * shape.d_out + j;
            }
        }
    }
    let mut built = vec![0.0; JACOBIAN_BLOCK * n_params];
    let n_points = out.nrows();
    for first in (0..n_points).step_by(JACOBIAN_BLOCK) {
        let count = JACOBIAN_BLOCK.min(n_points - first);
        built.fill(0.0);
        for (k, row) in built.chunks_exact_mut(n_params).take(count).enumerate() {
            let n = first_point + first + k;
            for (l, shape) in lin.layers.iter().enumerate() {
                let (d_in, d_out) = (shape.d_in, shape.d_out);
                let (weights, bias) = row[shape.range()].split_at_mut(d_out * d_in);
                let inputs = &lin.inputs[l][n * rows * d_in..(n + 1) * rows * d_in];
                let grads = &lin.output_grads[l][n * rows * d_out..(n + 1) * rows * d_out];
                for (a, g) in inputs.chunks_exact(d_in).zip(grads.chunks_exact(d_out)) {
                    if transposed(shape) {
                        for (&a, column) in a.iter().zip(weights.chunks_exact_mut(d_out)) {
                            if a != 0.0 {
                                axpy(a, g, column);
                            }
                        }
                    } else {
                        for (&g, w_row) in g.iter().zip(weights.chunks_exact_mut(d_in)) {
                            axpy(g, a, w_row);
                        }
                    }
                }
                bias.copy_from_slice(&grads[..d_out]);
            }
        }
        for (p, &src) in source.iter().enumerate() {
            let column = out
                .rb_mut()
                .col_mut(p)
                .try_as_col_major_mut()
                .expect("a faer column is contiguous")
                .as_slice_mut();
            let column = &mut column[first..first + count];
            for (entry, row) in column.iter_mut().zip(built.chunks_exact(n_params)) {
                *entry = row[src];
            }
        }
    }
}

/// `y ← a x + y`.
#[inline(always)]
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = a.mul_add(x, *y);
    }
}
