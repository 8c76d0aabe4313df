//! ENGD and KFAC side by side on one trajectory: at every step, from the same
//! parameters, both optimizers compute their curvature, direction and line
//! search; the followed one moves `θ`. The other keeps its own moving
//! averages along the same path. `compare` and `dump` are built on this.

use crate::cli::TrainArgs;
use crate::engd::Engd;
use crate::kfac::Kfac;
use crate::line_search::{StepChoice, choose_step, moved};
use crate::optimizer::{Optimizer, check_finite, linearize_checked};
use crate::pinn::{LinearizedPinn, Pinn};
use crate::train::OptimizerConfig;
use anyhow::{Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Follow {
    #[serde(rename = "ENGD")]
    Engd,
    #[serde(rename = "KFAC")]
    Kfac,
}

pub struct Lockstep {
    pub pinn: Pinn,
    pub theta: Vec<f64>,
    pub engd: Engd,
    pub kfac: Kfac,
    pub follow: Follow,
    pub next_step: usize,
}

/// One optimizer's proposal at a step.
pub struct Proposal {
    pub direction: Vec<f64>,
    pub choice: StepChoice,
}

/// What both optimizers computed at one step, before `θ` moved.
pub struct LockstepRecord {
    pub step: usize,
    pub theta: Vec<f64>,
    pub linearized: LinearizedPinn,
    pub engd: Proposal,
    pub kfac: Proposal,
}

impl Lockstep {
    /// Both optimizers from one set of flags: the ENGD and KFAC flags are
    /// read whatever `--optimizer` says (KFAC's damping defaults to ENGD's).
    pub fn new(args: &TrainArgs, follow: Follow) -> Result<Self> {
        let mut engd_args = args.clone();
        engd_args.optimizer = Some("ENGD".into());
        let mut kfac_args = args.clone();
        kfac_args.optimizer = Some("KFAC".into());
        kfac_args.kfac_damping = Some(args.kfac_damping.unwrap_or(args.engd_damping));
        let (engd_config, kfac_config) = (engd_args.to_config()?, kfac_args.to_config()?);
        let (pinn, theta) = engd_config.problem.build();
        let (OptimizerConfig::Engd(e), OptimizerConfig::Kfac(k)) =
            (engd_config.optimizer, kfac_config.optimizer)
        else {
            unreachable!("configs built with --optimizer set")
        };
        Ok(Self {
            engd: Engd::new(e, &pinn.mlp),
            kfac: Kfac::new(k, &pinn.mlp),
            pinn,
            theta,
            follow,
            next_step: 0,
        })
    }

    fn propose(
        optimizer: &mut dyn Optimizer,
        pinn: &Pinn,
        theta: &[f64],
        step: usize,
        lin: &LinearizedPinn,
        name: &str,
    ) -> Result<Proposal> {
        let direction = optimizer.direction(step, lin)?;
        check_finite(step, &format!("{name} direction"), &direction)?;
        let choice = choose_step(
            pinn,
            theta,
            &direction,
            lin.losses.total(),
            optimizer.step_size_rule(),
        );
        Ok(Proposal { direction, choice })
    }

    pub fn step(&mut self) -> Result<LockstepRecord> {
        let step = self.next_step;
        let linearized = linearize_checked(&self.pinn, &self.theta, step)?;
        let engd = Self::propose(
            &mut self.engd,
            &self.pinn,
            &self.theta,
            step,
            &linearized,
            "ENGD",
        )?;
        let kfac = Self::propose(
            &mut self.kfac,
            &self.pinn,
            &self.theta,
            step,
            &linearized,
            "KFAC",
        )
        .context(
            "KFAC, evaluated alongside, failed (its damping is --KFAC_damping, or --ENGD_damping when that is absent)",
        )?;
        let followed = match self.follow {
            Follow::Engd => &engd,
            Follow::Kfac => &kfac,
        };
        let next = moved(&self.theta, &followed.direction, followed.choice.step_size);
        let theta = std::mem::replace(&mut self.theta, next);
        check_finite(step, "parameters after the update", &self.theta)?;
        self.next_step += 1;
        Ok(LockstepRecord {
            step,
            theta,
            linearized,
            engd,
            kfac,
        })
    }
}
