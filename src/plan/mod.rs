//! plan: DesiredState x ActualState -> ordered ops. Pure; touches only owned objects plus
//! the documented moves, and reports (never changes) unowned objects in the way.
//! The op order keeps a default route in main at every step (DESIGN "order").

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

mod failure;

pub use failure::PlanFailure;

use crate::model::{
    host_net, ActualState, Change, DesiredNetns, DesiredState, Mode, Neighbour, NetnsState,
    NodeAddressChange, Op, Route, RouteKey, Rule, Side, MAIN_TABLE,
};

/// An object named in a report.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Object {
    Route(Route),
    Rule(Rule),
    Neighbour(Neighbour),
}

/// A wanted object that an unowned object stands in the way of. Never touched; reported.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub netns: Side,
    pub wanted: Object,
    pub found: Object,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub blocked: Vec<Blocked>,
    /// The pod's node-address change the plan was made against (`cause_of`).
    #[serde(default, skip_serializing_if = "NodeAddressChange::is_empty")]
    pub node_addresses: NodeAddressChange,
}

/// Why an op is needed when the reason lies outside the attachment: the node changed,
/// not the pod. CHECK states it with the drift.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// The node gained this address after the record was written: the pod lacks its route
    /// or neighbour through `via`.
    NodeAddressAdded {
        address: IpAddr,
        via: String,
        object: NodeObject,
    },
    /// The node no longer has this address: router's route or neighbour toward it is stale.
    NodeAddressRemoved {
        address: IpAddr,
        via: String,
        object: NodeObject,
    },
}

/// Which of a node address's objects in the pod a cause is about.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeObject {
    Route { table: u32 },
    Neighbour,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.blocked.is_empty()
    }

    /// Why `op` is needed, when a changed node address explains it.
    pub fn cause_of(&self, op: &Op) -> Option<Cause> {
        let change = &self.node_addresses;
        let via = change.via.as_str();
        if op.netns != Side::Pod {
            return None;
        }
        let (address, object, added) = match &op.change {
            Change::AddRoute { route } | Change::ReplaceRoute { new: route, .. } => {
                (host_route_address(route, via)?, route_object(route), true)
            }
            Change::DelRoute { route } => {
                (host_route_address(route, via)?, route_object(route), false)
            }
            Change::AddNeighbour { neighbour: n } | Change::ReplaceNeighbour { new: n, .. }
                if n.key.dev == via =>
            {
                (n.key.addr, NodeObject::Neighbour, true)
            }
            Change::DelNeighbour { neighbour: n } if n.key.dev == via => {
                (n.key.addr, NodeObject::Neighbour, false)
            }
            _ => return None,
        };
        let via = via.to_string();
        match added {
            true if change.added.contains(&address) => Some(Cause::NodeAddressAdded {
                address,
                via,
                object,
            }),
            false if change.removed.contains(&address) => Some(Cause::NodeAddressRemoved {
                address,
                via,
                object,
            }),
            _ => None,
        }
    }
}

/// The address a host-address route (`<addr>/32 or /128 dev <overlay interface>`) leads to.
fn host_route_address(route: &Route, via: &str) -> Option<IpAddr> {
    let addr = route.key.dst.addr();
    (route.key.dev.as_deref() == Some(via) && route.key.dst == host_net(addr)).then_some(addr)
}

fn route_object(route: &Route) -> NodeObject {
    NodeObject::Route {
        table: route.key.table,
    }
}

/// The ops that take `actual` to `desired`, in the order they must run for `mode`.
/// A pod netns that is gone gets no ops.
pub fn plan(desired: &DesiredState, actual: &ActualState, mode: Mode) -> Plan {
    let mut plan = Plan {
        node_addresses: desired.pod.node_addresses.clone(),
        ..Plan::default()
    };
    for side in [Side::Pod, Side::Host] {
        if let Some(actual_ns) = actual.side(side) {
            NetnsPlanner {
                side,
                desired: desired.side(side),
                actual: actual_ns,
                claimed: BTreeSet::new(),
                plan: &mut plan,
            }
            .run();
        }
    }
    // All of one netns, then the other (they do not depend on each other, and each switch
    // costs the executor a thread in the pod netns and a netlink socket), except that an
    // ADD's removals come after every addition: the last thing it does is move the previous
    // default route out of main, so a failure anywhere before it leaves nothing hard to put
    // back.
    plan.ops.sort_by_key(|op| {
        (
            is_add_removal(op, mode),
            op.netns,
            rank(op, mode),
            gateway_route(op),
        )
    });
    plan
}

