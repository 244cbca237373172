//! reconcile::shared_rule: the shared host rule `from all lookup host_rule_table`, the one
//! thing a run decides under the host lock (ARCHITECTURE "Ordering"): whether a run has
//! one, and its ops from a fresh read. Must not take the lock itself (callers do).

use std::collections::BTreeSet;

use super::World;
use crate::error::Result;
use crate::logging::phase;
use crate::model::{DesiredNetns, DesiredState, Op};
use crate::plan::plan_shared_rule;
use crate::snapshot::SnapshotRequest;

/// Whether a run's host side has a shared rule to ensure or release (not under `sriov`,
/// `only_op_mac`, or without a host peer): only then does it take the host lock.
pub(super) fn uses_shared_rule(desired: &DesiredState) -> bool {
    !desired.host.present.rules.is_empty() || !desired.host.release_when_unused.is_empty()
}

/// The shared rule's ops, from a read of the host's rules and `host_rule_table` made now
/// (the caller holds the host lock).
pub(super) fn shared_rule_ops(
    world: &World<'_>,
    request: &SnapshotRequest,
    desired: &DesiredNetns,
) -> Result<Vec<Op>> {
    if desired.present.rules.is_empty() && desired.release_when_unused.is_empty() {
        return Ok(Vec::new());
    }
    let host_only = SnapshotRequest {
        pod_netns: None,
        host_sysctl_ifaces: BTreeSet::new(),
        preferred_src_for: Vec::new(),
        ..request.clone()
    };
    let host = phase("snapshot", || world.snapshots.snapshot(&host_only))?.host;
    Ok(plan_shared_rule(desired, &host))
}
