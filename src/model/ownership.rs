//! What one attachment may touch in a netns (the planner's only source for it): its scope
//! of owned objects, what the pod's other attachments keep, the documented moves and the
//! shared rule it releases when unused. Answers questions; decides no order, holds no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{Family, Keyed, Neighbour, NeighbourKey, NetnsState, Route, RouteKey, Rule, RuleKey};

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

/// What one attachment may touch in one netns beyond making its present objects so.
/// Flattened into `DesiredNetns`: these are its keys in the JSON.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Exact routes that must not exist: the documented moves (the previous default route
    /// out of main on ADD; the chained interface's default hops that the restored previous
    /// default route replaces on DEL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent_routes: Vec<RouteKey>,
    /// Present routes allowed into a slot held by unowned routes: the restore of the
    /// previous default route into main, replacing in one step the slot's routes listed in
    /// `absent_routes` (the chained interface's) and stale owned ones, and going next to
    /// any other (another interface's default).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub takeover: BTreeSet<RouteKey>,
    /// This attachment's owned objects: any not present is removed.
    #[serde(default)]
    pub scope: Scope,
    /// Objects other attachments of the same pod want: never removed for this one.
    #[serde(default, skip_serializing_if = "NetnsState::is_empty")]
    pub keep: NetnsState,
    /// Shared rules removed only when no owned route is left in the table they look up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release_when_unused: Vec<RuleKey>,
}

impl Ownership {
    /// Only the release of these shared rules (a failed ADD's rollback of the host side).
    pub fn releasing(rules: Vec<RuleKey>) -> Ownership {
        Ownership {
            release_when_unused: rules,
            ..Ownership::default()
        }
    }

    /// Whether the pod's other attachments want this object (whatever its value).
    pub fn is_kept<T: Scoped>(&self, object: &T) -> bool {
        T::all(&self.keep).contains_key(object.key())
    }

    /// Whether `object` may be removed because nobody wants it: this attachment owns it
    /// (its scope) and neither wants it (`present`) nor keeps it for a peer.
    pub fn may_remove<T: Scoped>(&self, object: &T, present: &NetnsState) -> bool {
        object.in_scope(&self.scope)
            && !T::all(present).contains_key(object.key())
            && !self.is_kept(object)
    }

    /// Whether this exact route must not exist (a documented move), owned or not.
    pub fn must_be_absent(&self, key: &RouteKey) -> bool {
        self.absent_routes.contains(key)
    }

    /// The routes of `actual` that must go for the documented moves, in the moves' order.
    pub fn absent_in<'a>(&'a self, actual: &'a NetnsState) -> impl Iterator<Item = &'a Route> {
        self.absent_routes
            .iter()
            .filter_map(|key| actual.routes.get(key))
    }

    /// Whether the present route `key` may take over its slot from unowned routes (the
    /// restore of the previous default route).
    pub fn may_take_over(&self, key: &RouteKey) -> bool {
        self.takeover.contains(key)
    }

    /// Whether the wanted route `want` may replace `have`, held under its own key with
    /// other values: router's own, or a takeover.
    pub fn may_replace(&self, want: &RouteKey, have: &Route) -> bool {
        have.is_owned() || self.may_take_over(want)
    }

    /// Whether the wanted route `want` may replace `other`, another route of its slot: a
    /// stale owned route no peer keeps, or, for a takeover, one listed absent. Any other
    /// blocks `want`, except that a takeover goes next to it.
    pub fn may_displace(&self, want: &RouteKey, other: &Route) -> bool {
        (other.is_owned() && !self.is_kept(other))
            || (self.may_take_over(want) && self.must_be_absent(&other.key))
    }

    /// Whether any shared rule is to be released when unused.
    pub fn releases_rules(&self) -> bool {
        !self.release_when_unused.is_empty()
    }

    /// The shared rules of `actual` to release: router's own, whose table holds no owned
    /// route of their family in `after` (the netns once this plan's ops are applied).
    pub fn released<'a>(&'a self, actual: &'a NetnsState, after: &NetnsState) -> Vec<&'a Rule> {
        self.release_when_unused
            .iter()
            .filter_map(|key| actual.rules.get(key))
            .filter(|rule| {
                rule.is_owned() && !has_owned_route(after, rule.key.table, rule.key.family)
            })
            .collect()
    }
}

fn has_owned_route(ns: &NetnsState, table: u32, family: Family) -> bool {
    ns.routes
        .values()
        .any(|r| r.key.table == table && r.key.family() == family && r.is_owned())
}

#[cfg(test)]
mod tests;
