//! netlink::encode: model objects -> kernel messages (route, rule, neighbour and link
//! sysctl requests, dump requests), device names resolved against a `Links`. Pure: it must
//! not send anything nor choose which objects to write.

use std::net::IpAddr;

use netlink_packet_route::link::{AfSpecInet, AfSpecUnspec, LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol,
    RouteScope as NlRouteScope, RouteType, RouteVia,
};
use netlink_packet_route::rule::{
    RuleAction as NlRuleAction, RuleAttribute, RuleFlags, RuleMessage,
};
use netlink_packet_route::AddressFamily;
use rtnetlink::packet_core::{DefaultNla, NLA_F_NESTED};

use super::transport::refused;
use super::{Links, RouteFilter};
use crate::error::{Error, Result};
use crate::model::{
    Family, Neighbour, Route, RouteKind, Rule, RuleAction, SysctlKey, SysctlName, ALL_AND_DEFAULT,
    IPV6_DEFAULT_METRIC,
};

pub(super) fn address_family(family: Family) -> AddressFamily {
    match family {
        Family::Ipv4 => AddressFamily::Inet,
        Family::Ipv6 => AddressFamily::Inet6,
    }
}

/// A strict route dump of one table: the header table stays RT_TABLE_UNSPEC and RTA_TABLE
/// names the table, so tables above 255 work too. Without a table, every table. The
/// kernel applies `filter` (the protocol in the header, the device as RTA_OIF).
pub(super) fn route_dump_request(
    family: Family,
    table: Option<u32>,
    filter: &RouteFilter,
) -> RouteMessage {
    let mut request = RouteMessage::default();
    request.header.address_family = address_family(family);
    if let Some(protocol) = filter.protocol {
        request.header.protocol = RouteProtocol::from(protocol);
    }
    request.attributes.extend(table.map(RouteAttribute::Table));
    request
        .attributes
        .extend(filter.oif.map(RouteAttribute::Oif));
    request
}

/// A neighbour dump of one family (AF_UNSPEC would also walk the bridge FDB), of one
/// device when given: a strict dump names it in NDA_IFINDEX (the header's must stay 0).
pub(super) fn neighbour_dump_request(family: Family, ifindex: Option<u32>) -> NeighbourMessage {
    let mut request = NeighbourMessage::default();
    request.header.family = address_family(family);
    request
        .attributes
        .extend(ifindex.map(NeighbourAttribute::IfIndex));
    request
}

/// `ip route get <dst>`: the route (and source address) the kernel picks toward `dst`.
pub(super) fn route_get_request(dst: IpAddr) -> RouteMessage {
    let family = Family::of_addr(&dst);
    let mut request = RouteMessage::default();
    request.header.address_family = address_family(family);
    request.header.destination_prefix_length = family.host_prefix_len();
    request
        .attributes
        .push(RouteAttribute::Destination(kernel_addr(dst)));
    request
}

/// Whether a route message creates the route (every field) or deletes it (matching any
/// scope, without the source address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RouteWrite {
    Create,
    Delete,
}

/// A table in a header byte: itself below 256, else RT_TABLE_UNSPEC (RTA_TABLE/FRA_TABLE,
/// always sent too, carries it).
fn header_table(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC)
}

