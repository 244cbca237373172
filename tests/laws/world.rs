//! The worlds the reconciler's laws run on: the knobs proptest generates, the strategies,
//! and building a pod, its host and its attachments from them (tests/reconciler_laws.rs).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use proptest::sample::subsequence;
use router::compile::{compile, CompileInput, Compiled};
use router::config::{parse_netconf, AllowedDirs, Config, PrevView};
use router::model::{
    ActualState, Family, MacAddr, Mode, Neighbour, NeighbourKey, NetnsState, Op, Record, Rule,
    SysctlKey, SysctlName, MAIN_TABLE, PROTOCOL_BOOT, PROTOCOL_KERNEL, ROUTER_PROTOCOL,
};
use router::plan::{plan, Plan};
use router::testkit::build::*;
use serde_json::{json, Value};

pub(crate) const CASES: u32 = 256;
pub(crate) const CONTAINER_ID: &str = "pod-1";
pub(crate) const SANDBOX: &str = "/var/run/netns/pod-1";
pub(crate) const O: &str = "eth0";
pub(crate) const O_INDEX: u32 = 2;
pub(crate) const O_MAC: &str = "c2:ec:4a:ab:61:96";
pub(crate) const H: &str = "veth2df2119e";
pub(crate) const H_INDEX: u32 = 3;
pub(crate) const H_MAC: &str = "a6:03:c3:8d:c9:f4";
pub(crate) const HOST_RULE_TABLE: u32 = 500;

/// Host links a node may have; the ones with a plumbing prefix (veth, cali, docker...) do
/// not count as the node's addresses. The position gives each its own address range.
pub(crate) const HOST_LINK_NAMES: [&str; 19] = [
    "ens5",
    "eno1",
    "bond0",
    "br-ex",
    "vxlan.calico",
    "tunl0",
    "veth9a8b7c6d",
    "cali12ab34cd56",
    "docker0",
    "cbr0",
    "dummy0",
    "virbr0",
    "lxcbr0",
    "flannel.1",
    "kube-ipvs0",
    "cni0",
    "vx-submariner",
    "cilium_host",
    "lxc9f8e7d",
];

// ---------------------------------------------------------------------------------------
// Knobs: plain data the strategies generate (Debug output is the shrunk counterexample).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fams {
    V4,
    V6,
    Both,
}

impl Fams {
    pub(crate) fn has(self, family: Family) -> bool {
        matches!(
            (self, family),
            (Fams::Both, _) | (Fams::V4, Family::Ipv4) | (Fams::V6, Family::Ipv6)
        )
    }
}

