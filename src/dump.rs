//! The JSON dump of one step's internals (schema in `docs/dump-schema.md`):
//! losses, per layer the gradient, the exact Gramian blocks (Gramian basis),
//! this step's Kronecker factors, both optimizers' directions, and the step
//! sizes. Numbers are JSON floats that round-trip exactly.

use crate::cli::TrainArgs;
use crate::gramian::layer_blocks;
use crate::kronecker::kronecker_factors;
use crate::lockstep::{Follow, Lockstep, LockstepRecord, Proposal};
use crate::mlp::LayerShape;
use crate::pinn::Losses;
use anyhow::Result;
use faer::Mat;
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "kfac-check.dump/1";

pub type Matrix = Vec<Vec<f64>>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightBias {
    pub weight: Matrix,
    pub bias: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Factors {
    #[serde(rename = "A")]
    pub a: Matrix,
    #[serde(rename = "B")]
    pub b: Matrix,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Terms<T> {
    pub interior: T,
    pub boundary: T,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Directions {
    pub engd: WeightBias,
    pub kfac: WeightBias,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerDump {
    pub index: usize,
    pub d_in: usize,
    pub d_out: usize,
    pub grad: WeightBias,
    pub gramian: Terms<Matrix>,
    pub kfac: Terms<Factors>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Directions>,
    /// The parameters `W`, `b` at this step (before the update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<WeightBias>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepSizes {
    pub engd: f64,
    pub kfac: f64,
    /// The followed optimizer's, the one that moved `θ`.
    pub taken: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dump {
    #[serde(default)]
    pub schema: Option<String>,
    pub step: usize,
    #[serde(default)]
    pub config: serde_json::Value,
    pub loss: Losses,
    pub layers: Vec<LayerDump>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_size: Option<StepSizes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damping: Option<Damping>,
}

/// The damping each optimizer applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Damping {
    pub engd: f64,
    pub kfac: f64,
}

pub fn matrix(m: &Mat<f64>) -> Matrix {
    (0..m.nrows())
        .map(|i| (0..m.ncols()).map(|j| m[(i, j)]).collect())
        .collect()
}

/// A layer's slice of a Gramian-basis vector as `W` (row-major) and `b`.
pub fn weight_bias(layer: &LayerShape, v: &[f64]) -> WeightBias {
    let w = &v[layer.weight_range()];
    WeightBias {
        weight: w.chunks_exact(layer.d_in).map(<[f64]>::to_vec).collect(),
        bias: v[layer.bias_range()].to_vec(),
    }
}

impl Dump {
    /// The dump of one lockstep record.
    pub fn from_record(
        record: &LockstepRecord,
        lockstep: &Lockstep,
        config: serde_json::Value,
    ) -> Self {
        let lin = &record.linearized;
        let layers = lockstep.pinn.mlp.layers();
        let settings = &lockstep.kfac.config.settings;
        let factors_interior = kronecker_factors(&lin.interior, &lin.residual_interior, settings);
        let factors_boundary = kronecker_factors(&lin.boundary, &lin.residual_boundary, settings);
        let gramian_interior = layer_blocks(lin.jacobian_interior.as_ref(), &layers);
        let gramian_boundary = layer_blocks(lin.jacobian_boundary.as_ref(), &layers);
        let direction = |p: &Proposal, l: &LayerShape| weight_bias(l, &p.direction);
        Self {
            schema: Some(SCHEMA.into()),
            step: record.step,
            config,
            loss: lin.losses,
            layers: layers
                .iter()
                .enumerate()
                .map(|(i, l)| LayerDump {
                    index: i,
                    d_in: l.d_in,
                    d_out: l.d_out,
                    grad: weight_bias(l, &lin.gradient),
                    gramian: Terms {
                        interior: matrix(&gramian_interior[i]),
                        boundary: matrix(&gramian_boundary[i]),
                    },
                    kfac: Terms {
                        interior: Factors {
                            a: matrix(&factors_interior[i].a),
                            b: matrix(&factors_interior[i].b),
                        },
                        boundary: Factors {
                            a: matrix(&factors_boundary[i].a),
                            b: matrix(&factors_boundary[i].b),
                        },
                    },
                    direction: Some(Directions {
                        engd: direction(&record.engd, l),
                        kfac: direction(&record.kfac, l),
                    }),
                    params: Some(weight_bias(l, &record.theta)),
                })
                .collect(),
            damping: Some(Damping {
                engd: lockstep.engd.config.damping,
                kfac: lockstep.kfac.config.damping,
            }),
            step_size: Some(StepSizes {
                engd: record.engd.choice.step_size,
                kfac: record.kfac.choice.step_size,
                taken: match lockstep.follow {
                    Follow::Engd => record.engd.choice.step_size,
                    Follow::Kfac => record.kfac.choice.step_size,
                },
            }),
        }
    }
}

/// Run `step` optimizer steps of the configured run, then dump step `step`.
pub fn dump_at(args: &TrainArgs, step: usize) -> Result<Dump> {
    let config = args.to_config()?;
    let follow = match config.optimizer {
        crate::train::OptimizerConfig::Engd(_) => Follow::Engd,
        crate::train::OptimizerConfig::Kfac(_) => Follow::Kfac,
    };
    let mut lockstep = Lockstep::new(args, follow)?;
    for _ in 0..step {
        lockstep.step()?;
    }
    let record = lockstep.step()?;
    Ok(Dump::from_record(
        &record,
        &lockstep,
        serde_json::to_value(config)?,
    ))
}
