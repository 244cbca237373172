//! reconcile::failure: reconcile's own failure type: an `Error` met on the way, or a typed
//! failure about a plan (`PlanFailure`), each with its CNI code and details. Must not word
//! them: a plan failure's words are the presentation's (`render::failure`).

use crate::error::{Code, Error};
use crate::plan::PlanFailure;

/// Why a reconcile run failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Anything but a verdict on the plan: input, I/O, the kernel refusing a request.
    #[error(transparent)]
    Error(#[from] Error),
    /// Drift, objects in the way, what the kernel did not keep, what DEL left.
    #[error("{0}")]
    Plan(Box<PlanFailure>),
}

/// A reconcile result: its failures are `Failure`s.
pub type Result<T, E = Failure> = std::result::Result<T, E>;

impl From<PlanFailure> for Failure {
    fn from(failure: PlanFailure) -> Failure {
        Failure::Plan(Box::new(failure))
    }
}

impl Failure {
    /// The CNI error code it is reported with.
    pub fn code(&self) -> Code {
        match self {
            Failure::Error(e) => e.code(),
            Failure::Plan(failure) => failure.code(),
        }
    }

    /// The CNI error's `details`: the long form, when there is more than the message.
    pub fn details(&self) -> Option<String> {
        match self {
            Failure::Error(e) => e.details(),
            Failure::Plan(failure) => failure.details(),
        }
    }
}
