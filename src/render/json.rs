//! The plan for programs: the stable JSON schema `router.plan/v1`.

use serde::Serialize;
use serde_json::{json, Value};

use crate::model::Op;
use crate::plan::{Blocked, Plan};

use super::text::blocked_description;
use super::{op_action, op_object, NetnsLabels};

/// The `schema` value of [`plan_json`]; bump it on any incompatible change.
pub const PLAN_SCHEMA: &str = "router.plan/v1";

/// Op and Object hold no maps with non-string keys, so serde_json cannot fail on them;
/// Null keeps this total instead of panicking.
pub(super) fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn op_json(op: &Op) -> Value {
    json!({
        "netns": op.netns,
        "action": op_action(op),
        "object": op_object(op),
        "command": op.to_string(),
        "detail": to_json(op),
    })
}

fn blocked_json(blocked: &Blocked) -> Value {
    json!({
        "netns": blocked.netns,
        "wanted": to_json(&blocked.wanted),
        "found": to_json(&blocked.found),
        "description": blocked_description(blocked),
    })
}

/// The plan for programs. Stable schema `router.plan/v1`:
///
/// ```text
/// {
///   "schema": "router.plan/v1",
///   "pending": <number of ops>,
///   "blocked_count": <number of blocked objects>,
///   "netns": {"pod": <label>, "host": <label>},
///   "ops": [{"netns": "pod"|"host",
///            "action": "add"|"remove"|"change",
///            "object": "route"|"rule"|"neighbour"|"sysctl"|"mac",
///            "command": <op_command text>,
///            "detail": <the Op as serde writes it; reads back as an Op>}],
///   "blocked": [{"netns": "pod"|"host",
///                "wanted": <Object>, "found": <Object>,
///                "description": <the text of the `!` line>}]
/// }
/// ```
pub fn plan_json(plan: &Plan, labels: &NetnsLabels) -> Value {
    json!({
        "schema": PLAN_SCHEMA,
        "pending": plan.ops.len(),
        "blocked_count": plan.blocked.len(),
        "netns": {"pod": labels.pod, "host": labels.host},
        "ops": plan.ops.iter().map(op_json).collect::<Vec<_>>(),
        "blocked": plan.blocked.iter().map(blocked_json).collect::<Vec<_>>(),
    })
}
