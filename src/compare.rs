//! KFAC against ENGD, step by step, from the same parameters: how far each
//! layer's Kronecker approximation is from the exact Gramian block, how the
//! two directions differ, and what each line search would do. The verdict
//! names the first step, layer and quantity that leaves tolerance.

use crate::cli::TrainArgs;
use crate::kronecker::{TermCurvatures, both_terms, gramian_to_kfac_basis, kron};
use crate::lockstep::{Follow, Lockstep, LockstepRecord};
use anyhow::Result;
use faer::Mat;

/// One layer at one step.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LayerComparison {
    pub layer: usize,
    /// `‖B⊗A − G‖_F / ‖G‖_F` (KFAC basis) for this step's factors; 0 for a
    /// term KFAC takes exactly (`--KFAC_USE_EXACT_*_GRAMIAN`).
    pub kfac_error_interior: f64,
    pub kfac_error_boundary: f64,
    /// `cos(δ_KFAC, δ_ENGD)` on this layer's parameters.
    pub direction_cosine: f64,
    /// `‖δ_KFAC‖ / ‖δ_ENGD‖`.
    pub direction_norm_ratio: f64,
    /// `‖δ_KFAC − δ_ENGD‖ / ‖δ_ENGD‖`.
    pub direction_relative_difference: f64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LineSearchOutcome {
    pub step_size: f64,
    /// The loss the step would reach (`None` for a fixed step size).
    pub loss: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StepComparison {
    pub step: usize,
    pub loss: f64,
    pub engd: LineSearchOutcome,
    pub kfac: LineSearchOutcome,
    pub layers: Vec<LayerComparison>,
}

/// Where KFAC first leaves tolerance.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Departure {
    pub step: usize,
    pub layer: usize,
    pub quantity: &'static str,
    pub value: f64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Comparison {
    pub follow: Follow,
    pub rtol: f64,
    pub steps: Vec<StepComparison>,
    pub first_departure: Option<Departure>,
}

fn frobenius_relative(approx: &Mat<f64>, exact: &Mat<f64>) -> f64 {
    let norm = exact.norm_l2();
    let diff = (approx - exact).norm_l2();
    if norm == 0.0 { diff } else { diff / norm }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The per-layer comparison of one lockstep record.
pub fn compare_step(lockstep: &Lockstep, record: &LockstepRecord) -> StepComparison {
    let lin = &record.linearized;
    let layers = lockstep.pinn.mlp.layers();
    let settings = &lockstep.kfac.config.settings;
    let terms = both_terms(lin, &layers, settings);
    let config = &lockstep.kfac.config;
    let uses_exact = [
        config.use_exact_interior_gramian,
        config.use_exact_boundary_gramian,
    ];
    // The error of the curvature KFAC actually uses: none for a term whose
    // exact switch is on.
    let errors: Vec<Vec<f64>> = terms
        .iter()
        .zip(uses_exact)
        .map(|(TermCurvatures { exact, factors }, uses_exact)| {
            layers
                .iter()
                .enumerate()
                .map(|(l, shape)| {
                    if uses_exact {
                        return 0.0;
                    }
                    let approx = kron(factors[l].b.as_ref(), factors[l].a.as_ref());
                    frobenius_relative(&approx, &gramian_to_kfac_basis(shape, exact[l].as_ref()))
                })
                .collect()
        })
        .collect();
    let outcome = |p: &crate::lockstep::Proposal| LineSearchOutcome {
        step_size: p.choice.step_size,
        loss: p.choice.loss,
    };
    StepComparison {
        step: record.step,
        loss: lin.losses.total(),
        engd: outcome(&record.engd),
        kfac: outcome(&record.kfac),
        layers: layers
            .iter()
            .enumerate()
            .map(|(l, shape)| {
                let (e, k) = (
                    &record.engd.direction[shape.range()],
                    &record.kfac.direction[shape.range()],
                );
                let (ne, nk) = (dot(e, e).sqrt(), dot(k, k).sqrt());
                let diff: Vec<f64> = k.iter().zip(e).map(|(a, b)| a - b).collect();
                LayerComparison {
                    layer: l,
                    kfac_error_interior: errors[0][l],
                    kfac_error_boundary: errors[1][l],
                    direction_cosine: dot(k, e) / (nk * ne),
                    direction_norm_ratio: nk / ne,
                    direction_relative_difference: dot(&diff, &diff).sqrt() / ne,
                }
            })
            .collect(),
    }
}

/// The first quantity of a step that leaves `rtol`, in the order: layers
/// first to last; per layer the interior approximation, the boundary
/// approximation, the direction (relative difference).
fn departure(step: &StepComparison, rtol: f64) -> Option<Departure> {
    step.layers.iter().find_map(|l| {
        [
            ("kfac_error_interior", l.kfac_error_interior),
            ("kfac_error_boundary", l.kfac_error_boundary),
            (
                "direction_relative_difference",
                l.direction_relative_difference,
            ),
        ]
        .into_iter()
        .find(|(_, v)| v.is_nan() || *v > rtol)
        .map(|(quantity, value)| Departure {
            step: step.step,
            layer: l.layer,
            quantity,
            value,
        })
    })
}

/// Run `steps` lockstep steps of the configured problem.
pub fn compare(args: &TrainArgs, follow: Follow, steps: usize, rtol: f64) -> Result<Comparison> {
    let mut lockstep = Lockstep::new(args, follow)?;
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let record = lockstep.step()?;
        out.push(compare_step(&lockstep, &record));
    }
    let first_departure = out.iter().find_map(|s| departure(s, rtol));
    Ok(Comparison {
        follow,
        rtol,
        steps: out,
        first_departure,
    })
}

fn outcome_text(o: &LineSearchOutcome) -> String {
    match o.loss {
        Some(l) => format!("α={:.3e} → Loss {:.10e}", o.step_size, l),
        None => format!("α={:.3e}", o.step_size),
    }
}

/// The comparison as a compact table per step and a verdict.
pub fn render(c: &Comparison) -> String {
    let mut out = String::new();
    for s in &c.steps {
        out.push_str(&format!(
            "step {}: Loss {:.10e}   ENGD {}   KFAC {}\n",
            s.step,
            s.loss,
            outcome_text(&s.engd),
            outcome_text(&s.kfac)
        ));
        out.push_str(
            "  layer  ‖B⊗A−G_Ω‖/‖G_Ω‖  ‖B⊗A−G_∂‖/‖G_∂‖  cos(δK,δE)  ‖δK‖/‖δE‖  ‖δK−δE‖/‖δE‖\n",
        );
        for l in &s.layers {
            out.push_str(&format!(
                "  {:>5}  {:>15.3e}  {:>15.3e}  {:>10.6}  {:>9.3e}  {:>12.3e}\n",
                l.layer,
                l.kfac_error_interior,
                l.kfac_error_boundary,
                l.direction_cosine,
                l.direction_norm_ratio,
                l.direction_relative_difference
            ));
        }
    }
    match &c.first_departure {
        None => out.push_str(&format!(
            "verdict: KFAC stays within rtol {:e} of ENGD for all {} step(s)\n",
            c.rtol,
            c.steps.len()
        )),
        Some(d) => out.push_str(&format!(
            "verdict: KFAC first leaves rtol {:e} at step {}, layer {}, {} = {:.3e}\n",
            c.rtol, d.step, d.layer, d.quantity, d.value
        )),
    }
    out
}

/// Heatmaps at the first step, per layer and term: the exact Gramian block,
/// its Kronecker approximation `B ⊗ A` (both in the KFAC basis) and their
/// difference, as PNG and SVG in `dir`.
pub fn plot_heatmaps(args: &TrainArgs, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let mut lockstep = Lockstep::new(args, Follow::Engd)?;
    let record = lockstep.step()?;
    let layers = lockstep.pinn.mlp.layers();
    let settings = &lockstep.kfac.config.settings;
    let mut written = Vec::new();
    let terms = both_terms(&record.linearized, &layers, settings);
    for (term, TermCurvatures { exact, factors }) in
        ["interior", "boundary"].into_iter().zip(&terms)
    {
        for (l, exact) in exact.iter().enumerate() {
            let exact = gramian_to_kfac_basis(&layers[l], exact.as_ref());
            let approx = kron(factors[l].b.as_ref(), factors[l].a.as_ref());
            let difference = &approx - &exact;
            let maps = [
                ("exact Gramian block".to_string(), exact),
                ("B ⊗ A".to_string(), approx),
                ("B ⊗ A − G".to_string(), difference),
            ];
            for ext in ["png", "svg"] {
                let path = dir.join(format!("layer{l}_{term}.{ext}"));
                crate::plot::heatmaps(
                    &path,
                    &format!("layer {l}, {term} term, step 0 (KFAC basis)"),
                    &maps,
                )?;
                written.push(path);
            }
        }
    }
    Ok(written)
}
