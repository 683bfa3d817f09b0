//! Writing files whole or not at all, for every kinglet crate that writes outputs (models,
//! `.tflite` files, checkpoints, reports, generated sources).

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` so that a reader, or a process killed at any moment, sees the old
/// file, the new file or none, never part of one: a temporary file beside it, synced, then
/// renamed over it. The temporary file is named after the target (`.<name>.<random>.tmp`), so
/// the next write of the same file clears what a killed write left behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} names no file", path.display())))?
        .to_string_lossy();
    let prefix = format!(".{name}.");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let other = entry.file_name();
            let other = other.to_string_lossy();
            if other.starts_with(&prefix) && other.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // Outputs are ordinary files (subject to the umask), not the 0600 of a private temporary.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_clears_what_a_killed_write_left() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("model.tflite");
        // What a write killed between creating and renaming its temporary file leaves.
        let stale = dir.path().join(".model.tflite.abc123.tmp");
        std::fs::write(&stale, b"half").unwrap();
        let other = dir.path().join(".other.json.abc123.tmp");
        std::fs::write(&other, b"someone else's").unwrap();
        write_atomic(&target, b"first").unwrap();
        write_atomic(&target, b"second").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"second");
        assert!(!stale.exists());
        assert!(other.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}
