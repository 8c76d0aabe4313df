//! The exponential moving average both optimizers keep of their curvature
//! (REFERENCE §6): `C ← β·C + (1−β)·C_new`, from zeros or from the identity.

use faer::Mat;

/// A moving average of a square matrix.
#[derive(Clone, Debug)]
pub struct MovingAverage {
    pub value: Mat<f64>,
    pub factor: f64,
}

impl MovingAverage {
    /// Starts at `I` with `initialize_to_identity`, at `0` otherwise.
    pub fn new(dim: usize, factor: f64, initialize_to_identity: bool) -> Self {
        let value = if initialize_to_identity {
            Mat::identity(dim, dim)
        } else {
            Mat::zeros(dim, dim)
        };
        Self { value, factor }
    }

    /// `C ← β·C + (1−β)·C_new`.
    pub fn update(&mut self, new: &Mat<f64>) {
        let beta = self.factor;
        self.value = Mat::from_fn(new.nrows(), new.ncols(), |i, j| {
            beta * self.value[(i, j)] + (1.0 - beta) * new[(i, j)]
        });
    }

    /// `C + λI`.
    pub fn damped(&self, damping: f64) -> Mat<f64> {
        damped(&self.value, damping)
    }
}

/// `M + λI`.
pub fn damped(m: &Mat<f64>, damping: f64) -> Mat<f64> {
    let mut out = m.clone();
    for i in 0..out.nrows() {
        out[(i, i)] += damping;
    }
    out
}
