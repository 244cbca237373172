//! reconcile::add: ADD (BEHAVIOUR 2), `router check --repair` and `router rollout`: plan,
//! refuse when blocked, probe for IP conflicts (ADD only), record, apply with rollback,
//! verify. Must not word its failures (`PlanFailure`).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::rollback::undo_add;
use super::shared_rule::ensure_shared_rule;
use super::{
    overlay_not_ready, prepare_reading, Attachment, Failure, PlanFailure, Prepared, Reach, Result,
    Sources, World,
};
use crate::compile::{OverlayFacts, Unready};
use crate::config::{Config, PrevView};
use crate::conflict::{explain_failure, AddressProbe, Target};
use crate::error::Error;
use crate::logging::phase;
use crate::model::{ActualState, AddInputs, MacAddr, Mode, Op, Record};
use crate::model::{Change, RouteKey, Side, MAIN_TABLE};
use crate::plan::{is_add_removal, is_shared_rule_op, own_ops};
use crate::snapshot::{HostObjects, SnapshotRequest};

/// Verification re-plans this many times, applying what is still pending, before it fails.
const VERIFY_ROUNDS: usize = 3;

/// What an ADD did.
#[derive(Debug, Clone)]
pub struct AddOutcome {
    pub new_mac: Option<MacAddr>,
    pub applied: Vec<Op>,
    pub notes: Vec<String>,
    /// Degraded but working setups worth a warning (the overlay interface without a host
    /// peer).
    pub warnings: Vec<String>,
}

/// ADD and repair refuse a plan with unowned objects in the way (code 103).
fn refuse_blocked(prepared: &Prepared) -> Result<()> {
    match prepared.plan.blocked.is_empty() {
        true => Ok(()),
        false => Err(PlanFailure::Blocked(prepared.plan.blocked.clone()).into()),
    }
}

/// BEHAVIOUR 2: plan, refuse when unowned objects block, probe the chained interface's
/// addresses when `ip_conflict` is enabled (5), write the record (with `inputs`, what this
/// ADD ran with), apply (rolling back on failure), verify. The chained interface's
/// addresses are announced from a new MAC by the kernel (2.1: `arp_notify`/`ndisc_notify`
/// on the chained interface, set before the MAC changes).
///
/// The overlay interface must be ready first (`compile::overlay_unready`): a runtime may
/// run the default network's plugin at the same time as this chain. While it is not, ADD
/// reads again every `OVERLAY_POLL` up to `overlay_wait`; once it is, after a wait, one
/// more read must find it unchanged (the default network's plugin adds its routes one by
/// one). What ADD planned from is read again after applying: if the overlay changed under
/// it, what it applied is rolled back and it starts over. Past `overlay_wait`: code 104,
/// nothing changed.
pub fn add(
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    inputs: &AddInputs,
    world: &World<'_>,
    probe: &dyn AddressProbe,
) -> Result<AddOutcome> {
    let started = Instant::now();
    let mut settling: Option<OverlayFacts> = None;
    loop {
        let unready = match add_once(config, att, prev, inputs, world, probe, settling.as_ref())? {
            Attempt::Done(outcome) => {
                if settling.is_some() {
                    let waited_ms =
                        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    tracing::info!(
                        waited_ms,
                        "the overlay interface became ready while ADD waited"
                    );
                }
                return Ok(outcome);
            }
            Attempt::NotYet { facts, unready } => {
                settling = Some(facts);
                unready
            }
        };
        let waited = started.elapsed();
        if waited >= config.overlay_wait {
            let waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
            return Err(overlay_not_ready(config, att, &unready, waited_ms).into());
        }
        tracing::debug!(reasons = ?unready, "overlay interface not ready yet; reading again");
        std::thread::sleep(OVERLAY_POLL.min(config.overlay_wait - waited));
    }
}

