//! render::failure: the words of the failures about a plan (`plan::PlanFailure`): the CNI
//! error's message (`Display`, one line) and its details (one drift a line). Must not
//! decide codes (`PlanFailure::code` does).

use std::fmt::{self, Display};

use crate::error::Error;
use crate::model::Op;
use crate::plan::{Blocked, Plan, PlanFailure};

use super::drift::{drift_detail, drift_summary, drifts, Drift};

impl Display for PlanFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanFailure::Drift(plan) => f.write_str(&drift_summary(&drifts(plan))),
            PlanFailure::Blocked(blocked) => write!(
                f,
                "objects router does not own are in the way (not touched): {}",
                drift_summary(&blocked_drifts(blocked))
            ),
            PlanFailure::NotKept(plan) => kernel_refused(
                f,
                "verification",
                format!(
                    "the kernel does not keep what was applied: {}",
                    drift_summary(&drifts(plan))
                ),
            ),
            PlanFailure::Left { plan, errors } => {
                let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
                let reasons = match reasons.is_empty() {
                    true => "none".to_string(),
                    false => reasons.join("; "),
                };
                let pending = format!(
                    "{} still pending ({}); errors: {reasons}",
                    plan.ops.len(),
                    drift_summary(&drifts(plan))
                );
                kernel_refused(f, "DEL", pending)
            }
            PlanFailure::WouldRemove(ops) => {
                let objects: Vec<String> = ops.iter().map(removed_object).collect();
                write!(
                    f,
                    "the new config would remove {} owned object(s) this attachment has \
                     (refused, nothing changed; --prune removes them): {}",
                    ops.len(),
                    objects.join("; ")
                )
            }
        }
    }
}

impl PlanFailure {
    /// The CNI error's `details`: every drift on its own line (CHECK, objects in the way).
    pub fn details(&self) -> Option<String> {
        match self {
            PlanFailure::Drift(plan) => Some(details_of(&drifts(plan))),
            PlanFailure::Blocked(blocked) => Some(details_of(&blocked_drifts(blocked))),
            PlanFailure::WouldRemove(ops) => Some(
                ops.iter()
                    .map(removed_object)
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            PlanFailure::NotKept(_) | PlanFailure::Left { .. } => None,
        }
    }
}

/// An op of a removal as the netns and the command that would run.
fn removed_object(op: &Op) -> String {
    format!("{} netns: {op}", op.netns)
}

/// The drifts of the objects in the way alone.
fn blocked_drifts(blocked: &[Blocked]) -> Vec<Drift> {
    drifts(&Plan {
        blocked: blocked.to_vec(),
        ..Plan::default()
    })
}

fn details_of(drifts: &[Drift]) -> String {
    drifts
        .iter()
        .map(drift_detail)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the kernel would not do, worded as every other kernel refusal is.
fn kernel_refused(f: &mut fmt::Formatter<'_>, object: &str, reason: String) -> fmt::Result {
    let refused = Error::Kernel {
        object: object.to_string(),
        reason,
    };
    write!(f, "{refused}")
}
