//! reconcile: the one path ADD, CHECK, DEL and the operator commands share:
//! snapshot -> compile -> plan (-> execute -> verify, rollback on failure). It reaches the
//! world only through the SnapshotSource, Executor, RecordStore and AddressProbe traits;
//! reads no env.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::compile::{compile, CompileInput, Compiled};
use crate::config::{Config, PrevView};
use crate::conflict::{explain_failure, AddressProbe, Target};
use crate::error::Code;
use crate::error::{Error, Result};
use crate::execute::{Executor, Failed};
use crate::logging::phase;
use crate::model::{
    ActualState, AddInputs, DesiredNetns, DesiredState, MacAddr, Mode, Op, Record, Side, MAIN_TABLE,
};
use crate::plan::{is_add_removal, is_shared_rule_op, own_ops, plan, plan_shared_rule, Plan};
use crate::record::{HostGuard, RecordStore};
use crate::render::{drift_detail, drift_summary, drifts};
use crate::snapshot::{HostObjects, SnapshotRequest, SnapshotSource};

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
    let mut host_sysctl_ifaces: BTreeSet<String> =
        ["all", "default"].into_iter().map(String::from).collect();
    host_sysctl_ifaces.extend(record.and_then(|r| r.host_peer.clone()));
    SnapshotRequest {
        every_table: false,
        pod_netns: att.netns.clone(),
        pod_tables: [MAIN_TABLE].into_iter().chain(table).collect(),
        host_tables: BTreeSet::from([host_table]),
        host_sysctl_ifaces,
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

/// Snapshot, compile and plan one attachment, from everything the host holds in the
/// tables it reads (`HostObjects::All`).
pub fn prepare(
    mode: Mode,
    config: &Config,
    att: &Attachment,
    prev: Option<&PrevView>,
    snapshots: &dyn SnapshotSource,
    records: &dyn RecordStore,
) -> Result<Prepared> {
    let world = Reads { snapshots, records };
    prepare_reading(mode, HostObjects::All, config, att, prev, world)
}

/// What `prepare` reads from.
#[derive(Clone, Copy)]
struct Reads<'a> {
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
fn prepare_reading(
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

/// What an ADD did.
#[derive(Debug, Clone)]
pub struct AddOutcome {
    pub new_mac: Option<MacAddr>,
    pub applied: Vec<Op>,
    pub notes: Vec<String>,
    /// Degraded but working setups worth a warning (O without a host peer).
    pub warnings: Vec<String>,
}

fn blocked_error(plan: &Plan) -> Error {
    let drifts = drifts(&Plan {
        blocked: plan.blocked.clone(),
        ..Plan::default()
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
        .map(drift_detail)
        .collect::<Vec<_>>()
        .join("\n")
}

/// BEHAVIOUR 2: plan, refuse when unowned objects block, probe C's addresses when
/// `ip_conflict` is enabled (5), write the record (with `inputs`, what this ADD ran with),
/// apply (rolling back on failure), verify. C's addresses are announced from a new MAC by
/// the kernel (2.1: `arp_notify`/`ndisc_notify` on C, set before the MAC changes).
pub fn add(
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    inputs: &AddInputs,
    world: &World<'_>,
    probe: &dyn AddressProbe,
) -> Result<AddOutcome> {
    if config.ip_conflict.enabled {
        // Outside the host lock: probing takes retries x interval and reads only the pod's
        // segment; holding the node-wide lock that long would queue every ADD and DEL on
        // the node behind it. The locked part below plans again from a fresh snapshot.
        let prepared = prepare_add(HostObjects::ThroughPodPeers, config, att, prev, world)?;
        if !prepared.plan.blocked.is_empty() {
            return Err(blocked_error(&prepared.plan));
        }
        detect_conflicts(config, att, prev, &prepared.actual, probe)?;
    }
    apply_locked(config, att, prev, world, RecordWrite::Always(inputs))
}

/// ADD's (and CHECK's) view: compiled as ADD from the world as it is now.
fn prepare_add(
    host_objects: HostObjects,
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    world: &World<'_>,
) -> Result<Prepared> {
    let reads = Reads::from(world);
    prepare_reading(Mode::Add, host_objects, config, att, Some(prev), reads)
}

/// Whether the record is written when the plan is already empty, and the inputs it keeps.
#[derive(Clone, Copy)]
enum RecordWrite<'a> {
    /// ADD: always (a repeated ADD refreshes it), with this ADD's inputs.
    Always(&'a AddInputs),
    /// repair: only when there is something to apply. The inputs of the ADD that wrote
    /// the record stay; these (the operator's) only fill a record that has none.
    WhenPending(&'a AddInputs),
}

impl RecordWrite<'_> {
    /// The record to write: what compile derived plus the inputs this write keeps.
    fn record(self, prepared: &Prepared) -> Record {
        let kept = prepared
            .previous_record
            .as_ref()
            .and_then(|r| r.inputs.clone());
        let inputs = match self {
            RecordWrite::Always(inputs) => inputs.clone(),
            RecordWrite::WhenPending(inputs) => kept.unwrap_or_else(|| inputs.clone()),
        };
        Record {
            inputs: Some(inputs),
            ..prepared.compiled.record.clone()
        }
    }
}

/// Plan, refuse when blocked, record, apply with rollback, verify. Only the shared host
/// rule is decided under the host lock, after this run's own ops (ARCHITECTURE "Ordering").
fn apply_locked(
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    world: &World<'_>,
    write: RecordWrite<'_>,
) -> Result<AddOutcome> {
    let prepared = prepare_add(HostObjects::ThroughPodPeers, config, att, prev, world)?;
    if !prepared.plan.blocked.is_empty() {
        return Err(blocked_error(&prepared.plan));
    }
    let mut outcome = AddOutcome {
        new_mac: prepared.compiled.new_mac,
        applied: Vec::new(),
        notes: prepared.compiled.notes.clone(),
        warnings: prepared.compiled.warnings.clone(),
    };
    let nothing_to_apply = prepared.plan.ops.is_empty();
    if nothing_to_apply && matches!(write, RecordWrite::WhenPending(_)) {
        return Ok(outcome);
    }
    let record = write.record(&prepared);
    if prepared.previous_record.as_ref() != Some(&record) {
        phase("record", || world.records.save(&record))?;
    }
    if nothing_to_apply {
        // A repeated ADD: the kernel already is as wanted (the rule with our routes, which
        // no DEL releases it from); nothing to verify.
        return Ok(outcome);
    }
    world.executor.take_surprise();
    let own = own_ops(&prepared.plan);
    // Additions, then the shared rule under the lock, then the removals: moving P's default
    // out of main stays the last thing an ADD does.
    let split = own
        .iter()
        .position(|op| is_add_removal(op, Mode::Add))
        .unwrap_or(own.len());
    let (additions, removals) = own.split_at(split);
    let fail = |applied: &[&[Op]], error| {
        let applied: Vec<Op> = applied.concat();
        undo_add(world, att, &prepared, &applied, error)
    };
    let addresses = prev.addresses_of(&att.ifname);
    if let Err(failed) = phase("apply", || world.executor.apply(additions)) {
        let error = explain_failure(additions.get(failed.index), failed.error, &addresses);
        return Err(fail(&[&additions[..failed.index]], error));
    }
    let shared = match ensure_shared_rule(world, &prepared.compiled.desired) {
        Ok(shared) => shared,
        Err((applied, error)) => return Err(fail(&[additions, &applied], error)),
    };
    if let Err(failed) = phase("apply", || world.executor.apply(removals)) {
        let error = explain_failure(removals.get(failed.index), failed.error, &addresses);
        let applied = [additions, &shared, &removals[..failed.index]];
        return Err(fail(&applied, error));
    }
    outcome.applied = [additions, &shared, removals].concat();
    if world.executor.take_surprise() {
        let verified = phase("verify", || {
            verify(config, att, prev, world, &mut outcome.applied)
        });
        if let Err(error) = verified {
            return Err(fail(&[&outcome.applied], error));
        }
    }
    Ok(outcome)
}

/// Under the host lock, held for nothing else: reads the host's rules and adds the shared
/// rule when it is absent (after this run's routes are in its table: ARCHITECTURE
/// "Ordering"). Returns the ops applied, or those applied before an error and the error.
fn ensure_shared_rule(
    world: &World<'_>,
    desired: &DesiredState,
) -> std::result::Result<Vec<Op>, (Vec<Op>, Error)> {
    if !uses_shared_rule(desired) {
        return Ok(Vec::new());
    }
    let _lock = world.host.lock_host().map_err(|e| (Vec::new(), e))?;
    let shared = shared_rule_ops(world, &desired.host).map_err(|e| (Vec::new(), e))?;
    match phase("apply", || world.executor.apply(&shared)) {
        Ok(()) => Ok(shared),
        Err(failed) => Err((shared[..failed.index].to_vec(), failed.error)),
    }
}

/// Whether a run's host side has a shared rule to ensure or release (not under `sriov`,
/// `only_op_mac`, or without a host peer): only then does it take the host lock.
fn uses_shared_rule(desired: &DesiredState) -> bool {
    !desired.host.present.rules.is_empty() || !desired.host.release_when_unused.is_empty()
}

/// The shared rule's ops, from a read made now (the caller holds the host lock) of the
/// host's rules and, when the rule is to be released once unused, the owned routes of the
/// tables it looks up.
fn shared_rule_ops(world: &World<'_>, desired: &DesiredNetns) -> Result<Vec<Op>> {
    let release = &desired.release_when_unused;
    if desired.present.rules.is_empty() && release.is_empty() {
        return Ok(Vec::new());
    }
    let host_only = SnapshotRequest {
        host_tables: release.iter().map(|rule| rule.table).collect(),
        host_objects: match release.is_empty() {
            true => HostObjects::Rules,
            false => HostObjects::RulesAndOwnedRoutes,
        },
        ..SnapshotRequest::default()
    };
    let host = phase("snapshot", || world.snapshots.snapshot(&host_only))?.host;
    Ok(plan_shared_rule(desired, &host))
}

/// A failed ADD: what it applied is undone in reverse and the record restored. When it
/// had put routes on the host, the undo runs under the host lock and the shared rule is
/// released if no owned route is left in its table. The rule itself is never undone
/// blindly: once this ADD let the lock go, another ADD may rely on the rule it added (and
/// a DEL that saw this ADD's routes kept the rule for it). Returns the error to report
/// (code 3 when the pod went away meanwhile).
fn undo_add(
    world: &World<'_>,
    att: &Attachment,
    prepared: &Prepared,
    applied: &[Op],
    error: Error,
) -> Error {
    let touched_host = applied.iter().any(|op| op.side() == Side::Host);
    let lock = match touched_host && uses_shared_rule(&prepared.compiled.desired) {
        true => match world.host.lock_host() {
            Ok(lock) => Some(lock),
            Err(e) => {
                tracing::warn!(error = %e, "rollback without the host lock: the shared rule is left as it is");
                None
            }
        },
        false => None,
    };
    let own: Vec<Op> = applied
        .iter()
        .filter(|op| !is_shared_rule_op(op))
        .cloned()
        .collect();
    roll_back(world, &own);
    if lock.is_some() {
        release_unused_rule(world, &prepared.compiled.desired.host);
    }
    drop(lock);
    restore_record(world, att, prepared.previous_record.as_ref());
    pod_gone_or(world, prepared, error)
}

/// The rollback's end, under the host lock: the shared rule `host` wants goes when no owned
/// route is left in its table. Best effort, logged.
fn release_unused_rule(world: &World<'_>, host: &DesiredNetns) {
    let release = DesiredNetns {
        release_when_unused: host.present.rules.keys().cloned().collect(),
        ..DesiredNetns::default()
    };
    let released = shared_rule_ops(world, &release).map(|ops| world.executor.apply_all(&ops));
    match released {
        Ok(failures) => failures.iter().for_each(
            |f| tracing::warn!(error = %f.error, "rollback could not release the shared rule"),
        ),
        Err(e) => tracing::warn!(error = %e, "rollback could not read the shared rule"),
    }
}

/// `router check --repair`: makes a drifted attachment what ADD would make it, under the
/// host lock, through the same plan, record, rollback and verification as ADD. Unlike ADD
/// it probes for no IP conflict (the addresses are the pod's already) and prints no result;
/// the record is written only when there is something to apply, and then as ADD would
/// write it, keeping the inputs of the ADD that wrote it (`inputs` fill a record without
/// them). Returns the ops applied (empty when there was no drift).
pub fn repair(
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    inputs: &AddInputs,
    world: &World<'_>,
) -> Result<Vec<Op>> {
    apply_locked(config, att, prev, world, RecordWrite::WhenPending(inputs)).map(|o| o.applied)
}

/// BEHAVIOUR 5: every address of C probed at once from the MAC C has now (the probes go
/// out before any MAC change is applied). A conflict is error 101.
fn detect_conflicts(
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    actual: &ActualState,
    probe: &dyn AddressProbe,
) -> Result<()> {
    let netns = att.netns.as_deref().ok_or_else(|| {
        Error::UnknownContainer("no pod netns to probe C's addresses from".into())
    })?;
    let mac = actual
        .pod
        .as_ref()
        .and_then(|pod| pod.macs.get(&att.ifname))
        .copied()
        .ok_or_else(|| Error::Kernel {
            object: format!("link {} in the pod netns", att.ifname),
            reason: "not found: its addresses cannot be probed for conflicts".into(),
        })?;
    let addrs = chained_ips(prev, &att.ifname);
    let conflict = &config.ip_conflict;
    let started = std::time::Instant::now();
    let target = Target {
        pod_netns: netns,
        ifname: &att.ifname,
        mac,
        addrs: &addrs,
    };
    let found = probe.detect(&target, conflict.interval, conflict.retries)?;
    tracing::debug!(
        addresses = addrs.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        conflict = ?found,
        "ip conflict check"
    );
    match found {
        Some(c) => Err(c.into()),
        None => Ok(()),
    }
}

/// C's addresses from prevResult, each once, in prevResult's order.
fn chained_ips(prev: &PrevView, ifname: &str) -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = Vec::new();
    for addr in prev.addresses_of(ifname).iter().map(IpNet::addr) {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    addrs
}

/// A failed apply whose cause is that the pod netns went away meanwhile (the pod was
/// deleted while its ADD ran) says so, with code 3, rather than naming the first op that
/// could not enter it.
fn pod_gone_or(world: &World<'_>, prepared: &Prepared, error: Error) -> Error {
    if prepared.actual.pod.is_none() {
        return error;
    }
    match world.snapshots.snapshot(&prepared.request) {
        Ok(now) if now.pod.is_none() => Error::UnknownContainer(format!(
            "the pod netns went away while ADD applied its changes ({error}); what was applied is rolled back"
        )),
        _ => error,
    }
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

/// Reads everything again (`HostObjects::All`) and re-plans; applies what is still
/// pending, a bounded number of times, adding what it applied to `applied` (for the
/// rollback). Run only when the kernel surprised the executor: otherwise every op's ACK is
/// its verification (issue 14). An unowned object in the way, which a read through H alone
/// cannot show (a host route add found its slot taken), is ADD's code 103 as if the first
/// plan had seen it. A shared rule the re-plan still wants is ensured under the host lock,
/// as the first time.
fn verify(
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    world: &World<'_>,
    applied: &mut Vec<Op>,
) -> Result<()> {
    for _ in 0..VERIFY_ROUNDS {
        let again = prepare_add(HostObjects::All, config, att, prev, world)?;
        if !again.plan.blocked.is_empty() {
            return Err(blocked_error(&again.plan));
        }
        if again.plan.ops.is_empty() {
            return Ok(());
        }
        let own = own_ops(&again.plan);
        let own_applied = world.executor.apply(&own);
        let done = own_applied.as_ref().map_or_else(|f| f.index, |()| own.len());
        applied.extend_from_slice(&own[..done]);
        own_applied.map_err(|failed| failed.error)?;
        if again.plan.ops.iter().any(is_shared_rule_op) {
            let shared = ensure_shared_rule(world, &again.compiled.desired);
            let (ops, result) = match shared {
                Ok(ops) => (ops, Ok(())),
                Err((ops, error)) => (ops, Err(error)),
            };
            applied.extend(ops);
            result?;
        }
    }
    let left = prepare_add(HostObjects::All, config, att, prev, world)?;
    if left.plan.ops.is_empty() && left.plan.blocked.is_empty() {
        return Ok(());
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
    let prepared = prepare_add(HostObjects::All, config, att, prev, world)?;
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
/// still there afterwards (read again only after a failure or a surprise). The record goes
/// last.
pub fn del(
    config: &Config,
    att: &Attachment,
    prev: Option<&PrevView>,
    world: &World<'_>,
) -> Result<Vec<Op>> {
    let reads = Reads::from(world);
    let mode = Mode::Del;
    let prepared = prepare_reading(mode, HostObjects::ThroughPodPeers, config, att, prev, reads)?;
    world.executor.take_surprise();
    let own = own_ops(&prepared.plan);
    let mut failures = phase("apply", || world.executor.apply_all(&own));
    // Our routes are gone from host_rule_table: under the lock, the rule goes only when no
    // other attachment's owned route is left there (an ADD adds its routes before it takes
    // the lock to ensure the rule, so it is either seen here or re-adds the rule after).
    let host = match uses_shared_rule(&prepared.compiled.desired) {
        true => Some(world.host.lock_host()?),
        false => None,
    };
    let shared = shared_rule_ops(world, &prepared.compiled.desired.host)?;
    failures.extend(phase("apply", || world.executor.apply_all(&shared)));
    drop(host);
    // Every removal ACKed as done leaves nothing owned that DEL could reach; a failure or
    // a surprise is proved by reading again. The shared rule is not judged there: it was
    // decided above, and a rule kept for a route another DEL removes since is that DEL's
    // to release.
    if !failures.is_empty() || world.executor.take_surprise() {
        let mut after =
            prepare_reading(mode, HostObjects::ThroughPodPeers, config, att, prev, reads)?;
        after.plan.ops.retain(|op| !is_shared_rule_op(op));
        if !after.plan.ops.is_empty() {
            return Err(del_error(&failures, &after.plan));
        }
    }
    phase("record", || {
        world.records.remove(&att.container_id, &att.ifname)
    })?;
    Ok(own.into_iter().chain(shared).collect())
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
        match collect(config, record, world) {
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

#[cfg(test)]
mod repair_tests;
#[cfg(test)]
mod tests;
