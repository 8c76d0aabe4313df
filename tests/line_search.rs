//! The grid line search's shortcuts (the loss series for small steps, forward
//! passes that stop once they cannot win) against the search they replace:
//! a full forward pass for every candidate, reduced as REFERENCE §6 says.
mod common;
use common::documented_pinn;
use kfac_check::debug_log::parse_train_args;
use kfac_check::line_search::{Grid, GridLoss, StepSize, choose_step, moved};
use kfac_check::pinn::Pinn;
use kfac_check::train::Trainer;

/// `f_k` of every candidate by a forward pass, and REFERENCE §6's choice:
/// the first smallest finite `f_k`, if it is `≤ f_0`.
fn brute_force(
    pinn: &Pinn,
    theta: &[f64],
    direction: &[f64],
    f0: f64,
    grid: &Grid,
) -> (Vec<f64>, f64) {
    let alphas = grid.candidates();
    let f: Vec<f64> = alphas
        .iter()
        .map(|&a| pinn.losses(&moved(theta, direction, a)).total())
        .collect();
    let mut best: Option<(f64, f64)> = None;
    for (&a, &fk) in alphas.iter().zip(&f) {
        if fk.is_finite() && best.is_none_or(|(_, fb)| fk < fb) {
            best = Some((a, fk));
        }
    }
    let step = match best {
        Some((a, fb)) if fb <= f0 => a,
        _ => 0.0,
    };
    (f, step)
}

/// The step-0 directions of the documented runs: ENGD per_layer (small, so
/// nearly every candidate is on the series) and plain KFAC (huge, so most
/// candidates get a forward pass and most of those stop early), and the
/// negative gradient; on the default grid, one with exponents that are not
/// integers (steps that are not powers of two) and one that counts down.
#[test]
fn shortcuts_keep_the_brute_force_choice_and_their_numbers_are_honest() {
    let trainer = |flags: &str| {
        let args: Vec<String> = flags.split_whitespace().map(str::to_string).collect();
        Trainer::new(&parse_train_args(&args).unwrap().to_config().unwrap())
    };
    let (pinn, theta) = documented_pinn(120);
    let lin = pinn.linearize(&theta);
    let f0 = lin.losses.total();
    let directions = [
        trainer("--optimizer=ENGD --ENGD_damping=1e-8 --ENGD_approximation=per_layer")
            .optimizer
            .direction(0, &lin)
            .unwrap(),
        trainer("--optimizer=KFAC --KFAC_damping=1e-8 --KFAC_ema_factor=0")
            .optimizer
            .direction(0, &lin)
            .unwrap(),
        lin.gradient.iter().map(|g| -g).collect(),
    ];
    let grids = [
        Grid::default(),
        Grid {
            log2min: -7.3,
            log2max: 2.1,
            num_steps: 12,
        },
        Grid {
            log2min: 1.0,
            log2max: -24.0,
            num_steps: 26,
        },
    ];
    let mut stopped = 0;
    for (d, direction) in directions.iter().enumerate() {
        for grid in &grids {
            let choice = choose_step(
                &pinn,
                &theta,
                direction,
                f0,
                &StepSize::GridLineSearch(*grid),
            );
            let (f, step) = brute_force(&pinn, &theta, direction, f0, grid);
            assert_eq!(choice.step_size, step, "direction {d}, {grid:?}");
            let best = f
                .iter()
                .copied()
                .filter(|x| x.is_finite())
                .fold(f0, f64::min);
            for ((alpha, loss), &fk) in choice.grid.iter().zip(&f) {
                match *loss {
                    // From the series (within rounding) or the same forward pass.
                    GridLoss::Exact(got) => assert!(
                        (got - fk).abs() <= 1e-12 * fk.abs(),
                        "direction {d}, α = {alpha:e}: {got} against {fk}"
                    ),
                    // A true lower bound, above a loss that wins over it.
                    GridLoss::Above(bound) => {
                        stopped += 1;
                        assert!(bound <= fk, "direction {d}, α = {alpha:e}: {bound} > {fk}");
                        assert!(
                            bound > best,
                            "direction {d}, α = {alpha:e}: {bound} ≤ {best}"
                        );
                    }
                }
            }
        }
    }
    assert!(
        stopped > 0,
        "no pass stopped early: the test would not see one"
    );
}

/// Completed, the early-stopping evaluation has the bits of `losses`; stopped,
/// it reports a lower bound above the threshold it was given.
#[test]
fn losses_below_is_losses_or_a_lower_bound_above_the_threshold() {
    let (pinn, theta) = documented_pinn(120);
    let full = pinn.losses(&theta);
    for bound in [f64::INFINITY, full.total()] {
        let got = pinn.losses_below(&theta, bound).expect("never above");
        assert_eq!(got.interior.to_bits(), full.interior.to_bits());
        assert_eq!(got.boundary.to_bits(), full.boundary.to_bits());
    }
    for bound in [0.0, full.total() / 10.0, full.interior * 0.999] {
        let lower = pinn
            .losses_below(&theta, bound)
            .expect_err("above the bound");
        assert!(
            lower > bound && lower <= full.total(),
            "{lower} for bound {bound}"
        );
    }
    // Between L_Ω and L_Ω + L_∂ it stops in the boundary points.
    let bound = full.interior + 0.5 * full.boundary;
    let lower = pinn
        .losses_below(&theta, bound)
        .expect_err("above the bound");
    assert!(lower > bound && lower <= full.total());
}
