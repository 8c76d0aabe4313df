//! The forward Laplacian (REFERENCE §3): per point, propagate the value `z`,
//! the `d` directional derivatives `∂_i z` and the Laplacian `Δz` of every
//! hidden vector, so that one forward pass yields `u_θ(x)` and `Δu_θ(x)`.
//!
//! Activations are stored as `rows × width` row-major matrices with
//! `rows_per_point` consecutive rows per point: row 0 the value, rows
//! `1..=d` the directional derivatives, row `d+1` the Laplacian. Without the
//! Laplacian (boundary and L2-error points) there is one row per point.
//!
//! The line search spends nearly all of a step here (31 passes per step), so
//! the two ends of the network are written out instead of being matrix
//! products: the first layer's derivative and Laplacian rows do not depend on
//! the point (`∂_i z = W e_i`, `Δz = 0`), and the scalar output needs one dot
//! product per row it reports. Each point's arithmetic is the same whether
//! the pass is traced or not, and whatever the block it falls in.

use crate::halves::for_each_half;
use crate::mlp::{LayerShape, Mlp};
use crate::problem::Points;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use multiversion::multiversion;
use std::cell::RefCell;

/// Rows per point: `S = d + 2` with the Laplacian, 1 without.
pub fn rows_per_point(dim: usize, with_laplacian: bool) -> usize {
    if with_laplacian { dim + 2 } else { 1 }
}

/// Every linear layer's input rows (for the backward pass, the Jacobian and
/// the Kronecker factors), and every hidden layer's pre-activation rows (for
/// the backward pass): per point, except the first layer's, which are one
/// block for all points (`FirstLayer::pre_activation_block`).
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub layer_inputs: Vec<Vec<f64>>,
    pub pre_activations: Vec<Vec<f64>>,
}

/// The network's output per point: `Δu_θ(x_n)` from a pass with the
/// Laplacian (all the interior residual needs), `u_θ(x_n)` from one without.
pub type Output = Vec<f64>;

/// Start rows: `z = x`, `∂_i z = e_i`, `Δz = 0` (kept in a trace: they are
/// the first layer's inputs for its Jacobian and Kronecker factor).
#[inline(always)]
fn input_rows(coords: &[f64], dim: usize, rows: usize) -> Vec<f64> {
    let mut out = crate::buffers::take(coords.len() / dim * rows * dim);
    for (x, block) in coords
        .chunks_exact(dim)
        .zip(out.chunks_exact_mut(rows * dim))
    {
        let (value, rest) = block.split_at_mut(dim);
        value.copy_from_slice(x);
        rest.fill(0.0);
        for i in 0..rows.saturating_sub(2) {
            rest[i * dim + i] = 1.0;
        }
    }
    out
}

/// `Σ_k a_k b_k` in one fixed order that vectorises: eight interleaved
/// partial sums, added pairwise at the end.
#[inline(always)]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; 8];
    let full = a.len() / 8 * 8;
    for (ca, cb) in a[..full].chunks_exact(8).zip(b[..full].chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    for (k, (x, y)) in a[full..].iter().zip(&b[full..]).enumerate() {
        acc[k] += x * y;
    }
    lane_sum(&acc)
}

/// Eight partial sums added pairwise, in one fixed order.
#[inline(always)]
pub(crate) fn lane_sum(acc: &[f64; 8]) -> f64 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// What the first layer needs of `θ`: its weights transposed (`d_in × d_out`,
/// so that a point's pre-activations are a sum of contiguous rows), its bias,
/// and `Σ_i W_{ji}²`, the `Σ_i (∂_i z_j)²` of every point.
pub(crate) struct FirstLayer {
    pub(crate) weights_t: Vec<f64>,
    pub(crate) bias: Vec<f64>,
    pub(crate) sum_sq: Vec<f64>,
}

impl FirstLayer {
    pub(crate) fn new(layer: &LayerShape, theta: &[f64]) -> Self {
        let w = &theta[layer.weight_range()];
        let mut weights_t = vec![0.0; w.len()];
        let mut sum_sq = vec![0.0; layer.d_out];
        for j in 0..layer.d_out {
            for i in 0..layer.d_in {
                let w_ji = w[j * layer.d_in + i];
                weights_t[i * layer.d_out + j] = w_ji;
                sum_sq[j] += w_ji * w_ji;
            }
        }
        Self {
            weights_t,
            bias: theta[layer.bias_range()].to_vec(),
            sum_sq,
        }
    }

