//! The core numerics against independent expected values: the seed's step-0
//! numbers, finite differences, and identities of the Kronecker factors.
mod common;
use common::*;
use faer::Mat;
use kfac_check::forward_laplacian::forward;
use kfac_check::gramian::{gramian, layer_blocks};
use kfac_check::kronecker::{
    ErrorScale, KfacSettings, kfac_to_gramian_basis, kron, kronecker_factors,
    vector_to_gramian_basis, vector_to_kfac_basis,
};
use kfac_check::mlp::Mlp;
use kfac_check::pinn::Pinn;
use kfac_check::problem::{Data, Equation, Points};

/// A small problem: the documented network and data, fewer points.
fn small_pinn(n_interior: usize, n_boundary: usize) -> (Pinn, Vec<f64>) {
    pinn_of(2, &[8], n_interior, n_boundary)
}

fn pinn_of(dim: usize, hidden: &[usize], n_interior: usize, n_boundary: usize) -> (Pinn, Vec<f64>) {
    let mlp = Mlp::new(dim, hidden);
    let theta = mlp.init_params(1);
    let data = Data::generate(0, n_interior, n_boundary, dim);
    (Pinn::new(mlp, Equation::Poisson, data), theta)
}

fn frobenius_rel(a: &Mat<f64>, b: &Mat<f64>) -> f64 {
    (a - b).norm_l2() / b.norm_l2()
}

#[test]
fn step_zero_losses_match_the_seed() {
    // Seed log, first and third blocks.
    for (n_boundary, loss, interior, boundary) in [
        (1, 48.674902441834504, "48.6736741716", "0.0012282702"),
        (120, 48.68664253228789, "48.6736741716", "0.0129683607"),
    ] {
        let (pinn, theta) = documented_pinn(n_boundary);
        let l = pinn.losses(&theta);
        assert!(
            (l.total() - loss).abs() / loss <= 1e-14,
            "N_dOmega={n_boundary}: {}",
            l.total()
        );
        assert_eq!(format!("{:.10}", l.interior), interior);
        assert_eq!(format!("{:.10}", l.boundary), boundary);
    }
}

#[test]
fn gradient_matches_central_finite_differences() {
    let (pinn, theta) = documented_pinn(120);
    let grad = pinn.linearize(&theta).gradient;
    let h = 1e-6;
    let fd: Vec<f64> = (0..theta.len())
        .map(|p| {
            let (mut plus, mut minus) = (theta.clone(), theta.clone());
            plus[p] += h;
            minus[p] -= h;
            (pinn.losses(&plus).total() - pinn.losses(&minus).total()) / (2.0 * h)
        })
        .collect();
    let err = rel_err(&grad, &fd);
    assert!(err < 1e-6, "gradient vs finite differences: {err:e}");
}

#[test]
fn forward_laplacian_matches_finite_differences_of_u() {
    let (pinn, theta) = small_pinn(30, 1);
    let x = &pinn.data.interior;
    let lap = forward(&pinn.mlp, &theta, x, true, None);
    let h = 1e-4;
    let u_at = |p: &[f64]| {
        forward(
            &pinn.mlp,
            &theta,
            &Points {
                dim: 2,
                coords: p.to_vec(),
            },
            false,
            None,
        )[0]
    };
    let fd: Vec<f64> = x
        .iter()
        .map(|p| {
            (0..2)
                .map(|i| {
                    let (mut plus, mut minus) = (p.to_vec(), p.to_vec());
                    plus[i] += h;
                    minus[i] -= h;
                    (u_at(&plus) - 2.0 * u_at(p) + u_at(&minus)) / (h * h)
                })
                .sum()
        })
        .collect();
    let err = rel_err(&lap, &fd);
    assert!(err < 1e-5, "Laplacian vs finite differences: {err:e}");
}

/// `J[n, p] = ∂ output_n / ∂θ_p` by central differences of the forward pass.
fn finite_difference_jacobian(
    pinn: &Pinn,
    theta: &[f64],
    points: &Points,
    laplacian: bool,
) -> Mat<f64> {
    let h = 1e-5;
    let out = |t: &[f64]| forward(&pinn.mlp, t, points, laplacian, None);
    let mut jac = Mat::zeros(points.len(), theta.len());
    for p in 0..theta.len() {
        let (mut plus, mut minus) = (theta.to_vec(), theta.to_vec());
        plus[p] += h;
        minus[p] -= h;
        let (up, um) = (out(&plus), out(&minus));
        for n in 0..points.len() {
            jac[(n, p)] = (up[n] - um[n]) / (2.0 * h);
        }
    }
    jac
}

