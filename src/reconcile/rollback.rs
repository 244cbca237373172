//! reconcile::rollback: a failed ADD undone: its ops in reverse, the shared rule released
//! when none of its routes is left, the record restored, code 3 when the pod went away.
//! Best effort: must not hide the failure being reported.

use super::shared_rule::{shared_rule_ops, uses_shared_rule};
use super::{Attachment, Failure, Prepared, World};
use crate::error::Error;
use crate::model::{ActualState, DesiredNetns, Op, Ownership, Record, Side};
use crate::plan::is_shared_rule_op;

/// A failed ADD: what it applied is undone in reverse and the record restored. When it
/// had put routes on the host, the undo runs under the host lock and the shared rule is
/// released if no owned route is left in its table. The rule itself is never undone
/// blindly: once this ADD let the lock go, another ADD may rely on the rule it added (and
/// a DEL that saw this ADD's routes kept the rule for it). Returns the error to report
/// (code 3 when the pod went away meanwhile).
pub(super) fn undo_add(
    world: &World<'_>,
    att: &Attachment,
    prepared: &Prepared,
    applied: &[Op],
    error: Failure,
) -> Failure {
    let touched_host = applied.iter().any(|op| op.netns == Side::Host);
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
    roll_back(world, &own, &prepared.actual);
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
        ownership: Ownership::releasing(host.present.rules.keys().cloned().collect()),
        ..DesiredNetns::default()
    };
    // A rollback reads nothing again (best effort), so how the kernel answered is not used.
    let released = shared_rule_ops(world, &release)
        .map(|(ops, read)| world.executor.apply_all(&ops, &read).failures);
    match released {
        Ok(failures) => failures.iter().for_each(
            |f| tracing::warn!(error = %f.error, "rollback could not release the shared rule"),
        ),
        Err(e) => tracing::warn!(error = %e, "rollback could not read the shared rule"),
    }
}

/// A failed apply whose cause is that the pod netns went away meanwhile (the pod was
/// deleted while its ADD ran) says so, with code 3, rather than naming the first op that
/// could not enter it.
fn pod_gone_or(world: &World<'_>, prepared: &Prepared, error: Failure) -> Failure {
    if prepared.actual.pod.is_none() {
        return error;
    }
    match world.snapshots.snapshot(&prepared.request) {
        Ok(now) if now.pod.is_none() => Error::UnknownContainer(format!(
            "the pod netns went away while ADD applied its changes ({error}); what was applied is rolled back"
        ))
        .into(),
        _ => error,
    }
}

/// Undoes applied ops in reverse, best effort: the failure being reported matters more.
/// The undo ops name the devices of the ops they undo: those of `planned_from`.
fn roll_back(world: &World<'_>, applied: &[Op], planned_from: &ActualState) {
    let undo: Vec<Op> = applied.iter().rev().flat_map(Op::inverse).collect();
    // Best effort, read again by nothing: how the kernel answered is not used.
    for failure in world.executor.apply_all(&undo, planned_from).failures {
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
