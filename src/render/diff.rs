//! States for people: the reconciled objects of a netns one per line, and a unified diff
//! of two states.

use similar::TextDiff;

use crate::model::{ActualState, NetnsState};

use super::{route_name, rule_name};

/// The reconciled objects of one netns (links are facts and left out), one sorted line
/// each, so two states compare line by line.
pub fn state_lines(ns: &NetnsState) -> Vec<String> {
    let routes = ns.routes.values().map(|r| route_name(r, true));
    let rules = ns.rules.values().map(|r| rule_name(r, true));
    let neighbours = ns.neighbours.values().map(|n| format!("neigh {}", n));
    let sysctls = ns.sysctls.iter().map(|(k, v)| format!("sysctl {k} = {v}"));
    let macs = ns.macs.iter().map(|(dev, mac)| format!("mac {dev} {mac}"));
    let mut lines: Vec<String> = routes
        .chain(rules)
        .chain(neighbours)
        .chain(sysctls)
        .chain(macs)
        .collect();
    lines.sort();
    lines
}

fn state_text(ns: Option<&NetnsState>) -> String {
    ns.map(state_lines)
        .unwrap_or_default()
        .into_iter()
        .map(|line| line + "\n")
        .collect()
}

fn netns_diff(name: &str, before: Option<&NetnsState>, after: Option<&NetnsState>) -> String {
    let (old, new) = (state_text(before), state_text(after));
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(1)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

/// A unified diff (`a/pod` `b/pod`, then `a/host` `b/host`) of the state lines; the pod
/// part only when either state has a pod netns. Empty when nothing differs.
pub fn state_diff(before: &ActualState, after: &ActualState) -> String {
    let mut out = String::new();
    if before.pod.is_some() || after.pod.is_some() {
        out.push_str(&netns_diff("pod", before.pod.as_ref(), after.pod.as_ref()));
    }
    out.push_str(&netns_diff("host", Some(&before.host), Some(&after.host)));
    out
}