/// How often ADD reads the overlay interface again while it waits for it.
const OVERLAY_POLL: Duration = Duration::from_millis(20);

/// One try of ADD: done, or the overlay is not ready (or not still) yet.
enum Attempt {
    Done(AddOutcome),
    NotYet {
        /// The overlay as this try found it, for the next try to compare with.
        facts: OverlayFacts,
        unready: Vec<Unready>,
    },
}

fn add_once(
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    inputs: &AddInputs,
    world: &World<'_>,
    probe: &dyn AddressProbe,
    settling: Option<&OverlayFacts>,
) -> Result<Attempt> {
    if config.ip_conflict.enabled {
        // Outside the host lock: probing takes retries x interval and reads only the pod's
        // segment; holding the node-wide lock that long would queue every ADD and DEL on
        // the node behind it. The locked part below plans again from a fresh snapshot.
        let prepared = prepare_add(HostObjects::ThroughPodPeers, config, att, prev, world)?;
        if let Some(not_yet) = overlay_not_yet(config, att, &prepared, settling) {
            return Ok(not_yet);
        }
        refuse_blocked(&prepared)?;
        detect_conflicts(config, att, prev, &prepared.actual, probe)?;
    }
    plan_and_apply(
        config,
        att,
        prev,
        world,
        RecordWrite::Always(inputs),
        settling,
    )
}

/// Whether ADD must wait: the overlay is not ready, or it changed since the last try
/// (`settling`), which found it not ready. None when ADD may go on.
fn overlay_not_yet(
    config: &Config,
    att: &Attachment,
    prepared: &Prepared,
    settling: Option<&OverlayFacts>,
) -> Option<Attempt> {
    let pod = prepared.actual.pod.as_ref()?;
    if config.only_op_mac {
        return None;
    }
    let facts = OverlayFacts::of(
        pod,
        &config.overlay_interface,
        &att.ifname,
        &BTreeSet::new(),
    );
    let unready = match (prepared.unready.is_empty(), settling) {
        (false, _) => prepared.unready.clone(),
        (true, Some(before)) if *before != facts => {
            vec![Unready::Changing(before.changes_to(&facts))]
        }
        (true, _) => return None,
    };
    Some(Attempt::NotYet { facts, unready })
}

/// ADD's (and CHECK's) view: compiled as ADD from the world as it is now.
pub(super) fn prepare_add(
    host_objects: HostObjects,
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    world: &World<'_>,
) -> Result<Prepared> {
    let sources = Sources::of(world, Reach::Attachment);
    Ok(prepare_reading(
        Mode::Add,
        host_objects,
        config,
        att,
        Some(prev),
        sources,
    )?)
}

/// Whether the record is written when the plan is already empty, and the inputs it keeps.
#[derive(Clone, Copy)]
enum RecordWrite<'a> {
    /// ADD: always (a repeated ADD refreshes it), with this ADD's inputs.
    Always(&'a AddInputs),
    /// repair: only when there is something to apply. The inputs of the ADD that wrote
    /// the record stay; these (the operator's) only fill a record that has none.
    WhenPending(&'a AddInputs),
    /// rollout: always (the record is what makes the rolled-out config win from then on),
    /// as repair keeps inputs, with `config` as the rolled-out config. Refused without a
    /// record (the attachment was deleted meanwhile) and, unless `prune`, when the plan
    /// removes owned objects.
    RollOut {
        inputs: &'a AddInputs,
        config: &'a serde_json::Value,
        prune: bool,
    },
}

impl RecordWrite<'_> {
    /// The record to write: what compile derived plus the inputs this write keeps.
    fn record(self, prepared: &Prepared) -> Record {
        let previous = prepared.previous_record.as_ref();
        let kept = previous.and_then(|r| r.inputs.clone());
        // A rolled-out config stays until the next rollout: an ADD or repair of the same
        // attachment acts on it and must not forget it.
        let rolled_out = previous.and_then(|r| r.rolled_out.clone());
        let (inputs, rolled_out) = match self {
            RecordWrite::Always(inputs) => (inputs.clone(), rolled_out),
            RecordWrite::WhenPending(inputs) => {
                (kept.unwrap_or_else(|| inputs.clone()), rolled_out)
            }
            RecordWrite::RollOut { inputs, config, .. } => {
                (kept.unwrap_or_else(|| inputs.clone()), Some(config.clone()))
            }
        };
        Record {
            inputs: Some(inputs),
            rolled_out,
            ..prepared.compiled.record()
        }
    }
}

