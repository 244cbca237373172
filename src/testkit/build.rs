//! testkit::build: one builder per kernel object for every test, unit and integration:
//! addresses, routes, rules, neighbours, sysctls and links as the model holds them. Pure:
//! builds values, touches nothing. A malformed literal in a test panics (test input only).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{
    Family, Link, LinkPeer, MacAddr, Neighbour, NeighbourKey, NetnsState, Route, RouteKey,
    RouteKind, RouteScope, Rule, SysctlKey, SysctlName, MAIN_TABLE, PROTOCOL_KERNEL,
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

/// A route of link scope through `dev` in `table`, normalised (`Route::link`).
pub fn link_route(table: u32, dst: &str, dev: &str, protocol: u8) -> Route {
    Route::link(table, net(dst), dev, protocol)
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

/// A permanent neighbour entry on `dev`.
pub fn neighbour(dev: &str, addr: &str, lladdr: &str, protocol: u8) -> Neighbour {
    Neighbour {
        key: NeighbourKey {
            dev: dev.to_string(),
            addr: ip(addr),
        },
        lladdr: Some(mac(lladdr)),
        protocol,
    }
}

/// The managed sysctl `name` of `iface` (`net.<family>.conf.<iface>.<name>`).
pub fn sysctl(iface: &str, name: SysctlName) -> SysctlKey {
    SysctlKey::new(iface, name)
}

/// A link: its index, kind (`veth`, `macvlan`...), veth peer (its index there and the
/// netnsid this netns gives the peer's) and addresses with their prefix length.
pub fn link(index: u32, kind: Option<&str>, peer: Option<(u32, i32)>, addrs: &[String]) -> Link {
    Link {
        index,
        kind: kind.map(str::to_string),
        peer: peer.map(|(ifindex, nsid)| LinkPeer {
            ifindex,
            netnsid: Some(nsid),
        }),
        addresses: addrs.iter().map(|a| net(a)).collect(),
    }
}

/// A netns holding `routes`.
pub fn holding(routes: &[Route]) -> NetnsState {
    let mut ns = NetnsState::default();
    for route in routes {
        ns.insert_route(route.clone());
    }
    ns
}
