//! `tanh` in float64 without calls into libm, so that loops over it compile
//! to straight-line (and vectorisable) code. The line search evaluates it
//! 31 × N_Ω × width times per step; glibc's `tanh` (through `expm1`) was
//! two thirds of the run time.
//!
//! The rational approximations are Cephes' (`tanh.c`, `exp.c`, S. Moshier),
//! with their documented peak relative errors of about 2.5e-16:
//! - `|x| < 0.625`: `tanh x = x + x·z·P(z)/Q(z)`, `z = x²`;
//! - otherwise `tanh |x| = 1 − 2/(e^{2|x|} + 1)`, with
//!   `e^y = 2ⁿ · (1 + 2r·p(r²)/(q(r²) − r·p(r²)))`, `y = n ln 2 + r`.
//!
//! Being pure IEEE arithmetic (Rust never contracts to FMA), the result is
//! the same bits on every machine, unlike libm's CPU-dispatched variants.

const TANH_P: [f64; 3] = [
    -9.643_991_794_250_522e-1,
    -9.928_772_310_019_185e1,
    -1.614_687_684_417_084_5e3,
];
const TANH_Q: [f64; 3] = [
    1.128_116_784_916_329_3e2,
    2.235_488_390_601_004_6e3,
    4.844_063_053_251_255e3,
];
const EXP_P: [f64; 3] = [
    1.261_771_930_748_105_9e-4,
    3.029_944_077_074_419_6e-2,
    9.999_999_999_999_999e-1,
];
const EXP_Q: [f64; 4] = [
    3.001_985_051_386_644_5e-6,
    2.524_483_403_496_841e-3,
    2.272_655_482_081_550_3e-1,
    2.0,
];
const LN2_HI: f64 = 6.931_457_519_531_25e-1;
const LN2_LO: f64 = 1.428_606_820_309_417_2e-6;

/// `tanh x` to about 2.5e-16 relative error, with one division: both
/// branches are brought to a quotient `num/den` and the division is shared.
/// - small: `x + (x·z·P) / Q`;
/// - large: with `e^{2|x|} = 2ⁿ(q+p)/(q−p)` (Cephes' `1 + 2p/(q−p)`),
///   `2/(e^{2|x|} + 1) = 2(q−p) / (2ⁿ(q+p) + (q−p))`.
#[inline(always)]
pub fn tanh(x: f64) -> f64 {
    let a = x.abs();
    let z = x * x;
    let tanh_p = (TANH_P[0] * z + TANH_P[1]) * z + TANH_P[2];
    let tanh_q = ((z + TANH_Q[0]) * z + TANH_Q[1]) * z + TANH_Q[2];

    // Beyond |x| = 20, 1 − 2/(e^{2|x|}+1) rounds to 1.
    let y = (2.0 * a).min(40.0);
    // n = round(y / ln 2); y ≥ 0, so truncating y·log2(e) + 0.5 rounds.
    let n = (std::f64::consts::LOG2_E * y + 0.5) as i32;
    let nf = n as f64;
    let r = y - nf * LN2_HI - nf * LN2_LO;
    let rr = r * r;
    let exp_p = r * ((EXP_P[0] * rr + EXP_P[1]) * rr + EXP_P[2]);
    let exp_q = ((EXP_Q[0] * rr + EXP_Q[1]) * rr + EXP_Q[2]) * rr + EXP_Q[3];
    let two_pow_n = f64::from_bits(((n + 1023) as u64) << 52);

    // NaN fails `a >= 0.625`, takes the polynomial branch and stays NaN.
    let large = a >= 0.625;
    let num = if large {
        2.0 * (exp_q - exp_p)
    } else {
        x * z * tanh_p
    };
    let den = if large {
        two_pow_n * (exp_q + exp_p) + (exp_q - exp_p)
    } else {
        tanh_q
    };
    let quotient = num / den;
    if large {
        (1.0 - quotient).copysign(x)
    } else {
        x + quotient
    }
}

/// `out[k] = tanh(z[k])`.
#[inline(always)]
pub fn tanh_slice(z: &[f64], out: &mut [f64]) {
    for (o, &x) in out.iter_mut().zip(z) {
        *o = tanh(x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_libm_to_a_few_ulp() {
        // Every 1e-4 step on [-25, 25], plus the edges of the branches.
        let mut worst: f64 = 0.0;
        let mut xs: Vec<f64> = (-250_000..=250_000).map(|i| i as f64 * 1e-4).collect();
        xs.extend([
            0.625,
            -0.625,
            0.624_999_999_999,
            1e-300,
            -1e-300,
            20.0,
            40.0,
            1e300,
            -1e300,
        ]);
        for x in xs {
            let (ours, libm) = (tanh(x), x.tanh());
            let rel = if libm == 0.0 {
                ours.abs()
            } else {
                ((ours - libm) / libm).abs()
            };
            worst = worst.max(rel);
        }
        // Cephes documents ≤ 2.5e-16 relative error against the true value,
        // glibc's manual ≤ 2 ulp (≤ 4.4e-16 relative) for its tanh: the two
        // may differ by their sum.
        assert!(
            worst <= 2.5e-16 + 4.4e-16,
            "worst relative difference {worst:e}"
        );
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(f64::INFINITY), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
        assert!(tanh(f64::NAN).is_nan());
    }
}