struct NetnsPlanner<'a> {
    side: Side,
    desired: &'a DesiredNetns,
    actual: &'a NetnsState,
    /// Actual routes already replaced or removed by an earlier op.
    claimed: BTreeSet<RouteKey>,
    plan: &'a mut Plan,
}

impl NetnsPlanner<'_> {
    fn run(mut self) {
        self.sysctls();
        self.macs();
        self.routes();
        self.neighbours();
        self.rules();
        self.release_unused_rules();
    }

    /// One change in this planner's netns.
    fn op(&mut self, change: Change) {
        self.plan.ops.push(Op::new(self.side, change));
    }

    fn blocked(&mut self, wanted: Object, found: Object) {
        self.plan.blocked.push(Blocked {
            netns: self.side,
            wanted,
            found,
        });
    }

    /// Compare before write: an equal value is not rewritten.
    fn sysctls(&mut self) {
        for (key, &new) in &self.desired.present.sysctls {
            let old = self.actual.sysctls.get(key).copied();
            if old != Some(new) {
                self.op(Change::SetSysctl {
                    key: key.clone(),
                    old,
                    new,
                });
            }
        }
    }

    fn macs(&mut self) {
        for (dev, &new) in &self.desired.present.macs {
            let old = self.actual.macs.get(dev).copied();
            if old != Some(new) {
                self.op(Change::SetMac {
                    dev: dev.clone(),
                    old,
                    new,
                });
            }
        }
    }

    fn routes(&mut self) {
        for want in self.desired.present.routes.values() {
            self.route(want);
        }
        for have in self.desired.ownership.absent_in(self.actual) {
            self.delete_route(have);
        }
        for have in self.desired.extras::<Route>(self.actual) {
            self.delete_route(have);
        }
    }

    fn delete_route(&mut self, have: &Route) {
        if self.claimed.insert(have.key.clone()) {
            self.op(Change::DelRoute {
                route: have.clone(),
            });
        }
    }

    fn replace_route(&mut self, old: Vec<Route>, new: &Route) {
        self.claimed.extend(old.iter().map(|r| r.key.clone()));
        self.op(Change::ReplaceRoute {
            old,
            new: new.clone(),
        });
    }

    fn route(&mut self, want: &Route) {
        let ownership = &self.desired.ownership;
        match self.actual.routes.get(&want.key) {
            Some(have) if have == want => {}
            Some(have) if !have.is_owned() && have.same_effect(want) => {}
            Some(have) if ownership.may_replace(&want.key, have) => {
                self.replace_route(vec![have.clone()], want)
            }
            Some(have) => self.blocked(Object::Route(want.clone()), Object::Route(have.clone())),
            None => self.route_into_slot(want),
        }
    }

    /// A new route whose slot (table, dst, tos, metric) other routes may hold: those it may
    /// displace (stale owned leftovers; for a documented move, the routes listed absent)
    /// are replaced; any other blocks it, except that a move goes next to it, as IPAM's
    /// `append` put them there.
    fn route_into_slot(&mut self, want: &Route) {
        let ownership = &self.desired.ownership;
        let (displaced, in_the_way): (Vec<Route>, Vec<Route>) = self
            .actual
            .routes_in_slot(&want.key.slot())
            .filter(|r| {
                !self.desired.present.routes.contains_key(&r.key) && !self.claimed.contains(&r.key)
            })
            .cloned()
            .partition(|r| ownership.may_displace(&want.key, r));
        match in_the_way.first() {
            Some(found) if !ownership.may_take_over(&want.key) => {
                self.blocked(Object::Route(want.clone()), Object::Route(found.clone()))
            }
            _ if displaced.is_empty() => {
                self.op(Change::AddRoute {
                    route: want.clone(),
                });
            }
            _ => self.replace_route(displaced, want),
        }
    }

    fn neighbours(&mut self) {
        for want in self.desired.present.neighbours.values() {
            match self.actual.neighbours.get(&want.key) {
                Some(have) if have.lladdr == want.lladdr => {}
                Some(have) if have.is_owned() => self.op(Change::ReplaceNeighbour {
                    old: have.clone(),
                    new: want.clone(),
                }),
                Some(have) => self.blocked(
                    Object::Neighbour(want.clone()),
                    Object::Neighbour(have.clone()),
                ),
                None => self.op(Change::AddNeighbour {
                    neighbour: want.clone(),
                }),
            }
        }
        for neighbour in self.desired.extras::<Neighbour>(self.actual) {
            self.op(Change::DelNeighbour {
                neighbour: neighbour.clone(),
            });
        }
    }

    /// A rule's identity is all it has but its protocol: one with the same key, owned or
    /// not, already does the job.
    fn rules(&mut self) {
        let missing: Vec<Rule> = self
            .desired
            .present
            .rules
            .values()
            .filter(|want| !self.actual.rules.contains_key(&want.key))
            .cloned()
            .collect();
        for rule in missing {
            self.op(Change::AddRule { rule });
        }
        for rule in self.desired.extras::<Rule>(self.actual) {
            self.op(Change::DelRule { rule: rule.clone() });
        }
    }

    /// The shared host rule goes only when, after this plan, no owned route of its family
    /// is left in the table it looks up.
    fn release_unused_rules(&mut self) {
        if !self.desired.ownership.releases_rules() {
            return;
        }
        let mut after = self.actual.clone();
        for op in self.plan.ops.iter().filter(|op| op.netns == self.side) {
            after.apply(op);
        }
        for rule in self.desired.ownership.released(self.actual, &after) {
            self.op(Change::DelRule { rule: rule.clone() });
        }
    }
}