    /// The first layer's pre-activation rows for the backward pass, one
    /// block for every point: past the value row they are the same at every
    /// point (`∂_i z = W[:, i]`, `Δz = 0`), and the backward pass reads only
    /// those (it takes `tanh z` from the activations). The value row is NaN,
    /// so that a reader of it would show.
    fn pre_activation_block(&self, rows: usize) -> Vec<f64> {
        let width = self.bias.len();
        let mut block = vec![0.0; rows * width];
        block[..width].fill(f64::NAN);
        if rows > 1 {
            block[width..width + self.weights_t.len()].copy_from_slice(&self.weights_t);
        }
        block
    }

    /// `z = Σ_i x_i W[:, i] + b`.
    #[inline(always)]
    pub(crate) fn value_row(&self, x: &[f64], z: &mut [f64]) {
        let width = z.len();
        z.copy_from_slice(&self.bias);
        for (i, &xi) in x.iter().enumerate() {
            for (z, &w) in z
                .iter_mut()
                .zip(&self.weights_t[i * width..(i + 1) * width])
            {
                *z = xi.mul_add(w, *z);
            }
        }
    }

    /// The layer and its tanh: `h = tanh z`, `∂_i h = σ' W[:, i]` (when asked
    /// for) and `Δh = σ'' Σ_i W_{ji}²`, the general rows' formulas with
    /// point-independent `∂_i z` and `Δz = 0`.
    #[inline(always)]
    fn activation_rows(
        &self,
        coords: &[f64],
        dim: usize,
        rows: usize,
        derivatives: bool,
        out: &mut [f64],
    ) {
        let width = self.bias.len();
        for (x, block) in coords
            .chunks_exact(dim)
            .zip(out.chunks_exact_mut(rows * width))
        {
            let (value, taylor) = block.split_at_mut(width);
            self.value_row(x, value);
            crate::tanh::tanh_in_place(value);
            if rows == 1 {
                continue;
            }
            let (derivative_rows, laplacian) = taylor.split_at_mut(dim * width);
            if derivatives {
                for (dh, w) in derivative_rows
                    .chunks_exact_mut(width)
                    .zip(self.weights_t.chunks_exact(width))
                {
                    tanh_derivative_row(value, w, dh);
                }
            }
            first_layer_laplacian_row(value, &self.sum_sq, laplacian);
        }
    }
}

// The row kernels take their rows as separate slices: the no-alias guarantee
// of `&mut` arguments survives inlining and lets them vectorise.

/// `∂_i h = σ' ∂_i z`.
#[inline(always)]
fn tanh_derivative_row(t: &[f64], dz: &[f64], dh: &mut [f64]) {
    for ((dh, &t), &dz) in dh.iter_mut().zip(t).zip(dz) {
        *dh = (-t).mul_add(t, 1.0) * dz;
    }
}

/// `Δh = σ'' Σ_i (∂_i z)²`, the first layer's (its `Δz` is 0).
#[inline(always)]
pub(crate) fn first_layer_laplacian_row(t: &[f64], sum_sq: &[f64], lap: &mut [f64]) {
    for ((lap, &t), &s) in lap.iter_mut().zip(t).zip(sum_sq) {
        let d1 = (-t).mul_add(t, 1.0);
        *lap = -2.0 * t * d1 * s;
    }
}

/// A hidden-to-hidden layer: `z' = W z + b` on value rows, `W ∂_i z` and
/// `W Δz` on the others, as one matrix product `X Wᵀ` over all rows.
fn hidden_linear(layer: &LayerShape, theta: &[f64], input: &[f64], rows: usize, out: &mut [f64]) {
    let (d_in, d_out) = (layer.d_in, layer.d_out);
    let n_rows = input.len() / d_in;
    let weight = MatRef::from_row_major_slice(&theta[layer.weight_range()], d_out, d_in);
    matmul(
        MatMut::from_row_major_slice_mut(out, n_rows, d_out),
        Accum::Replace,
        MatRef::from_row_major_slice(input, n_rows, d_in),
        weight.transpose(),
        1.0,
        Par::Seq,
    );
    let bias = &theta[layer.bias_range()];
    for value_row in out.chunks_exact_mut(rows * d_out) {
        for (y, b) in value_row[..d_out].iter_mut().zip(bias) {
            *y += b;
        }
    }
}

