//! install: puts this binary into a CNI bin dir (`router install --cni-bin-dir DIR`, what
//! the DaemonSet's init container runs on every node). The copy is written under a
//! temporary name in DIR, fsynced and made 0755, then renamed over `DIR/router`: a runtime
//! starting the plugin meanwhile runs the old binary or the new one, never half of one
//! (a running plugin keeps the old inode). Nothing is written when `DIR/router` already has
//! the same contents. No kernel access; no decisions about networks.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::atomic_write;
use crate::error::{Error, Result};

/// The plugin type runtimes look up in the bin dir.
pub const BINARY_NAME: &str = "router";
const MODE: u32 = 0o755;
const CHUNK: usize = 64 * 1024;

/// What `install` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    /// There was no `router` in the directory.
    Fresh,
    /// Another `router` was there and was replaced.
    Replaced,
    /// The same binary was there already: nothing was written.
    Unchanged,
}

/// Copies `source` to `dir/router` atomically, unless the same contents are there.
pub fn install(source: &Path, dir: &Path) -> Result<Installed> {
    let target = dir.join(BINARY_NAME);
    let existed = target.exists();
    if existed && same_contents(source, &target)? {
        ensure_mode(&target)?;
        return Ok(Installed::Unchanged);
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let tmp = dir.join(format!(".{BINARY_NAME}.install-{}.tmp", std::process::id()));
    let written = write_copy(source, &tmp).and_then(|_| {
        fs::rename(&tmp, &target)
            .map_err(|e| Error::io(format!("renaming to {}", target.display()), e))
    });
    if let Err(e) = written {
        // Best effort: a leftover temp file is harmless but untidy; the error matters more.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // A node that loses power right after still has one binary.
    atomic_write::sync_dir(dir)?;
    Ok(if existed {
        Installed::Replaced
    } else {
        Installed::Fresh
    })
}

/// The binary of the running process, what `router install` copies.
pub fn current_binary() -> Result<PathBuf> {
    std::env::current_exe().map_err(|e| Error::io("finding the running binary", e))
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// Byte for byte, sizes first (a version stamp could lie after a rebuild; contents cannot).
fn same_contents(a: &Path, b: &Path) -> Result<bool> {
    let size = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.len())
            .map_err(|e| Error::io(format!("reading {}", p.display()), e))
    };
    if size(a)? != size(b)? {
        return Ok(false);
    }
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    loop {
        let n = read_full(&mut fa, &mut ba)
            .map_err(|e| Error::io(format!("reading {}", a.display()), e))?;
        let m = read_full(&mut fb, &mut bb)
            .map_err(|e| Error::io(format!("reading {}", b.display()), e))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Fills `buf` as far as the file allows (a short read is not the end of a file).
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn write_copy(source: &Path, tmp: &Path) -> Result<()> {
    let what = || format!("writing {}", tmp.display());
    let mut input = open(source)?;
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(tmp)
        .map_err(|e| Error::io(what(), e))?;
    io::copy(&mut input, &mut output).map_err(|e| Error::io(what(), e))?;
    output.flush().map_err(|e| Error::io(what(), e))?;
    // The umask may have narrowed the mode given at creation.
    output
        .set_permissions(fs::Permissions::from_mode(MODE))
        .and_then(|_| output.sync_all())
        .map_err(|e| Error::io(what(), e))
}

fn ensure_mode(path: &Path) -> Result<()> {
    let what = || format!("setting the mode of {}", path.display());
    let mode = fs::metadata(path)
        .map_err(|e| Error::io(what(), e))?
        .permissions()
        .mode();
    if mode & 0o7777 == MODE {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(MODE)).map_err(|e| Error::io(what(), e))
}

#[cfg(test)]
mod tests;
