//! Command-line surface shared by the binary and by `replay` (which parses
//! the `python train.py …` commands of a log with the same definitions).
//!
//! Flag names are the original script's, verbatim (`--N_Omega`, `--KFAC_damping`, …).

use crate::engd::EngdConfig;
use crate::gramian::Approximation;
use crate::kfac::KfacConfig;
use crate::kronecker::{ErrorScale, GgnType, InteriorBRows, KfacSettings};
use crate::line_search::{Grid, StepSize};
use crate::mlp::ModelName;
use crate::problem::Equation;
use crate::train::{OptimizerConfig, ProblemConfig, TrainConfig};
use anyhow::{Result, anyhow, bail};
use clap::Args;

/// The flags of the original `train.py`, with its defaults.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct TrainArgs {
    /// ENGD or KFAC.
    #[arg(long = "optimizer")]
    pub optimizer: Option<String>,
    #[arg(long = "N_Omega", default_value_t = 900)]
    pub n_omega: usize,
    #[arg(long = "N_dOmega", default_value_t = 120)]
    pub n_domega: usize,
    #[arg(long = "dim_Omega", default_value_t = 2)]
    pub dim_omega: usize,
    #[arg(long = "data_seed", default_value_t = 0)]
    pub data_seed: u64,
    #[arg(long = "model_seed", default_value_t = 1)]
    pub model_seed: u64,
    #[arg(long = "num_steps", default_value_t = 10_000)]
    pub num_steps: usize,
    #[arg(long = "max_logs", default_value_t = 150)]
    pub max_logs: usize,
    /// mlp-tanh-64 or mlp-tanh-64-48-32-16.
    #[arg(long = "model", default_value = "mlp-tanh-64")]
    pub model: String,
    /// poisson or poisson_cos_sum.
    #[arg(long = "equation", default_value = "poisson")]
    pub equation: String,

    /// full, per_layer or diagonal.
    #[arg(long = "ENGD_approximation", default_value = "full")]
    pub engd_approximation: String,
    #[arg(long = "ENGD_damping", default_value_t = 0.0)]
    pub engd_damping: f64,
    #[arg(long = "ENGD_ema_factor", default_value_t = 0.0)]
    pub engd_ema_factor: f64,
    #[arg(long = "ENGD_initialize_to_identity")]
    pub engd_initialize_to_identity: bool,
    /// A positive float, or grid_line_search.
    #[arg(long = "ENGD_lr", default_value = "grid_line_search")]
    pub engd_lr: String,

    /// Required with --optimizer=KFAC.
    #[arg(long = "KFAC_damping")]
    pub kfac_damping: Option<f64>,
    #[arg(long = "KFAC_ema_factor", default_value_t = 0.95)]
    pub kfac_ema_factor: f64,
    #[arg(long = "KFAC_T_kfac", default_value_t = 1)]
    pub kfac_t_kfac: usize,
    #[arg(long = "KFAC_T_inv", default_value_t = 1)]
    pub kfac_t_inv: usize,
    #[arg(long = "KFAC_initialize_to_identity")]
    pub kfac_initialize_to_identity: bool,
    /// type-2, empirical or forward-only.
    #[arg(long = "KFAC_ggn_type", default_value = "type-2")]
    pub kfac_ggn_type: String,
    /// A positive float, or grid_line_search.
    #[arg(long = "KFAC_lr", default_value = "grid_line_search")]
    pub kfac_lr: String,
    #[arg(long = "KFAC_USE_EXACT_INTERIOR_GRAMIAN")]
    pub kfac_use_exact_interior_gramian: bool,
    #[arg(long = "KFAC_USE_EXACT_BOUNDARY_GRAMIAN")]
    pub kfac_use_exact_boundary_gramian: bool,
    /// inv_sqrt_n (the documented fix) or one (before it).
    #[arg(long = "KFAC_error_scale", default_value = "inv_sqrt_n")]
    pub kfac_error_scale: String,
    /// input_dependent (the log's code) or all.
    #[arg(long = "KFAC_interior_B_rows", default_value = "input_dependent")]
    pub kfac_interior_b_rows: String,

    #[arg(long = "grid_line_search_log2min", default_value_t = -30.0, allow_negative_numbers = true)]
    pub grid_line_search_log2min: f64,
    #[arg(
        long = "grid_line_search_log2max",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub grid_line_search_log2max: f64,
    #[arg(long = "grid_line_search_num_steps", default_value_t = 31)]
    pub grid_line_search_num_steps: usize,
}

fn choice<T>(flag: &str, value: &str, parse: fn(&str) -> Option<T>, names: &[&str]) -> Result<T> {
    parse(value).ok_or_else(|| {
        anyhow!(
            "invalid value `{value}` for --{flag}: expected one of {}",
            names.join(", ")
        )
    })
}

