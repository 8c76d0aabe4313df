//! The losses along the ray `θ + αδ` as power series in `α`, for a network
//! with one hidden layer: most of the line search's `f_k = Loss(θ + α_k δ)`
//! (REFERENCE §6) without a forward pass each.
//!
//! With one hidden layer, `u(x) = Σ_j v_j tanh(z_j) + c` and
//! `Δu(x) = Σ_j v_j s_j σ''(z_j)` with `z_j = W_j·x + b_j`, `s_j = |W_j|²`.
//! Along the ray every parameter moves linearly, so `z_j(α) = z_j + α ζ_j`
//! with `ζ_j = dW_j·x + db_j` (δ's first layer), `s_j(α) = s0 + s1 α + s2 α²`
//! (`s1 = 2 W_j·dW_j`, `s2 = |dW_j|²`) and `v_j(α) = v_j + α dv_j`. With the
//! Taylor coefficients of tanh at `z_j`, `a_m = tanh⁽ᵐ⁾(z_j)/m!`, from
//! `tanh' = 1 − tanh²`:
//!
//! ```text
//! a_0 = t,  a_1 = 1 − t²,  (m+1) a_{m+1} = −Σ_{i=0..m} a_i a_{m−i}
//! tanh z_j(α)   = Σ_m a_m ζ_j^m α^m
//! σ''(z_j(α))   = Σ_m (m+1)(m+2) a_{m+2} ζ_j^m α^m
//! u(α)          = Σ_j v_j(α) tanh z_j(α) + c + α dc
//! Δu(α)         = Σ_j v_j(α) s_j(α) σ''(z_j(α))
//! ```
//!
//! One pass per step gives every point's residual `r_n(α)` up to `α^ORDER`;
//! a candidate then costs one Horner evaluation per point.
//!
//! **Where the truncation is below rounding.** tanh is analytic in the strip
//! `|Im z| < π/2`; on `|Im z| ≤ 1`, `|tanh| ≤ tan 1 < 1.56` and
//! `|σ''| = |2 tanh sech²| ≤ 2 tan 1 / cos² 1 < 10.7`. Cauchy's estimate on the
//! unit circle bounds every Taylor coefficient of tanh by 1.56 and of `σ''`
//! by 10.7, so where `|α ζ_j| ≤ q` the terms after `α^ORDER` add at most
//! `10.7 q^(ORDER+1) / (1 − q)` per unit of `Σ_j |v_j(α) s_j(α)|` (and
//! `1.56 …` per unit of `Σ_j |v_j(α)|` to `u`). With `q = 1/128` and
//! `ORDER = 8` that is below `2⁻⁵⁹`, far under the rounding of a forward
//! pass (`≈ 2⁻⁵³` of the same sums). Candidates with `α > q / max |ζ|` get a
//! forward pass.
//!
//! **Same bits at `α = 0`.** The constant coefficients are computed with the
//! forward pass's own operations (`FirstLayer`, tanh, the Laplacian row and
//! the fixed-order `dot`), so `r_n(0)` is the forward pass's residual and a
//! candidate whose `α`-terms fall below half an ulp gets exactly `f_0`.

use crate::forward_laplacian::{FirstLayer, dot, first_layer_laplacian_row, lane_sum};
use crate::halves::for_each_half;
use crate::pinn::{Losses, Pinn, boundary_residual, half_mean_square, interior_residual};
use crate::problem::Points;
use crate::tanh::tanh_in_place;
use multiversion::multiversion;

/// Highest power of `α` kept.
pub const ORDER: usize = 8;
/// The largest `|α ζ_j|` at which the truncated series stands in for a
/// forward pass (`q` above).
pub const REACH: f64 = 1.0 / 128.0;

/// Every point's residual along the ray as a polynomial in `α`.
#[derive(Clone, Debug)]
pub struct LossSeries {
    /// The coefficients of `r_n^Ω(α) = Δu(α) + f`: `ORDER + 1` rows (`α⁰`
    /// first), one entry per interior point.
    interior: Vec<f64>,
    /// The same for `r_n^∂(α) = u(α) − u*`.
    boundary: Vec<f64>,
    /// `radius_along(θ, δ)`, or 0 when a coefficient is not finite.
    radius: f64,
}

