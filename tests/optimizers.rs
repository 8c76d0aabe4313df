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
    let exact_interior = layer_blocks(lin.jacobian_interior.as_ref(), &layers);
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
                let d = |f: &Mat<f64>| f + identity(f.nrows()) * faer::Scale(lambda);
                kron(d(&fi[l].b).as_ref(), d(&fi[l].a).as_ref())
                    + kron(d(&fb[l].b).as_ref(), d(&fb[l].a).as_ref())
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
    use kfac_check::line_search::{Grid, StepSize, choose_step};
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
    assert!(choice.grid.iter().all(|(_, f)| *f > lin.losses.total()));
    // A descent direction does decrease it, at the first best grid point.
    let descent: Vec<f64> = ascent.iter().map(|g| -g).collect();
    let choice = choose_step(
        &pinn,
        &theta,
        &descent,
        lin.losses.total(),
        &StepSize::GridLineSearch(Grid::default()),
    );
    let best = choice
        .grid
        .iter()
        .map(|(_, f)| *f)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(choice.loss, Some(best));
    assert_eq!(
        choice.step_size,
        choice.grid.iter().find(|(_, f)| *f == best).unwrap().0
    );
}
