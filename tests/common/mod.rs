//! Shared test helpers: the documented set-up and the reference system's own
//! step-0 numbers (`fixtures/oracle_step0_N1.json`, copied from `shared/oracle`).
#![allow(dead_code)]

use kfac_check::mlp::{Mlp, ModelName};
use kfac_check::pinn::Pinn;
use kfac_check::problem::{Data, Equation};
use serde_json::Value;

pub fn documented_pinn(n_boundary: usize) -> (Pinn, Vec<f64>) {
    let mlp = Mlp::from_name(ModelName::Tanh64, 2);
    let data = Data::generate(0, 900, n_boundary, 2);
    let theta = mlp.init_params(1);
    (Pinn::new(mlp, Equation::Poisson, data), theta)
}

pub fn oracle() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/oracle_step0_N1.json"
    ))
    .expect("oracle fixture");
    serde_json::from_str(&text).expect("oracle JSON")
}

pub fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .flat_map(|x| match x {
            Value::Array(_) => floats(x),
            _ => vec![x.as_f64().expect("number")],
        })
        .collect()
}

/// `max |a − b| / max |b|`.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let den = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    num / den
}
