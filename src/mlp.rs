//! The tanh multilayer perceptron: architecture, parameters, initialisation and
//! the two parameter orderings (REFERENCE §2).
//!
//! Parameters live in one flat vector in the *Gramian basis*: layer by layer,
//! the weight row-major, then the bias. The *KFAC basis* of a layer is
//! `[W | b]` (`d_out × (d_in+1)`) flattened row-major; `B ⊗ A` acts there.

use crate::torch_rng::TorchGenerator;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModelName {
    #[serde(rename = "mlp-tanh-64")]
    Tanh64,
    #[serde(rename = "mlp-tanh-64-48-32-16")]
    Tanh64_48_32_16,
}

impl ModelName {
    pub const NAMES: [&'static str; 2] = ["mlp-tanh-64", "mlp-tanh-64-48-32-16"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "mlp-tanh-64" => Some(Self::Tanh64),
            "mlp-tanh-64-48-32-16" => Some(Self::Tanh64_48_32_16),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn hidden_widths(self) -> &'static [usize] {
        match self {
            Self::Tanh64 => &[64],
            Self::Tanh64_48_32_16 => &[64, 48, 32, 16],
        }
    }
}

/// Layer widths `[d, h_1, …, h_k, 1]`: Linear, tanh, …, Linear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mlp {
    pub widths: Vec<usize>,
}

/// Where one linear layer's parameters sit in the flat vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    pub d_in: usize,
    pub d_out: usize,
    /// Offset of `W[0,0]`; the bias starts at `offset + d_out·d_in`.
    pub offset: usize,
}

impl LayerShape {
    pub fn n_params(&self) -> usize {
        self.d_out * (self.d_in + 1)
    }
    pub fn weight_range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.d_out * self.d_in
    }
    pub fn bias_range(&self) -> std::ops::Range<usize> {
        self.offset + self.d_out * self.d_in..self.offset + self.n_params()
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.n_params()
    }
    /// Gramian-basis index (within the layer) of KFAC-basis entry `(i, j)` of
    /// `[W | b]`: `W[i,j]` for `j < d_in`, `b[i]` for `j = d_in`.
    pub fn gramian_index(&self, i: usize, j: usize) -> usize {
        if j < self.d_in {
            i * self.d_in + j
        } else {
            self.d_out * self.d_in + i
        }
    }
}

impl Mlp {
    pub fn new(dim: usize, hidden: &[usize]) -> Self {
        let mut widths = vec![dim];
        widths.extend_from_slice(hidden);
        widths.push(1);
        Self { widths }
    }

    pub fn from_name(name: ModelName, dim: usize) -> Self {
        Self::new(dim, name.hidden_widths())
    }

    pub fn dim(&self) -> usize {
        self.widths[0]
    }

    pub fn n_layers(&self) -> usize {
        self.widths.len() - 1
    }

    pub fn layers(&self) -> Vec<LayerShape> {
        let mut offset = 0;
        self.widths
            .windows(2)
            .map(|w| {
                let shape = LayerShape {
                    d_in: w[0],
                    d_out: w[1],
                    offset,
                };
                offset += shape.n_params();
                shape
            })
            .collect()
    }

    pub fn n_params(&self) -> usize {
        self.layers().iter().map(LayerShape::n_params).sum()
    }

    /// `manual_seed(model_seed)`, then per layer `W ~ uniform_(−b_W, b_W)`,
    /// `b ~ uniform_(−b_b, b_b)` with PyTorch's `kaiming_uniform_(a = √5)`
    /// bound `b_W = √3 · gain / √d_in`, `gain = √(2 / (1 + √5²))`, and
    /// `b_b = 1/√d_in`, all in float64 before the rounding to float32.
    pub fn init_params(&self, model_seed: u64) -> Vec<f64> {
        let mut rng = TorchGenerator::manual_seed(model_seed);
        let a = 5f64.sqrt();
        let gain = (2.0 / (1.0 + a * a)).sqrt();
        let mut theta = Vec::with_capacity(self.n_params());
        for layer in self.layers() {
            let fan_in = layer.d_in as f64;
            let weight_bound = 3f64.sqrt() * (gain / fan_in.sqrt());
            let bias_bound = 1.0 / fan_in.sqrt();
            theta.extend(rng.uniform(-weight_bound, weight_bound, layer.d_out * layer.d_in));
            theta.extend(rng.uniform(-bias_bound, bias_bound, layer.d_out));
        }
        theta
    }

    /// `perm[k]` = Gramian-basis index (within the layer) of KFAC-basis index `k`.
    pub fn kfac_to_gramian(layer: &LayerShape) -> Vec<usize> {
        let cols = layer.d_in + 1;
        (0..layer.n_params())
            .map(|k| layer.gramian_index(k / cols, k % cols))
            .collect()
    }
}
