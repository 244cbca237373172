//! plan::failure: what a run could not do about a plan, as typed facts (the plan or the
//! objects in the way) with the CNI code each is reported with. Must not word them: their
//! words are the presentation's (`render::failure`).
//!
//! These facts live here, below both render and reconcile, so that render can word them
//! without importing reconcile (which sits above it) and reconcile can raise them.

use crate::error::{Code, Error};
use crate::model::Op;

use super::{Blocked, Plan};

/// A failure about a plan.
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

impl PlanFailure {
    /// The CNI error code it is reported with.
    pub fn code(&self) -> Code {
        match self {
            PlanFailure::Drift(_) => Code::Drift,
            PlanFailure::Blocked(_) => Code::Blocked,
            PlanFailure::NotKept(_) | PlanFailure::Left { .. } => Code::Kernel,
            PlanFailure::WouldRemove(_) => Code::RolloutRefused,
        }
    }
}
