//! Model objects for tests, one builder for every test crate: the kernel tests (through
//! `common`) and the reconciler's laws build routes and rules the same way. Pure.

use std::net::IpAddr;

use ipnet::IpNet;
use router::model::{
    Family, MacAddr, NetnsState, Route, RouteKey, RouteKind, RouteScope, Rule, MAIN_TABLE,
    PROTOCOL_KERNEL,
};

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

pub fn mac(s: &str) -> MacAddr {
    s.parse().expect("test MAC")
}

/// A unicast route in main with metric 0, universe scope, no gateway; refine with the
/// methods, then `build` it or insert it into a netns.
pub struct RouteBuilder(pub Route);

pub fn route_to(dst: &str, dev: &str, protocol: u8) -> RouteBuilder {
    RouteBuilder(Route {
        key: RouteKey {
            table: MAIN_TABLE,
            dst: net(dst),
            tos: 0,
            metric: 0,
            dev: Some(dev.to_string()),
            gateway: None,
        },
        scope: RouteScope::Universe,
        kind: RouteKind::Unicast,
        protocol,
        prefsrc: None,
        onlink: false,
    })
}

impl RouteBuilder {
    pub fn via(mut self, gateway: &str) -> Self {
        self.0.key.gateway = Some(ip(gateway));
        self
    }

    pub fn metric(mut self, metric: u32) -> Self {
        self.0.key.metric = metric;
        self
    }

    pub fn link_scope(mut self) -> Self {
        self.0.scope = RouteScope::Link;
        self
    }

    pub fn src(mut self, addr: &str) -> Self {
        self.0.prefsrc = Some(ip(addr));
        self
    }

    pub fn table(mut self, table: u32) -> Self {
        self.0.key.table = table;
        self
    }

    pub fn build(self) -> Route {
        self.0
    }

    pub fn insert_into(self, ns: &mut NetnsState) {
        ns.insert_route(self.0);
    }
}

/// A route with every key part given (not normalised: the kernel tests compare exact keys).
pub fn route(
    table: u32,
    dst: &str,
    metric: u32,
    dev: &str,
    gateway: Option<&str>,
    protocol: u8,
) -> Route {
    let r = route_to(dst, dev, protocol).table(table).metric(metric);
    match gateway {
        Some(gateway) => r.via(gateway).build(),
        None => r.build(),
    }
}

/// The route the kernel derives from an interface address.
pub fn connected(dst: &str, dev: &str, prefsrc: Option<&str>) -> Route {
    let r = route_to(dst, dev, PROTOCOL_KERNEL);
    match (Family::of_net(&net(dst)), prefsrc) {
        (Family::Ipv4, Some(src)) => r.link_scope().src(src).build(),
        (Family::Ipv4, None) => r.link_scope().build(),
        (Family::Ipv6, _) => r.metric(256).build(),
    }
}

/// A lookup rule with the given protocol, selectors masked.
pub fn rule(
    family: Family,
    priority: u32,
    from: Option<&str>,
    to: Option<&str>,
    table: u32,
    protocol: u8,
) -> Rule {
    Rule {
        protocol,
        ..Rule::owned_lookup(family, priority, from.map(net), to.map(net), table)
    }
}
