//! reconcile: the one path ADD, CHECK, DEL and the operator commands share:
//! snapshot -> compile -> plan (-> execute -> verify, rollback on failure). It reaches the
//! world only through the SnapshotSource, Executor, RecordStore and AddressProbe traits;
//! reads no env. Its failures are its own type (`Failure`: an `Error`, or a typed
//! `PlanFailure`): it words nothing.
//!
//! Here: the attachment, the world and `prepare` (snapshot, compile, plan). One file per
//! command: `add` (ADD, repair and rollout), `check`, `del`, `gc` (GC and STATUS); `rollback` (a
//! failed ADD undone), `shared_rule` (the host rule under the host lock), `failure`.

mod add;
mod check;
mod del;
mod failure;
mod gc;
mod rollback;
mod shared_rule;

pub use crate::plan::PlanFailure;
pub use add::{add, owned_removals, repair, rollout, AddOutcome};
pub use check::check;
pub use del::{del, ConfigSource};
pub use failure::{Failure, Result};
pub use gc::{gc, status, GcOutcome, ValidAttachment};

use std::collections::BTreeSet;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::compile::{compile, overlay_unready, CompileInput, Compiled, Unready};
use crate::config::{Config, PrevView};
use crate::error::{self, Error};
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
    /// Why the overlay interface is not ready for ADD (empty when it is, and for the
    /// other modes): ADD waits for it rather than act on a half-made overlay.
    pub unready: Vec<Unready>,
}

/// What to read for one attachment: main and the pod table in the pod, host_rule_table on
/// the host, the host peer's rp_filter, and the host's source address toward each address
/// of the chained interface.
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
    // `all` and `default` are always read (snapshot); the host veth peer's name, when a
    // record knows it.
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
        preferred_src_for: chained_addrs.iter().map(IpNet::addr).collect(),
        links_only: config.only_op_mac,
        host_objects: HostObjects::All,
        pod_only: false,
    }
}

/// The attachment's record. DEL goes on without one it cannot read (logged): a record
/// damaged on disk must not block the pod's teardown, and the config, prevResult and the
/// owned objects the kernel shows still say what to remove. ADD and CHECK fail on it.
fn load_record(
    mode: Mode,
    records: &dyn RecordStore,
    att: &Attachment,
) -> error::Result<Option<Record>> {
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
) -> error::Result<Prepared> {
    let sources = Sources {
        snapshots,
        records,
        reach: Reach::Attachment,
    };
    prepare_refusing_elsewhere(mode, HostObjects::All, config, att, prev, sources)
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
) -> error::Result<Prepared> {
    let sources = Sources {
        snapshots,
        records,
        reach: Reach::Attachment,
    };
    prepare_refusing_elsewhere(
        mode,
        HostObjects::ThroughPodPeers,
        config,
        att,
        prev,
        sources,
    )
}

/// `prepare_reading` for the operator commands and the agent, which do not wait: an
/// overlay whose veth peer is not in this netns means the node's side would be planned
/// against the wrong netns.
fn prepare_refusing_elsewhere(
    mode: Mode,
    host_objects: HostObjects,
    config: &Config,
    att: &Attachment,
    prev: Option<&PrevView>,
    sources: Sources<'_>,
) -> error::Result<Prepared> {
    let prepared = prepare_reading(mode, host_objects, config, att, prev, sources)?;
    if prepared.unready.contains(&Unready::PeerNotInNode) {
        return Err(overlay_not_ready(config, att, &prepared.unready, 0));
    }
    Ok(prepared)
}

/// How much of an attachment a run reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// The pod and the host side; the peers are the pod's other attachments.
    Attachment,
    /// GC's: the host side only, whatever a source shows of a pod, so no pod op is ever
    /// planned (GC names no netns; the spec lets a plugin assume it is gone). Every other
    /// record counts as a peer, so nothing another attachment wants is removed.
    HostSideOnly,
}

/// What `prepare` reads from, and how much of the attachment it reaches.
#[derive(Clone, Copy)]
pub(super) struct Sources<'a> {
    snapshots: &'a dyn SnapshotSource,
    records: &'a dyn RecordStore,
    reach: Reach,
}

