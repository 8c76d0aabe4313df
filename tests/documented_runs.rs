//! The seed's documented trajectories against ours, field by field, at the
//! floors of `kfac_check::trajectory` (expected values: the seed's text).

use clap::Parser;
use kfac_check::debug_log::{self, DocumentedRun, TrainCommand, with_overrides};
use kfac_check::log_line::LogLine;
use kfac_check::optimizer::NoObserver;
use kfac_check::train::train;
use kfac_check::trajectory::compare;

fn seed_runs() -> Vec<DocumentedRun> {
    debug_log::read(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/seed_log.md"
    )))
    .unwrap()
}

fn run(args: &[String]) -> Vec<LogLine> {
    let config = TrainCommand::try_parse_from(args)
        .unwrap()
        .args
        .to_config()
        .unwrap();
    train(&config, &mut std::io::sink(), &mut NoObserver).unwrap()
}

fn documented(run: &DocumentedRun) -> Vec<LogLine> {
    run.output
        .as_ref()
        .expect("documented output")
        .iter()
        .map(|(_, l)| l.clone())
        .collect()
}

/// Every field of every documented line within its floor; the message lists
/// each field that is not.
fn assert_reproduces(documented: &[LogLine], ours: &[LogLine]) {
    let mut failures = Vec::new();
    for (step, fields) in compare(documented, ours) {
        let fields =
            fields.unwrap_or_else(|| panic!("step {step} documented but not logged by us"));
        for f in fields.iter().filter(|f| !f.within_floor) {
            failures.push(format!(
                "step {} {}: documented {} ours {} (rel {:.1e}, floor {:.0e})",
                f.step, f.field, f.documented, f.ours, f.relative_error, f.floor
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "outside the floors:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_seed_has_five_commands_four_with_output() {
    let runs = seed_runs();
    assert_eq!(runs.len(), 5);
    let with_output: Vec<usize> = runs
        .iter()
        .map(|r| r.output.as_ref().map_or(0, Vec::len))
        .collect();
    assert_eq!(with_output, [9, 9, 9, 9, 0]);
}

#[test]
fn engd_per_layer_at_one_boundary_point_reproduces() {
    let r = &seed_runs()[0];
    assert_reproduces(&documented(r), &run(&r.args));
}

#[test]
fn kfac_with_both_exact_gramians_at_one_boundary_point_reproduces() {
    let r = &seed_runs()[1];
    assert_reproduces(&documented(r), &run(&r.args));
}

#[test]
fn engd_per_layer_at_the_default_boundary_size_reproduces() {
    let r = &seed_runs()[2];
    assert_reproduces(&documented(r), &run(&r.args));
}

/// The fourth block ("plain KFAC", default N_dOmega = 120) does not come from
/// its command. Its step-0 line is the N_dOmega = 1 set-up's (Boundary
/// 0.0012282702, Loss 48.674902441834504, both also in the first block),
/// while the command's own set-up starts at Boundary 0.0129683607, Loss
/// 48.68664253228789 (the third block's). Plain KFAC at N_dOmega = 1 does not
/// fit either: its first step reaches 34.756 (oracle `kfac_first_step.kfac`),
/// the block reaches 28.603.
#[test]
fn plain_kfac_block_does_not_come_from_its_command() {
    let r = &seed_runs()[3];
    let doc = documented(r);
    let ours = run(&r.args);
    assert_eq!(format!("{:.10}", ours[0].boundary), "0.0129683607");
    assert_eq!(format!("{:.10}", doc[0].boundary), "0.0012282702");
    assert!((ours[1].loss - doc[1].loss).abs() / doc[1].loss > 0.1);

    let plain_n1 = run(&with_overrides(&r.args, &[("N_dOmega", Some("1"))]));
    assert!((plain_n1[1].loss - doc[1].loss).abs() / doc[1].loss > 0.1);
}

/// What the fourth block does come from: N_dOmega = 1 with the exact interior
/// Gramian (at N_dOmega = 1 the boundary KFAC is exact, so this is the same
/// curvature as the second block's both-exact run).
#[test]
fn plain_kfac_block_reproduces_at_one_boundary_point_with_exact_interior() {
    let r = &seed_runs()[3];
    let args = with_overrides(
        &r.args,
        &[
            ("N_dOmega", Some("1")),
            ("KFAC_USE_EXACT_INTERIOR_GRAMIAN", None),
        ],
    );
    assert_reproduces(&documented(r), &run(&args));
}

#[test]
fn the_fifth_command_runs_verbatim() {
    let r = &seed_runs()[4];
    assert!(r.output.is_none());
    let ours = run(&r.args);
    assert_eq!(
        ours.iter().map(|l| l.step).collect::<Vec<_>>(),
        [0, 1, 3, 5, 9, 17, 31, 55, 98]
    );
    assert!(ours.iter().all(|l| l.loss.is_finite()));
}
