//! atomic_write: replaces a file so that a reader sees the old contents or the new, never
//! half of them: a temporary file in the same directory (same filesystem, so the rename
//! is atomic), written, fsynced, renamed over the target, then the directory fsynced.
//! node-exporter's textfile collector asks this of `router check --write`. No decisions.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `contents` to `path` atomically with `mode`. The temporary name starts with a
/// dot and ends in `.tmp`, so collectors that read `*.prom` never pick it up.
pub fn write(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::InvalidEnv(format!("{} names no file", path.display())))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = write_synced(&tmp, contents, mode).and_then(|_| {
        fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming to {}", path.display()), e))
    });
    if let Err(e) = written {
        // Best effort: a leftover temporary file is untidy; the error matters more.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

fn write_synced(tmp: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let what = || format!("writing {}", tmp.display());
    // O_NOFOLLOW: a link planted under the temporary name is not written through.
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)
        .map_err(|e| Error::io(what(), e))?;
    file.write_all(contents)
        .and_then(|_| file.set_permissions(fs::Permissions::from_mode(mode)))
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(what(), e))
}

/// Makes a rename durable: after a power loss the directory holds the old file or the new.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", dir.display()), e))
}

#[cfg(test)]
mod tests;