/// Elementwise tanh on the Taylor rows of each point, with `t = tanh z`,
/// `σ' = 1 − t²`, `σ'' = −2tσ'`:
/// `z' = t`, `∂_i z' = σ' ∂_i z` (when asked for), `Δz' = σ'' Σ_i (∂_i z)² + σ' Δz`.
#[inline(always)]
fn tanh_rows(pre: &[f64], width: usize, rows: usize, derivatives: bool, out: &mut [f64]) {
    for (z, y) in pre
        .chunks_exact(rows * width)
        .zip(out.chunks_exact_mut(rows * width))
    {
        let (value, taylor) = y.split_at_mut(width);
        value.copy_from_slice(&z[..width]);
        crate::tanh::tanh_in_place(value);
        if rows == 1 {
            continue;
        }
        // The Laplacian row first collects `Σ_i (∂_i z)²`, in order of `i`.
        let (derivative_rows, lap_y) = taylor.split_at_mut((rows - 2) * width);
        lap_y.fill(0.0);
        for (dz, dy) in z[width..(rows - 1) * width]
            .chunks_exact(width)
            .zip(derivative_rows.chunks_exact_mut(width))
        {
            if derivatives {
                tanh_derivative_row(value, dz, dy);
            }
            sum_of_squares(dz, lap_y);
        }
        tanh_laplacian_row(value, &z[(rows - 1) * width..], lap_y);
    }
}

#[inline(always)]
fn sum_of_squares(dz: &[f64], sum_sq: &mut [f64]) {
    for (s, &dz) in sum_sq.iter_mut().zip(dz) {
        *s = dz.mul_add(dz, *s);
    }
}

/// `Δz' = σ'' Σ_i (∂_i z)² + σ' Δz`, in place of the sum of squares.
#[inline(always)]
fn tanh_laplacian_row(t: &[f64], lap_z: &[f64], lap_y: &mut [f64]) {
    for ((lap, &t), &lap_z) in lap_y.iter_mut().zip(t).zip(lap_z) {
        let d1 = (-t).mul_add(t, 1.0);
        *lap = (-2.0 * t * d1).mul_add(*lap, d1 * lap_z);
    }
}

/// The scalar output layer: with the Laplacian `Δu = w·Δh` from each
/// Laplacian row, without it `u = w·h + b` from each value row.
#[inline(always)]
fn output_layer(layer: &LayerShape, theta: &[f64], input: &[f64], rows: usize, out: &mut Output) {
    let (w, b) = (&theta[layer.weight_range()], theta[layer.bias_range()][0]);
    for h in input.chunks_exact(rows * layer.d_in) {
        out.push(if rows > 1 {
            dot(w, &h[(rows - 1) * layer.d_in..])
        } else {
            dot(w, &h[..layer.d_in]) + b
        });
    }
}

