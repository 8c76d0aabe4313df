//! What ENGD and KFAC share: one step at `θ` computes the linearisation, a
//! direction `δ` (Gramian basis) and a step size, then `θ ← θ + α δ`.
//! Observers see every step's internals; that is how dumps are taken.

use crate::line_search::{StepChoice, StepSize, choose_step, moved};
use crate::pinn::{LinearizedPinn, Losses, Pinn};
use anyhow::{Result, bail};
use std::time::{Duration, Instant};

/// Everything one step computed, before `θ` moves.
pub struct StepRecord<'a> {
    pub step: usize,
    pub theta: &'a [f64],
    pub linearized: &'a LinearizedPinn,
    pub direction: &'a [f64],
    pub choice: &'a StepChoice,
}

/// Instrumentation hook called by every optimizer step.
pub trait Observer {
    fn observe(&mut self, record: &StepRecord<'_>);
}

/// The observer that looks at nothing.
pub struct NoObserver;
impl Observer for NoObserver {
    fn observe(&mut self, _: &StepRecord<'_>) {}
}

pub trait Optimizer {
    /// The direction `δ` at `θ` (Gramian basis), updating curvature state.
    fn direction(&mut self, step: usize, linearized: &LinearizedPinn) -> Result<Vec<f64>>;
    fn step_size_rule(&self) -> &StepSize;
    /// Of the last `direction` call, the time spent forming the curvature
    /// (Jacobians, Gramians or Kronecker factors, moving averages); the
    /// rest went to factorisations and solves.
    fn last_curvature_time(&self) -> Duration;
}

/// The outcome of one step.
#[derive(Clone, Debug)]
pub struct StepOutcome {
    pub losses: Losses,
    pub choice: StepChoice,
    pub timings: StepTimings,
}

/// Where one step's wall time went.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepTimings {
    /// Forward Laplacian, backward pass, residuals, gradient.
    pub linearize: Duration,
    /// Jacobians, Gramians or Kronecker factors, moving averages.
    pub curvature: Duration,
    /// Factorisations (Cholesky, SVD, eigendecompositions) and solves.
    pub solve: Duration,
    /// The grid line search (or nothing, for a fixed step).
    pub line_search: Duration,
}

pub fn check_finite(step: usize, what: &str, values: &[f64]) -> Result<()> {
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        bail!(
            "step {step}: non-finite {what} (entry {i} is {})",
            values[i]
        );
    }
    Ok(())
}

/// The linearisation at `θ`, stopping on a non-finite loss or gradient.
pub fn linearize_checked(pinn: &Pinn, theta: &[f64], step: usize) -> Result<LinearizedPinn> {
    let linearized = pinn.linearize(theta);
    check_finite(step, "interior loss", &[linearized.losses.interior])?;
    check_finite(step, "boundary loss", &[linearized.losses.boundary])?;
    check_finite(step, "gradient", &linearized.gradient)?;
    Ok(linearized)
}

/// One optimizer step: losses at `θ` before the update, then `θ ← θ + α δ`.
/// Non-finite losses, gradients or directions stop with the step and the quantity.
pub fn take_step(
    optimizer: &mut dyn Optimizer,
    pinn: &Pinn,
    theta: &mut Vec<f64>,
    step: usize,
    observer: &mut dyn Observer,
) -> Result<StepOutcome> {
    let start = Instant::now();
    let linearized = linearize_checked(pinn, theta, step)?;
    let linearized_at = Instant::now();
    let direction = optimizer.direction(step, &linearized)?;
    check_finite(step, "direction", &direction)?;
    let direction_at = Instant::now();
    let choice = choose_step(
        pinn,
        theta,
        &direction,
        linearized.losses.total(),
        optimizer.step_size_rule(),
    );
    let timings = StepTimings {
        linearize: linearized_at - start,
        curvature: optimizer.last_curvature_time(),
        solve: (direction_at - linearized_at).saturating_sub(optimizer.last_curvature_time()),
        line_search: direction_at.elapsed(),
    };
    observer.observe(&StepRecord {
        step,
        theta,
        linearized: &linearized,
        direction: &direction,
        choice: &choice,
    });
    *theta = moved(theta, &direction, choice.step_size);
    check_finite(step, "parameters after the update", theta)?;
    Ok(StepOutcome {
        losses: linearized.losses,
        choice,
        timings,
    })
}