/// Plan, refuse when blocked, record, apply with rollback, verify. Only the shared host
/// rule is decided under the host lock, after this run's own ops (ARCHITECTURE "Ordering").
fn plan_and_apply(
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    world: &World<'_>,
    write: RecordWrite<'_>,
    settling: Option<&OverlayFacts>,
) -> Result<Attempt> {
    let prepared = prepare_add(HostObjects::ThroughPodPeers, config, att, prev, world)?;
    if let Some(not_yet) = overlay_not_yet(config, att, &prepared, settling) {
        return Ok(not_yet);
    }
    refuse_blocked(&prepared)?;
    if let RecordWrite::RollOut { prune, .. } = write {
        refuse_rollout(&prepared, att, prune)?;
    }
    let mut outcome = AddOutcome {
        new_mac: prepared.compiled.new_mac,
        applied: Vec::new(),
        notes: prepared.compiled.notes.clone(),
        warnings: prepared.compiled.warnings.clone(),
    };
    let nothing_to_apply = prepared.plan.ops.is_empty();
    if nothing_to_apply && matches!(write, RecordWrite::WhenPending(_)) {
        return Ok(Attempt::Done(outcome));
    }
    let record = write.record(&prepared);
    if prepared.previous_record.as_ref() != Some(&record) {
        phase("record", || world.records.save(&record))?;
    }
    if nothing_to_apply {
        // A repeated ADD: the kernel already is as wanted (the rule with our routes, which
        // no DEL releases it from); nothing to verify.
        return Ok(Attempt::Done(outcome));
    }
    let own = own_ops(&prepared.plan);
    // Additions, then the shared rule under the lock, then the removals: moving the
    // previous default route out of main stays the last thing an ADD does.
    let split = own
        .iter()
        .position(|op| is_add_removal(op, Mode::Add))
        .unwrap_or(own.len());
    let (additions, removals) = own.split_at(split);
    let fail = |applied: &[&[Op]], error: Failure| {
        let applied: Vec<Op> = applied.concat();
        undo_add(world, att, &prepared, &applied, error)
    };
    let addresses = prev.addresses_of(&att.ifname);
    let added = match phase("apply", || {
        world.executor.apply(additions, &prepared.actual)
    }) {
        Ok(answers) => answers,
        Err(failed) => {
            let error = explain_failure(additions.get(failed.index), failed.error, &addresses);
            return Err(fail(&[&additions[..failed.index]], error.into()));
        }
    };
    let (shared, shared_answers) = match ensure_shared_rule(world, &prepared.compiled.desired) {
        Ok(shared) => shared,
        Err((applied, error)) => return Err(fail(&[additions, &applied], error.into())),
    };
    let removed = match phase("apply", || world.executor.apply(removals, &prepared.actual)) {
        Ok(answers) => answers,
        Err(failed) => {
            let error = explain_failure(removals.get(failed.index), failed.error, &addresses);
            let applied = [additions, &shared, &removals[..failed.index]];
            return Err(fail(&applied, error.into()));
        }
    };
    outcome.applied = [additions, &shared, removals].concat();
    if added.and(shared_answers).and(removed).surprising() {
        let verified = phase("verify", || {
            verify(config, att, prev, world, &mut outcome.applied)
        });
        if let Err(error) = verified {
            return Err(fail(&[&outcome.applied], error));
        }
    }
    if let Some(changes) = overlay_changed_under(config, att, world, &prepared)? {
        let error = overlay_not_ready(config, att, &[Unready::Changing(changes.clone())], 0);
        let reported = fail(&[&outcome.applied], error.into());
        tracing::info!(error = %reported, "the overlay interface changed while ADD ran: rolled back, starting over");
        let facts = match world
            .snapshots
            .snapshot(&overlay_request(&prepared.request))?
            .pod
        {
            Some(pod) => OverlayFacts::of(
                &pod,
                &config.overlay_interface,
                &att.ifname,
                &BTreeSet::new(),
            ),
            None => return Err(reported),
        };
        return Ok(Attempt::NotYet {
            facts,
            unready: vec![Unready::Changing(changes)],
        });
    }
    Ok(Attempt::Done(outcome))
}

