//! Properties of the Kronecker factors on random small problems (in the
//! spirit of curvlinops' tests: each approximation against the exact
//! Gramian, at explicit tolerances).
use faer::Mat;
use kfac_check::gramian::layer_blocks;
use kfac_check::kronecker::{
    InteriorBRows, KfacSettings, kfac_to_gramian_basis, kron, kronecker_factors,
};
use kfac_check::mlp::Mlp;
use kfac_check::pinn::Pinn;
use kfac_check::problem::{Data, Equation, Points};
use proptest::prelude::*;

#[derive(Debug)]
struct Problem {
    pinn: Pinn,
    theta: Vec<f64>,
}

fn problem() -> impl Strategy<Value = Problem> {
    (
        1usize..=3,
        prop::collection::vec(1usize..=8, 1..=3),
        1usize..=4,
    )
        .prop_flat_map(|(dim, hidden, n_interior)| {
            let mlp = Mlp::new(dim, &hidden);
            let n_params = mlp.n_params();
            (
                Just(mlp),
                prop::collection::vec(-1.5f64..1.5, n_params),
                prop::collection::vec(0.0f64..1.0, n_interior * dim),
                prop::collection::vec(0.0f64..1.0, dim),
            )
                .prop_map(move |(mlp, theta, interior, boundary)| {
                    let data = Data {
                        interior: Points {
                            dim,
                            coords: interior,
                        },
                        eval: Points {
                            dim,
                            coords: boundary.clone(),
                        },
                        boundary: Points {
                            dim,
                            coords: boundary,
                        },
                    };
                    Problem {
                        pinn: Pinn::new(mlp, Equation::Poisson, data),
                        theta,
                    }
                })
        })
}

/// Per layer, `‖P(B ⊗ A)Pᵀ − G‖_F / ‖G‖_F` for one term.
fn kfac_errors(p: &Problem, interior: bool, settings: &KfacSettings) -> Vec<f64> {
    let lin = p.pinn.linearize(&p.theta);
    let (l, r, j) = if interior {
        (
            &lin.interior,
            &lin.residual_interior,
            lin.jacobian_interior(),
        )
    } else {
        (
            &lin.boundary,
            &lin.residual_boundary,
            lin.jacobian_boundary(),
        )
    };
    let layers = p.pinn.mlp.layers();
    let factors = kronecker_factors(l, r, settings);
    layer_blocks(j.as_ref(), &layers)
        .iter()
        .enumerate()
        .map(|(i, exact)| {
            let approx: Mat<f64> = kfac_to_gramian_basis(
                &layers[i],
                kron(factors[i].b.as_ref(), factors[i].a.as_ref()).as_ref(),
            );
            (&approx - exact).norm_l2() / exact.norm_l2()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// REFERENCE §5: with one boundary point, `B_∂ ⊗ A_∂` is the exact per-layer boundary Gramian.
    #[test]
    fn one_boundary_point_makes_boundary_kfac_exact(p in problem()) {
        for (layer, err) in kfac_errors(&p, false, &KfacSettings::default()).iter().enumerate() {
            prop_assert!(*err <= 1e-12, "layer {layer}: relative error {err:e}");
        }
    }

    /// The interior approximation is not exact: its `d+2` Taylor rows per point
    /// make each point's Gramian a sum of several outer products, which `B ⊗ A`
    /// does not factor. Some layer is off by more than 1e-6, with either rows setting.
    #[test]
    fn interior_kfac_is_not_exact(p in problem()) {
        for rows in [InteriorBRows::InputDependent, InteriorBRows::All] {
            let settings = KfacSettings { interior_b_rows: rows, ..KfacSettings::default() };
            let errors = kfac_errors(&p, true, &settings);
            prop_assert!(errors.iter().any(|e| *e > 1e-6), "{rows:?}: errors {errors:?}");
        }
    }
}