fn positive_count(flag: &str, value: usize) -> Result<usize> {
    if value == 0 {
        bail!("--{flag} must be at least 1, got 0");
    }
    Ok(value)
}

fn damping(flag: &str, value: f64) -> Result<f64> {
    if !(value >= 0.0 && value.is_finite()) {
        bail!("--{flag} must be a finite number ≥ 0, got {value}");
    }
    Ok(value)
}

fn ema(flag: &str, value: f64) -> Result<f64> {
    if !(0.0..1.0).contains(&value) {
        bail!("--{flag} must lie in [0, 1), got {value}");
    }
    Ok(value)
}

impl TrainArgs {
    fn step_size(&self, flag: &str, value: &str) -> Result<StepSize> {
        if value == "grid_line_search" {
            return Ok(StepSize::GridLineSearch(Grid {
                log2min: self.grid_line_search_log2min,
                log2max: self.grid_line_search_log2max,
                num_steps: positive_count(
                    "grid_line_search_num_steps",
                    self.grid_line_search_num_steps,
                )?,
            }));
        }
        let lr: f64 = value
            .parse()
            .map_err(|_| anyhow!("invalid value `{value}` for --{flag}: expected a positive number or grid_line_search"))?;
        if !(lr > 0.0 && lr.is_finite()) {
            bail!("--{flag} must be a positive finite number, got {value}");
        }
        Ok(StepSize::Fixed(lr))
    }

    /// Validate every flag and build the run's configuration.
    pub fn to_config(&self) -> Result<TrainConfig> {
        let problem = ProblemConfig {
            n_omega: positive_count("N_Omega", self.n_omega)?,
            n_domega: positive_count("N_dOmega", self.n_domega)?,
            dim_omega: positive_count("dim_Omega", self.dim_omega)?,
            data_seed: self.data_seed,
            model_seed: self.model_seed,
            model: choice("model", &self.model, ModelName::parse, &ModelName::NAMES)?,
            equation: choice(
                "equation",
                &self.equation,
                Equation::parse,
                &Equation::NAMES,
            )?,
        };
        if !self.grid_line_search_log2min.is_finite() || !self.grid_line_search_log2max.is_finite()
        {
            bail!("--grid_line_search_log2min/--grid_line_search_log2max must be finite");
        }
        let optimizer_name = self
            .optimizer
            .as_deref()
            .ok_or_else(|| anyhow!("missing required flag --optimizer (ENGD or KFAC)"))?;
        let optimizer = match optimizer_name {
            "ENGD" => OptimizerConfig::Engd(EngdConfig {
                approximation: choice(
                    "ENGD_approximation",
                    &self.engd_approximation,
                    Approximation::parse,
                    &Approximation::NAMES,
                )?,
                damping: damping("ENGD_damping", self.engd_damping)?,
                ema_factor: ema("ENGD_ema_factor", self.engd_ema_factor)?,
                initialize_to_identity: self.engd_initialize_to_identity,
                step_size: self.step_size("ENGD_lr", &self.engd_lr)?,
            }),
            "KFAC" => {
                let kfac_damping = self
                    .kfac_damping
                    .ok_or_else(|| anyhow!("--optimizer=KFAC requires --KFAC_damping"))?;
                OptimizerConfig::Kfac(KfacConfig {
                    damping: damping("KFAC_damping", kfac_damping)?,
                    ema_factor: ema("KFAC_ema_factor", self.kfac_ema_factor)?,
                    t_kfac: positive_count("KFAC_T_kfac", self.kfac_t_kfac)?,
                    t_inv: positive_count("KFAC_T_inv", self.kfac_t_inv)?,
                    initialize_to_identity: self.kfac_initialize_to_identity,
                    settings: KfacSettings {
                        ggn_type: choice(
                            "KFAC_ggn_type",
                            &self.kfac_ggn_type,
                            GgnType::parse,
                            &GgnType::NAMES,
                        )?,
                        error_scale: choice(
                            "KFAC_error_scale",
                            &self.kfac_error_scale,
                            ErrorScale::parse,
                            &ErrorScale::NAMES,
                        )?,
                        interior_b_rows: choice(
                            "KFAC_interior_B_rows",
                            &self.kfac_interior_b_rows,
                            InteriorBRows::parse,
                            &InteriorBRows::NAMES,
                        )?,
                    },
                    use_exact_interior_gramian: self.kfac_use_exact_interior_gramian,
                    use_exact_boundary_gramian: self.kfac_use_exact_boundary_gramian,
                    step_size: self.step_size("KFAC_lr", &self.kfac_lr)?,
                })
            }
            other => bail!("invalid value `{other}` for --optimizer: expected one of ENGD, KFAC"),
        };
        Ok(TrainConfig {
            problem,
            num_steps: positive_count("num_steps", self.num_steps)?,
            max_logs: positive_count("max_logs", self.max_logs)?,
            optimizer,
        })
    }
}
