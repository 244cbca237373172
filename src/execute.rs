//! execute: applies ops. The trait the reconciler drives, the live executor (drives
//! `netlink` from the calling thread through its handle of each side's netns, a link's
//! IPv4 sysctls included, and writes the other sysctls' files through `netns`: the pod's
//! through those the run's visitor opened there).
//! The in-memory kernel for tests is `testkit::ModelKernel`.
//! Never plans: it applies what it is given, in order, and says what failed.

use std::cell::Cell;
use std::mem::discriminant;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{ActualState, Change, NetnsState, Op, Route, Side};
use crate::netlink::{Links, Netlink, Outcome, Write};
use crate::netns::{self, NetnsVisitor};

/// An op that failed, with the ops before it applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub index: usize,
    pub error: Error,
}

/// How the kernel answered the ops of one apply. `Surprising` when an op was answered
/// "already so" (EEXIST on an add, ENOENT/ESRCH on a delete, a delete whose device is
/// gone), or was a route replace whose slot held a route the plan keeps (the kernel's IPv4
/// replace takes the first alias of the slot, which may be that one). A replace of a slot
/// that held only the routes it displaces, as the read before it says, is as planned: the
/// replace is ACKed and every other route of the slot is deleted after it.
/// As planned, every op's ACK says it took effect, and that is its verification; surprised,
/// the reconciler reads again and re-plans. Executors that cannot tell answer `Surprising`:
/// their callers then always verify.
#[must_use]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Answers {
    #[default]
    AsPlanned,
    Surprising,
}

impl Answers {
    pub fn surprising(self) -> bool {
        self == Answers::Surprising
    }

    /// The answers of two applies together: surprising when either was.
    pub fn and(self, other: Answers) -> Answers {
        match self.surprising() || other.surprising() {
            true => Answers::Surprising,
            false => Answers::AsPlanned,
        }
    }
}

/// What a best-effort apply did: the ops that failed, and how the kernel answered the rest.
#[must_use]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedAll {
    pub failures: Vec<Failed>,
    pub answers: Answers,
}

/// Applies ops. `planned_from` is the state the ops were planned from: its links name the
/// devices the ops use (netlink names a device by its index), so applying needs no read of
/// its own unless an op names a device that state lacks.
pub trait Executor {
    /// Applies `ops` in order and stops at the first failure; says how the kernel answered.
    fn apply(&self, ops: &[Op], planned_from: &ActualState)
        -> std::result::Result<Answers, Failed>;

    /// Applies every op it can, past failures (DEL is best effort).
    fn apply_all(&self, ops: &[Op], planned_from: &ActualState) -> AppliedAll {
        let mut all = AppliedAll::default();
        for (index, op) in ops.iter().enumerate() {
            match self.apply(std::slice::from_ref(op), planned_from) {
                Ok(answers) => all.answers = all.answers.and(answers),
                Err(f) => all.failures.push(Failed {
                    index,
                    error: f.error,
                }),
            }
        }
        all
    }
}

/// Applies ops to the kernel from the calling thread, in its own netns: host ops through
/// its handle of its own netns (`Netlink::on_this_thread`), pod ops through its handle of
/// the pod netns (`Netlink::in_netns`, opened in a visit by the run's visitor, shared with
/// the snapshot). File sysctls: the pod's are written through the files the visitor opened
/// there, the host's here.
/// Consecutive ops of one kind (e.g. a thousand route adds) go to the kernel all at once
/// and their ACKs are collected afterwards; to keep "stops at the first failure", the ops
/// of such a batch that the kernel applied after the failing one are undone.
/// Must not be called from async code (netlink blocks the calling thread).
#[derive(Clone, Debug, Default)]
pub struct LiveExecutor {
    pod: Option<Arc<NetnsVisitor>>,
}

/// Whether a failure ends the work (`apply`) or the rest is still tried (`apply_all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    StopAtFirst,
    Continue,
}

impl LiveExecutor {
    /// An executor with a visitor of its own for the pod netns at `pod_netns`.
    pub fn new(pod_netns: Option<PathBuf>) -> LiveExecutor {
        LiveExecutor::in_pod(pod_netns.map(|path| Arc::new(NetnsVisitor::new(path))))
    }

    /// An executor applying pod ops on `pod`, the run's visitor, shared with its snapshot.
    pub fn in_pod(pod: Option<Arc<NetnsVisitor>>) -> LiveExecutor {
        LiveExecutor { pod }
    }