/// The largest step the series along `δ` would answer for:
/// `REACH / max |ζ_j(x_n)|` over the neurons and both point sets
/// (`ζ = dW x + db`, δ's first layer); 0 unless the network has exactly one
/// hidden layer and every `ζ` is finite. Cheap (`d` FMAs per neuron and
/// point), so a caller can ask before building the series.
pub fn radius_along(pinn: &Pinn, direction: &[f64]) -> f64 {
    let layers = pinn.mlp.layers();
    let [first, _output] = layers.as_slice() else {
        return 0.0;
    };
    let step = FirstLayer::new(first, direction);
    let (data, dim) = (&pinn.data, pinn.mlp.dim());
    let interior = largest_pre_activation(&step, &data.interior.coords, dim);
    let boundary = largest_pre_activation(&step, &data.boundary.coords, dim);
    let reach = interior.max(boundary);
    if interior.is_finite() && boundary.is_finite() {
        REACH / reach
    } else {
        0.0
    }
}

/// `max |z_j(x_n)|` of a first layer over some points; NaN if any is NaN.
/// (Compiled with FMA like the forward pass: `value_row`'s `mul_add` would
/// otherwise be a libm call.)
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn largest_pre_activation(layer: &FirstLayer, coords: &[f64], dim: usize) -> f64 {
    let mut z = vec![0.0; layer.bias.len()];
    let (mut largest, mut nan) = (vec![0.0f64; z.len()], false);
    for x in coords.chunks_exact(dim) {
        layer.value_row(x, &mut z);
        for (l, z) in largest.iter_mut().zip(&z) {
            // `f64::max` drops a NaN: it is noted on the side.
            *l = l.max(z.abs());
            nan |= z.is_nan();
        }
    }
    if nan {
        f64::NAN
    } else {
        largest.into_iter().fold(0.0, f64::max)
    }
}

/// Entries per point in the pass's output.
const PER_POINT: usize = ORDER + 1;

/// What the coefficients need of `θ` and `δ`.
struct Ray<'a> {
    layer: FirstLayer,
    /// δ's first layer: `ζ = dW x + db`, and its `sum_sq` is `s2`.
    step: FirstLayer,
    /// `v(α)·s(α) = k0 + k1 α + k2 α² + k3 α³` per neuron, for `Δu`'s
    /// coefficients beyond the constant.
    /// (Padded, see `padded`.)
    k: [Vec<f64>; 4],
    out_weight: &'a [f64],
    out_weight_padded: Vec<f64>,
    step_out_weight_padded: Vec<f64>,
    out_bias: f64,
    step_out_bias: f64,
}

impl LossSeries {
    /// The series of `pinn`'s residuals along `θ + αδ`; `None` unless the
    /// network has exactly one hidden layer.
    pub fn along(pinn: &Pinn, theta: &[f64], direction: &[f64]) -> Option<Self> {
        Self::within(pinn, theta, direction, radius_along(pinn, direction))
    }

