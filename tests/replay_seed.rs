//! The showcase: the replay report of the seed log, as an insta snapshot.
//! The report's own claims are tested in `documented_runs.rs` and
//! `checker.rs`; this test pins its whole text.
use kfac_check::replay::{Status, render, replay};
use std::path::Path;

#[test]
fn seed_replay_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let report = replay(&root.join("fixtures/seed_log.md"), true).unwrap();
    let status: Vec<&Status> = report.blocks.iter().map(|b| &b.status).collect();
    assert!(matches!(
        status[..],
        [
            Status::Reproduces,
            Status::Reproduces,
            Status::Reproduces,
            Status::DoesNotReproduce,
            Status::NoDocumentedOutput
        ]
    ));
    let best = &report.blocks[3].provenance.as_ref().unwrap().ranking[0].changes;
    assert_eq!(best, &["--N_dOmega=1", "--KFAC_USE_EXACT_INTERIOR_GRAMIAN"]);
    let text = render(&report).replace(&root.join("fixtures").display().to_string(), "fixtures");
    insta::with_settings!({snapshot_path => root.join("snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("seed_replay_report", text);
    });
}
