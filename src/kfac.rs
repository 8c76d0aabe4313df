//! KFAC for PINNs (REFERENCE §6). Per layer, with moving-averaged factors,
//! `K = (B_Ω + λI) ⊗ (A_Ω + λI) + (B_∂ + λI) ⊗ (A_∂ + λI)` and
//! `δ = −K⁻¹ vec([∇W | ∇b])` in the KFAC basis.
//!
//! With an exact switch, that term's `B ⊗ A` is replaced by the exact
//! per-layer Gramian (KFAC basis, moving-averaged the same way), and
//! `M = (interior term) + (boundary term) + λI` (damping once, on the sum)
//! is pseudo-inverted with the gelsd rule, as ENGD does.

use crate::gramian::layer_blocks_of_all;
use crate::jacobians::Linearization;
use crate::kronecker::{
    KfacSettings, KroneckerFactors, gramian_to_kfac_basis, kron, kronecker_factors_of_terms,
    vector_to_gramian_basis, vector_to_kfac_basis,
};
use crate::kronecker_inverse::KroneckerSumInverse;
use crate::least_squares::PseudoInverse;
use crate::line_search::StepSize;
use crate::mlp::{LayerShape, Mlp};
use crate::moving_average::{MovingAverage, damped};
use crate::optimizer::Optimizer;
use crate::pinn::LinearizedPinn;
use anyhow::{Context, Result};
use faer::{Mat, MatRef};
use rayon::prelude::*;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KfacConfig {
    pub damping: f64,
    pub ema_factor: f64,
    pub t_kfac: usize,
    pub t_inv: usize,
    pub initialize_to_identity: bool,
    pub settings: KfacSettings,
    pub use_exact_interior_gramian: bool,
    pub use_exact_boundary_gramian: bool,
    pub step_size: StepSize,
}

/// One term's moving-averaged curvature for one layer.
#[derive(Clone, Debug)]
pub enum TermCurvature {
    Kronecker {
        a: MovingAverage,
        b: MovingAverage,
    },
    /// The exact per-layer Gramian in the KFAC basis.
    Exact(MovingAverage),
}

impl TermCurvature {
    /// The term as a dense matrix in the KFAC basis, undamped.
    fn dense(&self) -> Mat<f64> {
        match self {
            Self::Kronecker { a, b } => kron(b.value.as_ref(), a.value.as_ref()),
            Self::Exact(g) => g.value.clone(),
        }
    }
}

/// One term's curvature at this step, per layer, before averaging.
enum FreshTerm {
    Exact(Vec<Mat<f64>>),
    Kronecker(Vec<KroneckerFactors>),
}

/// Term `t` (0 interior, 1 boundary) of a layer's curvature.
fn term_of(c: &mut (TermCurvature, TermCurvature), t: usize) -> &mut TermCurvature {
    if t == 0 { &mut c.0 } else { &mut c.1 }
}

enum LayerInverse {
    Kronecker(KroneckerSumInverse),
    Explicit(PseudoInverse),
}

pub struct Kfac {
    pub config: KfacConfig,
    layers: Vec<LayerShape>,
    /// Per layer: (interior, boundary).
    pub curvature: Vec<(TermCurvature, TermCurvature)>,
    inverses: Vec<LayerInverse>,
    curvature_time: Duration,
}

impl Kfac {
    pub fn new(config: KfacConfig, mlp: &Mlp) -> Self {
        let layers = mlp.layers();
        let (beta, identity) = (config.ema_factor, config.initialize_to_identity);
        let term = |layer: &LayerShape, exact: bool| {
            if exact {
                TermCurvature::Exact(MovingAverage::new(layer.n_params(), beta, identity))
            } else {
                TermCurvature::Kronecker {
                    a: MovingAverage::new(layer.d_in + 1, beta, identity),
                    b: MovingAverage::new(layer.d_out, beta, identity),
                }
            }
        };
        let curvature = layers
            .iter()
            .map(|l| {
                (
                    term(l, config.use_exact_interior_gramian),
                    term(l, config.use_exact_boundary_gramian),
                )
            })
            .collect();
        Self {
            config,
            layers,
            curvature,
            inverses: Vec::new(),
            curvature_time: Duration::ZERO,
        }
    }

    fn explicit(&self) -> bool {
        self.config.use_exact_interior_gramian || self.config.use_exact_boundary_gramian
    }

