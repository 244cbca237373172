//! reconcile::gc: CNI 1.1 GC (which records are stale, each collected through DEL with the
//! host side only) and STATUS. Must never plan a pod op.

use super::{del, Attachment, World};
use crate::config::Config;
use crate::error::{Code, Error, Result};
use crate::model::{ActualState, Op, Record};
use crate::record::{HostGuard, RecordStore};
use crate::snapshot::{SnapshotRequest, SnapshotSource};

/// One entry of GC's `cni.dev/valid-attachments` (CNI 1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidAttachment {
    pub container_id: String,
    /// None when the entry names no interface: then every attachment of the container is
    /// kept (the safe reading of an incomplete entry).
    pub ifname: Option<String>,
}

impl ValidAttachment {
    fn covers(&self, record: &Record) -> bool {
        self.container_id == record.container_id
            && self.ifname.as_ref().is_none_or(|i| *i == record.ifname)
    }
}

/// What a GC did: the attachments it collected and the ops it applied for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcOutcome {
    pub collected: Vec<(String, String)>,
    pub applied: Vec<Op>,
}

/// CNI 1.1 GC: every attachment of this network (`config.name`) with a record in data_dir
/// that `valid` does not list is removed as a DEL with the pod netns gone would remove it:
/// its owned host routes and neighbours toward C, the shared host rule when no owned route
/// is left (decided under the host lock, one attachment at a time), then its record. The
/// pod side is not reached (GC names no netns; the spec lets a plugin assume it is gone).
/// What a valid attachment's record wants, or any other record's, is kept. Goes on past
/// failures and reports them all at the end.
pub fn gc(config: &Config, valid: &[ValidAttachment], world: &World<'_>) -> Result<GcOutcome> {
    let stale: Vec<Record> = world
        .records
        .all()?
        .into_iter()
        .filter(|r| r.network == config.name && !valid.iter().any(|v| v.covers(r)))
        .collect();
    let mut outcome = GcOutcome::default();
    let mut failures = Vec::new();
    for record in &stale {
        // Held while it is collected, so that `router agent` does not repair it meanwhile
        // (it re-reads the record under the lock, and finds none afterwards).
        let held = world
            .host
            .hold_attachment(&record.container_id, &record.ifname);
        let collected = held.and_then(|_lock| collect(config, record, world));
        match collected {
            Ok(applied) => {
                outcome
                    .collected
                    .push((record.container_id.clone(), record.ifname.clone()));
                outcome.applied.extend(applied);
            }
            Err(e) => failures.push((record, e)),
        }
    }
    match failures.first() {
        None => Ok(outcome),
        Some((_, first)) => Err(Error::Partial {
            code: first.code(),
            summary: format!(
                "GC could not collect {} of {} stale attachments; first: {first}",
                failures.len(),
                stale.len()
            ),
            details: failures
                .iter()
                .map(|(r, e)| format!("{}/{}: {e}", r.container_id, r.ifname))
                .collect::<Vec<_>>()
                .join("\n"),
        }),
    }
}

/// One stale attachment, through DEL with no pod netns: every other record in data_dir
/// counts as a peer whose objects are kept.
fn collect(config: &Config, record: &Record, world: &World<'_>) -> Result<Vec<Op>> {
    let att = Attachment {
        container_id: record.container_id.clone(),
        ifname: record.ifname.clone(),
        netns: None,
    };
    let records = EveryRecordIsAPeer(world.records);
    let snapshots = HostSideOnly(world.snapshots);
    let gc_world = World {
        snapshots: &snapshots,
        executor: world.executor,
        records: &records,
        host: world.host,
    };
    del(config, &att, None, &gc_world)
}

/// GC's view of the world: the host only, whatever the source would show of a pod (the
/// model kernel shows its one pod to every request), so no pod op is ever planned.
struct HostSideOnly<'a>(&'a dyn SnapshotSource);

impl SnapshotSource for HostSideOnly<'_> {
    fn snapshot(&self, req: &SnapshotRequest) -> Result<ActualState> {
        let mut actual = self.0.snapshot(req)?;
        actual.pod = None;
        Ok(actual)
    }
}

/// The record store as GC's DEL sees it: the peers of an attachment are all other records
/// (read when asked, after the kernel), so nothing another attachment wants is removed.
struct EveryRecordIsAPeer<'a>(&'a dyn RecordStore);

impl RecordStore for EveryRecordIsAPeer<'_> {
    fn load(&self, container_id: &str, ifname: &str) -> Result<Option<Record>> {
        self.0.load(container_id, ifname)
    }
    fn peers(&self, container_id: &str, ifname: &str) -> Result<Vec<Record>> {
        Ok(self
            .0
            .all()?
            .into_iter()
            .filter(|r| !(r.container_id == container_id && r.ifname == ifname))
            .collect())
    }
    fn save(&self, record: &Record) -> Result<()> {
        self.0.save(record)
    }
    fn remove(&self, container_id: &str, ifname: &str) -> Result<()> {
        self.0.remove(container_id, ifname)
    }
    fn all(&self) -> Result<Vec<Record>> {
        self.0.all()
    }
}

/// CNI 1.1 STATUS: ready when ADD could write its record and take the host lock now.
pub fn status(host: &dyn HostGuard) -> Result<()> {
    host.check_usable().map_err(|e| match e.code() {
        Code::NotAvailable => e,
        _ => Error::NotAvailable(e.to_string()),
    })
}
