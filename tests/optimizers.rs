//! The optimizers' curvature handling against dense reference computations:
//! where the damping goes, and how a run stops on non-finite values.
mod common;
use faer::prelude::Solve;
use faer::{Mat, Side};
use kfac_check::gramian::layer_blocks;
use kfac_check::kfac::{Kfac, KfacConfig};
use kfac_check::kronecker::{
    KfacSettings, gramian_to_kfac_basis, kron, kronecker_factors, vector_to_kfac_basis,
};
use kfac_check::line_search::StepSize;
use kfac_check::mlp::Mlp;
use kfac_check::optimizer::Optimizer;
use kfac_check::pinn::Pinn;
use kfac_check::problem::{Data, Equation};

fn small() -> (Pinn, Vec<f64>) {
    let mlp = Mlp::new(2, &[5]);
    let theta = mlp.init_params(3);
    (
        Pinn::new(mlp, Equation::Poisson, Data::generate(2, 12, 6, 2)),
        theta,
    )
}

fn config(exact_interior: bool) -> KfacConfig {
    KfacConfig {
        damping: 0.3,
        ema_factor: 0.0,
        t_kfac: 1,
        t_inv: 1,
        initialize_to_identity: false,
        settings: KfacSettings::default(),
        use_exact_interior_gramian: exact_interior,
        use_exact_boundary_gramian: false,
        step_size: StepSize::Fixed(1.0),
    }
}

fn identity(n: usize) -> Mat<f64> {
    Mat::identity(n, n)
}

/// `(B_Ω+λI)⊗(A_Ω+λI) + (B_∂+λI)⊗(A_∂+λI)`, dense.
fn damped_kronecker_sum(
    interior: &kfac_check::kronecker::KroneckerFactors,
    boundary: &kfac_check::kronecker::KroneckerFactors,
    lambda: f64,
) -> Mat<f64> {
    let d = |f: &Mat<f64>| f + identity(f.nrows()) * faer::Scale(lambda);
    kron(d(&interior.b).as_ref(), d(&interior.a).as_ref())
        + kron(d(&boundary.b).as_ref(), d(&boundary.a).as_ref())
}

fn dense_solve(m: &Mat<f64>, g: &[f64]) -> Vec<f64> {
    let rhs = Mat::from_fn(g.len(), 1, |i, _| g[i]);
    let x = m.llt(Side::Lower).unwrap().solve(&rhs);
    (0..g.len()).map(|i| x[(i, 0)]).collect()
}

/// Plain KFAC damps each factor: `(B_Ω+λI)⊗(A_Ω+λI) + (B_∂+λI)⊗(A_∂+λI)`.
/// With an exact switch, the matrix is damped once: `G_Ω + B_∂⊗A_∂ + λI`.
#[test]
fn damping_is_per_factor_for_kronecker_and_once_for_explicit_matrices() {
    let (pinn, theta) = small();
    let lin = pinn.linearize(&theta);
    let lambda = 0.3;
    let fi = kronecker_factors(
        &lin.interior,
        &lin.residual_interior,
        &KfacSettings::default(),
    );
    let fb = kronecker_factors(
        &lin.boundary,
        &lin.residual_boundary,
        &KfacSettings::default(),
    );
    let layers = pinn.mlp.layers();
    let exact_interior = layer_blocks(lin.jacobian_interior(), &layers);
    for exact in [false, true] {
        let delta = Kfac::new(config(exact), &pinn.mlp)
            .direction(0, &lin)
            .unwrap();
        for (l, shape) in layers.iter().enumerate() {
            let (p, q) = (shape.d_out, shape.d_in + 1);
            let m = if exact {
                gramian_to_kfac_basis(shape, exact_interior[l].as_ref())
                    + kron(fb[l].b.as_ref(), fb[l].a.as_ref())
                    + identity(p * q) * faer::Scale(lambda)
            } else {
                damped_kronecker_sum(&fi[l], &fb[l], lambda)
            };
            let g = vector_to_kfac_basis(shape, &lin.gradient[shape.range()]);
            let expected: Vec<f64> = dense_solve(&m, &g).iter().map(|x| -x).collect();
            let ours = vector_to_kfac_basis(shape, &delta[shape.range()]);
            let err = common::rel_err(&ours, &expected);
            assert!(err < 1e-10, "exact={exact} layer {l}: {err:e}");
        }
    }
}

