//! reconcile::shared_rule: the shared host rule `from all lookup host_rule_table`, the one
//! thing a run decides under the host lock (ARCHITECTURE "Ordering"): whether a run has
//! one, and its ops from a fresh read. Must not take the lock itself (callers do).

use super::World;
use crate::error::{Error, Result};
use crate::execute::Answers;
use crate::logging::phase;
use crate::model::{ActualState, Change, DesiredNetns, DesiredState, Op};
use crate::plan::plan_shared_rule;
use crate::snapshot::{HostObjects, SnapshotRequest};

/// Whether a run's host side has a shared rule to ensure or release (not under `sriov`,
/// `only_op_mac`, or without a host peer): only then does it take the host lock.
pub(super) fn uses_shared_rule(desired: &DesiredState) -> bool {
    !desired.host.present.rules.is_empty() || desired.host.ownership.releases_rules()
}

/// The shared rule's ops, from a read made now (the caller holds the host lock) of the
/// host's rules and, when the rule is to be released once unused, the owned routes of the
/// tables it looks up; with the read they were planned from.
pub(super) fn shared_rule_ops(
    world: &World<'_>,
    desired: &DesiredNetns,
) -> Result<(Vec<Op>, ActualState)> {
    let release = &desired.ownership.release_when_unused;
    if desired.present.rules.is_empty() && release.is_empty() {
        return Ok((Vec::new(), ActualState::default()));
    }
    let host_only = SnapshotRequest {
        host_tables: release.iter().map(|rule| rule.table).collect(),
        host_objects: match release.is_empty() {
            true => HostObjects::Rules,
            false => HostObjects::RulesAndOwnedRoutes,
        },
        ..SnapshotRequest::default()
    };
    let read = phase("snapshot", || world.snapshots.snapshot(&host_only))?;
    Ok((plan_shared_rule(desired, &read.host), read))
}

/// Under the host lock, held for nothing else: reads the host's rules and adds the shared
/// rule when it is absent (after this run's routes are in its table: ARCHITECTURE
/// "Ordering"). Returns the ops applied and how the kernel answered them, or those applied
/// before an error and the error.
///
/// The rule is looked for, and added when missing, under the lock held shared: a DEL
/// removes the rule only with the lock held alone, between its read of the table's owned
/// routes and the removal, so a rule seen (or added) here stays until that table is read
/// again, and that read sees this run's routes. ADDs beside each other need no more: two
/// that both find the rule missing both add it, and the kernel, which adds rules one at a
/// time, answers the second EEXIST (already so). So the ADDs of a burst of pod starts never
/// queue for each other, whether the node had the rule or not. Only a removal (a rule of
/// this run's left at an old priority) takes the lock alone, reads again and applies.
pub(super) fn ensure_shared_rule(
    world: &World<'_>,
    desired: &DesiredState,
) -> std::result::Result<(Vec<Op>, Answers), (Vec<Op>, Error)> {
    if !uses_shared_rule(desired) {
        return Ok((Vec::new(), Answers::AsPlanned));
    }
    {
        let _shared =
            phase("lock", || world.host.lock_host_shared()).map_err(|e| (Vec::new(), e))?;
        let (shared, read) = shared_rule_ops(world, &desired.host).map_err(|e| (Vec::new(), e))?;
        if shared.is_empty() {
            return Ok((Vec::new(), Answers::AsPlanned));
        }
        if shared
            .iter()
            .all(|op| matches!(op.change, Change::AddRule { .. }))
        {
            return apply(world, shared, &read);
        }
    }
    let _lock = phase("lock", || world.host.lock_host()).map_err(|e| (Vec::new(), e))?;
    let (shared, read) = shared_rule_ops(world, &desired.host).map_err(|e| (Vec::new(), e))?;
    apply(world, shared, &read)
}

/// Applies the shared rule's ops planned from `read`, under the lock the caller holds.
fn apply(
    world: &World<'_>,
    shared: Vec<Op>,
    read: &ActualState,
) -> std::result::Result<(Vec<Op>, Answers), (Vec<Op>, Error)> {
    match phase("apply", || world.executor.apply(&shared, read)) {
        Ok(answers) => Ok((shared, answers)),
        Err(failed) => Err((shared[..failed.index].to_vec(), failed.error)),
    }
}
