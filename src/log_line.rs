//! The training log's format (REFERENCE §7): which steps are logged, Python's
//! float `repr`, and the `Step: …` line, both ways (format and parse).

use anyhow::{Result, anyhow, bail};

/// `{0} ∪ {trunc(v) : v in logspace(0, log10(num_steps − 1), max_logs − 1)}`
/// with torch's float32 `logspace`: `end = f32(log10(num_steps − 1))`,
/// `step = f32((end − 0) / (n − 1))`, exponent `f32(step·k)` for the first
/// half and `f32(end − step·(n − 1 − k))` for the second, `v = f32(10^e)`
/// (the power taken in float64, as `std::pow(double, float)` does).
pub fn logged_steps(num_steps: usize, max_logs: usize) -> Vec<usize> {
    let mut steps = vec![0];
    let n = max_logs.saturating_sub(1);
    if num_steps >= 2 && n >= 1 {
        let end = ((num_steps - 1) as f64).log10() as f32;
        let values: Vec<f32> = if n == 1 {
            vec![10f64.powf(0.0) as f32]
        } else {
            let step: f32 = end / (n - 1) as f32;
            (0..n)
                .map(|k| {
                    let exponent: f32 = if k < n / 2 {
                        step * k as f32
                    } else {
                        end - step * (n - 1 - k) as f32
                    };
                    10f64.powf(exponent as f64) as f32
                })
                .collect()
        };
        steps.extend(values.into_iter().map(|v| v.trunc() as usize));
    }
    steps.retain(|&s| s < num_steps.max(1));
    steps.sort_unstable();
    steps.dedup();
    steps
}

/// Python's `repr(float)`: shortest round-trip digits; scientific notation
/// with a signed, at least two-digit exponent when the exponent is < −4 or ≥ 16.
pub fn python_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` prints the shortest round-trip digits as `d.ddde±x`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("integer exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x < 0.0 { "-" } else { "" };
    if !(-4..16).contains(&exponent) {
        let mantissa = if digits.len() == 1 {
            digits.clone()
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.abs());
    }
    let point = exponent + 1; // digits before the decimal point
    let body = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if point as usize >= digits.len() {
        format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    format!("{sign}{body}")
}

/// One logged step.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    pub step: usize,
    pub num_steps: usize,
    pub loss: f64,
    pub l2_error: f64,
    pub interior: f64,
    pub boundary: f64,
    /// Wall seconds since the loop started.
    pub time: f64,
}

impl LogLine {
    /// `Step: 000017/000100, Loss: {repr}, L2 Error: {repr}, Interior: {:.10f}, Boundary: {:.10f}, Time: {:.1f}s`
    pub fn format(&self) -> String {
        format!(
            "Step: {:06}/{:06}, Loss: {}, L2 Error: {}, Interior: {:.10}, Boundary: {:.10}, Time: {:.1}s",
            self.step,
            self.num_steps,
            python_repr(self.loss),
            python_repr(self.l2_error),
            self.interior,
            self.boundary,
            self.time
        )
    }

    /// Parse a line in the format above; the error says which field is wrong.
    pub fn parse(line: &str) -> Result<Self> {
        let rest = line
            .trim()
            .strip_prefix("Step: ")
            .ok_or_else(|| anyhow!("does not start with `Step: `"))?;
        let fields: Vec<&str> = rest.split(", ").collect();
        if fields.len() != 6 {
            bail!("expected 6 comma-separated fields, found {}", fields.len());
        }
        let (step, num_steps) = fields[0]
            .split_once('/')
            .ok_or_else(|| anyhow!("step `{}` is not `current/total`", fields[0]))?;
        let integer = |s: &str, what: &str| -> Result<usize> {
            s.parse()
                .map_err(|_| anyhow!("{what} `{s}` is not an integer"))
        };
        let number = |field: &str, key: &str| -> Result<f64> {
            let value = field
                .strip_prefix(key)
                .and_then(|v| v.strip_prefix(": "))
                .ok_or_else(|| anyhow!("expected field `{key}: …`, found `{field}`"))?;
            let value = value
                .strip_suffix('s')
                .filter(|_| key == "Time")
                .unwrap_or(value);
            value
                .parse()
                .map_err(|_| anyhow!("{key} `{value}` is not a number"))
        };
        Ok(Self {
            step: integer(step, "step")?,
            num_steps: integer(num_steps, "total steps")?,
            loss: number(fields[1], "Loss")?,
            l2_error: number(fields[2], "L2 Error")?,
            interior: number(fields[3], "Interior")?,
            boundary: number(fields[4], "Boundary")?,
            time: number(fields[5], "Time")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_steps_match_torch() {
        // Expected values: RNG-NOTES.md, measured with torch.
        assert_eq!(logged_steps(100, 10), [0, 1, 3, 5, 9, 17, 31, 55, 98]);
        assert_eq!(
            logged_steps(30, 30),
            [
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15, 17, 20, 22, 25, 29
            ]
        );
        let s = logged_steps(10_000, 150);
        assert_eq!(
            (s.len(), &s[s.len() - 5..]),
            (120, &[7795, 8296, 8828, 9395, 9999][..])
        );
        let s = logged_steps(5_000, 150);
        assert_eq!(
            (s.len(), &s[s.len() - 5..]),
            (116, &[3971, 4206, 4455, 4719, 4998][..])
        );
        let s = logged_steps(1_000, 50);
        assert_eq!(
            (s.len(), &s[s.len() - 5..]),
            (42, &[561, 648, 749, 865, 999][..])
        );
        assert_eq!(logged_steps(10, 3), [0, 1, 9]);
        assert_eq!(logged_steps(2, 10), [0, 1]);
    }

    #[test]
    fn python_repr_of_the_seed_numbers() {
        // Each string appears verbatim in the seed log; parsing and re-printing
        // must give it back.
        for s in [
            "48.674902441834504",
            "1.5052706127296104e-06",
            "3.2388268299520715e-08",
            "0.004915141616701139",
            "10.604138284083414",
            "4.66872915569577e-09",
            "8.219681289261738e-05",
            "0.07780191820061236",
        ] {
            assert_eq!(python_repr(s.parse().unwrap()), s);
        }
        assert_eq!(python_repr(1e-5), "1e-05");
        assert_eq!(python_repr(1e16), "1e+16");
        assert_eq!(python_repr(1234.0), "1234.0");
        assert_eq!(python_repr(0.0001), "0.0001");
        assert_eq!(python_repr(-2.5e-7), "-2.5e-07");
        assert_eq!(python_repr(f64::NAN), "nan");
    }

    #[test]
    fn a_seed_line_round_trips() {
        let line = "Step: 000017/000100, Loss: 0.004915141616701139, L2 Error: 10.604138284083414, Interior: 0.0025822916, Boundary: 0.0023328500, Time: 1.7s";
        assert_eq!(LogLine::parse(line).unwrap().format(), line);
    }

    #[test]
    fn malformed_lines_name_the_field() {
        let err = LogLine::parse("Step: 000001/000100, Loss: abc, L2 Error: 1.0, Interior: 1.0, Boundary: 1.0, Time: 0.1s")
            .unwrap_err();
        assert!(err.to_string().contains("Loss `abc`"), "{err}");
        assert!(LogLine::parse("Loss: 1").is_err());
    }
}