    /// `along`, for a caller that already has `radius_along(pinn, δ)`.
    pub fn within(pinn: &Pinn, theta: &[f64], direction: &[f64], radius: f64) -> Option<Self> {
        let layers = pinn.mlp.layers();
        let [first, output] = layers.as_slice() else {
            return None;
        };
        let layer = FirstLayer::new(first, theta);
        let step = FirstLayer::new(first, direction);
        let (w, dw) = (
            &theta[first.weight_range()],
            &direction[first.weight_range()],
        );
        // s1_j = 2 W_j·dW_j.
        let cross: Vec<f64> = w
            .chunks_exact(first.d_in)
            .zip(dw.chunks_exact(first.d_in))
            .map(|(w, dw)| 2.0 * w.iter().zip(dw).map(|(a, b)| a * b).sum::<f64>())
            .collect();
        let (v, dv) = (
            &theta[output.weight_range()],
            &direction[output.weight_range()],
        );
        let (s0, s2) = (&layer.sum_sq, &step.sum_sq);
        let per_neuron =
            |f: &dyn Fn(usize) -> f64| padded(&(0..v.len()).map(f).collect::<Vec<_>>());
        let k = [
            per_neuron(&|j| v[j] * s0[j]),
            per_neuron(&|j| v[j].mul_add(cross[j], dv[j] * s0[j])),
            per_neuron(&|j| v[j].mul_add(s2[j], dv[j] * cross[j])),
            per_neuron(&|j| dv[j] * s2[j]),
        ];
        let ray = Ray {
            layer,
            step,
            k,
            out_weight: v,
            out_weight_padded: padded(v),
            step_out_weight_padded: padded(dv),
            out_bias: theta[output.bias_range()][0],
            step_out_bias: direction[output.bias_range()][0],
        };
        let (interior, boundary) = rayon::join(
            || ray.coefficients(&pinn.data.interior, &pinn.source_interior, true),
            || ray.coefficients(&pinn.data.boundary, &pinn.solution_boundary, false),
        );
        let finite = interior.iter().chain(&boundary).all(|c| c.is_finite());
        let radius = if finite { radius } else { 0.0 };
        // Coefficient-major (`c_m` of every point contiguous), so that a
        // candidate's Horner steps run across the points.
        let coefficient_major = |all: Vec<f64>| -> Vec<f64> {
            (0..=ORDER)
                .flat_map(|m| all.chunks_exact(PER_POINT).map(move |point| point[m]))
                .collect()
        };
        Some(Self {
            interior: coefficient_major(interior),
            boundary: coefficient_major(boundary),
            radius,
        })
    }

    /// The largest step the series answers for.
    pub fn radius(&self) -> f64 {
        self.radius
    }

    /// Whether `Loss(θ + αδ)` comes from the series (else a forward pass).
    pub fn covers(&self, alpha: f64) -> bool {
        alpha.abs() <= self.radius
    }

    /// The residuals `r^Ω(α)` and `r^∂(α)` at every point, from the series
    /// (`covers(α)` assumed): one Horner step per coefficient, across the points.
    pub fn residuals(&self, alpha: f64) -> (Vec<f64>, Vec<f64>) {
        let horner = |coefficients: &[f64]| -> Vec<f64> {
            let n_points = coefficients.len() / (ORDER + 1);
            let mut rows = coefficients.chunks_exact(n_points.max(1)).rev();
            let mut r = rows.next().map(<[f64]>::to_vec).unwrap_or_default();
            for c in rows {
                for (r, &c) in r.iter_mut().zip(c) {
                    *r = *r * alpha + c;
                }
            }
            r
        };
        (horner(&self.interior), horner(&self.boundary))
    }

    /// `L_Ω(θ + αδ)` and `L_∂(θ + αδ)` from the series (`covers(α)` assumed).
    pub fn losses(&self, alpha: f64) -> Losses {
        let (interior, boundary) = self.residuals(alpha);
        Losses {
            interior: half_mean_square(&interior),
            boundary: half_mean_square(&boundary),
        }
    }
}

impl Ray<'_> {
    /// `PER_POINT` entries per point, the two halves of the points in parallel.
    fn coefficients(&self, points: &Points, targets: &[f64], with_laplacian: bool) -> Vec<f64> {
        let mut out = vec![0.0; points.len() * PER_POINT];
        for_each_half(&mut out, PER_POINT, |range, out| {
            let coords = &points.coords[range.start * points.dim..range.end * points.dim];
            point_coefficients(self, coords, &targets[range], with_laplacian, out);
        });
        out
    }
}

/// Neurons per chunk of the coefficient kernel: four AVX-512 registers, so
/// that the recurrence's chains of dependent FMAs run four abreast.
const LANES: usize = 32;
type Lanes = [f64; LANES];

/// `Σ_k sums_k` in a fixed order: lanes `k ≡ i (mod 8)` first, in order,
/// then the eight partial sums as `dot` adds them.
fn chunk_sum(sums: &Lanes) -> f64 {
    let mut eight = [0.0; 8];
    for group in sums.chunks_exact(8) {
        for (e, &s) in eight.iter_mut().zip(group) {
            *e += s;
        }
    }
    lane_sum(&eight)
}

/// A row padded with zeros to a whole number of chunks (a zero weight makes
/// a padding neuron contribute nothing).
fn padded(row: &[f64]) -> Vec<f64> {
    let mut out = row.to_vec();
    out.resize(row.len().div_ceil(LANES) * LANES, 0.0);
    out
}

