//! confined: directories and files inside an allowed directory (`config::AllowedDirs`),
//! reached one component at a time with `O_NOFOLLOW`, so that no symlink below the allowed
//! directory leads out of it. The allowed directory itself is taken as the operator names
//! it (`/var/run` is a link to `/run`). It decides nothing about what is allowed (config
//! does) and touches no file but the ones it is asked for.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{mkdirat, Mode};

/// Mode of the allowed directory when it has to be created (a ROUTER_ALLOWED_DIRS entry
/// that does not exist yet).
const ROOT_MODE: u32 = 0o700;

/// The allowed directory itself, symlinks in its path followed (the operator named it).
fn open_root(root: &Path) -> io::Result<OwnedFd> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).bits())
        .open(root)
        .map(OwnedFd::from)
}

/// Opens the directory `name` in `parent`, never through a symlink.
fn open_child_dir(parent: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    Ok(openat(parent, name, flags, Mode::empty())?)
}

fn refuse_link(dir: &Path, name: &OsStr, err: io::Error) -> io::Error {
    let errno = err.raw_os_error().map(Errno::from_raw);
    if matches!(errno, Some(Errno::ELOOP) | Some(Errno::ENOTDIR)) {
        return io::Error::new(
            err.kind(),
            format!(
                "{} in {} is a symlink or not a directory (not followed)",
                Path::new(name).display(),
                dir.display()
            ),
        );
    }
    err
}

/// The directory `dir` (inside `root`), opened component by component below `root` without
/// following a symlink. `create`: missing directories are made with that mode (existing
/// ones are used as they are, never loosened); without it a missing one is `Ok(None)`.
pub fn open_dir(root: &Path, dir: &Path, create: Option<u32>) -> io::Result<Option<OwnedFd>> {
    let below = dir.strip_prefix(root).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not inside {}", dir.display(), root.display()),
        )
    })?;
    let mut current = match open_root(root) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound && create.is_some() => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(ROOT_MODE)
                .create(root)?;
            open_root(root)?
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut walked = root.to_path_buf();
    for part in below.components() {
        let Component::Normal(name) = part else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a normalised path", dir.display()),
            ));
        };
        let next = match (open_child_dir(&current, name), create) {
            (Err(e), Some(mode)) if e.kind() == io::ErrorKind::NotFound => {
                // Another process may make it first: then it is opened as it is.
                match mkdirat(&current, name, Mode::from_bits_truncate(mode)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open_child_dir(&current, name)
            }
            (Err(e), None) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            (other, _) => other,
        };
        current = next.map_err(|e| refuse_link(&walked, name, e))?;
        walked.push(name);
    }
    Ok(Some(current))
}

/// Opens the file `name` in the directory `dir`: never through a symlink, never blocking on a
/// FIFO, and only a regular file. `create`: for appending (and reading from the start),
/// created with that mode when missing; without it read only.
pub fn open_file(dir: &OwnedFd, name: &OsStr, create: Option<u32>) -> io::Result<File> {
    let common = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let (flags, mode) = match create {
        Some(mode) => (
            common | OFlag::O_RDWR | OFlag::O_APPEND | OFlag::O_CREAT,
            Mode::from_bits_truncate(mode),
        ),
        None => (common | OFlag::O_RDONLY, Mode::empty()),
    };
    let fd = openat(dir, name, flags, mode)
        .map_err(|e| refuse_link(Path::new("its directory"), name, e.into()))?;
    let file = File::from(fd);
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", Path::new(name).display()),
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests;
