//! What compile wants of each netns: present objects and the `Ownership` of the rest,
//! and the ADD/DEL mode.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{NetnsState, Ownership, Scoped, Side};

impl DesiredNetns {
    /// Objects of `actual` this attachment may remove (`Ownership::may_remove`). They are
    /// removed (CHECK: reported).
    pub fn extras<'a, T: Scoped>(&self, actual: &'a NetnsState) -> Vec<&'a T> {
        T::all(actual)
            .values()
            .filter(|o| self.ownership.may_remove(*o, &self.present))
            .collect()
    }
}

/// What one netns should look like for one attachment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredNetns {
    /// Objects that must exist with exactly these values.
    #[serde(default)]
    pub present: NetnsState,
    /// What else this attachment may touch: its scope, its peers' objects, the documented
    /// moves, the shared rule (flattened: its keys sit beside `present`).
    #[serde(flatten)]
    pub ownership: Ownership,
    /// How the node's addresses changed since the record was written: why a host-address
    /// route or neighbour is drift (BEHAVIOUR 2.3).
    #[serde(default, skip_serializing_if = "NodeAddressChange::is_empty")]
    pub node_addresses: NodeAddressChange,
}

/// The node addresses (BEHAVIOUR 2.3) gained and lost since the attachment's record was
/// written, and the interface (O) their routes and neighbours go through.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeAddressChange {
    pub via: String,
    pub added: BTreeSet<IpAddr>,
    pub removed: BTreeSet<IpAddr>,
}

impl NodeAddressChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub pod: DesiredNetns,
    pub host: DesiredNetns,
}

impl DesiredState {
    pub fn side(&self, side: Side) -> &DesiredNetns {
        match side {
            Side::Pod => &self.pod,
            Side::Host => &self.host,
        }
    }
}

/// ADD makes an attachment; DEL removes it. CHECK compiles as ADD.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Add,
    Del,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Family, Route, Rule, ROUTER_PROTOCOL};

    /// Ownership is flattened: DesiredNetns's JSON keeps its keys, in their order.
    #[test]
    fn ownership_keys_sit_beside_present_in_their_order() {
        let route = Route::link(100, "10.0.0.0/8".parse().unwrap(), "eth0", ROUTER_PROTOCOL);
        let rule = Rule::owned_lookup(Family::Ipv4, 1000, None, None, 500);
        let mut d = DesiredNetns::default();
        d.present.insert_rule(rule.clone());
        d.ownership.absent_routes.push(route.key.clone());
        d.ownership.takeover.insert(route.key.clone());
        d.ownership.scope.rule_tables.insert(100);
        d.ownership.keep.insert_rule(rule.clone());
        d.ownership.release_when_unused.push(rule.key.clone());
        d.node_addresses.added.insert("10.0.0.1".parse().unwrap());
        let text = serde_json::to_string(&d).unwrap();
        let keys = [
            "present",
            "absent_routes",
            "takeover",
            "scope",
            "keep",
            "release_when_unused",
            "node_addresses",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| text.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(serde_json::from_str::<DesiredNetns>(&text).unwrap(), d);
        let empty = serde_json::to_value(DesiredNetns::default()).unwrap();
        assert_eq!(empty, serde_json::json!({"present": {}, "scope": {}}));
    }
}
