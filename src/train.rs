//! The training loop and its log (REFERENCE §7).

use crate::engd::{Engd, EngdConfig};
use crate::kfac::{Kfac, KfacConfig};
use crate::line_search::NO_DECREASE_WARNING;
use crate::log_line::{LogLine, logged_steps};
use crate::mlp::{Mlp, ModelName};
use crate::optimizer::{Observer, Optimizer, StepOutcome, take_step};
use crate::pinn::Pinn;
use crate::problem::{Data, Equation};
use anyhow::Result;
use std::io::Write;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProblemConfig {
    pub n_omega: usize,
    pub n_domega: usize,
    pub dim_omega: usize,
    pub data_seed: u64,
    pub model_seed: u64,
    pub model: ModelName,
    pub equation: Equation,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum OptimizerConfig {
    #[serde(rename = "ENGD")]
    Engd(EngdConfig),
    #[serde(rename = "KFAC")]
    Kfac(KfacConfig),
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub problem: ProblemConfig,
    pub num_steps: usize,
    pub max_logs: usize,
    pub optimizer: OptimizerConfig,
}

impl ProblemConfig {
    /// The point sets and the initial parameters.
    pub fn build(&self) -> (Pinn, Vec<f64>) {
        let mlp = Mlp::from_name(self.model, self.dim_omega);
        let data = Data::generate(self.data_seed, self.n_omega, self.n_domega, self.dim_omega);
        let theta = mlp.init_params(self.model_seed);
        (Pinn::new(mlp, self.equation, data), theta)
    }
}

impl OptimizerConfig {
    pub fn build(&self, mlp: &Mlp) -> Box<dyn Optimizer> {
        match *self {
            Self::Engd(c) => Box::new(Engd::new(c, mlp)),
            Self::Kfac(c) => Box::new(Kfac::new(c, mlp)),
        }
    }
}

/// A run in progress: the problem, the parameters and the optimizer state.
pub struct Trainer {
    pub pinn: Pinn,
    pub theta: Vec<f64>,
    pub optimizer: Box<dyn Optimizer>,
    pub next_step: usize,
}

impl Trainer {
    pub fn new(config: &TrainConfig) -> Self {
        let (pinn, theta) = config.problem.build();
        let optimizer = config.optimizer.build(&pinn.mlp);
        Self {
            pinn,
            theta,
            optimizer,
            next_step: 0,
        }
    }

    pub fn step(&mut self, observer: &mut dyn Observer) -> Result<StepOutcome> {
        let outcome = take_step(
            self.optimizer.as_mut(),
            &self.pinn,
            &mut self.theta,
            self.next_step,
            observer,
        )?;
        self.next_step += 1;
        Ok(outcome)
    }
}

/// Run the loop, writing each logged line (and each line-search warning) to
/// `out` as it happens, so a run that stops early leaves its log intact.
pub fn train(
    config: &TrainConfig,
    out: &mut dyn Write,
    observer: &mut dyn Observer,
) -> Result<Vec<LogLine>> {
    let logged = logged_steps(config.num_steps, config.max_logs);
    run_steps(config, config.num_steps, &logged, out, observer)
}

/// The first `steps` steps of a run, logging at `logged` (sorted) steps.
pub fn run_steps(
    config: &TrainConfig,
    steps: usize,
    logged: &[usize],
    out: &mut dyn Write,
    observer: &mut dyn Observer,
) -> Result<Vec<LogLine>> {
    let mut trainer = Trainer::new(config);
    let start = Instant::now();
    let mut lines = Vec::new();
    for step in 0..steps {
        let outcome = trainer.step(observer)?;
        if outcome.choice.no_decrease {
            writeln!(out, "{NO_DECREASE_WARNING}")?;
        }
        if logged.binary_search(&step).is_ok() {
            let line = LogLine {
                step,
                num_steps: config.num_steps,
                loss: outcome.losses.total(),
                l2_error: trainer.pinn.l2_error(&trainer.theta),
                interior: outcome.losses.interior,
                boundary: outcome.losses.boundary,
                time: start.elapsed().as_secs_f64(),
            };
            writeln!(out, "{}", line.format())?;
            out.flush()?;
            lines.push(line);
        }
    }
    Ok(lines)
}