/// One hidden layer (the documented shape) and two, so that the backward
/// pass's per-point rows (a hidden layer after the first) are checked as well
/// as its shared blocks (the output layer's upstream, the first layer's
/// pre-activations).
#[test]
fn gramians_equal_jtj_over_n_with_finite_difference_jacobians() {
    for (dim, hidden) in [(2, vec![8]), (3, vec![5, 4])] {
        let (pinn, theta) = pinn_of(dim, &hidden, 25, 7);
        let lin = pinn.linearize(&theta);
        for (points, laplacian, ours) in [
            (&pinn.data.interior, true, lin.jacobian_interior()),
            (&pinn.data.boundary, false, lin.jacobian_boundary()),
        ] {
            let fd = finite_difference_jacobian(&pinn, &theta, points, laplacian);
            let (g_ours, g_fd) = (gramian(ours), gramian(fd.as_ref()));
            let err = frobenius_rel(&g_ours, &g_fd);
            assert!(
                err < 1e-7,
                "{hidden:?}: Gramian (laplacian={laplacian}) vs finite differences: {err:e}"
            );
            let layers = pinn.mlp.layers();
            for (l, (a, b)) in layer_blocks(ours, &layers)
                .iter()
                .zip(layer_blocks(fd.as_ref(), &layers))
                .enumerate()
            {
                let err = frobenius_rel(a, &b);
                assert!(err < 1e-7, "{hidden:?}: layer {l} block: {err:e}");
            }
        }
    }
}

#[test]
fn kfac_basis_permutation_is_a_bijection() {
    for layer in Mlp::new(3, &[5, 4]).layers() {
        let mut perm = Mlp::kfac_to_gramian(&layer);
        let v: Vec<f64> = (0..layer.n_params()).map(|i| i as f64).collect();
        assert_eq!(
            vector_to_gramian_basis(&layer, &vector_to_kfac_basis(&layer, &v)),
            v
        );
        perm.sort_unstable();
        assert_eq!(perm, (0..layer.n_params()).collect::<Vec<_>>());
        // The bias of output i sits at the end of row i in [W | b].
        assert_eq!(
            Mlp::kfac_to_gramian(&layer)[layer.d_in],
            layer.d_out * layer.d_in
        );
    }
}

#[test]
fn single_point_b_kron_a_is_the_gramian_block() {
    let (pinn, theta) = small_pinn(4, 1);
    let lin = pinn.linearize(&theta);
    let factors = kronecker_factors(
        &lin.boundary,
        &lin.residual_boundary,
        &KfacSettings::default(),
    );
    let layers = pinn.mlp.layers();
    for (l, block) in layer_blocks(lin.jacobian_boundary(), &layers)
        .iter()
        .enumerate()
    {
        let kfac = kfac_to_gramian_basis(
            &layers[l],
            kron(factors[l].b.as_ref(), factors[l].a.as_ref()).as_ref(),
        );
        let err = frobenius_rel(&kfac, block);
        assert!(err < 1e-13, "layer {l}: {err:e}");
    }
}

#[test]
fn error_scale_one_multiplies_every_b_by_n_and_is_neutral_at_n_1() {
    for (n_boundary, ggn) in [
        (7, "type-2"),
        (7, "empirical"),
        (1, "type-2"),
        (1, "empirical"),
    ] {
        let (pinn, theta) = small_pinn(5, n_boundary);
        let lin = pinn.linearize(&theta);
        let settings = KfacSettings {
            ggn_type: kfac_check::kronecker::GgnType::parse(ggn).unwrap(),
            ..KfacSettings::default()
        };
        let one = KfacSettings {
            error_scale: ErrorScale::One,
            ..settings
        };
        for (l, r, n) in [
            (&lin.interior, &lin.residual_interior, 5.0),
            (&lin.boundary, &lin.residual_boundary, n_boundary as f64),
        ] {
            let (scaled, unscaled) = (
                kronecker_factors(l, r, &settings),
                kronecker_factors(l, r, &one),
            );
            for (s, u) in scaled.iter().zip(&unscaled) {
                assert_eq!(s.a, u.a, "A does not depend on the error");
                if n == 1.0 {
                    assert_eq!(s.b, u.b, "N = 1: identical");
                } else {
                    let times_n = &s.b * faer::Scale(n);
                    assert!(
                        frobenius_rel(&times_n, &u.b) < 4.0 * f64::EPSILON,
                        "{ggn}: B_one = N·B"
                    );
                }
            }
        }
    }
}

