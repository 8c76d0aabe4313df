//! PyTorch's CPU random generator, bit for bit (REFERENCE §2).
//!
//! The documented numbers depend on the exact points and initial weights, so
//! the conversions below follow torch 2.1.1's CPU kernels, including the
//! *unfused* `uniform_` rule (`f32(f32(x·r) + a)`) that produced the log.

use rand_mt::Mt;

/// MT19937 as seeded by `torch.manual_seed`.
pub struct TorchGenerator {
    mt: Mt,
}

const TWO_POW_MINUS_24: f64 = 1.0 / 16_777_216.0;

impl TorchGenerator {
    /// `torch.manual_seed(seed)`: `init_genrand` on the low 32 bits.
    pub fn manual_seed(seed: u64) -> Self {
        Self {
            mt: Mt::new(seed as u32),
        }
    }

    pub fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    /// One float32 `rand` value: `(u & 0xFFFFFF) · 2⁻²⁴` (exact in f32).
    fn rand_f32(&mut self) -> f32 {
        ((self.next_u32() & 0x00FF_FFFF) as f64 * TWO_POW_MINUS_24) as f32
    }

    /// `torch.rand(n)` in float32, widened to float64 (exact).
    pub fn rand(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.rand_f32() as f64).collect()
    }

    /// `torch.randint(lo, hi, (n,))`: `lo + (u mod (hi − lo))`.
    pub fn randint(&mut self, lo: i64, hi: i64, n: usize) -> Vec<i64> {
        let range = (hi - lo) as u64;
        (0..n)
            .map(|_| lo + (self.next_u32() as u64 % range) as i64)
            .collect()
    }

    /// `tensor.uniform_(a, b)` on float32 with two roundings and no FMA:
    /// `r = f32(b − a)`, value `f32(f32(x·r) + a)`.
    pub fn uniform(&mut self, a: f64, b: f64, n: usize) -> Vec<f64> {
        let (a, b) = (a as f32, b as f32);
        let range = b - a;
        (0..n)
            .map(|_| {
                let x = self.rand_f32();
                // Two separate f32 operations: Rust never contracts them into an FMA.
                let scaled: f32 = x * range;
                (scaled + a) as f64
            })
            .collect()
    }

    /// `torch.rand(n, dtype=float64)`: two draws, the first as the high word,
    /// `((u₁ << 32) | u₂) & (2⁵³ − 1)` scaled by `2⁻⁵³`.
    pub fn rand_f64(&mut self, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let hi = self.next_u32() as u64;
                let lo = self.next_u32() as u64;
                (((hi << 32) | lo) & ((1u64 << 53) - 1)) as f64 / (1u64 << 53) as f64
            })
            .collect()
    }
}
