//! The facts compile reads from a snapshot: the overlay interface, the host veth peer (the
//! overlay interface's host peer), the chained interface's MAC and addresses, the node's
//! addresses (BEHAVIOUR 2.3); and the MAC router derives for the chained interface.

use super::*;

/// Host links whose addresses are not the node's own (container and overlay plumbing).
pub(super) const FOREIGN_LINK_PREFIXES: [&str; 13] = [
    "docker",
    "cbr",
    "dummy",
    "virbr",
    "lxcbr",
    "veth",
    "cali",
    "flannel",
    "kube-ipvs",
    "cni",
    "vx-submariner",
    "cilium",
    "lxc",
];

/// What compile needs to know about the world, derived from ActualState.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub overlay_exists: bool,
    pub overlay_mac: Option<MacAddr>,
    /// The host veth peer: the overlay interface's veth peer in the host netns, with its
    /// MAC.
    pub host_peer: Option<String>,
    pub host_peer_mac: Option<MacAddr>,
    pub chained_exists: bool,
    pub chained_mac: Option<MacAddr>,
    /// The node's addresses that the pod must reach through the overlay interface.
    pub host_addresses: BTreeSet<IpAddr>,
}

impl Facts {
    pub fn derive(
        config: &Config,
        ifname: &str,
        chained_addrs: &[IpNet],
        actual: &ActualState,
    ) -> Facts {
        let overlay = config.overlay_interface.as_str();
        let pod = actual.pod.as_ref();
        let host_peer = actual.host_peer(overlay).map(str::to_string);
        Facts {
            overlay_exists: pod.is_some_and(|p| p.links.contains_key(overlay)),
            overlay_mac: pod.and_then(|p| p.macs.get(overlay).copied()),
            host_peer_mac: host_peer
                .as_ref()
                .and_then(|h| actual.host.macs.get(h).copied()),
            host_peer,
            chained_exists: pod.is_some_and(|p| p.links.contains_key(ifname)),
            chained_mac: pod.and_then(|p| p.macs.get(ifname).copied()),
            host_addresses: host_addresses(actual, chained_addrs),
        }
    }
}

pub(crate) fn is_link_local(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

pub(super) fn is_node_address(addr: &IpAddr) -> bool {
    !(addr.is_loopback() || addr.is_multicast() || addr.is_unspecified() || is_link_local(addr))
}

pub(crate) fn is_node_link(name: &str) -> bool {
    name != "lo" && !FOREIGN_LINK_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The node's own addresses (BEHAVIOUR 2.3) of the families the chained interface uses. A
/// preferred source that sits on a plumbing link is not one: once router's host route to
/// the chained interface exists, the kernel picks the host veth's own address toward the
/// chained interface.
pub(super) fn host_addresses(actual: &ActualState, chained_addrs: &[IpNet]) -> BTreeSet<IpAddr> {
    let families = families_of(chained_addrs);
    let on_plumbing: BTreeSet<IpAddr> = actual
        .host
        .links
        .iter()
        .filter(|(name, _)| !is_node_link(name))
        .flat_map(|(_, link)| link.addresses.iter().map(|a| a.addr()))
        .collect();
    let own = actual
        .host
        .links
        .iter()
        .filter(|(name, _)| is_node_link(name))
        .flat_map(|(_, link)| link.addresses.iter().map(|a| a.addr()));
    let preferred = chained_addrs
        .iter()
        .filter_map(|c| actual.host_preferred_src.get(&c.addr()).copied())
        .filter(|a| !on_plumbing.contains(a));
    own.chain(preferred)
        .filter(|a| is_node_address(a) && families.contains(&Family::of_addr(a)))
        .collect()
}

/// The addresses of one family (collected: callers mutate the builder while iterating).
pub(super) fn of_family(addrs: impl Iterator<Item = IpAddr>, family: Family) -> Vec<IpAddr> {
    addrs.filter(|a| Family::of_addr(a) == family).collect()
}

pub(super) fn families_of(addrs: &[IpNet]) -> BTreeSet<Family> {
    addrs.iter().map(Family::of_net).collect()
}

/// The chained interface's new MAC: the prefix, then the first IPv4 address's 4 bytes, else
/// the last 4 bytes of the first IPv6 address. Leading zero bytes are kept.
pub fn derive_mac(prefix: [u8; 2], chained_addrs: &[IpNet]) -> Option<MacAddr> {
    let tail: [u8; 4] = match mac_source(chained_addrs)? {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    Some(MacAddr([
        prefix[0], prefix[1], tail[0], tail[1], tail[2], tail[3],
    ]))
}

/// The address the chained interface's MAC is derived from: the first IPv4 address, else
/// the first IPv6 one.
pub fn mac_source(chained_addrs: &[IpNet]) -> Option<IpAddr> {
    let first = |family| chained_addrs.iter().find(|a| Family::of_net(a) == family);
    first(Family::Ipv4)
        .or_else(|| first(Family::Ipv6))
        .map(IpNet::addr)
}

/// Interface name order of BEHAVIOUR 2.2: the name without its trailing number, then the
/// number, so eth0 < net1 < net2 < net10.
pub fn name_order(name: &str) -> (&str, Option<u128>) {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    (stem, name[stem.len()..].parse().ok())
}