    /// Applies `ops` as runs of one side each, naming devices with the links of
    /// `planned_from`; failure indexes are into `ops`. Any op the kernel answered otherwise
    /// than planned sets `surprise` (this call's own flag).
    fn run(
        &self,
        ops: &[Op],
        planned_from: &ActualState,
        policy: Policy,
        surprise: &Cell<bool>,
    ) -> Vec<Failed> {
        let same_side_end = |start: usize| {
            let side = ops[start].netns;
            ops[start..]
                .iter()
                .position(|op| op.netns != side)
                .map_or(ops.len(), |n| start + n)
        };
        in_chunks(ops, policy, same_side_end, |run| {
            match (run[0].netns, &self.pod) {
                (Side::Host, _) => {
                    let named = Named(Some(&planned_from.host));
                    apply_run(Place::Here, run, named, policy, surprise)
                }
                (Side::Pod, Some(visitor)) => {
                    let named = Named(planned_from.pod.as_ref());
                    apply_run(Place::Pod(visitor), run, named, policy, surprise)
                }
                (Side::Pod, None) => {
                    let error =
                        Error::io_other("pod netns", "no pod netns path was given for pod ops");
                    fail_all(run.len(), policy, &error)
                }
            }
        })
    }
}

/// The netns a run of ops is applied in.
#[derive(Clone, Copy)]
enum Place<'a> {
    /// The calling thread's own (the host's).
    Here,
    /// The pod's: netlink from the calling thread through its handle there, file sysctls
    /// through the files the visitor opened inside it.
    Pod(&'a NetnsVisitor),
}

impl Place<'_> {
    fn netlink<T>(self, f: impl FnOnce(&Netlink) -> Result<T>) -> Result<T> {
        match self {
            Place::Here => Netlink::on_this_thread(f),
            Place::Pod(visitor) => Netlink::in_netns(visitor, f),
        }
    }

    /// Writes the file sysctl ops of `ops` in order, in this netns: the pod's through files
    /// its visitor opened there, those not open yet opened in one visit first.
    fn write_sysctls(self, ops: &[Op], policy: Policy) -> Vec<Failed> {
        let mut failures = Vec::new();
        if let Place::Pod(visitor) = self {
            let keys = ops.iter().filter_map(|op| match &op.change {
                Change::SetSysctl { key, .. } => Some(key.clone()),
                _ => None,
            });
            // A failure to open them ahead is not the write's: each write then visits the
            // pod on its own and fails or succeeds there, as it says.
            if let Err(error) = visitor.hold_sysctl_files(keys) {
                tracing::debug!(%error, "sysctl files not opened ahead");
            }
        }
        for (index, op) in ops.iter().enumerate() {
            let Change::SetSysctl { key, new, .. } = &op.change else {
                continue;
            };
            let written = match self {
                Place::Here => netns::write_sysctl(key, *new),
                Place::Pod(visitor) => visitor.write_sysctl(key, *new),
            };
            match written {
                Ok(()) => tracing::debug!(sysctl = %key, value = new, "applied"),
                Err(error) => {
                    failures.push(Failed { index, error });
                    if policy == Policy::StopAtFirst {
                        break;
                    }
                }
            }
        }
        failures
    }
}

impl Executor for LiveExecutor {
    fn apply(
        &self,
        ops: &[Op],
        planned_from: &ActualState,
    ) -> std::result::Result<Answers, Failed> {
        let surprise = Cell::new(false);
        let failures = self.run(ops, planned_from, Policy::StopAtFirst, &surprise);
        match failures.into_iter().next() {
            Some(failed) => Err(failed),
            None => Ok(answers(&surprise)),
        }
    }

    fn apply_all(&self, ops: &[Op], planned_from: &ActualState) -> AppliedAll {
        let surprise = Cell::new(false);
        let failures = self.run(ops, planned_from, Policy::Continue, &surprise);
        AppliedAll {
            failures,
            answers: answers(&surprise),
        }
    }
}

fn answers(surprise: &Cell<bool>) -> Answers {
    match surprise.get() {
        true => Answers::Surprising,
        false => Answers::AsPlanned,
    }
}