/// A chained interface (net1, net2) as macvlan + static IPAM leave it.
#[derive(Debug, Clone)]
pub(crate) struct ChainedKnobs {
    pub(crate) fams: Fams,
    pub(crate) host_byte: u8,
    pub(crate) mac: [u8; 6],
    pub(crate) default_v4: Option<u32>,
    pub(crate) default_v6: Option<u32>,
    pub(crate) rp_filter: u8,
    pub(crate) disable_ipv6: u8,
    pub(crate) preferred_src: bool,
    pub(crate) ips_without_index: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ConfigKnobs {
    pub(crate) migrate_route: i64,
    pub(crate) sriov: bool,
    pub(crate) mac_prefix: Option<[u8; 2]>,
    pub(crate) only_op_mac: bool,
    pub(crate) rp_filter: Option<(bool, u8)>,
    pub(crate) route_table: Option<u32>,
    pub(crate) rule_priority: Option<u32>,
    /// CIDR and list: 0 overlay, 1 service, 2 additional.
    pub(crate) hijack: Vec<(IpNet, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerKind {
    /// O is a veth whose host peer points back at it.
    Veth,
    /// O's IFLA_LINK names a host ifindex whose link points at another pod.
    NotBack,
    /// O is not a veth.
    None,
}

#[derive(Debug, Clone)]
pub(crate) struct ExtraRoute {
    pub(crate) via_chained: bool,
    pub(crate) v6: bool,
    pub(crate) index: u8,
    pub(crate) protocol: u8,
    pub(crate) gateway: bool,
    pub(crate) metric: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum HostAddr {
    V4(u8),
    V6(u8),
    V4LinkLocal(u8),
    V6LinkLocal(u8),
}

#[derive(Debug, Clone)]
pub(crate) struct WorldKnobs {
    pub(crate) overlay_octet: u8,
    pub(crate) eth0_default_v4: Option<u32>,
    pub(crate) eth0_default_v6: Option<u32>,
    pub(crate) extra_routes: Vec<ExtraRoute>,
    pub(crate) host_links: Vec<(usize, Vec<HostAddr>)>,
    pub(crate) uplinks_look_like_plumbing: bool,
    pub(crate) pod_rp_filter: [u8; 3],
    pub(crate) pod_disable_ipv6: [u8; 3],
    pub(crate) host_rp_filter: [u8; 3],
    pub(crate) peer: PeerKind,
    pub(crate) other_pods: u8,
}

#[derive(Debug, Clone)]
pub(crate) struct Knobs {
    pub(crate) world: WorldKnobs,
    pub(crate) net1: ChainedKnobs,
    pub(crate) config: ConfigKnobs,
    /// net2 and its config, attached after net1.
    pub(crate) second: Option<(ChainedKnobs, ConfigKnobs)>,
}

// ---------------------------------------------------------------------------------------
// Strategies.

pub(crate) fn fams() -> impl Strategy<Value = Fams> {
    prop_oneof![1 => Just(Fams::V4), 1 => Just(Fams::V6), 2 => Just(Fams::Both)]
}

pub(crate) fn metric() -> impl Strategy<Value = u32> {
    prop_oneof![4 => Just(0u32), 1 => Just(100u32), 2 => Just(1024u32)]
}

prop_compose! {
    pub(crate) fn chained_knobs()(
        fams in fams(),
        host_byte in 2u8..200,
        mac in any::<[u8; 6]>(),
        default_v4 in proptest::option::weighted(0.85, metric()),
        default_v6 in proptest::option::weighted(0.85, metric()),
        rp_filter in 0u8..=2,
        disable_ipv6 in 0u8..=1,
        preferred_src in any::<bool>(),
        ips_without_index in proptest::bool::weighted(0.2),
    ) -> ChainedKnobs {
        let mut mac = mac;
        mac[0] &= 0xfe;
        ChainedKnobs {
            fams, host_byte, mac, default_v4, default_v6, rp_filter, disable_ipv6,
            preferred_src, ips_without_index,
        }
    }
}

pub(crate) fn hijack_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 8u8..=30).prop_map(|(a, len)| {
            IpNet::V4(Ipv4Net::new(a.into(), len).expect("v4 prefix").trunc())
        }),
        (any::<u128>(), 16u8..=120).prop_map(|(a, len)| {
            IpNet::V6(Ipv6Net::new(a.into(), len).expect("v6 prefix").trunc())
        }),
    ]
}

prop_compose! {
    pub(crate) fn config_knobs(tables: std::ops::Range<u32>)(
        migrate_route in prop_oneof![2 => Just(-1i64), 1 => Just(0i64), 1 => Just(1i64)],
        sriov in proptest::bool::weighted(0.2),
        mac_prefix in proptest::option::of(any::<[u8; 2]>()),
        only_op_mac in proptest::bool::weighted(0.1),
        rp_filter in proptest::option::of((any::<bool>(), 0u8..=2)),
        route_table in proptest::option::of(tables),
        rule_priority in proptest::option::of(1u32..=32765),
        hijack in proptest::collection::vec((hijack_net(), 0usize..3), 1..6),
    ) -> ConfigKnobs {
        let mac_prefix = mac_prefix.map(|[a, b]| [a & 0xfe, b]);
        ConfigKnobs {
            migrate_route, sriov, mac_prefix, only_op_mac, rp_filter, route_table,
            rule_priority, hijack,
        }
    }
}

prop_compose! {
    pub(crate) fn extra_route()(
        via_chained in any::<bool>(),
        v6 in any::<bool>(),
        index in any::<u8>(),
        protocol in prop_oneof![Just(PROTOCOL_BOOT), Just(4u8), Just(16u8)],
        gateway in any::<bool>(),
        metric in metric(),
    ) -> ExtraRoute {
        ExtraRoute { via_chained, v6, index, protocol, gateway, metric }
    }
}

pub(crate) fn host_addr() -> impl Strategy<Value = HostAddr> {
    prop_oneof![
        3 => any::<u8>().prop_map(HostAddr::V4),
        3 => any::<u8>().prop_map(HostAddr::V6),
        1 => any::<u8>().prop_map(HostAddr::V4LinkLocal),
        1 => any::<u8>().prop_map(HostAddr::V6LinkLocal),
    ]
}

pub(crate) fn host_links() -> impl Strategy<Value = Vec<(usize, Vec<HostAddr>)>> {
    subsequence((0..HOST_LINK_NAMES.len()).collect::<Vec<_>>(), 0..=5).prop_flat_map(|picked| {
        picked
            .into_iter()
            .map(|i| (Just(i), proptest::collection::vec(host_addr(), 0..3)))
            .collect::<Vec<_>>()
    })
}

prop_compose! {
    pub(crate) fn world_knobs()(
        overlay_octet in 1u8..=200,
        eth0_default_v4 in proptest::option::weighted(0.85, metric()),
        eth0_default_v6 in proptest::option::weighted(0.85, metric()),
        extra_routes in proptest::collection::vec(extra_route(), 0..4),
        host_links in host_links(),
        uplinks_look_like_plumbing in proptest::bool::weighted(0.2),
        sysctls in (any::<[u8; 3]>(), any::<[u8; 3]>(), any::<[u8; 3]>()),
        peer in prop_oneof![6 => Just(PeerKind::Veth), 1 => Just(PeerKind::NotBack), 1 => Just(PeerKind::None)],
        other_pods in 0u8..3,
    ) -> WorldKnobs {
        let (rp, dis6, host_rp) = sysctls;
        WorldKnobs {
            overlay_octet, eth0_default_v4, eth0_default_v6, extra_routes, host_links,
            uplinks_look_like_plumbing,
            pod_rp_filter: rp.map(|v| v % 3),
            pod_disable_ipv6: dis6.map(|v| v % 2),
            host_rp_filter: host_rp.map(|v| v % 3),
            peer, other_pods,
        }
    }
}

/// net2 and its config: sometimes (`always` false), or always.
pub(crate) fn second_attachment(
    always: bool,
) -> BoxedStrategy<Option<(ChainedKnobs, ConfigKnobs)>> {
    let second = (chained_knobs(), config_knobs(2000..3000));
    if always {
        second.prop_map(Some).boxed()
    } else {
        proptest::option::weighted(0.35, second).boxed()
    }
}

prop_compose! {
    pub(crate) fn knobs(always_second: bool)(
        world in world_knobs(),
        net1 in chained_knobs(),
        config in config_knobs(1000..2000),
        second in second_attachment(always_second),
    ) -> Knobs {
        Knobs { world, net1, config, second }
    }
}

// ---------------------------------------------------------------------------------------
// Building worlds.

pub(crate) fn kernel_rules(ns: &mut NetnsState) {
    for (family, priority, table) in [
        (Family::Ipv4, 0, 255),
        (Family::Ipv4, 32766, MAIN_TABLE),
        (Family::Ipv4, 32767, 253),
        (Family::Ipv6, 0, 255),
        (Family::Ipv6, 32766, MAIN_TABLE),
    ] {
        let mut rule = Rule::owned_lookup(family, priority, None, None, table);
        rule.protocol = PROTOCOL_KERNEL;
        ns.insert_rule(rule);
    }
}

pub(crate) fn set_sysctl(ns: &mut NetnsState, iface: &str, name: SysctlName, value: u8) {
    ns.sysctls
        .insert(SysctlKey::new(iface, name), i64::from(value));
}

/// The subnet number of a chained interface: net1 in 192.168.50.0/24 and fd50::/64,
/// net2 in .60 and fd60::.
pub(crate) fn subnet_of(ifname: &str) -> u8 {
    match ifname {
        "net1" => 50,
        _ => 60,
    }
}

pub(crate) fn chained_index(ifname: &str) -> u32 {
    match ifname {
        "net1" => 3,
        _ => 4,
    }
}

/// C's addresses as CIDR strings, IPv4 first.
pub(crate) fn chained_addresses(ifname: &str, c: &ChainedKnobs) -> Vec<String> {
    let s = subnet_of(ifname);
    let mut out = Vec::new();
    if c.fams.has(Family::Ipv4) {
        out.push(format!("192.168.{s}.{}/24", c.host_byte));
    }
    if c.fams.has(Family::Ipv6) {
        out.push(format!("fd{s}::{:x}/64", c.host_byte));
    }
    out
}

pub(crate) fn overlay_addr(w: &WorldKnobs, family: Family) -> String {
    match family {
        Family::Ipv4 => format!("10.244.{}.2", w.overlay_octet),
        Family::Ipv6 => format!("fd00:10:244:{:x}::2", w.overlay_octet),
    }
}

pub(crate) fn overlay_gateway(w: &WorldKnobs, family: Family) -> String {
    match family {
        Family::Ipv4 => format!("10.244.{}.1", w.overlay_octet),
        Family::Ipv6 => format!("fd00:10:244:{:x}::1", w.overlay_octet),
    }
}

pub(crate) fn chained_gateway(ifname: &str, family: Family) -> String {
    let s = subnet_of(ifname);
    match family {
        Family::Ipv4 => format!("192.168.{s}.254"),
        Family::Ipv6 => format!("fd{s}::fe"),
    }
}

pub(crate) fn uplink_name(w: &WorldKnobs, ifname: &str) -> String {
    let prefix = if w.uplinks_look_like_plumbing {
        "cbr-"
    } else {
        ""
    };
    format!("{prefix}up{}", subnet_of(ifname) / 10 - 5)
}

pub(crate) fn host_link_addr(position: usize, a: HostAddr) -> String {
    match a {
        HostAddr::V4(b) => format!("172.{}.0.{}/16", 16 + position, b.max(1)),
        HostAddr::V6(b) => format!("fd72:{position:x}::{:x}/64", u16::from(b) + 1),
        HostAddr::V4LinkLocal(b) => format!("169.254.{position}.{}/16", b.max(1)),
        HostAddr::V6LinkLocal(b) => format!("fe80::{position:x}:{b:x}/64"),
    }
}

/// The pod with eth0 (and lo), the host with its uplinks, H and other links: everything but
/// the chained interfaces.
pub(crate) fn base_world(w: &WorldKnobs) -> ActualState {
    let mut pod = NetnsState::default();
    pod.links.insert(
        "lo".into(),
        link(1, None, None, &["127.0.0.1/8".into(), "::1/128".into()]),
    );
    let o_peer = match w.peer {
        PeerKind::Veth | PeerKind::NotBack => Some((H_INDEX, 0)),
        PeerKind::None => None,
    };
    let o_kind = (w.peer != PeerKind::None).then_some("veth");
    let o_addrs = [
        format!("{}/24", overlay_addr(w, Family::Ipv4)),
        format!("{}/64", overlay_addr(w, Family::Ipv6)),
        "fe80::c0ec:4aff:feab:6196/64".to_string(),
    ];
    pod.links
        .insert(O.into(), link(O_INDEX, o_kind, o_peer, &o_addrs));
    pod.macs.insert(O.into(), mac(O_MAC));
    let (gw4, gw6) = (
        overlay_gateway(w, Family::Ipv4),
        overlay_gateway(w, Family::Ipv6),
    );
    let (src4, src6) = (overlay_addr(w, Family::Ipv4), overlay_addr(w, Family::Ipv6));
    if let Some(m) = w.eth0_default_v4 {
        route_to("0.0.0.0/0", O, PROTOCOL_BOOT)
            .via(&gw4)
            .metric(m)
            .insert_into(&mut pod);
    }
    if let Some(m) = w.eth0_default_v6 {
        route_to("::/0", O, PROTOCOL_BOOT)
            .via(&gw6)
            .metric(m)
            .insert_into(&mut pod);
    }
    route_to(
        &format!("10.244.{}.0/24", w.overlay_octet),
        O,
        PROTOCOL_BOOT,
    )
    .via(&gw4)
    .src(&src4)
    .insert_into(&mut pod);
    route_to(&format!("{gw4}/32"), O, PROTOCOL_BOOT)
        .link_scope()
        .src(&src4)
        .insert_into(&mut pod);
    route_to(&format!("{gw6}/128"), O, PROTOCOL_BOOT)
        .metric(1024)
        .src(&src6)
        .insert_into(&mut pod);
    route_to(
        &format!("fd00:10:244:{:x}::/64", w.overlay_octet),
        O,
        PROTOCOL_BOOT,
    )
    .via(&gw6)
    .metric(1024)
    .src(&src6)
    .insert_into(&mut pod);
    route_to("fe80::/64", O, PROTOCOL_KERNEL)
        .metric(256)
        .insert_into(&mut pod);
    kernel_rules(&mut pod);
    for (i, iface) in ["all", "default", O].into_iter().enumerate() {
        set_sysctl(&mut pod, iface, SysctlName::RpFilter, w.pod_rp_filter[i]);
        set_sysctl(
            &mut pod,
            iface,
            SysctlName::DisableIpv6,
            w.pod_disable_ipv6[i],
        );
    }

    let mut host = NetnsState::default();
    host.links.insert(
        "lo".into(),
        link(1, None, None, &["127.0.0.1/8".into(), "::1/128".into()]),
    );
    for (index, ifname, mac_text) in [
        (20, "net1", "c6:80:e9:e5:7c:8a"),
        (21, "net2", "c6:80:e9:e5:7c:8b"),
    ] {
        let s = subnet_of(ifname);
        let name = uplink_name(w, ifname);
        let addrs = [
            format!("192.168.{s}.1/24"),
            format!("fd{s}::1/64"),
            format!("fe80::c480:e9ff:fee5:7c{s:x}/64"),
        ];
        host.links.insert(
            name.clone(),
            link(index, Some("veth"), Some((99, 1)), &addrs),
        );
        host.macs.insert(name, mac(mac_text));
    }
    let h_peer = match w.peer {
        PeerKind::Veth => Some((O_INDEX, 2)),
        // Another pod's veth that happens to have the index O names.
        PeerKind::NotBack => Some((O_INDEX + 5, 7)),
        PeerKind::None => None,
    };
    if h_peer.is_some() {
        let addrs = [
            format!("{gw4}/32"),
            format!("{gw6}/64"),
            "fe80::a403:c3ff:fe8d:c9f4/64".to_string(),
        ];
        host.links
            .insert(H.into(), link(H_INDEX, Some("veth"), h_peer, &addrs));
        host.macs.insert(H.into(), mac(H_MAC));
        set_sysctl(&mut host, H, SysctlName::RpFilter, w.host_rp_filter[2]);
    }
    for (position, addrs) in &w.host_links {
        let name = HOST_LINK_NAMES[*position];
        let addrs: Vec<String> = addrs
            .iter()
            .map(|a| host_link_addr(*position, *a))
            .collect();
        let index = 40 + u32::try_from(*position).expect("small");
        host.links
            .insert(name.into(), link(index, None, None, &addrs));
    }
    other_pods(&mut host, w.other_pods);
    kernel_rules(&mut host);
    set_sysctl(&mut host, "all", SysctlName::RpFilter, w.host_rp_filter[0]);
    set_sysctl(
        &mut host,
        "default",
        SysctlName::RpFilter,
        w.host_rp_filter[1],
    );
    ActualState {
        pod: Some(pod),
        host,
        ..ActualState::default()
    }
}

/// Other pods attached through router on the same node: their veths, their owned routes
/// and neighbours in the host table, and the shared host rules.
pub(crate) fn other_pods(host: &mut NetnsState, count: u8) {
    for i in 0..count {
        let dev = format!("vethother{i}");
        let index = 30 + u32::from(i);
        host.links.insert(
            dev.clone(),
            link(index, Some("veth"), Some((2, 3 + i32::from(i))), &[]),
        );
        for addr in [
            format!("192.168.50.{}", 200 + i),
            format!("fd50::{:x}", 200 + u32::from(i)),
        ] {
            let family = Family::of_addr(&ip(&addr));
            route_to(
                &format!("{addr}/{}", family.host_prefix_len()),
                &dev,
                ROUTER_PROTOCOL,
            )
            .table(HOST_RULE_TABLE)
            .link_scope()
            .insert_into(host);
            host.insert_neighbour(Neighbour {
                key: NeighbourKey {
                    dev: dev.clone(),
                    addr: ip(&addr),
                },
                lladdr: Some(MacAddr([0x02, 0, 0, 0, 0, i])),
                protocol: ROUTER_PROTOCOL,
            });
            host.insert_rule(Rule::owned_lookup(
                family,
                1000,
                None,
                None,
                HOST_RULE_TABLE,
            ));
        }
    }
}

/// Adds a chained interface as macvlan + static IPAM leave it: the link, its MAC, its
/// subnet and default routes (IPv4 appended next to eth0's, IPv6 as one more hop), its
/// sysctls, and the host's preferred source toward its addresses.
pub(crate) fn add_chained(actual: &mut ActualState, ifname: &str, c: &ChainedKnobs) {
    let s = subnet_of(ifname);
    let addrs = chained_addresses(ifname, c);
    let pod = actual.pod.as_mut().expect("pod netns");
    let mut link_addrs = addrs.clone();
    link_addrs.push(format!("fe80::d85e:d2ff:fed6:b7{s:x}/64"));
    pod.links.insert(
        ifname.into(),
        link(
            chained_index(ifname),
            Some("macvlan"),
            Some((20, 0)),
            &link_addrs,
        ),
    );
    pod.macs.insert(ifname.into(), MacAddr(c.mac));
    if c.fams.has(Family::Ipv4) {
        route_to(&format!("192.168.{s}.0/24"), ifname, PROTOCOL_KERNEL)
            .link_scope()
            .src(&format!("192.168.{s}.{}", c.host_byte))
            .insert_into(pod);
        if let Some(m) = c.default_v4 {
            route_to("0.0.0.0/0", ifname, PROTOCOL_BOOT)
                .via(&chained_gateway(ifname, Family::Ipv4))
                .metric(m)
                .insert_into(pod);
        }
    }
    if c.fams.has(Family::Ipv6) {
        route_to(&format!("fd{s}::/64"), ifname, PROTOCOL_KERNEL)
            .metric(256)
            .insert_into(pod);
        if let Some(m) = c.default_v6 {
            route_to("::/0", ifname, PROTOCOL_BOOT)
                .via(&chained_gateway(ifname, Family::Ipv6))
                .metric(m)
                .insert_into(pod);
        }
    }
    route_to("fe80::/64", ifname, PROTOCOL_KERNEL)
        .metric(256)
        .insert_into(pod);
    set_sysctl(pod, ifname, SysctlName::RpFilter, c.rp_filter);
    set_sysctl(pod, ifname, SysctlName::DisableIpv6, c.disable_ipv6);
    // As Debian's macvlan leaves them: arp_notify on, ndisc_notify off.
    set_sysctl(pod, ifname, SysctlName::ArpNotify, 1);
    set_sysctl(pod, ifname, SysctlName::NdiscNotify, 0);
    if c.preferred_src {
        for addr in &addrs {
            let addr = net(addr).addr();
            let src = match addr {
                IpAddr::V4(_) => format!("192.168.{s}.1"),
                IpAddr::V6(_) => format!("fd{s}::1"),
            };
            actual.host_preferred_src.insert(addr, ip(&src));
        }
    }
}

/// Unowned routes in main through eth0 or the chained interface, added by someone else.
pub(crate) fn add_extra_routes(
    actual: &mut ActualState,
    w: &WorldKnobs,
    ifname: &str,
    c: &ChainedKnobs,
) {
    let pod = actual.pod.as_mut().expect("pod netns");
    for e in &w.extra_routes {
        let family = if e.v6 { Family::Ipv6 } else { Family::Ipv4 };
        let via_chained = e.via_chained && c.fams.has(family);
        let (dev, gw) = if via_chained {
            (ifname, chained_gateway(ifname, family))
        } else {
            (O, overlay_gateway(w, family))
        };
        let dst = match family {
            Family::Ipv4 => format!("10.50.{}.0/24", e.index),
            Family::Ipv6 => format!("fd99:{:x}::/64", e.index),
        };
        let mut r = route_to(&dst, dev, e.protocol).metric(e.metric);
        if e.gateway {
            r = r.via(&gw);
        }
        r.insert_into(pod);
    }
}

pub(crate) fn config_json(k: &ConfigKnobs) -> Value {
    let mut lists: [Vec<String>; 3] = Default::default();
    let mut seen = BTreeSet::new();
    for (cidr, list) in &k.hijack {
        if seen.insert(*cidr) {
            lists[*list].push(cidr.to_string());
        }
    }
    if lists[0].is_empty() && lists[1].is_empty() {
        let moved = lists[2].pop().expect("at least one hijack CIDR");
        lists[1].push(moved);
    }
    let mut config = json!({
        "cniVersion": "1.0.0",
        "name": "macvlan-overlay",
        "type": "router",
        "overlay_hijack_subnet": lists[0],
        "service_hijack_subnet": lists[1],
        "additional_hijack_subnet": lists[2],
        "migrate_route": k.migrate_route,
        "sriov": k.sriov,
        "only_op_mac": k.only_op_mac && k.mac_prefix.is_some(),
        "log_options": { "log_level": "debug" },
    });
    let obj = config.as_object_mut().expect("object");
    if let Some([a, b]) = k.mac_prefix {
        obj.insert("mac_prefix".into(), json!(format!("{a:02x}:{b:02x}")));
    }
    if let Some((set_host, value)) = k.rp_filter {
        obj.insert(
            "rp_filter".into(),
            json!({ "set_host": set_host, "value": value }),
        );
    }
    if let Some(t) = k.route_table {
        obj.insert("route_table".into(), json!(t));
    }
    if let Some(p) = k.rule_priority {
        obj.insert("rule_priority".into(), json!(p));
    }
    config
}

pub(crate) fn prev_result_json(ifname: &str, c: &ChainedKnobs) -> Value {
    let ips: Vec<Value> = chained_addresses(ifname, c)
        .iter()
        .map(|a| {
            let family = Family::of_net(&net(a));
            let mut entry = json!({
                "address": a,
                "gateway": chained_gateway(ifname, family),
            });
            if !c.ips_without_index {
                entry["interface"] = json!(0);
            }
            entry
        })
        .collect();
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            { "name": ifname, "mac": MacAddr(c.mac).to_string(), "sandbox": SANDBOX }
        ],
        "ips": ips,
    })
}

