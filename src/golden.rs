//! Golden logs: our own output for every command of the seed log, with the
//! Time column redacted, kept as insta snapshots under `snapshots/`.
//! `kfac-check golden --regen` rewrites them (atomically) and `--check`
//! reports any difference; `tests/golden.rs` runs the same check in CI.

use crate::debug_log::{self, DocumentedRun};
use crate::optimizer::NoObserver;
use crate::output_file::write_atomically;
use crate::train::train;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub const SEED_LOG: &str = "fixtures/seed_log.md";
pub const SNAPSHOT_DIR: &str = "snapshots";

/// `Time: 1.7s` → `Time: [redacted]`: the one column that is not deterministic.
pub fn redact_time(log: &str) -> String {
    log.lines()
        .map(|l| match l.rfind(", Time: ") {
            Some(i) if l.starts_with("Step:") => format!("{}, Time: [redacted]", &l[..i]),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Snapshot name of the seed's `index`-th command (0-based).
pub fn snapshot_name(index: usize) -> String {
    format!("seed_command_{}", index + 1)
}

/// Our redacted output for one documented command.
pub fn golden_log(run: &DocumentedRun) -> Result<String> {
    let config = run.train_args()?.to_config()?;
    let mut out = Vec::new();
    train(&config, &mut out, &mut NoObserver)?;
    Ok(redact_time(&String::from_utf8(out).expect("log is UTF-8")))
}

/// The insta snapshot file for a golden log.
pub fn snapshot_file(command: &str, log: &str) -> String {
    format!("---\nsource: tests/golden.rs\ndescription: {command}\n---\n{log}\n")
}

fn snapshot_path(root: &Path, index: usize) -> PathBuf {
    root.join(SNAPSHOT_DIR)
        .join(format!("{}.snap", snapshot_name(index)))
}

/// The stored log of a snapshot file (what follows the second `---`).
fn stored_log(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("---\n")?;
    let end = rest.find("\n---\n")?;
    Some(rest[end + 5..].trim_end_matches('\n'))
}

/// One golden log's state.
pub struct GoldenStatus {
    pub path: PathBuf,
    pub ours: String,
    pub stored: Option<String>,
}

impl GoldenStatus {
    pub fn matches(&self) -> bool {
        self.stored.as_deref() == Some(self.ours.as_str())
    }
}

/// Run every seed command and read the stored snapshots; `root` is the repository.
pub fn statuses(root: &Path) -> Result<Vec<GoldenStatus>> {
    let runs = debug_log::read(&root.join(SEED_LOG))?;
    runs.iter()
        .enumerate()
        .map(|(i, run)| {
            let path = snapshot_path(root, i);
            let ours = golden_log(run)
                .with_context(|| format!("command at {SEED_LOG}:{}", run.command_line))?;
            let stored = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| stored_log(&t).map(str::to_string));
            Ok(GoldenStatus { path, ours, stored })
        })
        .collect()
}

/// Rewrite every snapshot from our output.
pub fn regenerate(root: &Path) -> Result<Vec<PathBuf>> {
    let runs = debug_log::read(&root.join(SEED_LOG))?;
    let statuses = statuses(root)?;
    for (run, status) in runs.iter().zip(&statuses) {
        write_atomically(
            &status.path,
            snapshot_file(&run.command, &status.ours).as_bytes(),
        )?;
    }
    Ok(statuses.into_iter().map(|s| s.path).collect())
}