/// The failures of ops that could not even be tried: the first, or all of them.
fn fail_all(len: usize, policy: Policy, error: &Error) -> Vec<Failed> {
    let count = match policy {
        Policy::StopAtFirst => len.min(1),
        Policy::Continue => len,
    };
    (0..count)
        .map(|index| Failed {
            index,
            error: error.clone(),
        })
        .collect()
}

/// Applies a run of ops of one side in `place`: sysctls as files, the rest through the
/// netlink handle, with at most one link dump for the run (when an op names a device).
/// Failure indexes are into `ops`.
fn apply_run(
    place: Place<'_>,
    ops: &[Op],
    named: Named<'_>,
    policy: Policy,
    surprise: &Cell<bool>,
) -> Vec<Failed> {
    let same_kind_end = |start: usize| {
        let files = is_file_sysctl(&ops[start]);
        ops[start..]
            .iter()
            .position(|op| is_file_sysctl(op) != files)
            .map_or(ops.len(), |n| start + n)
    };
    in_chunks(ops, policy, same_kind_end, |chunk| {
        match is_file_sysctl(&chunk[0]) {
            true => place.write_sysctls(chunk, policy),
            false => place
                .netlink(|nl| Ok(apply_run_with(nl, chunk, named, policy, surprise)))
                .unwrap_or_else(|error| fail_all(chunk.len(), policy, &error)),
        }
    })
}

/// A sysctl written through its file: those a netlink request cannot set (IPv6's, `all`'s
/// and `default`'s). A link's IPv4 sysctls go as link requests with the other writes.
fn is_file_sysctl(op: &Op) -> bool {
    matches!(&op.change, Change::SetSysctl { key, .. } if !Write::sets_sysctl(key))
}

/// The links of one side of the state the ops were planned from (None: that side was not
/// read, or its netns is gone).
#[derive(Clone, Copy)]
struct Named<'a>(Option<&'a NetnsState>);

impl Named<'_> {
    /// Links naming every one of `devices`: those of the planned-from state when it holds
    /// them all, else the links read now (a device made since that read). A run that
    /// names no device (the shared rule's, under the host lock) reads none.
    fn links_for(self, nl: &Netlink, devices: &[&str]) -> Result<Links> {
        let planned = self.0.map(|state| &state.links);
        match planned {
            Some(links) if devices.iter().all(|dev| links.contains_key(*dev)) => Ok(Links {
                links: links.clone(),
                ..Links::default()
            }),
            _ if devices.is_empty() => Ok(Links::default()),
            _ => nl.link_names(),
        }
    }
}

fn apply_run_with(
    nl: &Netlink,
    ops: &[Op],
    named: Named<'_>,
    policy: Policy,
    surprise: &Cell<bool>,
) -> Vec<Failed> {
    let devices: Vec<&str> = ops
        .iter()
        .flat_map(|op| devices_named(&op.change))
        .collect();
    let planned_from = named.0;
    let links = match named.links_for(nl, &devices) {
        Ok(links) => links,
        Err(error) => return fail_all(ops.len(), policy, &error),
    };
    in_chunks(
        ops,
        policy,
        |start| batch_end(ops, start),
        |batch| {
            if batch.len() > 1 {
                apply_batch(nl, &links, batch, policy, surprise)
            } else {
                apply_one(nl, &links, &batch[0])
                    .map(|outcome| {
                        note_answer(&batch[0], outcome, surprise);
                        if replace_may_take_a_kept_route(&batch[0], planned_from) {
                            surprise.set(true);
                        }
                    })
                    .err()
                    .map(|error| Failed { index: 0, error })
                    .into_iter()
                    .collect()
            }
        },
    )
}

/// The devices a change's netlink request names by index (rules name theirs by name,
/// file sysctls none).
fn devices_named(change: &Change) -> Vec<&str> {
    fn dev(route: &Route) -> Option<&str> {
        route.key.dev.as_deref()
    }
    match change {
        Change::AddRoute { route } | Change::DelRoute { route } => dev(route).into_iter().collect(),
        Change::ReplaceRoute { old, new } => [new].into_iter().chain(old).filter_map(dev).collect(),
        Change::AddNeighbour { neighbour }
        | Change::ReplaceNeighbour { new: neighbour, .. }
        | Change::DelNeighbour { neighbour } => vec![neighbour.key.dev.as_str()],
        Change::SetMac { dev, .. } => vec![dev.as_str()],
        Change::SetSysctl { key, .. } if Write::sets_sysctl(key) => vec![key.iface.as_str()],
        Change::AddRule { .. } | Change::DelRule { .. } | Change::SetSysctl { .. } => Vec::new(),
    }
}

