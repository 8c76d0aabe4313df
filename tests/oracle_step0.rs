//! Step 0 against the reference system's own numbers (`N_dOmega = 1`).
mod common;
use common::*;
use kfac_check::gramian::layer_blocks;
use kfac_check::kronecker::{KfacSettings, kronecker_factors};

#[test]
fn initial_parameters_are_bit_identical() {
    let (pinn, theta) = documented_pinn(1);
    let oracle = oracle();
    let mut expected = Vec::new();
    for layer in oracle["params_init"].as_array().unwrap() {
        expected.extend(floats(&layer["weight_row_major"]));
        expected.extend(floats(&layer["bias"]));
    }
    assert_eq!(theta, expected);
    assert_eq!(pinn.data.boundary.coords, floats(&oracle["X_dOmega"]));
    assert_eq!(
        pinn.data.interior.coords[..40],
        floats(&oracle["X_Omega_first20"])[..]
    );
    assert_eq!(
        pinn.data.eval.coords[..20],
        floats(&oracle["X_Omega_eval_first10"])[..]
    );
}

#[test]
fn gradient_matches_both_reference_code_paths() {
    let (pinn, theta) = documented_pinn(1);
    let lin = pinn.linearize(&theta);
    let oracle = oracle();
    for path in ["grad_forward_laplacian_path", "grad_autograd_path"] {
        let mut expected = Vec::new();
        for layer in oracle[path].as_array().unwrap() {
            expected.extend(floats(&layer["weight_row_major"]));
            expected.extend(floats(&layer["bias"]));
        }
        let err = rel_err(&lin.gradient, &expected);
        assert!(err < 1e-13, "{path}: relative error {err:e}");
    }
}

#[test]
fn per_layer_gramians_match_reference() {
    let (pinn, theta) = documented_pinn(1);
    let lin = pinn.linearize(&theta);
    let oracle = oracle();
    let layers = pinn.mlp.layers();
    for (name, jac) in [
        ("interior_gramian_per_layer", lin.jacobian_interior()),
        ("boundary_gramian_per_layer", lin.jacobian_boundary()),
    ] {
        let blocks = layer_blocks(jac.as_ref(), &layers);
        for (l, block) in blocks.iter().enumerate() {
            let ours: Vec<f64> = (0..block.nrows())
                .flat_map(|r| (0..block.ncols()).map(move |c| block[(r, c)]))
                .collect();
            let err = rel_err(&ours, &floats(&oracle[name][l]));
            assert!(err < 1e-13, "{name} layer {l}: relative error {err:e}");
        }
    }
}

#[test]
fn kronecker_factors_match_reference() {
    let (pinn, theta) = documented_pinn(1);
    let lin = pinn.linearize(&theta);
    let oracle = oracle();
    let settings = KfacSettings::default();
    for (name, linearization, residual) in [
        ("kfac_interior", &lin.interior, &lin.residual_interior),
        ("kfac_boundary", &lin.boundary, &lin.residual_boundary),
    ] {
        for (l, f) in kronecker_factors(linearization, residual, &settings)
            .iter()
            .enumerate()
        {
            for (key, m) in [("A", &f.a), ("B", &f.b)] {
                let ours: Vec<f64> = (0..m.nrows())
                    .flat_map(|r| (0..m.ncols()).map(move |c| m[(r, c)]))
                    .collect();
                let err = rel_err(&ours, &floats(&oracle[name][l][key]));
                assert!(
                    err < 1e-13,
                    "{name} layer {l} {key}: relative error {err:e}"
                );
            }
        }
    }
}
