//! netlink::decode: kernel messages -> model objects (links, addresses, routes, rules,
//! neighbours), pure. It must not send anything nor filter by ownership.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteNextHopFlags, RouteType, RouteVia,
};
use netlink_packet_route::rule::{
    RuleAction as NlRuleAction, RuleAttribute, RuleFlags, RuleMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::model::{
    Family, Link, LinkPeer, MacAddr, Neighbour, NeighbourKey, Route, RouteKey, RouteKind,
    RouteScope, Rule, RuleAction, RuleKey, SysctlKey, SysctlName,
};

/// NUD_PERMANENT: the neighbour state bit of entries configured by hand.
const NUD_PERMANENT: u16 = 0x80;

fn model_family(family: AddressFamily) -> Option<Family> {
    match family {
        AddressFamily::Inet => Some(Family::Ipv4),
        AddressFamily::Inet6 => Some(Family::Ipv6),
        _ => None,
    }
}

pub(super) fn route_addr(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn via_addr(via: &RouteVia) -> Option<IpAddr> {
    match via {
        RouteVia::Inet(a) => Some(IpAddr::V4(*a)),
        RouteVia::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn prefix(object: &str, addr: IpAddr, len: u8) -> Result<IpNet> {
    IpNet::new(addr, len).map_err(|e| Error::Kernel {
        object: object.to_string(),
        reason: format!("bad prefix {addr}/{len}: {e}"),
    })
}

fn route_kind(kind: RouteType) -> RouteKind {
    match kind {
        RouteType::Unicast => RouteKind::Unicast,
        RouteType::Local => RouteKind::Local,
        RouteType::Broadcast => RouteKind::Broadcast,
        RouteType::BlackHole => RouteKind::Blackhole,
        RouteType::Unreachable => RouteKind::Unreachable,
        RouteType::Prohibit => RouteKind::Prohibit,
        _ => RouteKind::Other,
    }
}

fn rule_action(action: NlRuleAction) -> RuleAction {
    match action {
        NlRuleAction::ToTable => RuleAction::Lookup,
        NlRuleAction::Goto => RuleAction::Goto,
        NlRuleAction::Nop => RuleAction::Nop,
        NlRuleAction::Blackhole => RuleAction::Blackhole,
        NlRuleAction::Unreachable => RuleAction::Unreachable,
        NlRuleAction::Prohibit => RuleAction::Prohibit,
        _ => RuleAction::Other,
    }
}

fn mac_of(bytes: &[u8]) -> Option<MacAddr> {
    <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
}

/// The name of an interface a route or neighbour refers to. An index missing from the
/// link dump means links changed between the two dumps: read again.
fn dev_name(names: &HashMap<u32, String>, index: u32, object: &str) -> Result<String> {
    names.get(&index).cloned().ok_or_else(|| {
        Error::TryAgain(format!(
            "{object} refers to ifindex {index}, absent from the link dump (links changed)"
        ))
    })
}

/// A link: its name, facts and MAC (6-byte hardware addresses only). None without a name.
pub(super) fn link_from_message(message: &LinkMessage) -> Option<(String, Link, Option<MacAddr>)> {
    let index = message.header.index;
    let mut name = None;
    let mut kind = None;
    let mut link = None;
    let mut netnsid = None;
    let mut mac = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::LinkInfo(infos) => {
                kind = infos.iter().find_map(|info| match info {
                    LinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                });
            }
            LinkAttribute::Link(i) => link = Some(*i),
            LinkAttribute::LinkNetNsId(id) => netnsid = Some(*id),
            LinkAttribute::Address(bytes) => mac = mac_of(bytes),
            _ => {}
        }
    }
    // IFLA_LINK equal to the link's own index means "no other link", unless the peer is
    // in another netns (IFLA_LINK_NETNSID set), where indexes are another numbering: a
    // pod's eth0 and its host veth are often both ifindex 2.
    let peer = link
        .filter(|&peer| peer != index || netnsid.is_some())
        .map(|ifindex| LinkPeer { ifindex, netnsid });
    Some((
        name?,
        Link {
            index,
            kind,
            peer,
            addresses: Vec::new(),
        },
        mac,
    ))
}

/// The managed sysctls of the link `name` as its IFLA_AF_SPEC carries them: the devconf
/// arrays that /proc/sys/net/ipv4/conf/<link>/ and ipv6/conf/<link>/ show (rp_filter and
/// arp_notify; disable_ipv6 and ndisc_notify). A family the link has no configuration of
/// (IPv6 off, or an MTU below 1280) gives none, as its /proc/sys directory is missing.
pub(super) fn link_sysctls(message: &LinkMessage, name: &str) -> Vec<(SysctlKey, i64)> {
    let key = |sysctl| SysctlKey::new(name, sysctl);
    let mut found = Vec::new();
    let specs = message.attributes.iter().flat_map(|a| match a {
        LinkAttribute::AfSpecUnspec(specs) => specs.as_slice(),
        _ => &[],
    });
    for spec in specs {
        let values: Vec<(SysctlName, i32)> = match spec {
            AfSpecUnspec::Inet(inet) => inet
                .iter()
                .flat_map(|item| match item {
                    AfSpecInet::DevConf(c) => vec![
                        (SysctlName::RpFilter, c.rp_filter),
                        (SysctlName::ArpNotify, c.arp_notify),
                    ],
                    _ => Vec::new(),
                })
                .collect(),
            AfSpecUnspec::Inet6(inet6) => inet6
                .iter()
                .flat_map(|item| match item {
                    AfSpecInet6::DevConf(c) => vec![
                        (SysctlName::DisableIpv6, c.disable_ipv6),
                        (SysctlName::NdiscNotify, c.ndisc_notify),
                    ],
                    _ => Vec::new(),
                })
                .collect(),
            _ => Vec::new(),
        };
        found.extend(
            values
                .into_iter()
                .map(|(name, value)| (key(name), i64::from(value))),
        );
    }
    found
}

/// The name of the link an IPv4 address is on, from its label (IFA_LABEL: the link's
/// name, or `name:alias` for an alias; a link's name holds no `:`). None for IPv6, which
/// has no label.
pub(super) fn address_link_name(message: &AddressMessage) -> Option<String> {
    message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Label(label) => label.split(':').next().map(str::to_string),
        _ => None,
    })
}