/// Cuts `ops` into consecutive chunks (`chunk_end` says where the one starting at an index
/// ends), applies each, and reports failures with indexes into `ops`; with StopAtFirst it
/// stops after the first chunk that failed.
fn in_chunks(
    ops: &[Op],
    policy: Policy,
    chunk_end: impl Fn(usize) -> usize,
    mut apply: impl FnMut(&[Op]) -> Vec<Failed>,
) -> Vec<Failed> {
    let mut failures = Vec::new();
    let mut start = 0;
    while start < ops.len() {
        let end = chunk_end(start);
        failures.extend(apply(&ops[start..end]).into_iter().map(|f| Failed {
            index: start + f.index,
            error: f.error,
        }));
        if policy == Policy::StopAtFirst && !failures.is_empty() {
            break;
        }
        start = end;
    }
    failures
}

/// The end of the batch starting at `start`: the following ops of the same kind, when
/// that kind is one netlink request per op.
fn batch_end(ops: &[Op], start: usize) -> usize {
    let first = &ops[start];
    if !is_single_request(first) {
        return start + 1;
    }
    ops[start..]
        .iter()
        .position(|op| discriminant(&op.change) != discriminant(&first.change))
        .map_or(ops.len(), |n| start + n)
}

/// Ops that are one netlink request each. A route replace is several (the replace, then
/// the removals); a file sysctl is a file write.
fn is_single_request(op: &Op) -> bool {
    !matches!(op.change, Change::ReplaceRoute { .. }) && !is_file_sysctl(op)
}

/// The request of a single-request op; None for the others.
fn single_write(op: &Op, links: &Links) -> Option<Result<Write>> {
    Some(match &op.change {
        // The host holds one route per slot of an attachment's (toward each address of the
        // chained interface, through the host veth peer); a read through the host veth peer
        // alone does not show another pod's route in that slot, so the add must find it
        // empty: EEXIST is a surprise, and the reconciler reads everything again.
        Change::AddRoute { route } if op.netns == Side::Host => {
            Write::add_route_alone(route, links)
        }
        Change::AddRoute { route } => Write::add_route(route, links),
        Change::DelRoute { route } => Write::del_route(route, links),
        Change::AddRule { rule } => Write::add_rule(rule),
        Change::DelRule { rule } => Ok(Write::del_rule(rule)),
        Change::AddNeighbour { neighbour } | Change::ReplaceNeighbour { new: neighbour, .. } => {
            Write::replace_neighbour(neighbour, links)
        }
        Change::DelNeighbour { neighbour } => Ok(Write::del_neighbour(neighbour, links)),
        Change::SetMac { dev, new, .. } => Write::set_mac(dev, *new, links),
        Change::SetSysctl { key, new, .. } => return Write::set_sysctl(key, *new, links),
        Change::ReplaceRoute { .. } => return None,
    })
}

/// One op, waiting for its answer.
fn apply_one(nl: &Netlink, links: &Links, op: &Op) -> Result<Outcome> {
    let outcome = match &op.change {
        Change::ReplaceRoute { old, new } => replace_route(nl, links, new, old),
        _ => match single_write(op, links) {
            Some(write) => nl.write(write?),
            None => Err(Error::Kernel {
                object: op.to_string(),
                reason: "no netlink request for this op".to_string(),
            }),
        },
    }?;
    Ok(outcome)
}

/// Puts `new` in place of `old` in one step: the replace, then the removal of each route
/// of `old` the replace may not have taken (`routes_left_by_replace`); one already gone is
/// fine. Changed when the replace or any removal changed something.
fn replace_route(nl: &Netlink, links: &Links, new: &Route, old: &[Route]) -> Result<Outcome> {
    let replace = Write::replace_route(new, links)?;
    let object = replace.object().to_string();
    let mut outcome = nl.write(replace)?;
    let removals = routes_left_by_replace(new, old)
        .iter()
        .map(|route| Write::del_route(route, links))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| in_replace(&object, e))?;
    for result in nl.write_many(removals) {
        // One of them answers "already so": the route the replace took.
        if result.map_err(|e| in_replace(&object, e))? == Outcome::Changed {
            outcome = Outcome::Changed;
        }
    }
    Ok(outcome)
}