    /// Fold this step's factors (or exact blocks) into the moving averages;
    /// each term computes only what it uses. The exact terms' Gramian blocks
    /// and the other terms' Kronecker factors are each formed together
    /// (`scaled_grams`, largest first), side by side, then folded in,
    /// interior first.
    fn update_curvature(&mut self, lin: &LinearizedPinn) {
        let exact = [
            self.config.use_exact_interior_gramian,
            self.config.use_exact_boundary_gramian,
        ];
        let (exact_terms, kronecker_terms): (Vec<usize>, Vec<usize>) =
            (0..2).partition(|&t| exact[t]);
        let (blocks, factors) = rayon::join(
            || {
                let jacobians: Vec<MatRef<'_, f64>> = exact_terms
                    .iter()
                    .map(|&t| match t {
                        0 => lin.jacobian_interior(),
                        _ => lin.jacobian_boundary(),
                    })
                    .collect();
                layer_blocks_of_all(&jacobians, &self.layers)
            },
            || {
                let terms: Vec<(&Linearization, &[f64])> = kronecker_terms
                    .iter()
                    .map(|&t| match t {
                        0 => (&lin.interior, lin.residual_interior.as_slice()),
                        _ => (&lin.boundary, lin.residual_boundary.as_slice()),
                    })
                    .collect();
                kronecker_factors_of_terms(&terms, &self.config.settings)
            },
        );
        let (mut blocks, mut factors) = (blocks.into_iter(), factors.into_iter());
        let fresh = exact.map(|is_exact| {
            if is_exact {
                FreshTerm::Exact(blocks.next().expect("an exact term's blocks"))
            } else {
                FreshTerm::Kronecker(factors.next().expect("a Kronecker term's factors"))
            }
        });
        for (t, term) in fresh.into_iter().enumerate() {
            match term {
                FreshTerm::Exact(blocks) => {
                    for ((shape, block), c) in
                        self.layers.iter().zip(&blocks).zip(&mut self.curvature)
                    {
                        if let TermCurvature::Exact(g) = term_of(c, t) {
                            g.update(&gramian_to_kfac_basis(shape, block.as_ref()));
                        }
                    }
                }
                FreshTerm::Kronecker(factors) => {
                    for (f, c) in factors.iter().zip(&mut self.curvature) {
                        if let TermCurvature::Kronecker { a, b } = term_of(c, t) {
                            a.update(&f.a);
                            b.update(&f.b);
                        }
                    }
                }
            }
        }
    }

    fn update_inverses(&mut self) -> Result<()> {
        let lambda = self.config.damping;
        let explicit = self.explicit();
        // Layers are independent: factorised in parallel, and the first
        // failing layer (in order) is the one reported.
        let inverses: Vec<Result<LayerInverse>> = self
            .curvature
            .par_iter()
            .enumerate()
            .map(|(l, (interior, boundary))| {
                if explicit {
                    let m = damped(&(interior.dense() + boundary.dense()), lambda);
                    Ok(LayerInverse::Explicit(PseudoInverse::new(m.as_ref())?))
                } else {
                    let (
                        TermCurvature::Kronecker { a: ai, b: bi },
                        TermCurvature::Kronecker { a: ab, b: bb },
                    ) = (interior, boundary)
                    else {
                        unreachable!("no exact switch, so both terms are Kronecker")
                    };
                    // The interior term is the one Cholesky-factorised: its factors
                    // are full rank even where N_∂ = 1 makes the boundary's rank one.
                    KroneckerSumInverse::new(
                        ab.damped(lambda).as_ref(),
                        bb.damped(lambda).as_ref(),
                        ai.damped(lambda).as_ref(),
                        bi.damped(lambda).as_ref(),
                    )
                    .map(LayerInverse::Kronecker)
                }
                .with_context(|| format!("layer {l}"))
            })
            .collect();
        self.inverses = inverses.into_iter().collect::<Result<_>>()?;
        Ok(())
    }

    /// `−K⁻¹ vec([∇W | ∇b])` per layer, returned in the Gramian basis.
    fn precondition(&self, gradient: &[f64]) -> Vec<f64> {
        let mut delta = vec![0.0; gradient.len()];
        for (shape, inverse) in self.layers.iter().zip(&self.inverses) {
            let r = shape.range();
            let g = vector_to_kfac_basis(shape, &gradient[r.clone()]);
            let solved: Vec<f64> = match inverse {
                LayerInverse::Explicit(p) => p.apply(&g),
                LayerInverse::Kronecker(k) => {
                    let cols = shape.d_in + 1;
                    let v = MatRef::from_row_major_slice(&g, shape.d_out, cols);
                    let x = k.apply(v);
                    (0..shape.d_out)
                        .flat_map(|i| (0..cols).map(move |j| (i, j)))
                        .map(|(i, j)| x[(i, j)])
                        .collect()
                }
            };
            for (d, s) in delta[r]
                .iter_mut()
                .zip(vector_to_gramian_basis(shape, &solved))
            {
                *d = -s;
            }
        }
        delta
    }
}

impl Optimizer for Kfac {
    fn direction(&mut self, step: usize, lin: &LinearizedPinn) -> Result<Vec<f64>> {
        let start = Instant::now();
        if step.is_multiple_of(self.config.t_kfac) {
            self.update_curvature(lin);
        }
        self.curvature_time = start.elapsed();
        if step.is_multiple_of(self.config.t_inv) || self.inverses.is_empty() {
            self.update_inverses()
                .with_context(|| format!("step {step}: inverting the KFAC curvature"))?;
        }
        Ok(self.precondition(&lin.gradient))
    }

    fn step_size_rule(&self) -> &StepSize {
        &self.config.step_size
    }

    fn last_curvature_time(&self) -> Duration {
        self.curvature_time
    }
}
