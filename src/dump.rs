//! The JSON dump of one step's internals (schema in `docs/dump-schema.md`):
//! losses, per layer the gradient, the exact Gramian blocks (Gramian basis),
//! this step's Kronecker factors, both optimizers' directions, and the step
//! sizes. Numbers are JSON floats that round-trip exactly.

use crate::cli::TrainArgs;
use crate::kronecker::both_terms;
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
        let [interior, boundary] = both_terms(lin, &layers, settings);
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
                        interior: matrix(&interior.exact[i]),
                        boundary: matrix(&boundary.exact[i]),
                    },
                    kfac: Terms {
                        interior: Factors {
                            a: matrix(&interior.factors[i].a),
                            b: matrix(&interior.factors[i].b),
                        },
                        boundary: Factors {
                            a: matrix(&boundary.factors[i].a),
                            b: matrix(&boundary.factors[i].b),
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

/// Every matrix of a dump as named arrays, for numpy users:
/// `loss` (`[L_Ω, L_∂]`) and per layer `layer{i}.grad.weight`,
/// `layer{i}.grad.bias`, `layer{i}.gramian.interior`, `layer{i}.kfac.boundary.B`,
/// `layer{i}.direction.kfac.weight`, `layer{i}.params.bias`, …
pub fn named_arrays(dump: &Dump) -> Vec<(String, Vec<u64>, Vec<f64>)> {
    let mut out = vec![(
        "loss".to_string(),
        vec![2],
        vec![dump.loss.interior, dump.loss.boundary],
    )];
    let mut matrix = |name: String, m: &Matrix| {
        let cols = m.first().map_or(0, Vec::len);
        out.push((
            name,
            vec![m.len() as u64, cols as u64],
            m.iter().flatten().copied().collect(),
        ));
    };
    let mut vectors: Vec<(String, Vec<f64>)> = Vec::new();
    for l in &dump.layers {
        let p = format!("layer{}", l.index);
        let mut weight_bias =
            |name: String, wb: &WeightBias, matrix: &mut dyn FnMut(String, &Matrix)| {
                matrix(format!("{name}.weight"), &wb.weight);
                vectors.push((format!("{name}.bias"), wb.bias.clone()));
            };
        weight_bias(format!("{p}.grad"), &l.grad, &mut matrix);
        matrix(format!("{p}.gramian.interior"), &l.gramian.interior);
        matrix(format!("{p}.gramian.boundary"), &l.gramian.boundary);
        for (term, f) in [
            ("interior", &l.kfac.interior),
            ("boundary", &l.kfac.boundary),
        ] {
            matrix(format!("{p}.kfac.{term}.A"), &f.a);
            matrix(format!("{p}.kfac.{term}.B"), &f.b);
        }
        if let Some(d) = &l.direction {
            weight_bias(format!("{p}.direction.engd"), &d.engd, &mut matrix);
            weight_bias(format!("{p}.direction.kfac"), &d.kfac, &mut matrix);
        }
        if let Some(params) = &l.params {
            weight_bias(format!("{p}.params"), params, &mut matrix);
        }
    }
    out.extend(
        vectors
            .into_iter()
            .map(|(name, v)| (name, vec![v.len() as u64], v)),
    );
    out
}

/// Write the dump's arrays as a numpy `.npz` archive (atomically).
pub fn write_npz(dump: &Dump, path: &std::path::Path) -> Result<()> {
    use npyz::WriterBuilder;
    crate::output_file::write_atomically_with(path, |file| {
        let mut npz = npyz::npz::NpzWriter::new(std::io::BufWriter::new(file));
        for (name, shape, data) in named_arrays(dump) {
            let options = zip::write::FileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            let mut writer = npz
                .array::<f64>(&name, options)?
                .default_dtype()
                .shape(&shape)
                .begin_nd()?;
            writer.extend(data)?;
            writer.finish()?;
        }
        npz.zip_writer().finish()?;
        Ok(())
    })
}
