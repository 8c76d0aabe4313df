//! `diff` on deliberately corrupted dumps: each known mismatch is named.
use kfac_check::diff::{DiffReport, Tolerance, diff};
use kfac_check::dump::Dump;
use serde_json::Value;

const TOL: Tolerance = Tolerance {
    rtol: 1e-10,
    atol: 0.0,
};

/// A small dump (N_Ω = 30, N_∂ = 5, hidden width 64), plain KFAC, EMA 0.
fn reference() -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_kfac-check"))
        .args([
            "dump",
            "--step=1",
            "--optimizer=KFAC",
            "--KFAC_damping=1e-3",
            "--KFAC_ema_factor=0",
            "--N_Omega=30",
            "--N_dOmega=5",
            "--ENGD_approximation=per_layer",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

fn run(a: &Value, b: &Value) -> DiffReport {
    let a: Dump = serde_json::from_value(a.clone()).unwrap();
    let b: Dump = serde_json::from_value(b.clone()).unwrap();
    diff(&a, &b, TOL).unwrap()
}

fn diagnosis_of(report: &DiffReport, quantity: &str) -> String {
    let q = report
        .quantities
        .iter()
        .find(|q| q.quantity == quantity)
        .unwrap_or_else(|| panic!("no {quantity}"));
    assert!(q.mismatches > 0, "{quantity} should differ");
    q.diagnosis.clone().unwrap_or_default()
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn map(v: &mut Value, f: &dyn Fn(f64) -> f64) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|x| map(x, f)),
        Value::Number(n) => *v = serde_json::json!(f(n.as_f64().unwrap())),
        _ => {}
    }
}

#[test]
fn identical_dumps_agree() {
    let a = reference();
    let r = run(&a, &a);
    assert_eq!(r.mismatched().count(), 0);
}

#[test]
fn a_block_in_the_kfac_basis_is_named() {
    let a = reference();
    let mut b = a.clone();
    let g = matrix(&a["layers"][0]["gramian"]["interior"]);
    // [W | b] row-major: entry (i, j) ↦ W[i, j] (j < 2) or b[i] (j = 2).
    let (d_in, d_out) = (2, 64);
    let gi = |k: usize| {
        if k % (d_in + 1) < d_in {
            (k / (d_in + 1)) * d_in + k % (d_in + 1)
        } else {
            d_out * d_in + k / (d_in + 1)
        }
    };
    let n = g.len();
    let permuted: Vec<Vec<f64>> = (0..n)
        .map(|r| (0..n).map(|c| g[gi(r)][gi(c)]).collect())
        .collect();
    b["layers"][0]["gramian"]["interior"] = serde_json::json!(permuted);
    let d = diagnosis_of(&run(&a, &b), "layers[0].gramian.interior");
    assert!(d.contains("KFAC basis"), "{d}");
}

#[test]
fn a_commuted_kronecker_order_is_named() {
    let a = reference();
    let mut b = a.clone();
    // Layer 1 (64 → 1): [W | b] is 1 × 65; commuting gives the Gramian basis order
    // unchanged, so use layer 0 (64 × 3): B ⊗ A ↦ A ⊗ B.
    let g = matrix(&a["layers"][0]["gramian"]["boundary"]);
    let (p, q, d_in) = (64, 3, 2);
    let to_kfac = |k: usize| {
        if k % q < d_in {
            (k / q) * d_in + k % q
        } else {
            p * d_in + k / q
        }
    };
    let commute = |g_idx: usize| {
        let k = (0..p * q).find(|&k| to_kfac(k) == g_idx).unwrap();
        to_kfac((k % p) * q + k / p)
    };
    let n = g.len();
    let perm: Vec<usize> = (0..n).map(commute).collect();
    let commuted: Vec<Vec<f64>> = (0..n)
        .map(|r| (0..n).map(|c| g[perm[r]][perm[c]]).collect())
        .collect();
    b["layers"][0]["gramian"]["boundary"] = serde_json::json!(commuted);
    let d = diagnosis_of(&run(&a, &b), "layers[0].gramian.boundary");
    assert!(d.contains("A ⊗ B in place of B ⊗ A"), "{d}");
}

#[test]
fn swapped_factors_are_named() {
    let a = reference();
    let mut b = a.clone();
    let (fa, fb) = (
        a["layers"][0]["kfac"]["interior"]["A"].clone(),
        a["layers"][0]["kfac"]["interior"]["B"].clone(),
    );
    b["layers"][0]["kfac"]["interior"]["A"] = fb;
    b["layers"][0]["kfac"]["interior"]["B"] = fa;
    let d = diagnosis_of(&run(&a, &b), "layers[0].kfac.interior");
    assert!(d.contains("A and B swapped"), "{d}");
}

