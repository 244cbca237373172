//! reconcile::del: DEL (BEHAVIOUR 4), best effort past errors, the shared rule released
//! under the host lock, failing only when something owned is left. Must not judge the
//! shared rule in its final read (the lock hold decided it).

use super::shared_rule::{shared_rule_ops, uses_shared_rule};
use super::{prepare_reading, Attachment, Failure, PlanFailure, Reads, Result, World};
use crate::config::{Config, PrevView};
use crate::execute::Failed;
use crate::logging::phase;
use crate::model::{Mode, Op};
use crate::plan::{is_shared_rule_op, own_ops, Plan};
use crate::snapshot::HostObjects;

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
    let own = own_ops(&prepared.plan);
    let own_applied = phase("apply", || world.executor.apply_all(&own, &prepared.actual));
    // Our routes are gone from host_rule_table: under the lock, the rule goes only when no
    // other attachment's owned route is left there (an ADD adds its routes before it takes
    // the lock to ensure the rule, so it is either seen here or re-adds the rule after).
    let host = match uses_shared_rule(&prepared.compiled.desired) {
        true => Some(world.host.lock_host()?),
        false => None,
    };
    let (shared, read) = shared_rule_ops(world, &prepared.compiled.desired.host)?;
    let shared_applied = phase("apply", || world.executor.apply_all(&shared, &read));
    drop(host);
    let answers = own_applied.answers.and(shared_applied.answers);
    let failures = [own_applied.failures, shared_applied.failures].concat();
    // Every removal ACKed as done leaves nothing owned that DEL could reach; a failure or
    // a surprise is proved by reading again. The shared rule is not judged there: it was
    // decided above, and a rule kept for a route another DEL removes since is that DEL's
    // to release.
    if !failures.is_empty() || answers.surprising() {
        let mut after =
            prepare_reading(mode, HostObjects::ThroughPodPeers, config, att, prev, reads)?;
        after.plan.ops.retain(|op| !is_shared_rule_op(op));
        if !after.plan.ops.is_empty() {
            return Err(del_error(failures, after.plan));
        }
    }
    phase("record", || {
        world.records.remove(&att.container_id, &att.ifname)
    })?;
    Ok(own.into_iter().chain(shared).collect())
}

fn del_error(failures: Vec<Failed>, left: Plan) -> Failure {
    let errors = failures.into_iter().map(|f| f.error).collect();
    PlanFailure::Left { plan: left, errors }.into()
}
