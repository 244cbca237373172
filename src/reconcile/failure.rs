//! reconcile::failure: what reconcile could not do about a plan, as typed facts (the plan
//! or the objects in the way), carried by `Error::Plan`. Must not word them: their words
//! (`Display`, `details`) are the presentation's, in `render::failure`.

use crate::error::Error;
use crate::model::Op;
use crate::plan::{Blocked, Plan};

/// A failure about a plan. The error code of each is `error`'s decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanFailure {
    /// CHECK (BEHAVIOUR 3): the plan against the current state, not empty: the drift.
    Drift(Plan),
    /// ADD and repair: objects router does not own are in the way; nothing was touched.
    Blocked(Vec<Blocked>),
    /// ADD and repair: what is still pending after the verification rounds (the kernel
    /// does not keep what was applied).
    NotKept(Plan),
    /// DEL: what owned objects are left after it went on past `errors`.
    Left { plan: Plan, errors: Vec<Error> },
    /// A rollout without pruning: the new config would remove these owned objects the
    /// attachment has (a hijack CIDR dropped, a priority moved); nothing was touched.
    WouldRemove(Vec<Op>),
}

impl From<PlanFailure> for Error {
    fn from(failure: PlanFailure) -> Error {
        Error::Plan(Box::new(failure))
    }
}
