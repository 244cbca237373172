//! reconcile::check: CHECK (BEHAVIOUR 3), the plan against the current state as the drift.
//! Must not change anything, nor word the drift (`PlanFailure::Drift`).

use super::add::prepare_add;
use super::{Attachment, PlanFailure, Result, World};
use crate::config::{Config, PrevView};
use crate::snapshot::HostObjects;

/// BEHAVIOUR 3: the plan against the current state is the drift.
pub fn check(config: &Config, att: &Attachment, prev: &PrevView, world: &World<'_>) -> Result<()> {
    let prepared = prepare_add(HostObjects::All, config, att, prev, world)?;
    if prepared.plan.is_empty() {
        return Ok(());
    }
    Err(PlanFailure::Drift(prepared.plan).into())
}