/// One attachment of router: its config, C, prevResult and the records of the pod's other
/// attachments.
#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub(crate) ifname: String,
    pub(crate) config: Config,
    pub(crate) prev: PrevView,
    pub(crate) peers: Vec<Record>,
}

pub(crate) fn attachment(
    ifname: &str,
    c: &ChainedKnobs,
    k: &ConfigKnobs,
    peers: Vec<Record>,
) -> Attachment {
    let mut conf = config_json(k);
    conf["prevResult"] = prev_result_json(ifname, c);
    let netconf = parse_netconf(&conf, &AllowedDirs::default()).expect("generated config is valid");
    let prev = PrevView::parse(netconf.prev_result.as_ref().expect("prevResult"))
        .expect("generated prevResult is valid");
    Attachment {
        ifname: ifname.into(),
        config: netconf.config,
        prev,
        peers,
    }
}

impl Attachment {
    pub(crate) fn compile(
        &self,
        actual: &ActualState,
        record: Option<&Record>,
        mode: Mode,
    ) -> Compiled {
        compile(&CompileInput {
            config: &self.config,
            container_id: CONTAINER_ID,
            ifname: &self.ifname,
            prev: Some(&self.prev),
            actual,
            record,
            peers: &self.peers,
            mode,
        })
        .expect("compile")
    }
}

