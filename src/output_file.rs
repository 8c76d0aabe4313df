//! Every file kfac-check writes goes through here: written to a temporary
//! file beside the target and renamed, so a failure never leaves a partial
//! or corrupted file.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Fail early if `path` cannot be written (missing or read-only directory),
/// before any expensive work.
pub fn check_writable(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |file| Ok(file.write_all(bytes)?))
}

/// Let `write` fill a temporary file beside `path`, then rename it into place.
/// If `write` fails, the temporary file is removed and `path` is untouched.
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<()>,
) -> Result<()> {
    via_temporary_file(path, |tmp| write(tmp.as_file_mut()))
}

/// The one place that creates, fills and renames a temporary file beside
/// `path` (with `path`'s extension, for writers that go by it).
pub fn via_temporary_file(
    path: &Path,
    fill: impl FnOnce(&mut tempfile::NamedTempFile) -> Result<()>,
) -> Result<()> {
    let suffix = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .suffix(&suffix)
        .tempfile_in(parent_dir(path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    fill(&mut tmp).with_context(|| format!("cannot write {}", path.display()))?;
    // A temporary file is private (0600); the result should be an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
