//! `cargo bench`: the phases of one optimizer step at the documented set-up
//! (N_Ω = 900, N_∂ = 120, mlp-tanh-64): one loss evaluation (the line search
//! does 31), the linearisation, and the ENGD per_layer and plain KFAC directions.
use criterion::{Criterion, criterion_group, criterion_main};
use kfac_check::debug_log::parse_train_args;
use kfac_check::line_search::{Grid, StepSize, choose_step};
use kfac_check::loss_series::LossSeries;
use kfac_check::train::Trainer;
use std::hint::black_box;

// As in the binary: mimalloc, and this thread is a rayon worker, so that the
// fixed two-half splits fork at once instead of waking a sleeping pool.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn trainer(flags: &str) -> Trainer {
    let args: Vec<String> = flags.split_whitespace().map(str::to_string).collect();
    Trainer::new(&parse_train_args(&args).unwrap().to_config().unwrap())
}

fn phases(c: &mut Criterion) {
    kfac_check::pool::build_global().expect("the global pool, built once");
    let engd = "--optimizer=ENGD --ENGD_damping=1e-8 --ENGD_approximation=per_layer";
    let kfac = "--optimizer=KFAC --KFAC_damping=1e-8 --KFAC_ema_factor=0";
    let t = trainer(engd);
    c.bench_function("loss evaluation (one line-search candidate)", |b| {
        b.iter(|| black_box(t.pinn.losses(black_box(&t.theta))))
    });
    c.bench_function("linearize (forward Laplacian, backward, gradient)", |b| {
        b.iter(|| black_box(t.pinn.linearize(black_box(&t.theta))))
    });
    let lin = t.pinn.linearize(&t.theta);
    let direction = trainer(engd).optimizer.direction(0, &lin).unwrap();
    let grid = StepSize::GridLineSearch(Grid::default());
    c.bench_function("grid line search (ENGD per_layer direction, step 0)", |b| {
        b.iter(|| {
            black_box(choose_step(
                &t.pinn,
                &t.theta,
                &direction,
                lin.losses.total(),
                &grid,
            ))
        })
    });
    c.bench_function("loss series along the ENGD direction (one pass)", |b| {
        b.iter(|| black_box(LossSeries::along(&t.pinn, &t.theta, black_box(&direction))))
    });
    for (name, flags) in [
        (
            "ENGD per_layer direction (Jacobians formed once, outside)",
            engd,
        ),
        ("plain KFAC direction", kfac),
    ] {
        let mut t = trainer(flags);
        c.bench_function(name, |b| {
            b.iter(|| black_box(t.optimizer.direction(0, black_box(&lin)).unwrap()))
        });
    }
}

criterion_group! {
    name = benches;
    // No HTML plots: criterion's plotters would need a registered font.
    config = Criterion::default().sample_size(20).without_plots();
    targets = phases
}
criterion_main!(benches);