/// The routes of `old` to delete after replacing them with `new`. The kernel's replace
/// takes the first IPv4 alias of the slot (whichever it is) or a whole IPv6 multipath
/// group, so every old route is deleted by its own protocol afterwards, except one with
/// new's key and protocol, which the delete could not tell from `new`.
fn routes_left_by_replace(new: &Route, old: &[Route]) -> Vec<Route> {
    let new_key = new.clone().normalised().key;
    old.iter()
        .filter(|route| {
            route.protocol != new.protocol || (*route).clone().normalised().key != new_key
        })
        .cloned()
        .collect()
}

/// A failure removing a replaced route, named by the replace that asked for it.
fn in_replace(object: &str, error: Error) -> Error {
    match error {
        Error::Kernel {
            object: removal,
            reason,
        } => Error::Kernel {
            object: object.to_string(),
            reason: format!("removing the replaced route ({removal}): {reason}"),
        },
        other => other,
    }
}

/// Whether a route replace may have taken a route the plan keeps: the kernel's IPv4 replace
/// takes the first alias of the slot, so when the slot held a route that is neither in the
/// replace's `old` nor the new route, only a read says which one went. Without the state
/// the ops were planned from, that cannot be told.
fn replace_may_take_a_kept_route(op: &Op, planned_from: Option<&NetnsState>) -> bool {
    let Change::ReplaceRoute { old, new } = &op.change else {
        return false;
    };
    let Some(state) = planned_from else {
        return true;
    };
    let new = new.clone().normalised();
    let slot = new.key.slot();
    let kept = state
        .routes_in_slot(&slot)
        .any(|r| r.key != new.key && !old.iter().any(|o| o.clone().normalised().key == r.key));
    kept
}

/// Logs an applied op and flags the answers that did not go as planned.
fn note_answer(op: &Op, outcome: Outcome, surprise: &Cell<bool>) {
    tracing::debug!(command = %op, ?outcome, "applied");
    if outcome == Outcome::AlreadySo {
        surprise.set(true);
    }
}

/// Ops of one single-request kind, all sent before any answer is awaited. With
/// `StopAtFirst`, nothing after an op whose request cannot be built is sent, and what the
/// kernel applied after the first failing op is undone (the later ops were in flight).
fn apply_batch(
    nl: &Netlink,
    links: &Links,
    batch: &[Op],
    policy: Policy,
    surprise: &Cell<bool>,
) -> Vec<Failed> {
    let mut results: Vec<Option<Result<Outcome>>> = Vec::with_capacity(batch.len());
    let mut writes = Vec::with_capacity(batch.len());
    let mut sent = Vec::with_capacity(batch.len());
    for (index, op) in batch.iter().enumerate() {
        match single_write(op, links) {
            Some(Ok(write)) => {
                writes.push(write);
                sent.push(index);
                results.push(None);
            }
            Some(Err(error)) => {
                results.push(Some(Err(error)));
                if policy == Policy::StopAtFirst {
                    break;
                }
            }
            // Not a single-request kind (batch_end never batches those): apply alone.
            None => results.push(Some(apply_one(nl, links, op))),
        }
    }
    for (index, result) in sent.into_iter().zip(nl.write_many(writes)) {
        results[index] = Some(result);
    }
    let mut failures = Vec::new();
    for (index, result) in results.iter().enumerate() {
        if let Some(Err(error)) = result {
            failures.push(Failed {
                index,
                error: error.clone(),
            });
            if policy == Policy::StopAtFirst {
                undo_after(nl, links, batch, &results, index);
                break;
            }
        }
    }
    for (op, result) in batch.iter().zip(&results) {
        if let Some(Ok(outcome)) = result {
            note_answer(op, *outcome, surprise);
        }
    }
    failures
}

/// Undoes, last first, the ops after `failed` that changed the kernel.
fn undo_after(
    nl: &Netlink,
    links: &Links,
    batch: &[Op],
    results: &[Option<Result<Outcome>>],
    failed: usize,
) {
    for (op, result) in batch.iter().zip(results).skip(failed + 1).rev() {
        if !matches!(result, Some(Ok(Outcome::Changed))) {
            continue;
        }
        for undo in op.inverse() {
            if let Err(error) = apply_one(nl, links, &undo) {
                tracing::warn!(
                    command = %undo.to_string(),
                    %error,
                    "could not undo an op applied after a failed one"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
