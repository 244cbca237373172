//! reconcile::check: CHECK (BEHAVIOUR 3), the plan against the current state as the drift.
//! Must not change anything, nor word the drift (`PlanFailure::Drift`).

use super::add::prepare_add;
use super::{overlay_not_ready, Attachment, PlanFailure, Result, World};
use crate::compile::Unready;
use crate::config::{Config, PrevView};
use crate::snapshot::HostObjects;

/// BEHAVIOUR 3: the plan against the current state is the drift.
pub fn check(config: &Config, att: &Attachment, prev: &PrevView, world: &World<'_>) -> Result<()> {
    let prepared = prepare_add(HostObjects::All, config, att, prev, world)?;
    // Without the overlay interface every route the attachment has in the pod table is gone
    // with it: that is no drift a repair could mend, so CHECK says what is wrong, as ADD
    // would.
    if prepared.unready.contains(&Unready::Missing) {
        return Err(overlay_not_ready(config, att, &[Unready::Missing], 0).into());
    }
    if prepared.plan.is_empty() {
        return Ok(());
    }
    Err(PlanFailure::Drift(prepared.plan).into())
}
