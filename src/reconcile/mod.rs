//! reconcile: the one path ADD, CHECK, DEL and the operator commands share:
//! snapshot -> compile -> plan (-> execute -> verify, rollback on failure). It reaches the
//! world only through the SnapshotSource, Executor, RecordStore and AddressProbe traits;
//! reads no env. Its failures about a plan are typed (`PlanFailure`): it words nothing.
//!
//! Here: the attachment, the world and `prepare` (snapshot, compile, plan). One file per
//! command: `add` (ADD and repair), `check`, `del`, `gc` (GC and STATUS); `rollback` (a
//! failed ADD undone), `shared_rule` (the host rule under the host lock), `failure`.

mod add;
mod check;
mod del;
mod failure;
mod gc;
mod rollback;
mod shared_rule;

pub use add::{add, repair, AddOutcome};
pub use check::check;
pub use del::del;
pub use failure::PlanFailure;
pub use gc::{gc, status, GcOutcome, ValidAttachment};

use std::collections::BTreeSet;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::compile::{compile, CompileInput, Compiled};
use crate::config::{Config, PrevView};
use crate::error::{Error, Result};
use crate::execute::Executor;
use crate::logging::phase;
use crate::model::{ActualState, Mode, Record, MAIN_TABLE};
use crate::plan::{plan, Plan};
use crate::record::{HostGuard, RecordStore};
use crate::snapshot::{HostObjects, SnapshotRequest, SnapshotSource};

/// One attachment: a pod's chained interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
    /// The pod netns path; None (or a path that is gone) means the pod side is gone.
    pub netns: Option<PathBuf>,
}

/// The world the reconciler acts on.
pub struct World<'a> {
    pub snapshots: &'a dyn SnapshotSource,
    pub executor: &'a dyn Executor,
    pub records: &'a dyn RecordStore,
    /// The host lock and the usability of the records' place.
    pub host: &'a dyn HostGuard,
}

/// Everything one run knows before it acts.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub compiled: Compiled,
    pub actual: ActualState,
    pub plan: Plan,
    pub request: SnapshotRequest,
    /// The record that was on disk before this run.
    pub previous_record: Option<Record>,
}

/// What to read for one attachment: main and T in the pod, host_rule_table on the host,
/// the host peer's rp_filter, and the host's source address toward each address of C.
pub fn snapshot_request(
    config: &Config,
    att: &Attachment,
    chained_addrs: &[IpNet],
    record: Option<&Record>,
) -> SnapshotRequest {
    let table = record
        .map(|r| r.table)
        .or_else(|| config.table_for(&att.ifname).ok());
    let host_table = record.map_or(config.host_rule_table, |r| r.host_rule_table);
    // `all` and `default` are always read (snapshot); H's name, when a record knows it.
    let host_sysctl_ifaces = record
        .and_then(|r| r.host_peer.clone())
        .into_iter()
        .collect();
    SnapshotRequest {
        every_table: false,
        pod_netns: att.netns.clone(),
        pod_tables: [MAIN_TABLE].into_iter().chain(table).collect(),
        host_tables: BTreeSet::from([host_table]),
        host_sysctl_ifaces,
        pod_sysctl_ifaces: BTreeSet::from([config.overlay_interface.clone(), att.ifname.clone()]),
        preferred_src_for: chained_addrs.iter().map(IpNet::addr).collect(),
        links_only: config.only_op_mac,
        host_objects: HostObjects::All,
    }
}

/// The attachment's record. DEL goes on without one it cannot read (logged): a record
/// damaged on disk must not block the pod's teardown, and the config, prevResult and the
/// owned objects the kernel shows still say what to remove. ADD and CHECK fail on it.
fn load_record(mode: Mode, records: &dyn RecordStore, att: &Attachment) -> Result<Option<Record>> {
    match records.load(&att.container_id, &att.ifname) {
        Err(e) if mode == Mode::Del => {
            tracing::warn!(error = %e, "DEL goes on without the attachment record it cannot read");
            Ok(None)
        }
        loaded => loaded,
    }
}

pub fn prepare(
    mode: Mode,
    config: &Config,
    att: &Attachment,
    prev: Option<&PrevView>,
    snapshots: &dyn SnapshotSource,
    records: &dyn RecordStore,
) -> Result<Prepared> {
    let reads = Reads { snapshots, records };
    prepare_reading(mode, HostObjects::All, config, att, prev, reads)
}