/// Whether an op adds or removes the shared host rule (`from all lookup host_rule_table`,
/// the only rule router keeps on the host): such an op is decided again under the host lock
/// by `plan_shared_rule`, never applied from a plan read without it.
pub fn is_shared_rule_op(op: &Op) -> bool {
    op.netns == Side::Host && matches!(op.change, Change::AddRule { .. } | Change::DelRule { .. })
}

/// The plan's ops but the shared host rule's, which are decided again under the lock.
pub fn own_ops(plan: &Plan) -> Vec<Op> {
    plan.ops
        .iter()
        .filter(|op| !is_shared_rule_op(op))
        .cloned()
        .collect()
}

/// The shared host rule's ops from the host as it is now, read under the host lock after
/// this run's own host routes were added (ADD: add a wanted rule that is absent) or removed
/// (DEL: remove a `release_when_unused` rule when no owned route is left in its table).
pub fn plan_shared_rule(desired: &DesiredNetns, host: &NetnsState) -> Vec<Op> {
    let mut plan = Plan::default();
    let mut planner = NetnsPlanner {
        side: Side::Host,
        desired,
        actual: host,
        claimed: BTreeSet::new(),
        plan: &mut plan,
    };
    planner.rules();
    planner.release_unused_rules();
    plan.ops.retain(is_shared_rule_op);
    plan.ops
}

/// An ADD's removals (rules, the previous default route out of main, neighbours): they come
/// last.
pub fn is_add_removal(op: &Op, mode: Mode) -> bool {
    mode == Mode::Add
        && matches!(
            op.change,
            Change::DelRule { .. } | Change::DelRoute { .. } | Change::DelNeighbour { .. }
        )
}

/// Within a phase, routes through a gateway come after the link routes that reach it.
fn gateway_route(op: &Op) -> bool {
    matches!(&op.change, Change::AddRoute { route } | Change::ReplaceRoute { new: route, .. } if route.key.gateway.is_some())
}

fn is_main(route: &Route) -> bool {
    route.key.table == MAIN_TABLE
}

/// DESIGN "order". ADD: sysctls, MAC, routes into the pod table (copies first), other
/// routes, neighbours, rules, then removals (rules, routes out of main, neighbours). DEL
/// runs the other way round, with the restore of the previous default route (a one-step
/// replace) before the copies it relies on go.
fn rank(op: &Op, mode: Mode) -> u8 {
    match (mode, &op.change) {
        (Mode::Add, Change::SetSysctl { .. }) => 0,
        (Mode::Add, Change::SetMac { .. }) => 1,
        (Mode::Add, Change::AddRoute { route: r } | Change::ReplaceRoute { new: r, .. }) => {
            if is_main(r) {
                3
            } else {
                2
            }
        }
        (Mode::Add, Change::AddNeighbour { .. } | Change::ReplaceNeighbour { .. }) => 4,
        (Mode::Add, Change::AddRule { .. }) => 5,
        (Mode::Add, Change::DelRule { .. }) => 6,
        (Mode::Add, Change::DelRoute { .. }) => 7,
        (Mode::Add, Change::DelNeighbour { .. }) => 8,
        (Mode::Del, Change::DelRule { .. }) => 0,
        (Mode::Del, Change::AddRoute { .. } | Change::ReplaceRoute { .. }) => 1,
        (Mode::Del, Change::DelRoute { .. }) => 2,
        (Mode::Del, Change::DelNeighbour { .. }) => 3,
        (Mode::Del, Change::AddNeighbour { .. } | Change::ReplaceNeighbour { .. }) => 4,
        (Mode::Del, Change::AddRule { .. }) => 5,
        (Mode::Del, Change::SetMac { .. }) => 6,
        (Mode::Del, Change::SetSysctl { .. }) => 7,
    }
}

#[cfg(test)]
mod tests;