/// The ifindexes the routes and neighbours of `messages` go through.
pub(super) fn devices_mentioned(message: &RouteNetlinkMessage) -> Vec<u32> {
    match message {
        RouteNetlinkMessage::NewRoute(route) => route
            .attributes
            .iter()
            .flat_map(|a| match a {
                RouteAttribute::Oif(index) => vec![*index],
                RouteAttribute::MultiPath(hops) => {
                    hops.iter().map(|hop| hop.interface_index).collect()
                }
                _ => Vec::new(),
            })
            .collect(),
        RouteNetlinkMessage::NewNeighbour(neighbour) => vec![neighbour.header.ifindex],
        _ => Vec::new(),
    }
}

/// An interface address as (ifindex, address/prefix) with host bits kept. IFA_LOCAL is
/// the address itself where both are given (IFA_ADDRESS is then the peer of a p2p link).
pub(super) fn address_from_message(message: &AddressMessage) -> Option<(u32, IpNet)> {
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(addr) => Some(*addr),
        _ => None,
    });
    let address = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(addr) => Some(*addr),
        _ => None,
    });
    let addr = local.or(address)?;
    let net = IpNet::new(addr, message.header.prefix_len).ok()?;
    Some((message.header.index, net))
}

/// A route as model routes: none for a cloned (cache) route, one per hop for multipath.
pub(super) fn routes_from_message(
    message: &RouteMessage,
    names: &HashMap<u32, String>,
) -> Result<Vec<Route>> {
    let header = &message.header;
    if header.flags.contains(RouteFlags::Cloned) {
        return Ok(Vec::new());
    }
    let Some(family) = model_family(header.address_family) else {
        return Ok(Vec::new());
    };
    let mut table = u32::from(header.table);
    let mut dst = None;
    let mut metric = 0;
    let mut oif = None;
    let mut gateway = None;
    let mut prefsrc = None;
    let mut hops = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(addr) => dst = route_addr(addr),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Oif(index) => oif = Some(*index),
            RouteAttribute::Gateway(addr) => gateway = route_addr(addr),
            RouteAttribute::Via(via) => gateway = gateway.or(via_addr(via)),
            RouteAttribute::PrefSource(addr) => prefsrc = route_addr(addr),
            RouteAttribute::MultiPath(h) => hops = Some(h),
            _ => {}
        }
    }
    let object = format!("{family} route in table {table}");
    let dst = match dst {
        Some(addr) => prefix(&object, addr, header.destination_prefix_length)?,
        None => family.any(),
    };
    let route = |dev: Option<String>, gateway: Option<IpAddr>, onlink: bool| Route {
        key: RouteKey {
            table,
            dst,
            tos: header.tos,
            metric,
            dev,
            gateway,
        },
        scope: RouteScope::from_kernel(u8::from(header.scope)),
        kind: route_kind(header.kind),
        protocol: u8::from(header.protocol),
        prefsrc,
        onlink,
    };
    let object = format!("{object} to {dst}");
    match hops {
        Some(hops) => hops
            .iter()
            .map(|hop| {
                let gateway = hop.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(addr) => route_addr(addr),
                    RouteAttribute::Via(via) => via_addr(via),
                    _ => None,
                });
                let dev = match hop.interface_index {
                    0 => None,
                    index => Some(dev_name(names, index, &object)?),
                };
                Ok(route(dev, gateway, hop.flags.contains(RouteNextHopFlags::Onlink)).normalised())
            })
            .collect(),
        None => {
            let dev = oif
                .map(|index| dev_name(names, index, &object))
                .transpose()?;
            Ok(vec![route(
                dev,
                gateway,
                header.flags.contains(RouteFlags::Onlink),
            )
            .normalised()])
        }
    }
}

