//! Golden logs: our own output for all five seed commands (Time redacted),
//! as insta snapshots under `snapshots/`. Regenerate with
//! `kfac-check golden --regen` (or `INSTA_UPDATE=always cargo test --test golden`).

use kfac_check::debug_log;
use kfac_check::golden::{SEED_LOG, golden_log, snapshot_name};
use std::path::Path;

#[test]
fn golden_logs_are_unchanged() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let runs = debug_log::read(&root.join(SEED_LOG)).unwrap();
    assert_eq!(runs.len(), 5);
    for (i, run) in runs.iter().enumerate() {
        let log = golden_log(run).unwrap();
        insta::with_settings!({
            snapshot_path => root.join("snapshots"),
            prepend_module_to_snapshot => false,
            description => run.command.clone(),
            omit_expression => true,
        }, {
            insta::assert_snapshot!(snapshot_name(i), log);
        });
    }
}
