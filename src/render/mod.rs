//! render: shows ops and states for people (`ip` commands grouped by netns, `+ - ~`,
//! colour only when asked) and programs (JSON). Pure; no I/O, no env.
//! IPv6 routes and rules are named `route -6 ...` / `rule -6 ...` outside commands.
//!
//! One file per output: `text` (the plan as `ip` commands), `drift` (what CHECK reports),
//! `json` (the `router.plan/v1` schema), `diff` (state listings and their diff). Objects
//! name themselves (`Display` in `model`); this module adds the words around them.

mod diff;
mod drift;
mod failure;
mod json;
mod text;

pub use diff::{state_diff, state_lines};
pub use drift::{drift_detail, drift_summary, drifts, drifts_json, Drift, DriftState, ObjectKind};
pub use json::{plan_json, PLAN_SCHEMA};
pub use text::render_text;

use std::fmt::Display;

use crate::model::{Change, Family, MacAddr, Op, Route, Rule, Side};
use crate::plan::Object;

/// How each netns is called in headers and JSON, e.g. pod = "/var/run/netns/x", host = "host".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetnsLabels {
    pub pod: String,
    pub host: String,
}

impl NetnsLabels {
    fn of(&self, side: Side) -> &str {
        match side {
            Side::Pod => &self.pod,
            Side::Host => &self.host,
        }
    }
}

// ---- object text --------------------------------------------------------------------

fn lladdr_text(lladdr: Option<MacAddr>) -> String {
    lladdr.map_or("no lladdr".to_string(), |mac| format!("lladdr {mac}"))
}

/// Commands say the family with `ip -6`; outside a command the same mark keeps an IPv6
/// `default dev eth0` from reading like its IPv4 twin.
fn family_word(word: &str, family: Family) -> String {
    match family {
        Family::Ipv4 => word.to_string(),
        Family::Ipv6 => format!("{word} -6"),
    }
}

fn route_name(route: &Route, with_proto: bool) -> String {
    let word = family_word("route", route.key.family());
    format!("{word} {}", route.ip_args(with_proto))
}

fn rule_name(rule: &Rule, with_proto: bool) -> String {
    let word = family_word("rule", rule.key.family);
    format!("{word} {}", rule.ip_args(with_proto))
}

/// An object with everything it holds, protocol included: it shows who owns it.
fn object_text(object: &Object) -> String {
    match object {
        Object::Route(route) => route_name(route, true),
        Object::Rule(rule) => rule_name(rule, true),
        Object::Neighbour(n) => format!("neighbour {n}"),
    }
}

// ---- ops ----------------------------------------------------------------------------

/// `+` adds, `-` removes, `~` changes in place.
pub fn op_sign(op: &Op) -> char {
    match op.change {
        Change::AddRoute { .. } | Change::AddRule { .. } | Change::AddNeighbour { .. } => '+',
        Change::DelRoute { .. } | Change::DelRule { .. } | Change::DelNeighbour { .. } => '-',
        Change::ReplaceRoute { .. }
        | Change::ReplaceNeighbour { .. }
        | Change::SetSysctl { .. }
        | Change::SetMac { .. } => '~',
    }
}

fn op_action(op: &Op) -> &'static str {
    match op_sign(op) {
        '+' => "add",
        '-' => "remove",
        _ => "change",
    }
}

fn op_object(op: &Op) -> &'static str {
    match op.change {
        Change::AddRoute { .. } | Change::ReplaceRoute { .. } | Change::DelRoute { .. } => "route",
        Change::AddRule { .. } | Change::DelRule { .. } => "rule",
        Change::AddNeighbour { .. }
        | Change::ReplaceNeighbour { .. }
        | Change::DelNeighbour { .. } => "neighbour",
        Change::SetSysctl { .. } => "sysctl",
        Change::SetMac { .. } => "mac",
    }
}

/// The value a change overwrites: the command alone would lose it.
fn op_comment(op: &Op) -> Option<String> {
    match &op.change {
        Change::SetSysctl { old, .. } => Some(format!("was {}", or_word(*old, "unset"))),
        Change::SetMac { old, .. } => Some(format!("was {}", or_word(*old, "unknown"))),
        Change::ReplaceRoute { old, .. } if !old.is_empty() => {
            Some(format!("replaces: {}", route_specs(old)))
        }
        Change::ReplaceNeighbour { old, .. } => Some(format!("was {}", lladdr_text(old.lladdr))),
        _ => None,
    }
}

fn or_word<T: Display>(value: Option<T>, word: &str) -> String {
    value.map_or(word.to_string(), |v| v.to_string())
}

fn route_specs(routes: &[Route]) -> String {
    routes
        .iter()
        .map(Route::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
