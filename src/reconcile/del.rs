//! reconcile::del: DEL (BEHAVIOUR 4), best effort past errors, the shared rule released
//! under the host lock, failing only when something owned is left. Must not judge the
//! shared rule in its final read (the lock hold decided it).

use super::shared_rule::{shared_rule_ops, uses_shared_rule};
use super::{prepare_reading, Attachment, Failure, PlanFailure, Reach, Result, Sources, World};
use crate::config::{Config, PrevView};
use crate::execute::Failed;
use crate::logging::phase;
use crate::model::{Mode, Op};
use crate::plan::{is_shared_rule_op, own_ops, Plan};
use crate::record::RecordStore;
use crate::snapshot::HostObjects;

/// Where the config of a DEL (or GC) came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// Parsed whole from what the runtime gave.
    Given,
    /// What could be used of a config that did not parse (`config::salvage`): DEL and GC
    /// go on past it, acting only on what the records prove.
    Salvaged,
}

/// BEHAVIOUR 4, the CNI DEL: without a record and without a usable config nothing proves
/// what is router's, and nothing is removed; else `remove` reaching the whole attachment.
pub fn del(
    config: &Config,
    source: ConfigSource,
    att: &Attachment,
    prev: Option<&PrevView>,
    world: &World<'_>,
) -> Result<Vec<Op>> {
    if !may_act(config, source, att, world.records)? {
        tracing::warn!("DEL: no attachment record and no usable config: nothing removed");
        return Ok(Vec::new());
    }
    remove(config, att, prev, world, Reach::Attachment)
}

/// DEL's work, reaching the whole attachment (CNI DEL) or its host side only (GC): best
/// effort past errors; fails only when something owned it could reach is still there
/// afterwards (read again only after a failure or a surprise). The record goes last.
pub(super) fn remove(
    config: &Config,
    att: &Attachment,
    prev: Option<&PrevView>,
    world: &World<'_>,
    reach: Reach,
) -> Result<Vec<Op>> {
    let sources = Sources::of(world, reach);
    let mode = Mode::Del;
    let prepared = prepare_reading(mode, HostObjects::PodPeersOnly, config, att, prev, sources)?;
    let own = own_ops(&prepared.plan);
    let own_applied = phase("apply", || world.executor.apply_all(&own, &prepared.actual));
    // Our routes are gone from host_rule_table: under the lock, the rule goes only when no
    // other attachment's owned route is left there (an ADD adds its routes before it takes
    // the lock to ensure the rule, so it is either seen here or re-adds the rule after).
    let host = match uses_shared_rule(&prepared.compiled.desired) {
        true => Some(phase("lock", || world.host.lock_host())?),
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
            prepare_reading(mode, HostObjects::PodPeersOnly, config, att, prev, sources)?;
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

/// Whether DEL may act: its config is usable for this interface (given whole, with a
/// table for it), or a record shows ADD ran for the attachment.
fn may_act(
    config: &Config,
    source: ConfigSource,
    att: &Attachment,
    records: &dyn RecordStore,
) -> Result<bool> {
    let trusted = source == ConfigSource::Given && config.table_for(&att.ifname).is_ok();
    Ok(trusted || records.load(&att.container_id, &att.ifname)?.is_some())
}

fn del_error(failures: Vec<Failed>, left: Plan) -> Failure {
    let errors = failures.into_iter().map(|f| f.error).collect();
    PlanFailure::Left { plan: left, errors }.into()
}
