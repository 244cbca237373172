//! reconcile: the one path ADD, CHECK, DEL and the operator commands share:
//! snapshot -> compile -> plan (-> execute -> verify, rollback on failure). It reaches the
//! world only through the SnapshotSource, Executor and RecordStore traits; reads no env.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::compile::{compile, CompileInput, Compiled};
use crate::config::{Config, PrevView};
use crate::error::{Error, Result};
use crate::execute::{Executor, Failed};
use crate::model::{ActualState, MacAddr, Mode, Op, Record, MAIN_TABLE};
use crate::plan::{plan, Plan};
use crate::record::RecordStore;
use crate::render::{drift_summary, drifts};
use crate::snapshot::{SnapshotRequest, SnapshotSource};

/// Verification re-plans this many times, applying what is still pending, before it fails.
const VERIFY_ROUNDS: usize = 3;

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
    let mut host_sysctl_ifaces: BTreeSet<String> =
        ["all", "default"].into_iter().map(String::from).collect();
    host_sysctl_ifaces.extend(record.and_then(|r| r.host_peer.clone()));
    SnapshotRequest {
        pod_netns: att.netns.clone(),
        pod_tables: [MAIN_TABLE].into_iter().chain(table).collect(),
        host_tables: BTreeSet::from([host_table]),
        host_sysctl_ifaces,
        preferred_src_for: chained_addrs.iter().map(IpNet::addr).collect(),
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
    let previous_record = records.load(&att.container_id, &att.ifname)?;
    let peers = records.peers(&att.container_id, &att.ifname)?;
    let chained_addrs = prev
        .map(|p| p.addresses_of(&att.ifname))
        .unwrap_or_default();
    let request = snapshot_request(config, att, &chained_addrs, previous_record.as_ref());
    let actual = snapshots.snapshot(&request)?;
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
    Ok(Prepared {
        compiled,
        actual,
        plan,
        request,
        previous_record,
    })
}

/// What an ADD did.
#[derive(Debug, Clone)]
pub struct AddOutcome {
    pub new_mac: Option<MacAddr>,
    pub applied: Vec<Op>,
    pub notes: Vec<String>,
}

fn blocked_error(plan: &Plan) -> Error {
    let drifts = drifts(&Plan {
        ops: Vec::new(),
        blocked: plan.blocked.clone(),
    });
    Error::Blocked {
        summary: format!(
            "objects router does not own are in the way (not touched): {}",
            drift_summary(&drifts)
        ),
        details: details_of(&drifts),
    }
}

