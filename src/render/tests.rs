//! render tests: the builders every output's tests share (routes, rules, neighbours, ops,
//! plans, drifts); one file per output beside them.

mod diff;
mod drift;
mod failure;
mod json;
mod text;

use super::diff::*;
use super::drift::*;
use serde_json::json;

use super::json::*;
use super::text::*;
use super::*;
use crate::model::notation::proto_text;
use crate::plan::{Blocked, Object, Plan};
use crate::testkit::build::{self, mac, net, route_to, RouteBuilder};

use crate::model::{
    ActualState, Neighbour, NetnsState, RouteKind, RouteScope, RuleAction, SysctlKey, SysctlName,
    MAIN_TABLE, PROTOCOL_BOOT, PROTOCOL_KERNEL, ROUTER_PROTOCOL,
};

/// An owned unicast route in main via `dev`, nothing else set.
fn route(dst: &str, dev: &str) -> Route {
    route_to(dst, dev, ROUTER_PROTOCOL).build()
}

fn via(r: Route, gw: &str, table: u32) -> Route {
    RouteBuilder(r).via(gw).table(table).build()
}

fn rule(from: Option<&str>, to: Option<&str>, table: u32, pref: u32) -> Rule {
    let family = Family::of_net(&net(from.or(to).unwrap_or("0.0.0.0/0")));
    Rule::owned_lookup(family, pref, from.map(net), to.map(net), table)
}

/// An owned permanent neighbour on net1.
fn neighbour(addr: &str, lladdr: &str) -> Neighbour {
    build::neighbour("net1", addr, lladdr, ROUTER_PROTOCOL)
}

fn rp_filter(iface: &str, old: Option<i64>, new: i64) -> Op {
    let key = SysctlKey::new(iface, SysctlName::RpFilter);
    Op::new(Side::Host, Change::SetSysctl { key, old, new })
}

fn set_mac(old: Option<&str>) -> Op {
    let (old, new) = (old.map(mac), mac("0a:0b:0a:14:14:5f"));
    Op::new(
        Side::Pod,
        Change::SetMac {
            dev: "net1".to_string(),
            old,
            new,
        },
    )
}

fn add_route(netns: Side, route: Route) -> Op {
    Op::new(netns, Change::AddRoute { route })
}

fn add_rule(netns: Side, rule: Rule) -> Op {
    Op::new(netns, Change::AddRule { rule })
}

fn blocked_default(netns: Side) -> Blocked {
    let wanted = via(route("0.0.0.0/0", "net1"), "192.168.50.254", 100);
    let mut found = wanted.clone();
    found.protocol = PROTOCOL_BOOT;
    found.key.gateway = Some("192.168.50.1".parse().unwrap());
    Blocked {
        netns,
        wanted: Object::Route(wanted),
        found: Object::Route(found),
    }
}

fn labels() -> NetnsLabels {
    NetnsLabels {
        pod: "/var/run/netns/x".to_string(),
        host: "host".to_string(),
    }
}

fn plan(ops: Vec<Op>, blocked: Vec<Blocked>) -> Plan {
    Plan {
        ops,
        blocked,
        ..Plan::default()
    }
}

fn only_drift(op: Op) -> Drift {
    let mut all = drifts(&plan(vec![op], vec![]));
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn drift_of(
    kind: ObjectKind,
    name: &str,
    state: DriftState,
    expected: &str,
    actual: &str,
) -> Drift {
    Drift::new(Side::Pod, (kind, name.to_string()), state, expected, actual)
}