fn lanes(row: &[f64], chunk: usize) -> Lanes {
    row[chunk * LANES..(chunk + 1) * LANES]
        .try_into()
        .expect("a padded row")
}

/// `a_0 … a_LAST` of a chunk of neurons from `t = tanh z` (`LAST` is `ORDER`
/// for `u`, `ORDER + 2` for `σ''`): `a_0 = t`, `a_1 = 1 − t²`,
/// `a_{m+1} = −(2 Σ_{i<(m+1)/2} a_i a_{m−i} + [m even] a_{m/2}²) / (m+1)`.
/// Each step is written out with constant indices: as a loop over `m`, the
/// `a_m` went through a stack array at every step, and the series' pass took
/// 8% longer (same operations, same bits).
#[inline(always)]
fn tanh_taylor<const LAST: usize>(t: Lanes, a: &mut [Lanes; ORDER + 3]) {
    const { assert!(ORDER == 8 && (LAST == ORDER || LAST == ORDER + 2)) };
    a[0] = t;
    for k in 0..LANES {
        a[1][k] = (-t[k]).mul_add(t[k], 1.0);
    }
    taylor_step::<1>(a);
    taylor_step::<2>(a);
    taylor_step::<3>(a);
    taylor_step::<4>(a);
    taylor_step::<5>(a);
    taylor_step::<6>(a);
    taylor_step::<7>(a);
    if LAST > ORDER {
        taylor_step::<8>(a);
        taylor_step::<9>(a);
    }
}

/// `a_{M+1}` from `a_0 … a_M`.
#[inline(always)]
fn taylor_step<const M: usize>(a: &mut [Lanes; ORDER + 3]) {
    let mut half_sum = [0.0; LANES];
    for i in 0..M.div_ceil(2) {
        for k in 0..LANES {
            half_sum[k] = a[i][k].mul_add(a[M - i][k], half_sum[k]);
        }
    }
    let scale = const { -1.0 / (M + 1) as f64 };
    let square = if M.is_multiple_of(2) {
        a[M / 2]
    } else {
        [0.0; LANES]
    };
    for k in 0..LANES {
        a[M + 1][k] = scale * square[k].mul_add(square[k], 2.0 * half_sum[k]);
    }
}

