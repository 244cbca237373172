//! What compile wants of each netns: present objects and the ownership of the rest
//! (scope, keep, takeover, the documented moves, the shared rule), and the ADD/DEL mode.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Keyed, Neighbour, NeighbourKey, NetnsState, Route, RouteKey, Rule, RuleKey, Side};

/// Owned objects matching these selectors belong to one attachment: any of them that the
/// desired state does not hold is removed (or, for CHECK, reported).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSelector>,
    /// Owned rules looking up one of these tables.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub rule_tables: BTreeSet<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbours: Vec<NeighbourSelector>,
}

/// Owned routes of a table, optionally only through one device and to some destinations
/// (empty: any destination).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RouteSelector {
    pub table: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub dst_in: BTreeSet<IpNet>,
}

/// Owned neighbours on a device, optionally only for some addresses (empty: any).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NeighbourSelector {
    pub dev: String,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub addr_in: BTreeSet<IpAddr>,
}

impl Scope {
    pub fn holds_route(&self, route: &Route) -> bool {
        route.is_owned()
            && self.routes.iter().any(|s| {
                s.table == route.key.table
                    && (s.dev.is_none() || s.dev == route.key.dev)
                    && (s.dst_in.is_empty() || s.dst_in.contains(&route.key.dst))
            })
    }

    pub fn holds_rule(&self, rule: &Rule) -> bool {
        rule.is_owned() && self.rule_tables.contains(&rule.key.table)
    }

    pub fn holds_neighbour(&self, neighbour: &Neighbour) -> bool {
        neighbour.is_owned()
            && self.neighbours.iter().any(|s| {
                s.dev == neighbour.key.dev
                    && (s.addr_in.is_empty() || s.addr_in.contains(&neighbour.key.addr))
            })
    }
}

/// The reconciled objects an attachment's scope selects among (routes, rules, neighbours):
/// where a netns holds them, and whether the scope holds one.
pub trait Scoped: Keyed + Clone {
    fn all(ns: &NetnsState) -> &BTreeMap<Self::Key, Self>;
    fn in_scope(&self, scope: &Scope) -> bool;
}

impl Scoped for Route {
    fn all(ns: &NetnsState) -> &BTreeMap<RouteKey, Route> {
        &ns.routes
    }
    fn in_scope(&self, scope: &Scope) -> bool {
        scope.holds_route(self)
    }
}

impl Scoped for Rule {
    fn all(ns: &NetnsState) -> &BTreeMap<RuleKey, Rule> {
        &ns.rules
    }
    fn in_scope(&self, scope: &Scope) -> bool {
        scope.holds_rule(self)
    }
}

impl Scoped for Neighbour {
    fn all(ns: &NetnsState) -> &BTreeMap<NeighbourKey, Neighbour> {
        &ns.neighbours
    }
    fn in_scope(&self, scope: &Scope) -> bool {
        scope.holds_neighbour(self)
    }
}

impl DesiredNetns {
    /// Objects of `actual` this attachment owns and nobody wants: neither this attachment
    /// (`present`) nor the pod's others (`keep`). They are removed (CHECK: reported).
    pub fn extras<'a, T: Scoped>(&self, actual: &'a NetnsState) -> Vec<&'a T> {
        let wanted = |o: &T| {
            T::all(&self.present).contains_key(o.key()) || T::all(&self.keep).contains_key(o.key())
        };
        T::all(actual)
            .values()
            .filter(|o| o.in_scope(&self.scope) && !wanted(o))
            .collect()
    }
}

/// What one netns should look like for one attachment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredNetns {
    /// Objects that must exist with exactly these values.
    #[serde(default)]
    pub present: NetnsState,
    /// Exact routes that must not exist: the documented moves (P's default out of main on
    /// ADD; C's default hops that P's restored default replaces on DEL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent_routes: Vec<RouteKey>,
    /// Present routes allowed into a slot held by unowned routes: the restore of P's default
    /// into main, replacing in one step the slot's routes listed in `absent_routes` (C's)
    /// and stale owned ones, and going next to any other (another interface's default).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub takeover: BTreeSet<RouteKey>,
    #[serde(default)]
    pub scope: Scope,
    /// Objects other attachments of the same pod want: never removed for this one.
    #[serde(default, skip_serializing_if = "NetnsState::is_empty")]
    pub keep: NetnsState,
    /// Shared rules removed only when no owned route is left in the table they look up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release_when_unused: Vec<RuleKey>,
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