/// A world and the attachment whose ADD and DEL the laws are about.
pub(crate) struct Scenario {
    pub(crate) before: ActualState,
    pub(crate) att: Attachment,
}

pub(crate) fn applied(actual: &ActualState, ops: &[Op]) -> ActualState {
    let mut after = actual.clone();
    after.apply(ops);
    after
}

pub(crate) fn net1_attachment(k: &Knobs) -> Attachment {
    attachment("net1", &k.net1, &k.config, Vec::new())
}

pub(crate) fn build(k: &Knobs) -> Scenario {
    let mut actual = base_world(&k.world);
    add_chained(&mut actual, "net1", &k.net1);
    add_extra_routes(&mut actual, &k.world, "net1", &k.net1);
    let net1 = net1_attachment(k);
    let Some((c2, config2)) = &k.second else {
        return Scenario {
            before: actual,
            att: net1,
        };
    };
    let first = net1.compile(&actual, None, Mode::Add);
    let first_plan = plan(&first.desired, &actual, Mode::Add);
    assert!(
        first_plan.blocked.is_empty(),
        "net1's ADD is blocked: {}",
        show(&first_plan)
    );
    let mut actual = applied(&actual, &first_plan.ops);
    add_chained(&mut actual, "net2", c2);
    Scenario {
        before: actual,
        att: attachment("net2", c2, config2, vec![first.record()]),
    }
}

pub(crate) fn show(plan: &Plan) -> String {
    let mut lines: Vec<String> = plan
        .ops
        .iter()
        .map(|op| format!("{} {op}", op.netns))
        .collect();
    lines.extend(plan.blocked.iter().map(|b| format!("blocked: {b:?}")));
    lines.join("\n")
}