/// A singular Kronecker factor with zero damping stops the run, naming the
/// step and the quantity; the log lines written before stay intact.
#[test]
fn a_singular_factor_with_zero_damping_stops_with_step_and_quantity() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kfac-check"))
        .args([
            "train",
            "--optimizer=KFAC",
            "--KFAC_damping=0",
            "--N_Omega=1",
            "--N_dOmega=1",
            "--num_steps=5",
            "--max_logs=5",
        ])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("step 0") && err.contains("not positive definite"),
        "{err}"
    );
}

/// The observer hook sees every step, before θ moves, with what the step computed.
#[test]
fn observers_see_every_step() {
    use kfac_check::optimizer::{Observer, StepRecord};
    struct Recorder(Vec<(usize, f64, f64)>);
    impl Observer for Recorder {
        fn observe(&mut self, r: &StepRecord<'_>) {
            self.0
                .push((r.step, r.choice.step_size, r.linearized.losses.total()));
        }
    }
    let args = [
        "--optimizer=ENGD",
        "--num_steps=4",
        "--max_logs=4",
        "--N_Omega=40",
        "--N_dOmega=4",
    ];
    let config = <kfac_check::debug_log::TrainCommand as clap::Parser>::try_parse_from(args)
        .unwrap()
        .args
        .to_config()
        .unwrap();
    let mut recorder = Recorder(Vec::new());
    let lines = kfac_check::train::train(&config, &mut std::io::sink(), &mut recorder).unwrap();
    assert_eq!(
        recorder.0.iter().map(|r| r.0).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    for line in &lines {
        assert_eq!(
            recorder.0[line.step].2, line.loss,
            "the logged loss is the observed one"
        );
    }
}

/// An ascent direction cannot decrease the loss: the search takes no step,
/// and the run prints the reference's warning.
#[test]
fn line_search_without_decrease_takes_no_step() {
    use kfac_check::line_search::{Grid, GridLoss, StepSize, choose_step};
    let (pinn, theta) = small();
    let lin = pinn.linearize(&theta);
    let ascent = lin.gradient.clone();
    let choice = choose_step(
        &pinn,
        &theta,
        &ascent,
        lin.losses.total(),
        &StepSize::GridLineSearch(Grid::default()),
    );
    assert!(choice.no_decrease);
    assert_eq!(choice.step_size, 0.0);
    // Each candidate's loss, or the lower bound its stopped pass reached.
    assert!(
        choice
            .grid
            .iter()
            .all(|(_, f)| f.value() > lin.losses.total())
    );
    // A descent direction does decrease it, at the first best grid point.
    let descent: Vec<f64> = ascent.iter().map(|g| -g).collect();
    let choice = choose_step(
        &pinn,
        &theta,
        &descent,
        lin.losses.total(),
        &StepSize::GridLineSearch(Grid::default()),
    );
    let exact = |f: &GridLoss| match *f {
        GridLoss::Exact(f) => Some(f),
        GridLoss::Above(_) => None,
    };
    let best = choice
        .grid
        .iter()
        .filter_map(|(_, f)| exact(f))
        .fold(f64::INFINITY, f64::min);
    assert_eq!(choice.loss, Some(best));
    assert_eq!(
        choice.step_size,
        choice
            .grid
            .iter()
            .find(|(_, f)| exact(f) == Some(best))
            .unwrap()
            .0
    );
    // A stopped pass stopped above the best.
    assert!(choice.grid.iter().all(|(_, f)| f.value() >= best));
}

fn engd(
    approximation: kfac_check::gramian::Approximation,
    ema: f64,
    identity: bool,
) -> kfac_check::engd::Engd {
    let (pinn, _) = small();
    kfac_check::engd::Engd::new(
        kfac_check::engd::EngdConfig {
            approximation,
            damping: 0.05,
            ema_factor: ema,
            initialize_to_identity: identity,
            step_size: StepSize::Fixed(1.0),
        },
        &pinn.mlp,
    )
}

/// ENGD `full`: `(G + λI) δ = −∇L` with `G = G_Ω + G_∂`, checked through the
/// residual of the linear system (an identity, not the solver again).
#[test]
fn engd_full_solves_the_damped_gramian_system() {
    use kfac_check::gramian::{Approximation, gramian};
    let (pinn, theta) = small();
    let lin = pinn.linearize(&theta);
    let delta = engd(Approximation::Full, 0.0, false)
        .direction(0, &lin)
        .unwrap();
    let g = gramian(lin.jacobian_interior()) + gramian(lin.jacobian_boundary());
    let residual: Vec<f64> = (0..delta.len())
        .map(|i| {
            (0..delta.len()).map(|j| g[(i, j)] * delta[j]).sum::<f64>()
                + 0.05 * delta[i]
                + lin.gradient[i]
        })
        .collect();
    let err = residual.iter().fold(0.0f64, |m, r| m.max(r.abs()))
        / lin.gradient.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(err < 1e-10, "{err:e}");
}

/// ENGD `diagonal`: `δ_p = −∂_p L / (Σ_n J_np²/N (both terms) + λ)`, from the Jacobians directly.
#[test]
fn engd_diagonal_divides_by_the_damped_gramian_diagonal() {
    use kfac_check::gramian::Approximation;
    let (pinn, theta) = small();
    let lin = pinn.linearize(&theta);
    let delta = engd(Approximation::Diagonal, 0.0, false)
        .direction(0, &lin)
        .unwrap();
    for p in 0..delta.len() {
        let column_mean = |j: faer::MatRef<f64>| {
            (0..j.nrows()).map(|n| j[(n, p)] * j[(n, p)]).sum::<f64>() / j.nrows() as f64
        };
        let expected = -lin.gradient[p]
            / (column_mean(lin.jacobian_interior()) + column_mean(lin.jacobian_boundary()) + 0.05);
        assert!(
            (delta[p] - expected).abs() <= 1e-12 * expected.abs().max(1e-300),
            "p={p}"
        );
    }
}

/// With `initialize_to_identity` and β, the first curvature is `βI + (1−β)G`:
/// ENGD `per_layer` then solves `(βI + (1−β)G + λI) δ = −∇L` per layer.
#[test]
fn engd_moving_average_starts_from_the_identity() {
    use kfac_check::gramian::{Approximation, layer_blocks};
    let (pinn, theta) = small();
    let lin = pinn.linearize(&theta);
    let beta = 0.9;
    let delta = engd(Approximation::PerLayer, beta, true)
        .direction(0, &lin)
        .unwrap();
    let layers = pinn.mlp.layers();
    let gi = layer_blocks(lin.jacobian_interior(), &layers);
    let gb = layer_blocks(lin.jacobian_boundary(), &layers);
    for (l, shape) in layers.iter().enumerate() {
        let n = shape.n_params();
        let m = Mat::from_fn(n, n, |i, j| {
            beta * f64::from(i == j)
                + (1.0 - beta) * (gi[l][(i, j)] + gb[l][(i, j)])
                + 0.05 * f64::from(i == j)
        });
        let expected: Vec<f64> = dense_solve(&m, &lin.gradient[shape.range()])
            .iter()
            .map(|x| -x)
            .collect();
        let err = common::rel_err(&delta[shape.range()], &expected);
        assert!(err < 1e-12, "layer {l}: {err:e}");
    }
}

/// `--KFAC_T_inv=2`: at step 1 the factors are updated but the inverse is
/// step 0's, so `δ₁ = −K₀⁻¹ ∇L(θ₁)`.
#[test]
fn kfac_reuses_the_inverse_between_t_inv_updates() {
    let (pinn, theta) = small();
    let lin0 = pinn.linearize(&theta);
    let theta1: Vec<f64> = theta.iter().map(|t| t * 1.01 + 1e-3).collect();
    let lin1 = pinn.linearize(&theta1);
    let mut kfac = Kfac::new(
        KfacConfig {
            t_inv: 2,
            ..config(false)
        },
        &pinn.mlp,
    );
    kfac.direction(0, &lin0).unwrap();
    let delta1 = kfac.direction(1, &lin1).unwrap();
    let fi = kronecker_factors(
        &lin0.interior,
        &lin0.residual_interior,
        &KfacSettings::default(),
    );
    let fb = kronecker_factors(
        &lin0.boundary,
        &lin0.residual_boundary,
        &KfacSettings::default(),
    );
    for (l, shape) in pinn.mlp.layers().iter().enumerate() {
        let k0 = damped_kronecker_sum(&fi[l], &fb[l], 0.3);
        let g1 = vector_to_kfac_basis(shape, &lin1.gradient[shape.range()]);
        let expected: Vec<f64> = dense_solve(&k0, &g1).iter().map(|x| -x).collect();
        let err = common::rel_err(
            &vector_to_kfac_basis(shape, &delta1[shape.range()]),
            &expected,
        );
        assert!(err < 1e-10, "layer {l}: {err:e}");
    }
}
