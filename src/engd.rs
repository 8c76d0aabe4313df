//! Energy natural gradient descent (REFERENCE §6): `C = G_Ω + G_∂` in the
//! chosen approximation, moving-averaged, and `δ = −(C + λI)⁺ ∇L` with the
//! gelsd cutoff (per block for `per_layer`, elementwise for `diagonal`, with
//! `δ_p = 0` where `C_pp + λ = 0`).

use crate::gramian::{Approximation, diagonal, gramians, layer_blocks_of_all};
use crate::least_squares::solve_damped_psd;
use crate::line_search::StepSize;
use crate::mlp::{LayerShape, Mlp};
use crate::moving_average::MovingAverage;
use crate::optimizer::Optimizer;
use crate::pinn::LinearizedPinn;
use anyhow::Result;
use faer::Mat;
use rayon::prelude::*;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngdConfig {
    pub approximation: Approximation,
    pub damping: f64,
    pub ema_factor: f64,
    pub initialize_to_identity: bool,
    pub step_size: StepSize,
}

pub struct Engd {
    pub config: EngdConfig,
    layers: Vec<LayerShape>,
    /// One moving average per block: the whole matrix (`full`), one per
    /// layer (`per_layer`), or a `P × 1` column of the diagonal (`diagonal`).
    curvature: Vec<MovingAverage>,
    curvature_time: Duration,
}

impl Engd {
    pub fn new(config: EngdConfig, mlp: &Mlp) -> Self {
        let layers = mlp.layers();
        let sizes: Vec<usize> = match config.approximation {
            Approximation::Full => vec![mlp.n_params()],
            Approximation::PerLayer => layers.iter().map(LayerShape::n_params).collect(),
            Approximation::Diagonal => vec![],
        };
        let mut curvature: Vec<MovingAverage> = sizes
            .into_iter()
            .map(|n| MovingAverage::new(n, config.ema_factor, config.initialize_to_identity))
            .collect();
        if config.approximation == Approximation::Diagonal {
            let init = if config.initialize_to_identity {
                1.0
            } else {
                0.0
            };
            curvature.push(MovingAverage {
                value: Mat::from_fn(mlp.n_params(), 1, |_, _| init),
                factor: config.ema_factor,
            });
        }
        Self {
            config,
            layers,
            curvature,
            curvature_time: Duration::ZERO,
        }
    }

    /// This step's `G_Ω + G_∂`, block by block.
    pub fn fresh_curvature(&self, lin: &LinearizedPinn) -> Vec<Mat<f64>> {
        // The two terms' Jacobians are formed side by side, then all their
        // Gramian products together (`gramian::scaled_grams`).
        let (ji, jb) = rayon::join(|| lin.jacobian_interior(), || lin.jacobian_boundary());
        match self.config.approximation {
            Approximation::Full => {
                let [gi, gb]: [Mat<f64>; 2] =
                    gramians(&[ji, jb]).try_into().expect("two Jacobians");
                vec![gi + gb]
            }
            Approximation::PerLayer => {
                let [interior, boundary]: [Vec<Mat<f64>>; 2] =
                    layer_blocks_of_all(&[ji, jb], &self.layers)
                        .try_into()
                        .expect("two Jacobians");
                interior
                    .into_iter()
                    .zip(boundary)
                    .map(|(a, b)| a + b)
                    .collect()
            }
            Approximation::Diagonal => {
                let (di, db) = rayon::join(|| diagonal(ji), || diagonal(jb));
                vec![Mat::from_fn(di.len(), 1, |p, _| di[p] + db[p])]
            }
        }
    }
}

impl Optimizer for Engd {
    fn direction(&mut self, _step: usize, lin: &LinearizedPinn) -> Result<Vec<f64>> {
        let start = Instant::now();
        let fresh = self.fresh_curvature(lin);
        for (average, new) in self.curvature.iter_mut().zip(&fresh) {
            average.update(new);
        }
        self.curvature_time = start.elapsed();
        let lambda = self.config.damping;
        let g = &lin.gradient;
        let mut delta = vec![0.0; g.len()];
        match self.config.approximation {
            Approximation::Full => {
                delta = solve_damped_psd(self.curvature[0].value.as_ref(), lambda, g)?;
            }
            Approximation::PerLayer => {
                // One independent system per layer, solved side by side.
                let solutions: Vec<Result<Vec<f64>>> = self
                    .layers
                    .par_iter()
                    .zip(&self.curvature)
                    .map(|(layer, average)| {
                        solve_damped_psd(average.value.as_ref(), lambda, &g[layer.range()])
                    })
                    .collect();
                for (layer, solution) in self.layers.iter().zip(solutions) {
                    delta[layer.range()].copy_from_slice(&solution?);
                }
            }
            Approximation::Diagonal => {
                let c = &self.curvature[0].value;
                for (p, d) in delta.iter_mut().enumerate() {
                    let denominator = c[(p, 0)] + lambda;
                    *d = if denominator == 0.0 {
                        0.0
                    } else {
                        g[p] / denominator
                    };
                }
            }
        }
        Ok(delta.into_iter().map(|d| -d).collect())
    }

    fn step_size_rule(&self) -> &StepSize {
        &self.config.step_size
    }

    fn last_curvature_time(&self) -> Duration {
        self.curvature_time
    }
}
