//! Poisson's equation `−Δu = f` on `[0,1]^d` and its point sets (REFERENCE §1–2).

use crate::torch_rng::TorchGenerator;
use std::f64::consts::PI;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Equation {
    /// `u* = Π sin(π x_i)`, `f = d π² Π sin(π x_i)`.
    Poisson,
    /// `u* = Σ cos(π x_i)`, `f = π² Σ cos(π x_i)`.
    PoissonCosSum,
}

impl Equation {
    pub const NAMES: [&'static str; 2] = ["poisson", "poisson_cos_sum"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "poisson" => Some(Self::Poisson),
            "poisson_cos_sum" => Some(Self::PoissonCosSum),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Poisson => "poisson",
            Self::PoissonCosSum => "poisson_cos_sum",
        }
    }

    /// The exact solution `u*(x)`, also the boundary data.
    pub fn solution(self, x: &[f64]) -> f64 {
        match self {
            Self::Poisson => x.iter().map(|&xi| (PI * xi).sin()).product(),
            Self::PoissonCosSum => x.iter().map(|&xi| (PI * xi).cos()).sum(),
        }
    }

    /// The right-hand side `f(x) = −Δu*(x)`.
    pub fn source(self, x: &[f64]) -> f64 {
        let d = x.len() as f64;
        match self {
            Self::Poisson => d * PI * PI * self.solution(x),
            Self::PoissonCosSum => PI * PI * self.solution(x),
        }
    }
}

/// `n` points in `R^d`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Points {
    pub dim: usize,
    pub coords: Vec<f64>,
}

impl Points {
    pub fn len(&self) -> usize {
        self.coords.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.coords.is_empty()
    }

    pub fn point(&self, n: usize) -> &[f64] {
        &self.coords[n * self.dim..(n + 1) * self.dim]
    }

    pub fn iter(&self) -> impl Iterator<Item = &[f64]> {
        self.coords.chunks_exact(self.dim)
    }
}

/// The three point sets of a run: interior, L2-error evaluation, boundary.
#[derive(Clone, Debug)]
pub struct Data {
    pub interior: Points,
    pub eval: Points,
    pub boundary: Points,
}

impl Data {
    /// The reference's draw order after `manual_seed(data_seed)`:
    /// `X_Ω = rand(N_Ω, d)`, `X_eval = rand(10·N_Ω, d)`, `X_∂ = rand(N_∂, d)`,
    /// then `dims = randint(0, d, N_∂)`, `sides = randint(0, 2, N_∂)` and
    /// `X_∂[i, dims[i]] = sides[i]`.
    pub fn generate(data_seed: u64, n_interior: usize, n_boundary: usize, dim: usize) -> Self {
        let mut rng = TorchGenerator::manual_seed(data_seed);
        let interior = Points {
            dim,
            coords: rng.rand(n_interior * dim),
        };
        let eval = Points {
            dim,
            coords: rng.rand(10 * n_interior * dim),
        };
        let mut boundary = Points {
            dim,
            coords: rng.rand(n_boundary * dim),
        };
        let dims = rng.randint(0, dim as i64, n_boundary);
        let sides = rng.randint(0, 2, n_boundary);
        for i in 0..n_boundary {
            boundary.coords[i * dim + dims[i] as usize] = sides[i] as f64;
        }
        Self {
            interior,
            eval,
            boundary,
        }
    }
}