impl<'a> Sources<'a> {
    /// The world's sources, reaching `reach`.
    pub(super) fn of(world: &World<'a>, reach: Reach) -> Sources<'a> {
        Sources {
            snapshots: world.snapshots,
            records: world.records,
            reach,
        }
    }

    /// The records whose objects `att` must keep: its pod's other attachments, or with
    /// `Reach::HostSideOnly` every other record.
    fn peers(&self, att: &Attachment) -> error::Result<Vec<Record>> {
        let (id, ifname) = (&att.container_id, &att.ifname);
        match self.reach {
            Reach::Attachment => self.records.peers(id, ifname),
            Reach::HostSideOnly => Ok(self
                .records
                .all()?
                .into_iter()
                .filter(|r| !(r.container_id == *id && r.ifname == *ifname))
                .collect()),
        }
    }
}

/// `prepare`, reading `host_objects` of the host: ADD and DEL read only what the
/// attachment can own there (`HostObjects::ThroughPodPeers`; DEL not even the node's
/// addresses, `PodPeersOnly`), CHECK and verification all.
pub(super) fn prepare_reading(
    mode: Mode,
    host_objects: HostObjects,
    config: &Config,
    att: &Attachment,
    prev: Option<&PrevView>,
    sources: Sources<'_>,
) -> error::Result<Prepared> {
    let previous_record = phase("records", || load_record(mode, sources.records, att))?;
    let chained_addrs = prev
        .map(|p| p.addresses_of(&att.ifname))
        .unwrap_or_default();
    let request = SnapshotRequest {
        host_objects,
        ..snapshot_request(config, att, &chained_addrs, previous_record.as_ref())
    };
    let mut actual = phase("snapshot", || sources.snapshots.snapshot(&request))?;
    if sources.reach == Reach::HostSideOnly {
        actual.pod = None;
    }
    // The peers are read after the kernel: an ADD writes its record before it applies, so
    // every owned object in `actual` is covered by a record read now, lock or no lock.
    let peers = phase("records", || sources.peers(att))?;
    if mode != Mode::Del {
        require_node_netns(att, previous_record.as_ref(), &actual)?;
    }
    let mut unready = Vec::new();
    if mode == Mode::Add && !config.only_op_mac {
        require_overlay(config, att, &actual)?;
        unready = overlay_unready(
            config,
            &att.ifname,
            &chained_addrs,
            &actual,
            previous_record.as_ref(),
        );
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
        unready,
    })
}

/// Everything but DEL refuses to act from another netns than the one the attachment's ADD
/// saw as the node: its plan of the node's side would be made against the wrong netns
/// (routes toward that netns's addresses, its rp_filter). DEL goes on: it is the
/// runtime's, removes only owned objects, and finds none through a host veth peer that is
/// not there.
fn require_node_netns(
    att: &Attachment,
    record: Option<&Record>,
    actual: &ActualState,
) -> error::Result<()> {
    let (Some(recorded), Some(current)) = (record.and_then(|r| r.node_netns), actual.host_netns)
    else {
        return Ok(());
    };
    if recorded == current {
        return Ok(());
    }
    Err(Error::WrongNetns {
        attachment: format!("{}/{}", att.container_id, att.ifname),
        recorded: recorded.to_string(),
        current: current.to_string(),
    })
}

/// Code 104 for an overlay interface that was not ready, naming every reason.
pub(crate) fn overlay_not_ready(
    config: &Config,
    att: &Attachment,
    unready: &[Unready],
    waited_ms: u64,
) -> Error {
    let missing: Vec<String> = unready.iter().map(ToString::to_string).collect();
    Error::OverlayNotReady {
        overlay: config.overlay_interface.clone(),
        missing: missing.join("; "),
        netns: netns_words(att),
        waited_ms,
    }
}

fn netns_words(att: &Attachment) -> String {
    att.netns
        .as_ref()
        .map_or_else(|| "none given".into(), |p| p.display().to_string())
}

/// ADD and repair need the overlay interface in the pod beside the chained interface, not
/// the chained interface itself: every route they put in the pod table and every host route
/// goes through it. The overlay interface being the chained interface is a config error no
/// wait mends; the overlay interface missing (or half made) is waited for
/// (`Prepared::unready`). `only_op_mac` touches only the chained interface's MAC; a gone
/// pod netns is compile's to report.
fn require_overlay(config: &Config, att: &Attachment, actual: &ActualState) -> error::Result<()> {
    if actual.pod.is_none() || config.overlay_interface != att.ifname {
        return Ok(());
    }
    Err(Error::OverlayUnusable {
        overlay: config.overlay_interface.clone(),
        problem: "is the interface router is chained to (CNI_IFNAME), not the default network's",
        netns: netns_words(att),
    })
}

#[cfg(test)]
mod tests;