/// A buffer of `len` entries: a spare one of that length, else one from the
/// pool (`buffers::take`, which says why the length must match). Its old
/// contents stay: every layer function overwrites all of its output.
fn buffer(spare: &mut Vec<Vec<f64>>, len: usize) -> Vec<f64> {
    match spare.iter().position(|b| b.len() == len) {
        Some(i) => spare.swap_remove(i),
        None => crate::buffers::take(len),
    }
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn first_layer_activation_rows(
    first: &FirstLayer,
    coords: &[f64],
    dim: usize,
    rows: usize,
    derivatives: bool,
    out: &mut [f64],
) {
    first.activation_rows(coords, dim, rows, derivatives, out);
}

/// The network on some points, appending to `out`; activations go to
/// `trace` when there is one, back to `spare` otherwise. Untraced, the last
/// hidden layer skips its derivative rows: the scalar output does not read them.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
fn forward_points(
    mlp: &Mlp,
    theta: &[f64],
    first: &FirstLayer,
    coords: &[f64],
    rows: usize,
    out: &mut Output,
    spare: &mut Vec<Vec<f64>>,
    mut trace: Option<&mut Trace>,
) {
    let dim = mlp.dim();
    let n_points = coords.len() / dim;
    let layers = mlp.layers();
    let hidden = layers.len() - 1;
    let traced = trace.is_some();
    let derivatives_needed = |l: usize| traced || l + 1 < hidden;
    if let Some(t) = trace.as_deref_mut() {
        t.layer_inputs.push(input_rows(coords, dim, rows));
        t.pre_activations.push(first.pre_activation_block(rows));
    }
    let mut activation = buffer(spare, n_points * rows * layers[0].d_out);
    if traced {
        // One batch of all points: its two halves in parallel.
        for_each_half(&mut activation, rows * layers[0].d_out, |points, out| {
            let coords = &coords[points.start * dim..points.end * dim];
            first_layer_activation_rows(first, coords, dim, rows, true, out);
        });
    } else {
        first.activation_rows(coords, dim, rows, derivatives_needed(0), &mut activation);
    }
    for (l, layer) in layers.iter().enumerate().take(hidden).skip(1) {
        let mut pre = buffer(spare, n_points * rows * layer.d_out);
        hidden_linear(layer, theta, &activation, rows, &mut pre);
        let mut next = buffer(spare, pre.len());
        tanh_rows(&pre, layer.d_out, rows, derivatives_needed(l), &mut next);
        let input = std::mem::replace(&mut activation, next);
        match trace.as_deref_mut() {
            Some(t) => {
                t.layer_inputs.push(input);
                t.pre_activations.push(pre);
            }
            None => spare.extend([input, pre]),
        }
    }
    output_layer(&layers[hidden], theta, &activation, rows, out);
    match trace {
        Some(t) => t.layer_inputs.push(activation),
        None => spare.push(activation),
    }
}

/// Points per block of an untraced pass: its activations stay in cache.
const BLOCK_POINTS: usize = 32;

/// Spare buffers a thread keeps between untraced passes.
const SPARE_KEPT: usize = 16;

thread_local! {
    /// Activation buffers of untraced passes, kept between calls so that the
    /// line search allocates (and zeroes) nothing per loss evaluation.
    static SPARE_BUFFERS: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// One forward pass over all points. With `trace`, every layer's input rows
/// and every hidden pre-activation are recorded (in one batch); without,
/// points go through in cache-sized blocks.
pub fn forward(
    mlp: &Mlp,
    theta: &[f64],
    points: &Points,
    with_laplacian: bool,
    trace: Option<&mut Trace>,
) -> Output {
    debug_assert!(mlp.n_layers() >= 2, "a tanh network has a hidden layer");
    let Some(trace) = trace else {
        return forward_until(mlp, theta, points, with_laplacian, |_| false);
    };
    *trace = Trace::default();
    let rows = rows_per_point(points.dim, with_laplacian);
    let first = FirstLayer::new(&mlp.layers()[0], theta);
    let mut out = Vec::with_capacity(points.len());
    let mut spare = Vec::new();
    forward_points(
        mlp,
        theta,
        &first,
        &points.coords,
        rows,
        &mut out,
        &mut spare,
        Some(trace),
    );
    out
}

/// The untraced pass, block by block, asking `stop` after each block with
/// everything computed so far; it returns that much. Each point's numbers
/// are those of a whole pass.
pub fn forward_until(
    mlp: &Mlp,
    theta: &[f64],
    points: &Points,
    with_laplacian: bool,
    mut stop: impl FnMut(&Output) -> bool,
) -> Output {
    let rows = rows_per_point(points.dim, with_laplacian);
    let first = FirstLayer::new(&mlp.layers()[0], theta);
    let mut out = Vec::with_capacity(points.len());
    SPARE_BUFFERS.with_borrow_mut(|spare| {
        for block in points.coords.chunks(BLOCK_POINTS * points.dim) {
            forward_points(mlp, theta, &first, block, rows, &mut out, spare, None);
            if stop(&out) {
                break;
            }
        }
        // One spare per length a thread's passes ask for (whole and last
        // blocks, interior and boundary, …); lengths no longer asked for
        // go back to the pool.
        while spare.len() > SPARE_KEPT {
            crate::buffers::give(spare.remove(0));
        }
    });
    out
}