/// Each point's residual coefficients (`PER_POINT` entries). The constant coefficient repeats the forward pass's
/// operations; the others are summed eight neurons at a time in registers.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn point_coefficients(
    ray: &Ray,
    coords: &[f64],
    targets: &[f64],
    with_laplacian: bool,
    out: &mut [f64],
) {
    let width = ray.layer.bias.len();
    let dim = ray.layer.weights_t.len() / width;
    let chunks = width.div_ceil(LANES);
    // Padding neurons keep z = ζ = 0.
    let mut t = vec![0.0; chunks * LANES];
    let mut zeta = vec![0.0; chunks * LANES];
    let mut row = vec![0.0; width];
    // `tanh_taylor` writes every `a_m` it later reads.
    let mut a = [[0.0; LANES]; ORDER + 3];
    for ((x, &target), coefficients) in coords
        .chunks_exact(dim)
        .zip(targets)
        .zip(out.chunks_exact_mut(PER_POINT))
    {
        ray.layer.value_row(x, &mut t[..width]);
        ray.step.value_row(x, &mut zeta[..width]);
        tanh_in_place(&mut t[..width]);
        // Lane-wise sums of the coefficients of order 1..=ORDER.
        let mut sums = [[0.0; LANES]; ORDER + 1];
        if with_laplacian {
            // r(0) as the forward pass computes it: Δh = σ''·s0, Δu = v·Δh.
            first_layer_laplacian_row(&t[..width], &ray.layer.sum_sq, &mut row);
            coefficients[0] = interior_residual(dot(ray.out_weight, &row), target);
            for chunk in 0..chunks {
                let z = lanes(&zeta, chunk);
                tanh_taylor::<{ ORDER + 2 }>(lanes(&t, chunk), &mut a);
                // S_m = (m+1)(m+2) a_{m+2} ζ^m, σ''(z(α))'s coefficients.
                let mut s = [[0.0; LANES]; ORDER + 1];
                let mut power = [1.0; LANES];
                for (m, s_m) in s.iter_mut().enumerate() {
                    let c = ((m + 1) * (m + 2)) as f64;
                    for k in 0..LANES {
                        s_m[k] = c * a[m + 2][k] * power[k];
                        power[k] *= z[k];
                    }
                }
                // Order m of v(α) s(α) σ''(α): Σ_r k_r S_{m−r}.
                let k_rows = ray.k.each_ref().map(|k| lanes(k, chunk));
                for m in 1..=ORDER {
                    // In registers, stored once.
                    let mut sum = sums[m];
                    for (r, k_r) in k_rows.iter().enumerate().take(m + 1) {
                        for k in 0..LANES {
                            sum[k] = k_r[k].mul_add(s[m - r][k], sum[k]);
                        }
                    }
                    sums[m] = sum;
                }
            }
        } else {
            // u(0) − u* as the forward pass computes it.
            coefficients[0] =
                boundary_residual(dot(ray.out_weight, &t[..width]) + ray.out_bias, target);
            for chunk in 0..chunks {
                let z = lanes(&zeta, chunk);
                let (v, dv) = (
                    lanes(&ray.out_weight_padded, chunk),
                    lanes(&ray.step_out_weight_padded, chunk),
                );
                tanh_taylor::<ORDER>(lanes(&t, chunk), &mut a);
                // T_m = a_m ζ^m; order m of u is v·T_m + dv·T_{m−1}.
                let mut power = [1.0; LANES];
                for m in 1..=ORDER {
                    for k in 0..LANES {
                        let previous = a[m - 1][k] * power[k];
                        power[k] *= z[k];
                        let current = a[m][k] * power[k];
                        sums[m][k] = v[k].mul_add(current, dv[k].mul_add(previous, sums[m][k]));
                    }
                }
            }
            sums[1][0] += ray.step_out_bias;
        }
        for m in 1..=ORDER {
            coefficients[m] = chunk_sum(&sums[m]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At `z = 0` the coefficients are those of `tanh x = x − x³/3 + 2x⁵/15
    /// − 17x⁷/315 + 62x⁹/2835 − 1382x¹¹/155925 + …` (the tangent numbers).
    #[test]
    fn taylor_coefficients_at_zero_are_the_series_of_tanh() {
        let mut a = [[f64::NAN; LANES]; ORDER + 3];
        tanh_taylor::<{ ORDER + 2 }>([0.0; LANES], &mut a);
        let expected = [
            0.0,
            1.0,
            0.0,
            -1.0 / 3.0,
            0.0,
            2.0 / 15.0,
            0.0,
            -17.0 / 315.0,
            0.0,
            62.0 / 2835.0,
            0.0,
            -1382.0 / 155925.0,
            0.0,
        ];
        for (m, (row, e)) in a.iter().zip(expected).enumerate() {
            for &got in row {
                // A few roundings per step of the recurrence: within 4.5 ulp.
                assert!((got - e).abs() <= 1e-15 * e.abs(), "a_{m} = {got}, not {e}");
            }
        }
    }

    /// Elsewhere the first ones are polynomials in `t = tanh z`:
    /// `a_2 = −t(1 − t²)`, `a_3 = −(1 − t²)(1 − 3t²)/3`,
    /// `a_4 = t(1 − t²)(2 − 3t²)/3`.
    #[test]
    fn taylor_coefficients_are_the_derivatives_of_tanh() {
        let t: Lanes = std::array::from_fn(|k| -0.999 + 1.998 * k as f64 / (LANES - 1) as f64);
        let mut a = [[f64::NAN; LANES]; ORDER + 3];
        tanh_taylor::<{ ORDER + 2 }>(t, &mut a);
        for (k, &t) in t.iter().enumerate() {
            let s = 1.0 - t * t;
            let closed = [
                -t * s,
                -s * (1.0 - 3.0 * t * t) / 3.0,
                t * s * (2.0 - 3.0 * t * t) / 3.0,
            ];
            for (m, e) in closed.into_iter().enumerate() {
                let got = a[m + 2][k];
                assert!(
                    (got - e).abs() <= 1e-15,
                    "t = {t}: a_{} = {got}, not {e}",
                    m + 2
                );
            }
        }
    }
}