fn kernel_addr(addr: IpAddr) -> RouteAddress {
    match addr {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn kernel_route_type(kind: RouteKind) -> Option<RouteType> {
    match kind {
        RouteKind::Unicast => Some(RouteType::Unicast),
        RouteKind::Local => Some(RouteType::Local),
        RouteKind::Broadcast => Some(RouteType::Broadcast),
        RouteKind::Blackhole => Some(RouteType::BlackHole),
        RouteKind::Unreachable => Some(RouteType::Unreachable),
        RouteKind::Prohibit => Some(RouteType::Prohibit),
        RouteKind::Other => None,
    }
}

pub(super) fn kernel_rule_action(action: RuleAction) -> Option<NlRuleAction> {
    match action {
        RuleAction::Lookup => Some(NlRuleAction::ToTable),
        RuleAction::Goto => Some(NlRuleAction::Goto),
        RuleAction::Nop => Some(NlRuleAction::Nop),
        RuleAction::Blackhole => Some(NlRuleAction::Blackhole),
        RuleAction::Unreachable => Some(NlRuleAction::Unreachable),
        RuleAction::Prohibit => Some(NlRuleAction::Prohibit),
        RuleAction::Other => None,
    }
}

/// The index of `dev` in this netns; a missing device is an error naming it.
pub(super) fn ifindex(links: &Links, dev: &str, object: &str) -> Result<u32> {
    links
        .links
        .get(dev)
        .map(|link| link.index)
        .ok_or_else(|| Error::Kernel {
            object: object.to_string(),
            reason: format!("no device {dev:?} in this network namespace"),
        })
}

/// RTM_NEWROUTE/RTM_DELROUTE for one route (one hop). A delete matches any scope and
/// names the protocol, so the kernel removes only the route of that protocol.
pub(super) fn route_message(
    route: &Route,
    links: &Links,
    write: RouteWrite,
    object: &str,
) -> Result<RouteMessage> {
    let key = &route.key;
    let family = key.family();
    let dst = key.dst.trunc();
    let mut message = RouteMessage::default();
    let header = &mut message.header;
    header.address_family = address_family(family);
    header.destination_prefix_length = dst.prefix_len();
    header.tos = key.tos;
    header.table = header_table(key.table);
    header.protocol = RouteProtocol::from(route.protocol);
    match write {
        RouteWrite::Create => {
            header.scope = NlRouteScope::from(route.scope.to_kernel());
            header.kind = kernel_route_type(route.kind).ok_or_else(|| {
                refused(
                    object,
                    "a route of an unknown type cannot be created".into(),
                )
            })?;
            if route.onlink {
                header.flags = RouteFlags::Onlink;
            }
        }
        RouteWrite::Delete => {
            // RT_SCOPE_NOWHERE in a delete means any scope (what `ip route del` sends).
            header.scope = NlRouteScope::NoWhere;
            header.kind = kernel_route_type(route.kind).unwrap_or(RouteType::Unspec);
        }
    }
    let attributes = &mut message.attributes;
    attributes.push(RouteAttribute::Table(key.table));
    if dst.prefix_len() > 0 {
        attributes.push(RouteAttribute::Destination(kernel_addr(dst.addr())));
    }
    if let Some(dev) = &key.dev {
        attributes.push(RouteAttribute::Oif(ifindex(links, dev, object)?));
    }
    match key.gateway {
        Some(gateway) if Family::of_addr(&gateway) == family => {
            attributes.push(RouteAttribute::Gateway(kernel_addr(gateway)))
        }
        // An IPv4 route through an IPv6 gateway (RFC 5549).
        Some(IpAddr::V6(gateway)) => attributes.push(RouteAttribute::Via(RouteVia::Inet6(gateway))),
        Some(IpAddr::V4(gateway)) => attributes.push(RouteAttribute::Via(RouteVia::Inet(gateway))),
        None => {}
    }
    // IPv6 reads a missing or 0 metric as 1024, the normalised value: the same either way.
    let metric = match family {
        Family::Ipv6 if key.metric == 0 => IPV6_DEFAULT_METRIC,
        _ => key.metric,
    };
    if metric != 0 {
        attributes.push(RouteAttribute::Priority(metric));
    }
    if write == RouteWrite::Create {
        if let Some(src) = route.prefsrc {
            attributes.push(RouteAttribute::PrefSource(kernel_addr(src)));
        }
    }
    Ok(message)
}

/// RTM_NEWRULE/RTM_DELRULE for one rule: every selector, the action, table and protocol.
pub(super) fn rule_message(rule: &Rule, action: NlRuleAction) -> RuleMessage {
    let key = &rule.key;
    let mut message = RuleMessage::default();
    let header = &mut message.header;
    header.family = address_family(key.family);
    header.tos = key.tos;
    header.table = header_table(key.table);
    header.action = action;
    if key.invert {
        header.flags = RuleFlags::Invert;
    }
    let attributes = &mut message.attributes;
    attributes.push(RuleAttribute::Priority(key.priority));
    // A /0 selector is "all": the kernel stores and shows it as no selector.
    if let Some(from) = key.from.filter(|n| n.prefix_len() > 0) {
        header.src_len = from.prefix_len();
        attributes.push(RuleAttribute::Source(from.trunc().addr()));
    }
    if let Some(to) = key.to.filter(|n| n.prefix_len() > 0) {
        header.dst_len = to.prefix_len();
        attributes.push(RuleAttribute::Destination(to.trunc().addr()));
    }
    if let Some(iif) = &key.iif {
        attributes.push(RuleAttribute::Iifname(iif.clone()));
    }
    if let Some(oif) = &key.oif {
        attributes.push(RuleAttribute::Oifname(oif.clone()));
    }
    if let Some(mark) = key.fwmark {
        attributes.push(RuleAttribute::FwMark(mark));
    }
    if let Some(mask) = key.fwmask {
        attributes.push(RuleAttribute::FwMask(mask));
    }
    attributes.push(RuleAttribute::Table(key.table));
    attributes.push(RuleAttribute::Protocol(RouteProtocol::from(rule.protocol)));
    message
}

/// The header and NDA_DST of a neighbour request.
pub(super) fn neighbour_message(neighbour: &Neighbour, ifindex: u32) -> NeighbourMessage {
    let addr = neighbour.key.addr;
    let mut message = NeighbourMessage::default();
    message.header.family = address_family(Family::of_addr(&addr));
    message.header.ifindex = ifindex;
    message
        .attributes
        .push(NeighbourAttribute::Destination(match addr {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    message
}

/// IPV4_DEVCONF_* of the kernel's uapi (linux/ip.h): a link's IPv4 sysctls by index.
const IPV4_DEVCONF_RP_FILTER: u16 = 8;
const IPV4_DEVCONF_ARP_NOTIFY: u16 = 22;

/// The IPv4 devconf index of a link sysctl the kernel sets from an RTM_SETLINK
/// (IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF); None for a sysctl only its file sets: IPv6's
/// (the kernel takes no devconf in an AF_INET6 link request), `all`'s and `default`'s (no
/// link holds them).
pub(super) fn inet_devconf_index(key: &SysctlKey) -> Option<u16> {
    if ALL_AND_DEFAULT.contains(&key.iface.as_str()) {
        return None;
    }
    match key.name {
        SysctlName::RpFilter => Some(IPV4_DEVCONF_RP_FILTER),
        SysctlName::ArpNotify => Some(IPV4_DEVCONF_ARP_NOTIFY),
        SysctlName::DisableIpv6 | SysctlName::NdiscNotify => None,
    }
}

/// IFLA_INET_CONF (linux/if_link.h): the devconf entries inside IFLA_AF_SPEC's AF_INET.
const IFLA_INET_CONF: u16 = 1;

/// RTM_SETLINK of the link `ifindex` whose IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF holds
/// one devconf entry: a nested attribute whose type is the entry's index and whose value
/// is the u32 to set. The kernel sets only the entries given. (netlink-packet-route's own
/// request type leaves out every zero, so it cannot set a value back to 0.)
pub(super) fn inet_conf_message(ifindex: u32, index: u16, value: u32) -> LinkMessage {
    const HEADER: u16 = 4;
    let len = HEADER + 4;
    let mut entry = Vec::with_capacity(usize::from(len));
    entry.extend_from_slice(&len.to_ne_bytes());
    entry.extend_from_slice(&index.to_ne_bytes());
    entry.extend_from_slice(&value.to_ne_bytes());
    let conf = DefaultNla::new(IFLA_INET_CONF | NLA_F_NESTED, entry);
    let mut message = LinkMessage::default();
    message.header.index = ifindex;
    message
        .attributes
        .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
            AfSpecInet::Other(conf),
        ])]));
    message
}
