//! Comparing two dumps in our schema, quantity by quantity, and naming the
//! shape of a mismatch when it is a known one: the Gramian-basis vs
//! KFAC-basis permutation, `A ⊗ B` in place of `B ⊗ A`, `A` and `B`
//! swapped, a factor of N or √N (batch normalisation), bias values in place
//! of bias gradients (the log's Bug 1), damping added once vs per factor.

use crate::dump::{Dump, Factors, LayerDump, Matrix, WeightBias};
use crate::kronecker::kron;
use crate::least_squares::solve;
use crate::mlp::{LayerShape, Mlp};
use anyhow::{Context, Result, bail};
use faer::Mat;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

impl Tolerance {
    /// `|b − a| ≤ atol + rtol·|a|`, `a` the reference.
    fn close(&self, a: f64, b: f64) -> bool {
        (b - a).abs() <= self.atol + self.rtol * a.abs()
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Entry {
    pub row: usize,
    pub col: usize,
    pub a: f64,
    pub b: f64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct QuantityDiff {
    /// e.g. `layers[0].gramian.interior`.
    pub quantity: String,
    pub max_abs: f64,
    /// Largest `|b − a| / |a|` over entries with `a ≠ 0`.
    pub max_rel: f64,
    pub mismatches: usize,
    pub entries: usize,
    /// The first entry out of tolerance, row-major.
    pub first: Option<Entry>,
    pub diagnosis: Option<String>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DiffReport {
    pub tolerance: Tolerance,
    pub quantities: Vec<QuantityDiff>,
}

impl DiffReport {
    pub fn mismatched(&self) -> impl Iterator<Item = &QuantityDiff> {
        self.quantities.iter().filter(|q| q.mismatches > 0)
    }
}

pub fn read_dump(path: &Path) -> Result<Dump> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not a dump in the kfac-check schema", path.display()))
}

fn shape(m: &Matrix) -> (usize, usize) {
    (m.len(), m.first().map_or(0, Vec::len))
}

fn to_mat(m: &Matrix) -> Mat<f64> {
    let (r, c) = shape(m);
    Mat::from_fn(r, c, |i, j| m[i][j])
}

fn column(v: &[f64]) -> Matrix {
    v.iter().map(|x| vec![*x]).collect()
}

fn all_close(a: &Matrix, b: &Matrix, tol: &Tolerance) -> bool {
    shape(a) == shape(b)
        && a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .all(|(x, y)| tol.close(*x, *y))
}

fn compare_matrix(
    quantity: String,
    a: &Matrix,
    b: &Matrix,
    tol: &Tolerance,
) -> Result<QuantityDiff> {
    if a.iter().any(|r| r.len() != shape(a).1) || b.iter().any(|r| r.len() != shape(b).1) {
        bail!("{quantity}: ragged matrix");
    }
    if shape(a) != shape(b) {
        bail!(
            "shape mismatch in {quantity}: {:?} in A, {:?} in B",
            shape(a),
            shape(b)
        );
    }
    let mut d = QuantityDiff {
        quantity,
        max_abs: 0.0,
        max_rel: 0.0,
        mismatches: 0,
        entries: 0,
        first: None,
        diagnosis: None,
    };
    for (i, (ra, rb)) in a.iter().zip(b).enumerate() {
        for (j, (&x, &y)) in ra.iter().zip(rb).enumerate() {
            d.entries += 1;
            let abs = (y - x).abs();
            d.max_abs = d.max_abs.max(abs);
            if x != 0.0 {
                d.max_rel = d.max_rel.max(abs / x.abs());
            }
            if !tol.close(x, y) {
                d.mismatches += 1;
                d.first.get_or_insert(Entry {
                    row: i,
                    col: j,
                    a: x,
                    b: y,
                });
            }
        }
    }
    Ok(d)
}

/// Facts a diagnosis may use.
struct Facts<'a> {
    shape: LayerShape,
    n_interior: Option<f64>,
    n_boundary: Option<f64>,
    layer_a: &'a LayerDump,
    damping_kfac: Option<f64>,
    tol: Tolerance,
}

/// `b ≈ c·a` for one scalar `c ≠ 1`: name it.
fn scalar_factor(a: &Matrix, b: &Matrix, n: Option<f64>, tol: &Tolerance) -> Option<String> {
    let (aa, ab) = a
        .iter()
        .flatten()
        .zip(b.iter().flatten())
        .fold((0.0, 0.0), |(s, t), (x, y)| (s + x * x, t + x * y));
    if aa == 0.0 {
        return None;
    }
    let c = ab / aa;
    let scaled: Matrix = a
        .iter()
        .map(|r| r.iter().map(|x| c * x).collect())
        .collect();
    if (c - 1.0).abs() < 1e-12 || !all_close(&scaled, b, tol) {
        return None;
    }
    let near = |x: f64, y: f64| (x / y - 1.0).abs() < 1e-9;
    if let Some(n) = n.filter(|n| *n > 1.0) {
        if near(c, n) || near(c, 1.0 / n) {
            return Some(format!(
                "B = {c:.6e} × A: a factor of N = {n} (a missing or extra 1/N batch normalisation)"
            ));
        }
        if near(c, n.sqrt()) || near(c, 1.0 / n.sqrt()) {
            return Some(format!(
                "B = {c:.6e} × A: a factor of √N (N = {n}; the 1/√N of the backpropagated error, --KFAC_error_scale)"
            ));
        }
    }
    Some(format!("B = {c:.6e} × A: a constant factor"))
}

/// `b[i][j] = a[π(i)][π(j)]` for a known re-indexing `π` of a layer block.
fn permutation(a: &Matrix, b: &Matrix, shape: &LayerShape, tol: &Tolerance) -> Option<String> {
    let n = shape.n_params();
    if self::shape(a) != (n, n) || self::shape(b) != (n, n) {
        return None;
    }
    let to_kfac = Mlp::kfac_to_gramian(shape); // KFAC index k ↦ Gramian index
    let mut to_gramian = vec![0; n];
    for (k, &g) in to_kfac.iter().enumerate() {
        to_gramian[g] = k;
    }
    // Commutation of the KFAC basis: (i, j) of [W|b] ↦ (j, i), i.e. A ⊗ B vs B ⊗ A.
    let (p, q) = (shape.d_out, shape.d_in + 1);
    let commute: Vec<usize> = (0..n).map(|k| (k % p) * q + k / p).collect();
    let commute_in_gramian: Vec<usize> = (0..n).map(|g| to_kfac[commute[to_gramian[g]]]).collect();
    let permuted = |pi: &[usize]| -> Matrix {
        (0..n)
            .map(|i| (0..n).map(|j| a[pi[i]][pi[j]]).collect())
            .collect()
    };
    for (pi, what) in [
        (
            &to_kfac,
            "B is A in the KFAC basis (vec([W | b]) row-major) where A is in the Gramian basis (W row-major, then b)",
        ),
        (
            &to_gramian,
            "B is A in the Gramian basis (W row-major, then b) where A is in the KFAC basis",
        ),
        (
            &commute_in_gramian,
            "B is A with the Kronecker order commuted: A ⊗ B in place of B ⊗ A",
        ),
    ] {
        if all_close(&permuted(pi), b, tol) {
            return Some(what.to_string());
        }
    }
    None
}

/// A layer vector in the Gramian basis (W row-major, then b), as a column.
fn weight_bias_column(w: &WeightBias) -> Matrix {
    column(
        &w.weight
            .iter()
            .flatten()
            .chain(&w.bias)
            .copied()
            .collect::<Vec<_>>(),
    )
}

/// `−K⁻¹ g` in the Gramian basis from this step's factors, with the damping
/// per factor (`K = Σ (B+λI) ⊗ (A+λI)`) or once (`Σ B ⊗ A + λI`).
fn kfac_direction(
    layer: &LayerDump,
    shape: &LayerShape,
    lambda: f64,
    per_factor: bool,
) -> Result<Vec<f64>> {
    let damp = |m: &Matrix| {
        let mut m = to_mat(m);
        for i in 0..m.nrows() {
            m[(i, i)] += if per_factor { lambda } else { 0.0 };
        }
        m
    };
    let term = |f: &Factors| kron(damp(&f.b).as_ref(), damp(&f.a).as_ref());
    let mut k = term(&layer.kfac.interior) + term(&layer.kfac.boundary);
    if !per_factor {
        for i in 0..k.nrows() {
            k[(i, i)] += lambda;
        }
    }
    let mut g_flat: Vec<f64> = layer.grad.weight.iter().flatten().copied().collect();
    g_flat.extend(&layer.grad.bias);
    let g = crate::kronecker::vector_to_kfac_basis(shape, &g_flat);
    let x = solve(k.as_ref(), &g)?;
    Ok(crate::kronecker::vector_to_gramian_basis(shape, &x)
        .iter()
        .map(|v| -v)
        .collect())
}

fn diagnose(kind: &str, a: &Matrix, b: &Matrix, ctx: &Facts<'_>) -> Option<String> {
    let n = if kind.contains("interior") {
        ctx.n_interior
    } else if kind.contains("boundary") {
        ctx.n_boundary
    } else {
        None
    };
    if kind.starts_with("gramian")
        && let Some(d) = permutation(a, b, &ctx.shape, &ctx.tol)
    {
        return Some(d);
    }
    if kind == "grad.bias"
        && let Some(params) = &ctx.layer_a.params
        && all_close(&column(&params.bias), b, &ctx.tol)
    {
        return Some(
            "B's bias gradient equals A's bias values: bias values in place of bias gradients \
             (layer.bias.data for layer.bias.grad.data, the log's Bug 1)"
                .into(),
        );
    }
    if kind == "direction.kfac"
        && let Some(lambda) = ctx.damping_kfac
    {
        let once = kfac_direction(ctx.layer_a, &ctx.shape, lambda, false)
            .ok()
            .map(|v| column(&v));
        let per = kfac_direction(ctx.layer_a, &ctx.shape, lambda, true)
            .ok()
            .map(|v| column(&v));
        let (fa, fb) = (a, b);
        let loose = Tolerance {
            rtol: ctx.tol.rtol.max(1e-6),
            atol: ctx.tol.atol,
        };
        if once.as_ref().is_some_and(|o| all_close(o, fb, &loose))
            && per.as_ref().is_some_and(|p| all_close(p, fa, &loose))
        {
            return Some(format!(
                "B's KFAC direction is the one with the damping λ = {lambda:e} added once to Σ B ⊗ A, \
                 A's the one with λ on each factor, (B+λI) ⊗ (A+λI)"
            ));
        }
        if per.as_ref().is_some_and(|p| all_close(p, fb, &loose))
            && once.as_ref().is_some_and(|o| all_close(o, fa, &loose))
        {
            return Some(format!(
                "B's KFAC direction has the damping λ = {lambda:e} on each factor, A's adds it once to the sum"
            ));
        }
    }
    let factor = scalar_factor(a, b, n, &ctx.tol)?;
    if kind.ends_with(".B") && factor.contains("a factor of N") {
        // B = Σ e² g gᵀ: without the 1/√N in e, B grows by exactly N.
        return Some(format!(
            "{factor}; for B: the backpropagated error without its 1/√N (--KFAC_error_scale=one)"
        ));
    }
    Some(factor)
}

fn problem_size(config: &serde_json::Value, key: &str) -> Option<f64> {
    config.get("problem")?.get(key)?.as_f64()
}

/// Compare dump `b` against dump `a` (the reference).
pub fn diff(a: &Dump, b: &Dump, tol: Tolerance) -> Result<DiffReport> {
    if a.layers.len() != b.layers.len() {
        bail!(
            "shape mismatch: A has {} layers, B has {}",
            a.layers.len(),
            b.layers.len()
        );
    }
    let mut out = vec![
        compare_matrix(
            "loss.interior".into(),
            &vec![vec![a.loss.interior]],
            &vec![vec![b.loss.interior]],
            &tol,
        )?,
        compare_matrix(
            "loss.boundary".into(),
            &vec![vec![a.loss.boundary]],
            &vec![vec![b.loss.boundary]],
            &tol,
        )?,
    ];
    let damping_kfac = a.damping.as_ref().map(|d| d.kfac);
    let mut offset = 0;
    for (i, (la, lb)) in a.layers.iter().zip(&b.layers).enumerate() {
        if (la.d_in, la.d_out) != (lb.d_in, lb.d_out) {
            bail!(
                "shape mismatch: layer {i} is {}→{} in A, {}→{} in B",
                la.d_in,
                la.d_out,
                lb.d_in,
                lb.d_out
            );
        }
        let shape = LayerShape {
            d_in: la.d_in,
            d_out: la.d_out,
            offset,
        };
        offset += shape.n_params();
        let ctx = Facts {
            shape,
            n_interior: problem_size(&a.config, "n_omega"),
            n_boundary: problem_size(&a.config, "n_domega"),
            layer_a: la,
            damping_kfac,
            tol,
        };
        let mut pairs: Vec<(&str, Matrix, Matrix)> = vec![
            (
                "grad.weight",
                la.grad.weight.clone(),
                lb.grad.weight.clone(),
            ),
            ("grad.bias", column(&la.grad.bias), column(&lb.grad.bias)),
            (
                "gramian.interior",
                la.gramian.interior.clone(),
                lb.gramian.interior.clone(),
            ),
            (
                "gramian.boundary",
                la.gramian.boundary.clone(),
                lb.gramian.boundary.clone(),
            ),
        ];
        for (term, [name_a, name_b], fa, fb) in [
            (
                "interior",
                ["kfac.interior.A", "kfac.interior.B"],
                &la.kfac.interior,
                &lb.kfac.interior,
            ),
            (
                "boundary",
                ["kfac.boundary.A", "kfac.boundary.B"],
                &la.kfac.boundary,
                &lb.kfac.boundary,
            ),
        ] {
            // A and B exchanged: the factors of A ⊗ B where B ⊗ A belongs.
            if all_close(&fa.a, &fb.b, &tol)
                && all_close(&fa.b, &fb.a, &tol)
                && !all_close(&fa.a, &fb.a, &tol)
            {
                out.push(QuantityDiff {
                    quantity: format!("layers[{i}].kfac.{term}"),
                    max_abs: f64::NAN,
                    max_rel: f64::NAN,
                    mismatches: shape_count(&fa.a) + shape_count(&fa.b),
                    entries: shape_count(&fa.a) + shape_count(&fa.b),
                    first: None,
                    diagnosis: Some("A and B swapped: B's `A` is A's `B` and vice versa (A ⊗ B in place of B ⊗ A)".into()),
                });
                continue;
            }
            pairs.push((name_a, fa.a.clone(), fb.a.clone()));
            pairs.push((name_b, fa.b.clone(), fb.b.clone()));
        }
        if let (Some(da), Some(db)) = (&la.direction, &lb.direction) {
            pairs.push((
                "direction.engd",
                weight_bias_column(&da.engd),
                weight_bias_column(&db.engd),
            ));
            pairs.push((
                "direction.kfac",
                weight_bias_column(&da.kfac),
                weight_bias_column(&db.kfac),
            ));
        }
        for (kind, qa, qb) in pairs {
            let mut d = compare_matrix(format!("layers[{i}].{kind}"), &qa, &qb, &tol)?;
            if d.mismatches > 0 {
                d.diagnosis = diagnose(kind, &qa, &qb, &ctx);
            }
            out.push(d);
        }
    }
    Ok(DiffReport {
        tolerance: tol,
        quantities: out,
    })
}

fn shape_count(m: &Matrix) -> usize {
    m.iter().map(Vec::len).sum()
}

pub fn render(r: &DiffReport) -> String {
    let mut out = format!(
        "{:<32} {:>10} {:>10} {:>12}  first offending entry (row, col: A → B)\n",
        "quantity", "max abs", "max rel", "mismatches"
    );
    for q in &r.quantities {
        let first = q.first.as_ref().map_or(String::new(), |e| {
            format!("({}, {}): {} → {}", e.row, e.col, e.a, e.b)
        });
        out.push_str(&format!(
            "{:<32} {:>10.3e} {:>10.3e} {:>5}/{:<6}  {first}\n",
            q.quantity, q.max_abs, q.max_rel, q.mismatches, q.entries
        ));
        if let Some(d) = &q.diagnosis {
            out.push_str(&format!("    diagnosis: {d}\n"));
        }
    }
    let bad = r.mismatched().count();
    if bad == 0 {
        out.push_str(&format!(
            "all quantities agree (rtol {:e}, atol {:e})\n",
            r.tolerance.rtol, r.tolerance.atol
        ));
    } else {
        out.push_str(&format!(
            "{bad} quantit{} differ (rtol {:e}, atol {:e})\n",
            if bad == 1 { "y" } else { "ies" },
            r.tolerance.rtol,
            r.tolerance.atol
        ));
    }
    out
}