/// Every setting's factors against REFERENCE §5 summed out row by row: `A =
/// (1/(N·S)) Σ ã ãᵀ` with `ã = [a; 1]` on value rows and `[a; 0]` on the
/// others, `B = c² Σ w_n² g gᵀ` over the kept rows (value rows of the first
/// layer's interior only with `input_dependent`), on a deep network so that
/// every layer kind (first, hidden, output) appears.
#[test]
fn kronecker_factors_are_their_definition_for_every_setting() {
    use kfac_check::kronecker::{GgnType, InteriorBRows};
    let mlp = Mlp::new(3, &[5, 4]);
    let theta = mlp.init_params(2);
    let data = Data::generate(3, 6, 4, 3);
    let pinn = Pinn::new(mlp, Equation::Poisson, data);
    let lin = pinn.linearize(&theta);
    let outer_sum = |rows: &mut dyn Iterator<Item = Vec<f64>>, dim: usize, scale: f64| {
        let mut m = Mat::<f64>::zeros(dim, dim);
        for v in rows {
            for i in 0..dim {
                for j in 0..dim {
                    m[(i, j)] += scale * v[i] * v[j];
                }
            }
        }
        m
    };
    for ggn_type in [GgnType::Type2, GgnType::Empirical, GgnType::ForwardOnly] {
        for interior_b_rows in [InteriorBRows::InputDependent, InteriorBRows::All] {
            for error_scale in [ErrorScale::InvSqrtN, ErrorScale::One] {
                let settings = KfacSettings {
                    ggn_type,
                    interior_b_rows,
                    error_scale,
                };
                for (term, residual) in [
                    (&lin.interior, &lin.residual_interior),
                    (&lin.boundary, &lin.residual_boundary),
                ] {
                    let (n, s) = (term.n_points, term.rows_per_point);
                    let factors = kronecker_factors(term, residual, &settings);
                    for (l, (shape, f)) in term.layers.iter().zip(&factors).enumerate() {
                        let (d_in, d_out) = (shape.d_in, shape.d_out);
                        let a = outer_sum(
                            &mut term.inputs[l].chunks_exact(d_in).enumerate().map(|(r, x)| {
                                let mut v = x.to_vec();
                                v.push(if r % s == 0 { 1.0 } else { 0.0 });
                                v
                            }),
                            d_in + 1,
                            1.0 / (n * s) as f64,
                        );
                        let c2 = match error_scale {
                            ErrorScale::InvSqrtN => 1.0 / n as f64,
                            ErrorScale::One => 1.0,
                        };
                        let value_rows_only =
                            s > 1 && l == 0 && interior_b_rows == InteriorBRows::InputDependent;
                        let b = if ggn_type == GgnType::ForwardOnly {
                            Mat::identity(d_out, d_out)
                        } else {
                            outer_sum(
                                &mut term.output_grads[l]
                                    .chunks_exact(d_out)
                                    .enumerate()
                                    .filter(|(r, _)| !value_rows_only || r % s == 0)
                                    .map(|(r, g)| {
                                        let w = match ggn_type {
                                            GgnType::Empirical => residual[r / s],
                                            _ => 1.0,
                                        };
                                        g.iter().map(|g| w * g).collect()
                                    }),
                                d_out,
                                c2,
                            )
                        };
                        let what = format!("{settings:?}, {n} points, layer {l}");
                        assert!(frobenius_rel(&f.a, &a) < 1e-14, "A: {what}");
                        assert!(frobenius_rel(&f.b, &b) < 1e-14, "B: {what}");
                    }
                }
            }
        }
    }
}

/// The bias part of a gradient against central finite differences of the loss.
fn bias_gradient_error(pinn: &Pinn, theta: &[f64], grad: &[f64]) -> f64 {
    let h = 1e-6;
    let mut ours = Vec::new();
    let mut fd = Vec::new();
    for layer in pinn.mlp.layers() {
        for p in layer.bias_range() {
            let (mut plus, mut minus) = (theta.to_vec(), theta.to_vec());
            plus[p] += h;
            minus[p] -= h;
            fd.push((pinn.losses(&plus).total() - pinn.losses(&minus).total()) / (2.0 * h));
            ours.push(grad[p]);
        }
    }
    rel_err(&ours, &fd)
}

/// The documented Bug 1: `layer.bias.data` used where `layer.bias.grad.data`
/// belonged. Our gradient passes the check; one built from bias values fails it.
#[test]
fn bias_entries_are_gradients_not_values() {
    let (pinn, theta) = documented_pinn(120);
    let grad = pinn.linearize(&theta).gradient;
    assert!(bias_gradient_error(&pinn, &theta, &grad) < 1e-6);

    let mut buggy = grad.clone();
    for layer in pinn.mlp.layers() {
        for p in layer.bias_range() {
            buggy[p] = theta[p];
        }
    }
    assert!(
        bias_gradient_error(&pinn, &theta, &buggy) > 0.1,
        "the check must catch bias values"
    );
}

/// The line search's untraced pass (blocks of points, derivative rows of the
/// last hidden layer skipped) and the traced pass of the linearisation are
/// written separately: they must agree bit for bit, or the logged loss would
/// not be the loss the line search chose. Both models, more points than a block.
#[test]
fn traced_and_untraced_passes_agree_bit_for_bit() {
    // Widths 13 and 5 leave a part-chunk of neurons (kernels go eight at a time).
    for (dim, hidden) in [
        (2, vec![64]),
        (3, vec![13]),
        (1, vec![5]),
        (5, vec![64, 48, 32, 16]),
    ] {
        let mlp = Mlp::new(dim, &hidden);
        let theta = mlp.init_params(3);
        let data = Data::generate(1, 70, 45, dim);
        let pinn = Pinn::new(mlp, Equation::Poisson, data);
        let traced = pinn.linearize(&theta).losses;
        let untraced = pinn.losses(&theta);
        assert_eq!(
            traced.interior.to_bits(),
            untraced.interior.to_bits(),
            "{hidden:?}"
        );
        assert_eq!(
            traced.boundary.to_bits(),
            untraced.boundary.to_bits(),
            "{hidden:?}"
        );
    }
}
