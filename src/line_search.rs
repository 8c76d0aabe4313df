//! Step sizes (REFERENCE §6): a fixed learning rate, or the grid line search
//! over `α_k = 2^(log2min + k·(log2max − log2min)/(num_steps−1))`.
//!
//! Two shortcuts keep the reference's choice while skipping most of the work:
//! small steps read the residuals' power series in α (`loss_series`), and a
//! forward pass stops once its running loss cannot win (`forward_waves`).

use crate::loss_series::{self, LossSeries};
use crate::pinn::Pinn;
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Grid {
    pub log2min: f64,
    pub log2max: f64,
    pub num_steps: usize,
}

impl Default for Grid {
    fn default() -> Self {
        Self {
            log2min: -30.0,
            log2max: 0.0,
            num_steps: 31,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepSize {
    Fixed(f64),
    GridLineSearch(Grid),
}

impl Grid {
    /// `torch.logspace(log2min, log2max, num_steps, base=2)` in float64: the
    /// first half counts up from `log2min`, the second half down from `log2max`.
    pub fn candidates(&self) -> Vec<f64> {
        let n = self.num_steps;
        if n == 1 {
            return vec![2f64.powf(self.log2min)];
        }
        let step = (self.log2max - self.log2min) / (n - 1) as f64;
        (0..n)
            .map(|k| {
                let exponent = if k < n / 2 {
                    self.log2min + step * k as f64
                } else {
                    self.log2max - step * (n - k - 1) as f64
                };
                2f64.powf(exponent)
            })
            .collect()
    }
}

/// What one step-size choice found.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StepChoice {
    pub step_size: f64,
    /// The loss at `θ + α δ` (for a failed search, `f_0`). `None` for a fixed
    /// step, whose loss is not evaluated.
    pub loss: Option<f64>,
    /// The grid's `(α_k, f_k)`, empty for a fixed step.
    pub grid: Vec<(f64, GridLoss)>,
    /// The search found no `f_k ≤ f_0` and took no step.
    pub no_decrease: bool,
}

/// A grid point's loss `f_k`, or a lower bound of it when its forward pass
/// stopped part of the way through the points: the bound already exceeded
/// `f_0` or a loss another candidate reached, so this one cannot be chosen.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GridLoss {
    Exact(f64),
    Above(f64),
}

impl GridLoss {
    /// The loss, or its lower bound.
    pub fn value(self) -> f64 {
        match self {
            Self::Exact(f) | Self::Above(f) => f,
        }
    }
}

/// Forward passes run in waves of this many candidates, in grid order;
/// a pass stops once its running loss exceeds `f_0` or the best loss of the
/// waves before. Waves are fixed by the grid, not by the thread count.
const WAVE: usize = 4;

/// What building the loss series costs, in forward passes over all points
/// (measured on the development machine with the documented network, one
/// thread: 0.65 ms against 95 µs). With fewer candidates in its reach,
/// each gets a forward pass.
const SERIES_COST_IN_PASSES: usize = 7;

pub const NO_DECREASE_WARNING: &str = "Line search could not find a decreasing value.";

/// `θ + α δ`.
pub fn moved(theta: &[f64], direction: &[f64], alpha: f64) -> Vec<f64> {
    theta
        .iter()
        .zip(direction)
        .map(|(t, d)| t + alpha * d)
        .collect()
}

/// Take the first `k` with the smallest `f_k = Loss(θ + α_k δ)`; if
/// `f_0 < f_best` the step is 0. Non-finite `f_k` never win.
pub fn choose_step(
    pinn: &Pinn,
    theta: &[f64],
    direction: &[f64],
    loss_before: f64,
    rule: &StepSize,
) -> StepChoice {
    match rule {
        StepSize::Fixed(lr) => StepChoice {
            step_size: *lr,
            loss: None,
            grid: Vec::new(),
            no_decrease: false,
        },
        StepSize::GridLineSearch(grid) => {
            // The small steps come from the residuals' power series in α (one
            // pass, see `loss_series`) when it covers enough of them to pay
            // for itself, the others from forward passes (`forward_waves`),
            // which run while the series is built. Every choice is made in
            // grid order from values fixed by the grid, so the result is the
            // same for any thread count.
            let candidates = grid.candidates();
            let radius = loss_series::radius_along(pinn, direction);
            let covered = candidates.iter().filter(|a| a.abs() <= radius).count();
            let use_series = covered >= SERIES_COST_IN_PASSES;
            let on_series = |alpha: f64| use_series && alpha.abs() <= radius;
            let direct: Vec<f64> = candidates
                .iter()
                .copied()
                .filter(|&a| !on_series(a))
                .collect();
            let (series, direct_losses) = rayon::join(
                || {
                    use_series
                        .then(|| LossSeries::within(pinn, theta, direction, radius))
                        .flatten()
                },
                || forward_waves(pinn, theta, direction, loss_before, &direct),
            );
            let series_losses: Vec<Option<GridLoss>> = candidates
                .par_iter()
                .map(|&alpha| {
                    // A series with a non-finite coefficient covers nothing.
                    on_series(alpha).then(|| {
                        GridLoss::Exact(match &series {
                            Some(series) if series.covers(alpha) => series.losses(alpha).total(),
                            _ => pinn.losses(&moved(theta, direction, alpha)).total(),
                        })
                    })
                })
                .collect();
            let mut direct_losses = direct_losses.into_iter();
            let grid: Vec<(f64, GridLoss)> = candidates
                .iter()
                .zip(series_losses)
                .map(|(&alpha, loss)| {
                    let loss = loss.or_else(|| direct_losses.next());
                    (alpha, loss.expect("one loss per candidate"))
                })
                .collect();
            let mut best: Option<(f64, f64)> = None;
            for &(alpha, loss) in &grid {
                if let GridLoss::Exact(f) = loss
                    && f.is_finite()
                    && best.is_none_or(|(_, fb)| f < fb)
                {
                    best = Some((alpha, f));
                }
            }
            match best {
                Some((alpha, f)) if f <= loss_before => StepChoice {
                    step_size: alpha,
                    loss: Some(f),
                    grid,
                    no_decrease: false,
                },
                _ => StepChoice {
                    step_size: 0.0,
                    loss: Some(loss_before),
                    grid,
                    no_decrease: true,
                },
            }
        }
    }
}

/// `f_k` for the candidates without the series, `WAVE` at a time in grid
/// order. A pass that exceeds `f_0` or the best exact loss of the waves
/// before stops early: its true loss is larger still, so it can be neither
/// the smallest nor `≤ f_0` (REFERENCE §6's choice is unchanged). Huge steps
/// (plain KFAC's early directions) stop after a block or two of points.
fn forward_waves(
    pinn: &Pinn,
    theta: &[f64],
    direction: &[f64],
    loss_before: f64,
    alphas: &[f64],
) -> Vec<GridLoss> {
    let mut losses = Vec::with_capacity(alphas.len());
    let mut threshold = loss_before;
    for wave in alphas.chunks(WAVE) {
        let wave_losses: Vec<GridLoss> = wave
            .par_iter()
            .map(
                |&alpha| match pinn.losses_below(&moved(theta, direction, alpha), threshold) {
                    Ok(l) => GridLoss::Exact(l.total()),
                    Err(bound) => GridLoss::Above(bound),
                },
            )
            .collect();
        for loss in &wave_losses {
            // A NaN compares false and never lowers it.
            if let GridLoss::Exact(f) = *loss
                && f < threshold
            {
                threshold = f;
            }
        }
        losses.extend(wave_losses);
    }
    losses
}
