//! The line search's power series of the residuals along `θ + αδ` against
//! the independent computation it replaces: a forward pass at the moved
//! parameters, on random one-hidden-layer problems.
use kfac_check::line_search::{Grid, moved};
use kfac_check::loss_series::{LossSeries, REACH};
use kfac_check::mlp::Mlp;
use kfac_check::pinn::Pinn;
use kfac_check::problem::{Data, Equation};
use proptest::prelude::*;

#[derive(Debug)]
struct Ray {
    pinn: Pinn,
    theta: Vec<f64>,
    direction: Vec<f64>,
}

/// Widths 1..=20 (not only whole chunks of eight neurons), directions from
/// 10⁻³ to 10³ (from nearly every candidate on the series to nearly none).
fn ray() -> impl Strategy<Value = Ray> {
    (
        1usize..=3,
        1usize..=20,
        1usize..=40,
        1usize..=12,
        0u64..1000,
    )
        .prop_flat_map(|(dim, width, n_interior, n_boundary, data_seed)| {
            let mlp = Mlp::new(dim, &[width]);
            let n = mlp.n_params();
            (
                Just((mlp, Data::generate(data_seed, n_interior, n_boundary, dim))),
                prop::collection::vec(-1.5f64..1.5, n),
                prop::collection::vec(-1.0f64..1.0, n),
                -3i32..=3,
            )
        })
        .prop_map(|((mlp, data), theta, direction, scale)| Ray {
            pinn: Pinn::new(mlp, Equation::Poisson, data),
            theta,
            direction: direction.iter().map(|d| d * 10f64.powi(scale)).collect(),
        })
}

/// `Σ_j |v_j| s_j + |f|`-sized scales of the interior residuals and
/// `Σ_j |v_j| + |c| + |u*|` of the boundary ones at `θ`: what a forward
/// pass's rounding is proportional to.
fn residual_scales(pinn: &Pinn, theta: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let layers = pinn.mlp.layers();
    let (first, output) = (&layers[0], &layers[1]);
    let v = &theta[output.weight_range()];
    let w = &theta[first.weight_range()];
    let kappa: f64 = v
        .iter()
        .zip(w.chunks_exact(first.d_in))
        .map(|(v, w)| v.abs() * w.iter().map(|x| x * x).sum::<f64>())
        .sum();
    let value: f64 = v.iter().map(|v| v.abs()).sum::<f64>() + theta[output.bias_range()][0].abs();
    (
        pinn.source_interior
            .iter()
            .map(|f| kappa + f.abs())
            .collect(),
        pinn.solution_boundary
            .iter()
            .map(|g| value + g.abs())
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every candidate the series covers, and its edge `α = radius`, where
    /// the terms beyond the first matter most: each residual within
    /// `10⁻¹³` of its scale (a forward pass rounds at about `10⁻¹⁶` of it;
    /// a wrong coefficient of order `m ≤ 5` would show at `128⁻ᵐ`).
    #[test]
    fn series_residuals_match_forward_passes(ray in ray()) {
        let series = LossSeries::along(&ray.pinn, &ray.theta, &ray.direction)
            .expect("one hidden layer");
        let mut alphas = Grid::default().candidates();
        alphas.extend([series.radius(), series.radius() / 3.0]);
        for alpha in alphas.into_iter().filter(|&a| series.covers(a) && a.is_finite()) {
            let theta = moved(&ray.theta, &ray.direction, alpha);
            let (interior, boundary) = series.residuals(alpha);
            let (interior_scale, boundary_scale) = residual_scales(&ray.pinn, &theta);
            for (name, got, expected, scale) in [
                ("interior", interior, ray.pinn.interior_residuals(&theta, None), interior_scale),
                ("boundary", boundary, ray.pinn.boundary_residuals(&theta, None), boundary_scale),
            ] {
                for (n, ((g, e), s)) in got.iter().zip(&expected).zip(&scale).enumerate() {
                    prop_assert!(
                        (g - e).abs() <= 1e-13 * s,
                        "{name} point {n}, α = {alpha:e}: series {g}, forward {e} (scale {s})"
                    );
                }
            }
        }
    }

    /// The radius is `REACH / max |ζ_j(x_n)|`, `ζ = dW x + db`, over both point sets.
    #[test]
    fn radius_is_the_reach_over_the_largest_first_layer_change(ray in ray()) {
        let series = LossSeries::along(&ray.pinn, &ray.theta, &ray.direction)
            .expect("one hidden layer");
        let first = &ray.pinn.mlp.layers()[0];
        let (dw, db) = (&ray.direction[first.weight_range()], &ray.direction[first.bias_range()]);
        let data = &ray.pinn.data;
        let largest = data.interior.iter().chain(data.boundary.iter())
            .flat_map(|x| {
                dw.chunks_exact(first.d_in).zip(db).map(move |(w, b)| {
                    (w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + b).abs()
                })
            })
            .fold(0.0, f64::max);
        let expected = REACH / largest;
        prop_assert!((series.radius() - expected).abs() <= 1e-14 * expected,
            "radius {} against {expected}", series.radius());
    }
}

/// At `α = 0` the series gives the forward pass's losses bit for bit (its
/// constant coefficients are computed the same way), so a candidate too
/// small to move a residual gets exactly `f_0`.
#[test]
fn series_at_zero_is_the_forward_pass_bit_for_bit() {
    let mlp = Mlp::new(2, &[64]);
    let theta = mlp.init_params(0);
    let direction: Vec<f64> = (0..mlp.n_params())
        .map(|i| ((i % 7) as f64 - 3.0) * 0.1)
        .collect();
    let pinn = Pinn::new(mlp, Equation::Poisson, Data::generate(0, 100, 30, 2));
    let series = LossSeries::along(&pinn, &theta, &direction).expect("one hidden layer");
    let (got, expected) = (series.losses(0.0), pinn.losses(&theta));
    assert_eq!(got.interior.to_bits(), expected.interior.to_bits());
    assert_eq!(got.boundary.to_bits(), expected.boundary.to_bits());
}

/// Only one hidden layer has a first layer that is the whole hidden part;
/// a non-finite direction leaves every candidate to a forward pass.
#[test]
fn series_declines_deep_networks_and_non_finite_directions() {
    let deep = Mlp::new(2, &[8, 8]);
    let theta = deep.init_params(0);
    let pinn = Pinn::new(deep, Equation::Poisson, Data::generate(0, 10, 4, 2));
    assert!(LossSeries::along(&pinn, &theta, &theta).is_none());

    let mlp = Mlp::new(2, &[8]);
    let theta = mlp.init_params(0);
    let pinn = Pinn::new(mlp, Equation::Poisson, Data::generate(0, 10, 4, 2));
    let mut direction = theta.clone();
    direction[3] = f64::NAN;
    let series = LossSeries::along(&pinn, &theta, &direction).expect("one hidden layer");
    assert_eq!(series.radius(), 0.0);
    assert!(!series.covers(1e-300));
}
