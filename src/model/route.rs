//! Routes: the kernel's identity of a route hop, its slot and its values; its `ip route`
//! notation is its `Display`.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::notation::{dst_text, ip_word, proto_text, push_opt, tos_text};
use super::{is_default, Family, IPV6_DEFAULT_METRIC, MAIN_TABLE, ROUTER_PROTOCOL};

/// Route scope (rtm_scope). IPv6 routes always read back as `Universe`.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum RouteScope {
    #[default]
    Universe,
    Site,
    Link,
    Host,
    Nowhere,
}

impl RouteScope {
    pub fn to_kernel(self) -> u8 {
        match self {
            RouteScope::Universe => 0,
            RouteScope::Site => 200,
            RouteScope::Link => 253,
            RouteScope::Host => 254,
            RouteScope::Nowhere => 255,
        }
    }

    pub fn from_kernel(v: u8) -> RouteScope {
        match v {
            200 => RouteScope::Site,
            253 => RouteScope::Link,
            254 => RouteScope::Host,
            255 => RouteScope::Nowhere,
            _ => RouteScope::Universe,
        }
    }
}

/// Route type (rtm_type). Only unicast routes are created; others are carried so that a
/// snapshot never mistakes a blackhole for a unicast route with the same key.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    #[default]
    Unicast,
    Local,
    Broadcast,
    Blackhole,
    Unreachable,
    Prohibit,
    Other,
}

/// The kernel's identity of a route hop. The nexthop is part of it: with IPAM plugins that
/// add with `append`, IPv4 main holds two defaults differing only by nexthop, and an IPv6
/// multipath default is held here as one entry per hop.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    pub table: u32,
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "is_default")]
    pub tos: u8,
    #[serde(default)]
    pub metric: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// The slot of a route: what the kernel refuses to hold twice without `append`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteSlot {
    pub table: u32,
    pub dst: IpNet,
    pub tos: u8,
    pub metric: u32,
}

impl RouteKey {
    pub fn family(&self) -> Family {
        Family::of_net(&self.dst)
    }

    pub fn slot(&self) -> RouteSlot {
        RouteSlot {
            table: self.table,
            dst: self.dst,
            tos: self.tos,
            metric: self.metric,
        }
    }

    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    #[serde(flatten)]
    pub key: RouteKey,
    #[serde(default, skip_serializing_if = "is_default")]
    pub scope: RouteScope,
    #[serde(default, skip_serializing_if = "is_default")]
    pub kind: RouteKind,
    pub protocol: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefsrc: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub onlink: bool,
}

impl Route {
    /// A unicast route straight out of a device (`<dst> dev <dev> scope link`), normalised.
    pub fn link(table: u32, dst: IpNet, dev: &str, protocol: u8) -> Route {
        Route {
            key: RouteKey {
                table,
                dst,
                tos: 0,
                metric: 0,
                dev: Some(dev.to_string()),
                gateway: None,
            },
            scope: RouteScope::Link,
            kind: RouteKind::Unicast,
            protocol,
            prefsrc: None,
            onlink: false,
        }
        .normalised()
    }

    /// Masks the destination and fills what the kernel fills, so a route built here
    /// compares equal to the same route read back from the kernel.
    pub fn normalised(mut self) -> Route {
        self.key.dst = self.key.dst.trunc();
        if self.key.family() == Family::Ipv6 {
            if self.key.metric == 0 {
                self.key.metric = IPV6_DEFAULT_METRIC;
            }
            self.scope = RouteScope::Universe;
        }
        self
    }

    pub fn is_owned(&self) -> bool {
        self.protocol == ROUTER_PROTOCOL
    }

    /// Equal in everything but ownership: an unowned route that already does the job.
    pub fn same_effect(&self, other: &Route) -> bool {
        self.key == other.key
            && self.scope == other.scope
            && self.kind == other.kind
            && self.prefsrc == other.prefsrc
            && self.onlink == other.onlink
    }
}

impl RouteKind {
    /// The `ip route` type word; unicast goes without.
    fn word(self) -> Option<&'static str> {
        match self {
            RouteKind::Unicast => None,
            RouteKind::Local => Some("local"),
            RouteKind::Broadcast => Some("broadcast"),
            RouteKind::Blackhole => Some("blackhole"),
            RouteKind::Unreachable => Some("unreachable"),
            RouteKind::Prohibit => Some("prohibit"),
            // No iproute2 type matches; named anyway so it never reads as unicast.
            RouteKind::Other => Some("other"),
        }
    }
}

impl RouteScope {
    /// The `ip route` scope word; universe goes without.
    fn word(self) -> Option<&'static str> {
        match self {
            RouteScope::Universe => None,
            RouteScope::Site => Some("site"),
            RouteScope::Link => Some("link"),
            RouteScope::Host => Some("host"),
            RouteScope::Nowhere => Some("nowhere"),
        }
    }
}

impl Route {
    /// The `ip route` arguments naming this route; with the protocol they also build it.
    pub fn ip_args(&self, with_proto: bool) -> String {
        let key = &self.key;
        let mut words: Vec<String> = self.kind.word().map(str::to_string).into_iter().collect();
        words.push(dst_text(&key.dst));
        push_opt(&mut words, "tos", (key.tos != 0).then(|| tos_text(key.tos)));
        push_opt(&mut words, "via", key.gateway);
        push_opt(&mut words, "dev", key.dev.as_deref());
        push_opt(
            &mut words,
            "table",
            (key.table != MAIN_TABLE).then_some(key.table),
        );
        push_opt(
            &mut words,
            "metric",
            (key.metric != 0).then_some(key.metric),
        );
        push_opt(&mut words, "scope", self.scope.word());
        push_opt(&mut words, "src", self.prefsrc);
        push_opt(
            &mut words,
            "proto",
            with_proto.then(|| proto_text(self.protocol)),
        );
        if self.onlink {
            words.push("onlink".to_string());
        }
        words.join(" ")
    }

    /// `ip [-6] route <verb> <route>`: how `netlink` names the routes it writes.
    pub fn ip_command(&self, verb: &str) -> String {
        let ip = ip_word(self.key.family() == Family::Ipv6);
        format!("{ip} route {verb} {self}")
    }
}

/// The `ip route` arguments that name and build this route (without `ip route add`).
impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ip_args(true))
    }
}

#[cfg(test)]
mod tests;
