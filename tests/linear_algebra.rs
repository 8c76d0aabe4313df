//! The solvers against independent computations: dense inverses, the normal
//! equations and the null space.
use faer::prelude::Solve;
use faer::{Mat, Side};
use kfac_check::kronecker::kron;
use kfac_check::kronecker_inverse::KroneckerSumInverse;
use kfac_check::least_squares::{PseudoInverse, solve};
use proptest::prelude::*;

fn random_matrix(rows: usize, cols: usize, seed: u64) -> Mat<f64> {
    let mut rng = kfac_check::torch_rng::TorchGenerator::manual_seed(seed);
    let v = rng.rand_f64(rows * cols);
    Mat::from_fn(rows, cols, |i, j| 2.0 * v[i * cols + j] - 1.0)
}

/// `X Xᵀ + shift·I`: symmetric positive (semi)definite.
fn spd(n: usize, rank: usize, shift: f64, seed: u64) -> Mat<f64> {
    let x = random_matrix(n, rank, seed);
    let mut m = &x * x.transpose();
    for i in 0..n {
        m[(i, i)] += shift;
    }
    m
}

fn row_major(m: &Mat<f64>) -> Vec<f64> {
    (0..m.nrows())
        .flat_map(|i| (0..m.ncols()).map(move |j| m[(i, j)]))
        .collect()
}

/// `‖K⁻¹v − dense solve‖ / ‖dense solve‖` for `K = B₁ ⊗ A₁ + B₂ ⊗ A₂` with
/// random SPD factors, `B` of size `p`, `A` of size `q`.
fn kronecker_sum_inverse_error(p: usize, q: usize, seed: u64) -> f64 {
    let (a1, b1) = (spd(q, q, 0.1, seed), spd(p, p, 0.1, seed + 1));
    let (a2, b2) = (spd(q, q, 0.1, seed + 2), spd(p, p, 0.1, seed + 3));
    let v = random_matrix(p, q, seed + 4);
    let ours = KroneckerSumInverse::new(a1.as_ref(), b1.as_ref(), a2.as_ref(), b2.as_ref())
        .unwrap()
        .apply(v.as_ref());
    let k = kron(b1.as_ref(), a1.as_ref()) + kron(b2.as_ref(), a2.as_ref());
    let rhs = Mat::from_fn(p * q, 1, |r, _| row_major(&v)[r]);
    let dense = k.llt(Side::Lower).unwrap().solve(&rhs);
    let dense = Mat::from_fn(p, q, |i, j| dense[(i * q + j, 0)]);
    (&ours - &dense).norm_l2() / dense.norm_l2()
}

/// Each of the three ways: the input side alone (`A` small), the output
/// side alone (`B` small, as for the output layer), both sides (neither
/// small; above 16).
#[test]
fn each_kronecker_sum_method_equals_the_dense_inverse() {
    for (p, q) in [(40, 3), (2, 30), (18, 17)] {
        let err = kronecker_sum_inverse_error(p, q, 7);
        assert!(err < 1e-10, "p = {p}, q = {q}: relative error {err:e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// `K⁻¹ v` equals the dense solve of `B₁ ⊗ A₁ + B₂ ⊗ A₂`, for random
    /// SPD factors of any sizes.
    #[test]
    fn kronecker_sum_inverse_equals_dense_inverse(p in 1usize..20, q in 1usize..20, seed in 0u64..10_000) {
        let err = kronecker_sum_inverse_error(p, q, seed);
        prop_assert!(err < 1e-10, "relative error {err:e}");
    }

    /// On rank-deficient symmetric matrices the solve is the minimum-norm
    /// least-squares solution: it satisfies the normal equations and is
    /// orthogonal to the null space.
    #[test]
    fn least_squares_is_the_pseudo_inverse(n in 2usize..8, seed in 0u64..10_000) {
        let rank = 1 + (seed as usize) % (n - 1);
        let basis = random_matrix(n, rank, seed);
        let m = &basis * basis.transpose();
        let b: Vec<f64> = row_major(&random_matrix(n, 1, seed + 1));
        let x = solve(m.as_ref(), &b).unwrap();
        let xm = Mat::from_fn(n, 1, |i, _| x[i]);
        let bm = Mat::from_fn(n, 1, |i, _| b[i]);
        // Mᵀ(Mx − b) = 0
        let normal = m.transpose() * (&m * &xm - &bm);
        prop_assert!(normal.norm_l2() <= 1e-10 * (m.norm_l2().powi(2) * bm.norm_l2()).max(1.0));
        // x ⟂ null(M) = range(basis)ᗮ: x lies in range(basis).
        let projection = &basis * basis.as_ref().thin_svd().unwrap().pseudoinverse() * &xm;
        prop_assert!((&projection - &xm).norm_l2() <= 1e-8 * xm.norm_l2().max(1e-300));
        prop_assert_eq!(PseudoInverse::new(m.as_ref()).unwrap().rank(), rank);
    }
}

#[test]
fn the_cutoff_drops_what_gelsd_drops() {
    let diag = |small: f64| {
        Mat::from_fn(2, 2, |i, j| {
            if i != j {
                0.0
            } else if i == 0 {
                1.0
            } else {
                small
            }
        })
    };
    // diag(1, 1e-17): 1e-17 ≤ ε·2·1, so it is treated as zero.
    assert_eq!(
        solve(diag(1e-17).as_ref(), &[2.0, 3.0]).unwrap(),
        [2.0, 0.0]
    );
    let m = diag(1e-10);
    let x = solve(m.as_ref(), &[2.0, 3.0]).unwrap();
    assert!((x[1] - 3e10).abs() < 1e-3, "{x:?}");
}

/// The damped PSD solve: the Cholesky shortcut agrees with the SVD where the
/// cutoff cannot bite, and an undamped rank-deficient Gramian still gets the
/// minimum-norm least-squares solution.
#[test]
fn damped_psd_solve_agrees_with_the_pseudo_inverse() {
    use kfac_check::least_squares::solve_damped_psd;
    let c = spd(12, 5, 0.0, 7); // rank 5
    let b: Vec<f64> = row_major(&random_matrix(12, 1, 8));
    for damping in [1e-3, 1e-1] {
        let mut m = c.clone();
        for i in 0..12 {
            m[(i, i)] += damping;
        }
        let (fast, svd) = (
            solve_damped_psd(c.as_ref(), damping, &b).unwrap(),
            solve(m.as_ref(), &b).unwrap(),
        );
        let err = fast
            .iter()
            .zip(&svd)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
            / svd.iter().fold(0.0f64, |m, y| m.max(y.abs()));
        // κ ≤ (tr C + λ)/λ; the two solves differ by a few κ·ε.
        assert!(err < 1e-11, "λ={damping}: {err:e}");
    }
    assert_eq!(
        solve_damped_psd(c.as_ref(), 0.0, &b).unwrap(),
        solve(c.as_ref(), &b).unwrap()
    );
}
