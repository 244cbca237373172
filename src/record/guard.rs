//! record::guard: the host lock (an flock on `data_dir/host.lock`, waited for up to a
//! timeout, its wait logged) and whether data_dir is usable (STATUS). Must not decide what the lock
//! covers (reconcile does).

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::{FileRecords, HostGuard};
use crate::error::{Error, Result};

/// Holds the host lock while alive (an flock on `data_dir/host.lock`, released on close).
pub struct HostLock {
    pub(super) _file: Option<Flock<fs::File>>,
}

/// A wait for the host lock logged at info: this long means another run held it.
const NOTABLE_WAIT_US: u64 = 1000;

/// How long an ADD or DEL waits for the host lock before answering "try again" (code 11).
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

impl HostGuard for FileRecords {
    fn lock_host(&self) -> Result<HostLock> {
        self.lock_host_as(Hold::Exclusive)
    }

    fn lock_host_shared(&self) -> Result<HostLock> {
        self.lock_host_as(Hold::Shared)
    }

    fn hold_attachment(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<super::AttachmentLock>> {
        FileRecords::lock_attachment(self, container_id, ifname, false)
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

/// How a lock is held: alone, or beside other shared holders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hold {
    Exclusive,
    Shared,
}

impl Hold {
    fn args(self) -> (FlockArg, FlockArg) {
        match self {
            Hold::Exclusive => (FlockArg::LockExclusiveNonblock, FlockArg::LockExclusive),
            Hold::Shared => (FlockArg::LockSharedNonblock, FlockArg::LockShared),
        }
    }
}

impl FileRecords {
    fn lock_host_as(&self, hold: Hold) -> Result<HostLock> {
        self.ensure_dir()?;
        let path = self.dir.join("host.lock");
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("opening lock {}", path.display()), e))?;
        let started = Instant::now();
        let (at_once, waiting) = hold.args();
        let locked = match Flock::lock(file, at_once) {
            Ok(lock) => Ok(lock),
            Err((file, Errno::EWOULDBLOCK)) => wait_for_lock(file, &path, waiting),
            Err((_, errno)) => Err(lock_error(&path, errno)),
        }?;
        // How long concurrent ADDs and DELs queue on the node (the scale test and
        // scripts/bench.py read it): at info when the run waited long enough for an
        // operator to care (another run held the lock), else at debug.
        let waited_us = started.elapsed().as_micros() as u64;
        let shared = hold == Hold::Shared;
        if waited_us >= NOTABLE_WAIT_US {
            tracing::info!(waited_us, shared, "host lock acquired");
        } else {
            tracing::debug!(waited_us, shared, "host lock acquired");
        }
        Ok(HostLock {
            _file: Some(locked),
        })
    }
}

/// Waits for the lock held by another run: a blocking flock on a thread of its own, so the
/// kernel hands the lock over the moment it is released (no polling interval added to every
/// wait), bounded by LOCK_TIMEOUT. After a timeout the thread may still get the lock: it
/// then finds nobody to hand it to, and the lock is released as it is dropped.
pub(super) fn wait_for_lock(file: fs::File, path: &Path, arg: FlockArg) -> Result<Flock<fs::File>> {
    let (handed, waiting) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("router-host-lock".to_string())
        .spawn(move || {
            let locked = Flock::lock(file, arg).map_err(|(_, errno)| errno);
            // A send after the waiter gave up fails, and drops (releases) the lock.
            let _ = handed.send(locked);
        })
        .map_err(|e| Error::io(format!("waiting for lock {}", path.display()), e))?;
    match waiting.recv_timeout(LOCK_TIMEOUT) {
        Ok(Ok(lock)) => Ok(lock),
        Ok(Err(errno)) => Err(lock_error(path, errno)),
        Err(_) => Err(Error::TryAgain(format!(
            "the lock {} is held by another run for over {}s",
            path.display(),
            LOCK_TIMEOUT.as_secs()
        ))),
    }
}

pub(super) fn lock_error(path: &Path, errno: Errno) -> Error {
    Error::io(
        format!("locking {}", path.display()),
        std::io::Error::from(errno),
    )
}