/// The pod's links and main table only: what the overlay facts are read from.
fn overlay_request(request: &SnapshotRequest) -> SnapshotRequest {
    SnapshotRequest {
        pod_only: true,
        pod_tables: BTreeSet::from([MAIN_TABLE]),
        ..request.clone()
    }
}

/// After an ADD applied its plan: what changed in the overlay facts it planned from (the
/// default network's plugin still at work), or None. Only for a first ADD that routes
/// through the overlay: a repeated one compiles from its record.
fn overlay_changed_under(
    config: &Config,
    att: &Attachment,
    world: &World<'_>,
    prepared: &Prepared,
) -> Result<Option<Vec<String>>> {
    let Some(before) = prepared.actual.pod.as_ref() else {
        return Ok(None);
    };
    if config.only_op_mac || prepared.previous_record.is_some() {
        return Ok(None);
    }
    let removed = removed_from_main(&prepared.plan.ops);
    let overlay = &config.overlay_interface;
    let planned = OverlayFacts::of(before, overlay, &att.ifname, &removed);
    let now = phase("snapshot", || {
        world
            .snapshots
            .snapshot(&overlay_request(&prepared.request))
    })?;
    let Some(after) = now.pod.as_ref() else {
        return Ok(None);
    };
    let found = OverlayFacts::of(after, overlay, &att.ifname, &removed);
    match planned == found {
        true => Ok(None),
        false => Ok(Some(planned.changes_to(&found))),
    }
}

/// The pod main-table routes a plan removes (the previous default interface's default,
/// moved into the pod table).
fn removed_from_main(ops: &[Op]) -> BTreeSet<RouteKey> {
    ops.iter()
        .filter(|op| op.netns == Side::Pod)
        .filter_map(|op| match &op.change {
            Change::DelRoute { route } if route.key.table == MAIN_TABLE => Some(route.key.clone()),
            _ => None,
        })
        .collect()
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
    match plan_and_apply(
        config,
        att,
        prev,
        world,
        RecordWrite::WhenPending(inputs),
        None,
    )? {
        Attempt::Done(outcome) => Ok(outcome.applied),
        // A repair does not wait: the attachment has been there, so an overlay that is not
        // ready now (its veth peer not in this netns) means this is not the node's netns.
        Attempt::NotYet { unready, .. } => Err(overlay_not_ready(config, att, &unready, 0).into()),
    }
}

/// `router rollout` for one attachment, under its lock (the caller's): what repair does,
/// with `config` (the new one, as JSON in `rolled_out`) kept in the record even when the
/// kernel already holds what it wants. Refused, nothing touched, when the attachment has no
/// record (a DEL removed it: re-creating its objects would leak them) and, without
/// `prune`, when the plan removes owned objects. Returns the ops applied.
pub fn rollout(
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    inputs: &AddInputs,
    rolled_out: &serde_json::Value,
    prune: bool,
    world: &World<'_>,
) -> Result<Vec<Op>> {
    let write = RecordWrite::RollOut {
        inputs,
        config: rolled_out,
        prune,
    };
    match plan_and_apply(config, att, prev, world, write, None)? {
        Attempt::Done(outcome) => Ok(outcome.applied),
        Attempt::NotYet { unready, .. } => Err(overlay_not_ready(config, att, &unready, 0).into()),
    }
}