fn details_of(drifts: &[crate::render::Drift]) -> String {
    drifts
        .iter()
        .map(|d| {
            format!(
                "{} netns: {}: expected {}, actual {}",
                d.netns, d.object, d.expected, d.actual
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// BEHAVIOUR 2: plan, refuse when unowned objects block, write the record, apply (rolling
/// back on failure), verify.
pub fn add(
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    world: &World<'_>,
) -> Result<AddOutcome> {
    let _host = world.records.lock_host()?;
    let prepared = prepare(
        Mode::Add,
        config,
        att,
        Some(prev),
        world.snapshots,
        world.records,
    )?;
    if !prepared.plan.blocked.is_empty() {
        return Err(blocked_error(&prepared.plan));
    }
    world.records.save(&prepared.compiled.record)?;
    if let Err(failed) = world.executor.apply(&prepared.plan.ops) {
        roll_back(world, &prepared.plan.ops[..failed.index]);
        restore_record(world, att, prepared.previous_record.as_ref());
        return Err(failed.error);
    }
    let mut applied = prepared.plan.ops.clone();
    applied.extend(verify(Mode::Add, config, att, Some(prev), world)?);
    Ok(AddOutcome {
        new_mac: prepared.compiled.new_mac,
        applied,
        notes: prepared.compiled.notes,
    })
}

/// `router check --repair`: makes a drifted attachment what ADD would make it, under the
/// host lock, through the same plan, record, rollback and verification as ADD. Unlike ADD
/// it probes for no IP conflict (the addresses are the pod's already) and prints no result;
/// the record is written only when there is something to apply, and then exactly as ADD
/// would write it. Returns the ops applied (empty when there was no drift).
pub fn repair(
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    world: &World<'_>,
) -> Result<Vec<Op>> {
    let _host = world.records.lock_host()?;
    let prepared = prepare(
        Mode::Add,
        config,
        att,
        Some(prev),
        world.snapshots,
        world.records,
    )?;
    if !prepared.plan.blocked.is_empty() {
        return Err(blocked_error(&prepared.plan));
    }
    if prepared.plan.ops.is_empty() {
        return Ok(Vec::new());
    }
    world.records.save(&prepared.compiled.record)?;
    if let Err(failed) = world.executor.apply(&prepared.plan.ops) {
        roll_back(world, &prepared.plan.ops[..failed.index]);
        restore_record(world, att, prepared.previous_record.as_ref());
        return Err(failed.error);
    }
    let mut applied = prepared.plan.ops;
    applied.extend(verify(Mode::Add, config, att, Some(prev), world)?);
    Ok(applied)
}

/// Undoes applied ops in reverse, best effort: the failure being reported matters more.
fn roll_back(world: &World<'_>, applied: &[Op]) {
    let undo: Vec<Op> = applied.iter().rev().flat_map(Op::inverse).collect();
    for failure in world.executor.apply_all(&undo) {
        tracing::warn!(error = %failure.error, "rollback step failed");
    }
}

fn restore_record(world: &World<'_>, att: &Attachment, previous: Option<&Record>) {
    let restored = match previous {
        Some(record) => world.records.save(record),
        None => world.records.remove(&att.container_id, &att.ifname),
    };
    if let Err(e) = restored {
        tracing::warn!(error = %e, "could not restore the attachment record");
    }
}

/// Re-snapshots and re-plans; applies what is still pending, a bounded number of times.
/// Returns the extra ops it applied.
fn verify(
    mode: Mode,
    config: &Config,
    att: &Attachment,
    prev: Option<&PrevView>,
    world: &World<'_>,
) -> Result<Vec<Op>> {
    let mut extra = Vec::new();
    for _ in 0..VERIFY_ROUNDS {
        let again = prepare(mode, config, att, prev, world.snapshots, world.records)?;
        if again.plan.ops.is_empty() {
            return Ok(extra);
        }
        let failures = world.executor.apply_all(&again.plan.ops);
        if let Some(first) = failures.into_iter().next() {
            return Err(first.error);
        }
        extra.extend(again.plan.ops);
    }
    let left = prepare(mode, config, att, prev, world.snapshots, world.records)?;
    if left.plan.ops.is_empty() {
        return Ok(extra);
    }
    Err(Error::Kernel {
        object: "verification".into(),
        reason: format!(
            "the kernel does not keep what was applied: {}",
            drift_summary(&drifts(&left.plan))
        ),
    })
}

/// BEHAVIOUR 3: the plan against the current state is the drift.
pub fn check(config: &Config, att: &Attachment, prev: &PrevView, world: &World<'_>) -> Result<()> {
    let prepared = prepare(
        Mode::Add,
        config,
        att,
        Some(prev),
        world.snapshots,
        world.records,
    )?;
    if prepared.plan.is_empty() {
        return Ok(());
    }
    let drifts = drifts(&prepared.plan);
    Err(Error::Drift {
        summary: drift_summary(&drifts),
        details: details_of(&drifts),
    })
}

/// BEHAVIOUR 4: best effort past errors; fails only when something owned it could reach is
/// still there afterwards. The record goes last.
pub fn del(
    config: &Config,
    att: &Attachment,
    prev: Option<&PrevView>,
    world: &World<'_>,
) -> Result<Vec<Op>> {
    let _host = world.records.lock_host()?;
    let prepared = prepare(Mode::Del, config, att, prev, world.snapshots, world.records)?;
    let failures = world.executor.apply_all(&prepared.plan.ops);
    let after = prepare(Mode::Del, config, att, prev, world.snapshots, world.records)?;
    if !after.plan.ops.is_empty() {
        return Err(del_error(&failures, &after.plan));
    }
    world.records.remove(&att.container_id, &att.ifname)?;
    Ok(prepared.plan.ops)
}

fn del_error(failures: &[Failed], left: &Plan) -> Error {
    let reasons: Vec<String> = failures.iter().map(|f| f.error.to_string()).collect();
    Error::Kernel {
        object: "DEL".into(),
        reason: format!(
            "{} still pending ({}); errors: {}",
            left.ops.len(),
            drift_summary(&drifts(left)),
            if reasons.is_empty() {
                "none".to_string()
            } else {
                reasons.join("; ")
            }
        ),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod repair_tests;