/// `prepare` reading of the host only what the attachment can own there, as ADD does
/// (`HostObjects::ThroughPodPeers`): a look cheap enough to repeat often on a node with many
/// pods (`router agent`). It cannot see another attachment's route in the slot of one of
/// this one's: that shows as the route missing, and a repair's exclusive add then meets
/// it (verification reads the whole node and reports it in the way).
pub fn prepare_owned(
    mode: Mode,
    config: &Config,
    att: &Attachment,
    prev: Option<&PrevView>,
    snapshots: &dyn SnapshotSource,
    records: &dyn RecordStore,
) -> Result<Prepared> {
    let reads = Reads { snapshots, records };
    prepare_reading(mode, HostObjects::ThroughPodPeers, config, att, prev, reads)
}

/// What `prepare` reads from.
#[derive(Clone, Copy)]
pub(super) struct Reads<'a> {
    snapshots: &'a dyn SnapshotSource,
    records: &'a dyn RecordStore,
}

impl<'a> From<&World<'a>> for Reads<'a> {
    fn from(world: &World<'a>) -> Reads<'a> {
        Reads {
            snapshots: world.snapshots,
            records: world.records,
        }
    }
}

/// `prepare`, reading `host_objects` of the host: ADD and DEL read only what the
/// attachment can own there (`HostObjects::ThroughPodPeers`), CHECK and verification all.
pub(super) fn prepare_reading(
    mode: Mode,
    host_objects: HostObjects,
    config: &Config,
    att: &Attachment,
    prev: Option<&PrevView>,
    Reads { snapshots, records }: Reads<'_>,
) -> Result<Prepared> {
    let previous_record = load_record(mode, records, att)?;
    let chained_addrs = prev
        .map(|p| p.addresses_of(&att.ifname))
        .unwrap_or_default();
    let request = SnapshotRequest {
        host_objects,
        ..snapshot_request(config, att, &chained_addrs, previous_record.as_ref())
    };
    let actual = phase("snapshot", || snapshots.snapshot(&request))?;
    // The peers are read after the kernel: an ADD writes its record before it applies, so
    // every owned object in `actual` is covered by a record read now, lock or no lock.
    let peers = records.peers(&att.container_id, &att.ifname)?;
    if mode == Mode::Add {
        require_overlay(config, att, &actual)?;
    }
    let planned = phase("plan", || {
        let compiled = compile(&CompileInput {
            config,
            container_id: &att.container_id,
            ifname: &att.ifname,
            prev,
            actual: &actual,
            record: previous_record.as_ref(),
            peers: &peers,
            mode,
        })?;
        let plan = plan(&compiled.desired, &actual, mode);
        Ok::<_, Error>((compiled, plan))
    });
    let (compiled, plan) = planned?;
    Ok(Prepared {
        compiled,
        actual,
        plan,
        request,
        previous_record,
    })
}

/// ADD, CHECK and repair need O in the pod, beside C: every route they put in T and every
/// host route goes through it. Without it they fail before anything is applied or
/// recorded, so no record pins a P derived while O was missing (a runtime that attaches
/// networks in random order runs router before O exists, or names C what O should be).
/// `only_op_mac` touches only C's MAC; a gone pod netns is compile's to report.
fn require_overlay(config: &Config, att: &Attachment, actual: &ActualState) -> Result<()> {
    let overlay = &config.overlay_interface;
    let Some(pod) = actual.pod.as_ref() else {
        return Ok(());
    };
    let problem = if *overlay == att.ifname {
        "is the interface router is chained to (CNI_IFNAME), not the default network's"
    } else if !pod.links.contains_key(overlay) {
        "is not in the pod"
    } else {
        return Ok(());
    };
    if config.only_op_mac {
        return Ok(());
    }
    Err(Error::OverlayUnusable {
        overlay: overlay.clone(),
        problem,
        netns: att
            .netns
            .as_ref()
            .map_or_else(|| "none given".into(), |p| p.display().to_string()),
    })
}

#[cfg(test)]
mod repair_tests;
#[cfg(test)]
mod tests;