/// A policy rule; None for a family other than IPv4/IPv6.
pub(super) fn rule_from_message(message: &RuleMessage) -> Result<Option<Rule>> {
    let header = &message.header;
    let Some(family) = model_family(header.family) else {
        return Ok(None);
    };
    let object = format!("{family} rule");
    let mut key = RuleKey {
        family,
        priority: 0,
        from: None,
        to: None,
        iif: None,
        oif: None,
        fwmark: None,
        fwmask: None,
        tos: header.tos,
        invert: header.flags.contains(RuleFlags::Invert),
        action: rule_action(header.action),
        table: u32::from(header.table),
    };
    let mut protocol = 0;
    for attribute in &message.attributes {
        match attribute {
            RuleAttribute::Priority(p) => key.priority = *p,
            RuleAttribute::Source(addr) => key.from = Some(prefix(&object, *addr, header.src_len)?),
            RuleAttribute::Destination(addr) => {
                key.to = Some(prefix(&object, *addr, header.dst_len)?)
            }
            RuleAttribute::Iifname(name) => key.iif = Some(name.clone()),
            RuleAttribute::Oifname(name) => key.oif = Some(name.clone()),
            RuleAttribute::FwMark(mark) => key.fwmark = Some(*mark),
            RuleAttribute::FwMask(mask) => key.fwmask = Some(*mask),
            RuleAttribute::Table(table) => key.table = *table,
            RuleAttribute::Protocol(p) => protocol = u8::from(*p),
            _ => {}
        }
    }
    Ok(Some(Rule { key, protocol }))
}

/// A neighbour entry; None unless it is a permanent IPv4/IPv6 entry.
pub(super) fn neighbour_from_message(
    message: &NeighbourMessage,
    names: &HashMap<u32, String>,
) -> Result<Option<Neighbour>> {
    let header = &message.header;
    if u16::from(header.state) & NUD_PERMANENT == 0 {
        return Ok(None);
    }
    let mut addr = None;
    let mut lladdr = None;
    let mut protocol = 0;
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                addr = Some(IpAddr::V4(*a))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                addr = Some(IpAddr::V6(*a))
            }
            NeighbourAttribute::LinkLayerAddress(bytes) => lladdr = mac_of(bytes),
            NeighbourAttribute::Protocol(p) => protocol = u8::from(*p),
            _ => {}
        }
    }
    let Some(addr) = addr else {
        return Ok(None);
    };
    let dev = dev_name(names, header.ifindex, &format!("neighbour {addr}"))?;
    Ok(Some(Neighbour {
        key: NeighbourKey { dev, addr },
        lladdr,
        protocol,
    }))
}

#[cfg(test)]
mod tests;