/// A rollout's refusals, decided on the plan it is about to apply.
fn refuse_rollout(prepared: &Prepared, att: &Attachment, prune: bool) -> Result<()> {
    if prepared.previous_record.is_none() {
        return Err(Error::UnknownContainer(format!(
            "{}/{} has no record: it was deleted (or never added by router)",
            att.container_id, att.ifname
        ))
        .into());
    }
    let removals = owned_removals(&prepared.plan.ops);
    match prune || removals.is_empty() {
        true => Ok(()),
        false => Err(PlanFailure::WouldRemove(removals).into()),
    }
}

/// The ops of a plan that remove an object without putting another in its place: what a
/// rollout may apply only when asked to prune. Value changes (a sysctl, a neighbour's
/// MAC, a route replaced in its slot) are not removals.
pub fn owned_removals(ops: &[Op]) -> Vec<Op> {
    ops.iter()
        .filter(|op| {
            matches!(
                op.change,
                Change::DelRoute { .. } | Change::DelRule { .. } | Change::DelNeighbour { .. }
            )
        })
        .cloned()
        .collect()
}

/// BEHAVIOUR 5: every address of the chained interface probed at once from the MAC the
/// chained interface has now (the probes go out before any MAC change is applied). A
/// conflict is error 101.
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
        Some(c) => Err(Error::from(c).into()),
        None => Ok(()),
    }
}

/// The chained interface's addresses from prevResult, each once, in prevResult's order.
fn chained_ips(prev: &PrevView, ifname: &str) -> Vec<IpAddr> {
    let mut addrs: Vec<IpAddr> = Vec::new();
    for addr in prev.addresses_of(ifname).iter().map(IpNet::addr) {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    addrs
}

/// Reads everything again (`HostObjects::All`) and re-plans; applies what is still pending,
/// a bounded number of times, adding what it applied to `applied` (for the rollback). Run
/// only when the kernel surprised the executor: otherwise every op's ACK is its
/// verification. An unowned object in the way, which a read through the host veth peer
/// alone cannot show (a host route add found its slot taken), is ADD's code 103 as if the
/// first plan had seen it. A shared rule the re-plan still wants is ensured under the host
/// lock, as the first time.
fn verify(
    config: &Config,
    att: &Attachment,
    prev: &PrevView,
    world: &World<'_>,
    applied: &mut Vec<Op>,
) -> Result<()> {
    for _ in 0..VERIFY_ROUNDS {
        let again = prepare_add(HostObjects::All, config, att, prev, world)?;
        refuse_blocked(&again)?;
        if again.plan.ops.is_empty() {
            return Ok(());
        }
        let own = own_ops(&again.plan);
        let own_applied = world.executor.apply(&own, &again.actual);
        let done = own_applied.as_ref().map_or_else(|f| f.index, |_| own.len());
        applied.extend_from_slice(&own[..done]);
        // Each round reads everything again, so how the kernel answered is not needed.
        let _read_again_anyway = own_applied.map_err(|failed| failed.error)?;
        if again.plan.ops.iter().any(is_shared_rule_op) {
            let (ops, result) = match ensure_shared_rule(world, &again.compiled.desired) {
                Ok((ops, _)) => (ops, Ok(())),
                Err((ops, error)) => (ops, Err(error)),
            };
            applied.extend(ops);
            result?;
        }
    }
    let left = prepare_add(HostObjects::All, config, att, prev, world)?;
    refuse_blocked(&left)?;
    if left.plan.ops.is_empty() {
        return Ok(());
    }
    Err(PlanFailure::NotKept(left.plan).into())
}
