//! live: the backends a real plugin run uses, once its config is known: the kernel snapshot
//! and the netlink executor for the pod named by CNI_NETNS, sharing one visitor of that
//! netns (its visits open the pod's netlink socket and sysctl files), the records and
//! host lock in data_dir, raw-socket conflict probes on the chained interface, and the log
//! file. It wires; it decides nothing. Two things it adds around them: ADD and CHECK refuse
//! a CNI_NETNS that is not a netns before anything is locked or written, and the conflict
//! probe, a wait during which nothing is changed, lets termination signals act (`signals`).
//! The host lock's wait does not: it comes after a run's own changes. A DEL whose data_dir
//! can only be reached through a symlink uses the default data_dir (logged): DEL never
//! fails on input it cannot use. ADD, CHECK and DEL hold the attachment's lock
//! (`record::AttachmentLock`, shared with the operator commands and `router agent`) for
//! the run.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::cni::{Backends, Command, Invocation};
use crate::config::{default_data_dir, Config};
use crate::conflict::{AddressProbe, Conflict, RawSocketProbe, Target};
use crate::error::{excerpt, Error, Result};
use crate::execute::LiveExecutor;
use crate::logging;
use crate::model::Record;
use crate::netns::{self, NetnsVisitor};
use crate::record::{AttachmentLock, FileRecords, RecordStore};
use crate::signals::allow_termination;
use crate::snapshot::LiveSnapshot;

pub fn backends(config: &Config, invocation: &Invocation) -> Result<Backends> {
    logging::init(&config.log_options);
    if matches!(invocation.command, Command::Add | Command::Check) {
        require_pod_netns(invocation.netns.as_deref())?;
    }
    let mut records = FileRecords::confined(&config.data_root, &config.data_dir);
    if invocation.command == Command::Del {
        if let Err(e) = records.check_reachable() {
            tracing::warn!(error = %e, "DEL cannot use data_dir: going on with the default one");
            let (dir, root) = default_data_dir();
            records = FileRecords::confined(&root, &dir);
        }
    }
    let attachment_lock = lock_attachment(&records, invocation)?;
    let records = Arc::new(records);
    let pod = invocation
        .netns
        .clone()
        .map(|path| Arc::new(NetnsVisitor::new(path)));
    Ok(Backends {
        snapshots: Box::new(LiveSnapshot::in_pod(pod.clone())),
        executor: Box::new(LiveExecutor::in_pod(pod.clone())),
        records: Box::new(HeldRecord::new(
            Arc::clone(&records),
            attachment_lock.is_some(),
            invocation,
        )),
        // Not interruptible: the lock is now taken after the run's own changes
        // (ARCHITECTURE "Ordering"), so a signal during its wait would leave a run half
        // done.
        host: Box::new(records),
        probe: Box::new(Interruptible(RawSocketProbe::in_pod(pod))),
        attachment_lock,
    })
}

/// The records of one plugin run that holds its attachment's lock: that attachment's
/// record is read from data_dir once and then kept (and kept up to date with what the run
/// writes or removes), since no one else writes it while the lock is held (`router agent`
/// and `router rollout` take the same lock). A run reads it several times: for a rolled-out
/// config, to decide whether DEL may act, to plan. Without the lock every read goes to
/// the file. Everything else goes to the files.
struct HeldRecord {
    files: Arc<FileRecords>,
    /// The attachment whose lock is held, if it is.
    held: Option<(String, String)>,
    /// Its record as last read or written: None until read.
    known: Mutex<Option<Option<Record>>>,
}

impl HeldRecord {
    fn new(files: Arc<FileRecords>, locked: bool, invocation: &Invocation) -> HeldRecord {
        HeldRecord {
            files,
            held: locked.then(|| (invocation.container_id.clone(), invocation.ifname.clone())),
            known: Mutex::new(None),
        }
    }

    fn is_held(&self, container_id: &str, ifname: &str) -> bool {
        self.held
            .as_ref()
            .is_some_and(|(c, i)| c == container_id && i == ifname)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Option<Option<Record>>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RecordStore for HeldRecord {
    fn load(&self, container_id: &str, ifname: &str) -> Result<Option<Record>> {
        if !self.is_held(container_id, ifname) {
            return self.files.load(container_id, ifname);
        }
        let mut known = self.known();
        if let Some(record) = known.as_ref() {
            return Ok(record.clone());
        }
        let record = self.files.load(container_id, ifname)?;
        *known = Some(record.clone());
        Ok(record)
    }

    fn peers(&self, container_id: &str, ifname: &str) -> Result<Vec<Record>> {
        self.files.peers(container_id, ifname)
    }

    fn save(&self, record: &Record) -> Result<()> {
        let held = self.is_held(&record.container_id, &record.ifname);
        // Forgotten first: a failed write leaves the file in a state only a read tells.
        if held {
            *self.known() = None;
        }
        self.files.save(record)?;
        if held {
            *self.known() = Some(Some(record.clone()));
        }
        Ok(())
    }

    fn remove(&self, container_id: &str, ifname: &str) -> Result<()> {
        let held = self.is_held(container_id, ifname);
        if held {
            *self.known() = None;
        }
        self.files.remove(container_id, ifname)?;
        if held {
            *self.known() = Some(None);
        }
        Ok(())
    }

    fn all(&self) -> Result<Vec<Record>> {
        self.files.all()
    }
}

/// ADD, CHECK and DEL hold the attachment's lock for the whole run, so that `router agent`
/// never repairs an attachment halfway through one (one open and one flock when no agent
/// holds it). A DEL that cannot take it goes on without it: a DEL that fails forever
/// blocks the pod's teardown, and an agent re-reads the record under the lock before it
/// applies anything, so it still never re-creates what this DEL removes.
fn lock_attachment(
    records: &FileRecords,
    invocation: &Invocation,
) -> Result<Option<AttachmentLock>> {
    if !matches!(
        invocation.command,
        Command::Add | Command::Check | Command::Del
    ) {
        return Ok(None);
    }
    let make_dir = invocation.command == Command::Add;
    match records.lock_attachment(&invocation.container_id, &invocation.ifname, make_dir) {
        Ok(lock) => Ok(lock),
        Err(e) if invocation.command == Command::Del => {
            tracing::warn!(error = %e, "DEL cannot take the attachment lock: going on without it");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// ADD and CHECK work in the pod netns: a path that is not one (missing, a plain file, a
/// directory, a FIFO) is code 3 before the host lock is taken or data_dir touched.
fn require_pod_netns(path: Option<&Path>) -> Result<()> {
    let Some(path) = path else {
        return Err(Error::InvalidEnv("missing CNI_NETNS".into()));
    };
    match netns::is_netns(path) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::UnknownContainer(format!(
            "CNI_NETNS {} is not a network namespace (missing, or not an nsfs file)",
            excerpt(&path.display().to_string())
        ))),
        Err(e) => Err(Error::UnknownContainer(format!(
            "CNI_NETNS {} is not a network namespace: it cannot be read ({})",
            excerpt(&path.display().to_string()),
            excerpt(&e.to_string())
        ))),
    }
}

/// A live backend whose waits may be ended by a termination signal.
struct Interruptible<T>(T);

impl<T: AddressProbe> AddressProbe for Interruptible<T> {
    /// Runs before the record is written or anything applied (up to retries x interval).
    fn detect(
        &self,
        target: &Target<'_>,
        interval: Duration,
        retries: u32,
    ) -> Result<Option<Conflict>> {
        let _allowed = allow_termination();
        self.0.detect(target, interval, retries)
    }
}

#[cfg(test)]
mod tests;