#[test]
fn factors_of_n_and_sqrt_n_are_named() {
    let a = reference();
    for (factor, expected) in [(30.0, "a factor of N = 30"), (30f64.sqrt(), "√N")] {
        let mut b = a.clone();
        map(&mut b["layers"][0]["kfac"]["interior"]["B"], &|x| {
            x * factor
        });
        let d = diagnosis_of(&run(&a, &b), "layers[0].kfac.interior.B");
        assert!(d.contains(expected), "{d}");
    }
    let mut b = a.clone();
    map(&mut b["layers"][1]["gramian"]["boundary"], &|x| x * 5.0);
    let d = diagnosis_of(&run(&a, &b), "layers[1].gramian.boundary");
    assert!(d.contains("a factor of N = 5"), "{d}");
}

#[test]
fn bias_values_in_place_of_bias_gradients_are_named() {
    let a = reference();
    let mut b = a.clone();
    b["layers"][0]["grad"]["bias"] = a["layers"][0]["params"]["bias"].clone();
    let d = diagnosis_of(&run(&a, &b), "layers[0].grad.bias");
    assert!(d.contains("bias values in place of bias gradients"), "{d}");
}

#[test]
fn damping_added_once_is_named() {
    use kfac_check::kronecker::{kron, vector_to_gramian_basis, vector_to_kfac_basis};
    use kfac_check::mlp::Mlp;
    let a = reference();
    let mut b = a.clone();
    // B's direction: −(B_Ω⊗A_Ω + B_∂⊗A_∂ + λI)⁻¹ g, computed here from the dump.
    let layer = &Mlp::new(2, &[64]).layers()[0];
    let m = |v: &Value| {
        let x = matrix(v);
        faer::Mat::from_fn(x.len(), x.len(), |i, j| x[i][j])
    };
    let l = &a["layers"][0];
    let mut k = kron(
        m(&l["kfac"]["interior"]["B"]).as_ref(),
        m(&l["kfac"]["interior"]["A"]).as_ref(),
    ) + kron(
        m(&l["kfac"]["boundary"]["B"]).as_ref(),
        m(&l["kfac"]["boundary"]["A"]).as_ref(),
    );
    for i in 0..k.nrows() {
        k[(i, i)] += 1e-3;
    }
    let mut g: Vec<f64> = matrix(&l["grad"]["weight"]).concat();
    g.extend(serde_json::from_value::<Vec<f64>>(l["grad"]["bias"].clone()).unwrap());
    let x = kfac_check::least_squares::solve(k.as_ref(), &vector_to_kfac_basis(layer, &g)).unwrap();
    let delta: Vec<f64> = vector_to_gramian_basis(layer, &x)
        .iter()
        .map(|v| -v)
        .collect();
    let weight: Vec<Vec<f64>> = delta[..128].chunks(2).map(<[f64]>::to_vec).collect();
    b["layers"][0]["direction"]["kfac"] =
        serde_json::json!({"weight": weight, "bias": &delta[128..]});
    let d = diagnosis_of(&run(&a, &b), "layers[0].direction.kfac");
    assert!(d.contains("added once"), "{d}");
}

#[test]
fn bad_dumps_are_rejected_with_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let a = reference();
    let path_a = dir.path().join("a.json");
    std::fs::write(&path_a, a.to_string()).unwrap();
    let cli = |b: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kfac-check"))
            .arg("diff")
            .arg(&path_a)
            .arg(b)
            .output()
            .unwrap()
    };
    let text = a.to_string();
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let o = cli(&truncated);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("truncated.json"));

    let non_finite = dir.path().join("nonfinite.json");
    std::fs::write(
        &non_finite,
        text.replacen("\"interior\":", "\"interior\":1e999,\"x\":", 1),
    )
    .unwrap();
    let o = cli(&non_finite);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let mut other = a.clone();
    other["layers"][0]["d_in"] = serde_json::json!(3);
    let other_path = dir.path().join("other.json");
    std::fs::write(&other_path, other.to_string()).unwrap();
    let o = cli(&other_path);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("shape mismatch: layer 0"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = cli(&path_a);
    assert_eq!(o.status.code(), Some(0));
    let mut changed = a.clone();
    changed["loss"]["interior"] = serde_json::json!(1.0);
    let changed_path = dir.path().join("changed.json");
    std::fs::write(&changed_path, changed.to_string()).unwrap();
    assert_eq!(cli(&changed_path).status.code(), Some(1));
}
