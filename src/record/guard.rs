//! record::guard: the host lock (an flock on `data_dir/host.lock`, polled up to a timeout,
//! its wait logged) and whether data_dir is usable (STATUS). Must not decide what the lock
//! covers (reconcile does).

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::{FileRecords, HostGuard};
use crate::error::{Error, Result};

/// Holds the host lock while alive (an flock on `data_dir/host.lock`, released on close).
pub struct HostLock {
    pub(super) _file: Option<Flock<fs::File>>,
}

/// How long an ADD or DEL waits for the host lock before answering "try again" (code 11).
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);
const LOCK_POLL: Duration = Duration::from_millis(5);

impl HostGuard for FileRecords {
    fn lock_host(&self) -> Result<HostLock> {
        self.ensure_dir()?;
        let path = self.dir.join("host.lock");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("opening lock {}", path.display()), e))?;
        let started = Instant::now();
        let deadline = started + LOCK_TIMEOUT;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    // How long concurrent ADDs and DELs queue on the node (the scale test
                    // reads it).
                    tracing::debug!(
                        waited_us = started.elapsed().as_micros() as u64,
                        "host lock acquired"
                    );
                    return Ok(HostLock { _file: Some(lock) });
                }
                Err((unlocked, Errno::EWOULDBLOCK)) => file = unlocked,
                Err((_, errno)) => {
                    let err = std::io::Error::from(errno);
                    return Err(Error::io(format!("locking {}", path.display()), err));
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::TryAgain(format!(
                    "the host lock {} is held by another ADD or DEL for over {}s",
                    path.display(),
                    LOCK_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    fn check_usable(&self) -> Result<()> {
        let unusable = |e: &dyn std::fmt::Display| {
            Error::NotAvailable(format!(
                "data_dir {} is not usable: {e}",
                self.dir.display()
            ))
        };
        self.ensure_dir().map_err(|e| unusable(&e))?;
        self.probe_write().map_err(|e| unusable(&e))
    }
}
