//! The reconciler's laws (DESIGN "Properties that must hold"), checked with proptest on
//! random but realistic pods and the in-memory model kernel (`ActualState::apply`).
//!
//! Worlds start from the shape the real chain produces (fixtures/add-seed-dual-stack):
//! eth0 a veth from ptp with its host peer, net1 a macvlan; IPv4 main with one default per
//! interface (same destination, nexthop tells them apart); the IPv6 default as one hop
//! entry per interface; the host netns with its uplinks and other links. Knobs vary the
//! families, defaults and metrics, unowned extra routes, host links (plumbing ones too),
//! sysctls, C's MAC, O's host peer, other pods on the node, the config, and a second
//! attachment (net2) on top of an attached net1.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use proptest::sample::subsequence;
use router::compile::{compile, CompileInput, Compiled};
use router::config::{
    parse_netconf, plugin_from_conflist_or_plugin, AllowedDirs, Config, PrevView,
};
use router::model::{
    ActualState, DesiredNetns, DesiredState, Family, Link, LinkPeer, MacAddr, Mode, Neighbour,
    NeighbourKey, NetnsState, Op, Record, Route, RouteKey, RouteKind, RouteScope, Rule, Side,
    SysctlKey, SysctlName, MAIN_TABLE, PROTOCOL_BOOT, PROTOCOL_KERNEL, ROUTER_PROTOCOL,
};
use router::plan::{plan, Cause, Plan};
use router::render::{op_command, state_diff};
use serde_json::{json, Value};

const CASES: u32 = 256;
const CONTAINER_ID: &str = "pod-1";
const SANDBOX: &str = "/var/run/netns/pod-1";
const O: &str = "eth0";
const O_INDEX: u32 = 2;
const O_MAC: &str = "c2:ec:4a:ab:61:96";
const H: &str = "veth2df2119e";
const H_INDEX: u32 = 3;
const H_MAC: &str = "a6:03:c3:8d:c9:f4";
const HOST_RULE_TABLE: u32 = 500;

/// Host links a node may have; the ones with a plumbing prefix (veth, cali, docker...) do
/// not count as the node's addresses. The position gives each its own address range.
const HOST_LINK_NAMES: [&str; 19] = [
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
enum Fams {
    V4,
    V6,
    Both,
}

impl Fams {
    fn has(self, family: Family) -> bool {
        matches!(
            (self, family),
            (Fams::Both, _) | (Fams::V4, Family::Ipv4) | (Fams::V6, Family::Ipv6)
        )
    }
}

/// A chained interface (net1, net2) as macvlan + static IPAM leave it.
#[derive(Debug, Clone)]
struct ChainedKnobs {
    fams: Fams,
    host_byte: u8,
    mac: [u8; 6],
    default_v4: Option<u32>,
    default_v6: Option<u32>,
    rp_filter: u8,
    disable_ipv6: u8,
    preferred_src: bool,
    ips_without_index: bool,
}

#[derive(Debug, Clone)]
struct ConfigKnobs {
    migrate_route: i64,
    sriov: bool,
    mac_prefix: Option<[u8; 2]>,
    only_op_mac: bool,
    rp_filter: Option<(bool, u8)>,
    route_table: Option<u32>,
    rule_priority: Option<u32>,
    /// CIDR and list: 0 overlay, 1 service, 2 additional.
    hijack: Vec<(IpNet, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerKind {
    /// O is a veth whose host peer points back at it.
    Veth,
    /// O's IFLA_LINK names a host ifindex whose link points at another pod.
    NotBack,
    /// O is not a veth.
    None,
}

#[derive(Debug, Clone)]
struct ExtraRoute {
    via_chained: bool,
    v6: bool,
    index: u8,
    protocol: u8,
    gateway: bool,
    metric: u32,
}

#[derive(Debug, Clone, Copy)]
enum HostAddr {
    V4(u8),
    V6(u8),
    V4LinkLocal(u8),
    V6LinkLocal(u8),
}

#[derive(Debug, Clone)]
struct WorldKnobs {
    overlay_octet: u8,
    eth0_default_v4: Option<u32>,
    eth0_default_v6: Option<u32>,
    extra_routes: Vec<ExtraRoute>,
    host_links: Vec<(usize, Vec<HostAddr>)>,
    uplinks_look_like_plumbing: bool,
    pod_rp_filter: [u8; 3],
    pod_disable_ipv6: [u8; 3],
    host_rp_filter: [u8; 3],
    peer: PeerKind,
    other_pods: u8,
}

#[derive(Debug, Clone)]
struct Knobs {
    world: WorldKnobs,
    net1: ChainedKnobs,
    config: ConfigKnobs,
    /// net2 and its config, attached after net1.
    second: Option<(ChainedKnobs, ConfigKnobs)>,
}

// ---------------------------------------------------------------------------------------
// Strategies.

fn fams() -> impl Strategy<Value = Fams> {
    prop_oneof![1 => Just(Fams::V4), 1 => Just(Fams::V6), 2 => Just(Fams::Both)]
}

fn metric() -> impl Strategy<Value = u32> {
    prop_oneof![4 => Just(0u32), 1 => Just(100u32), 2 => Just(1024u32)]
}

prop_compose! {
    fn chained_knobs()(
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

fn hijack_net() -> impl Strategy<Value = IpNet> {
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
    fn config_knobs(tables: std::ops::Range<u32>)(
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
    fn extra_route()(
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

fn host_addr() -> impl Strategy<Value = HostAddr> {
    prop_oneof![
        3 => any::<u8>().prop_map(HostAddr::V4),
        3 => any::<u8>().prop_map(HostAddr::V6),
        1 => any::<u8>().prop_map(HostAddr::V4LinkLocal),
        1 => any::<u8>().prop_map(HostAddr::V6LinkLocal),
    ]
}

fn host_links() -> impl Strategy<Value = Vec<(usize, Vec<HostAddr>)>> {
    subsequence((0..HOST_LINK_NAMES.len()).collect::<Vec<_>>(), 0..=5).prop_flat_map(|picked| {
        picked
            .into_iter()
            .map(|i| (Just(i), proptest::collection::vec(host_addr(), 0..3)))
            .collect::<Vec<_>>()
    })
}

prop_compose! {
    fn world_knobs()(
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
fn second_attachment(always: bool) -> BoxedStrategy<Option<(ChainedKnobs, ConfigKnobs)>> {
    let second = (chained_knobs(), config_knobs(2000..3000));
    if always {
        second.prop_map(Some).boxed()
    } else {
        proptest::option::weighted(0.35, second).boxed()
    }
}

prop_compose! {
    fn knobs(always_second: bool)(
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

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn net(text: &str) -> IpNet {
    text.parse().expect("test prefix")
}

fn mac(text: &str) -> MacAddr {
    text.parse().expect("test MAC")
}

/// A route in main with metric 0, universe scope, no gateway; refine with the methods.
struct RouteBuilder(Route);

fn route(dst: &str, dev: &str, protocol: u8) -> RouteBuilder {
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
    fn via(mut self, gateway: &str) -> Self {
        self.0.key.gateway = Some(ip(gateway));
        self
    }

    fn metric(mut self, metric: u32) -> Self {
        self.0.key.metric = metric;
        self
    }

    fn link_scope(mut self) -> Self {
        self.0.scope = RouteScope::Link;
        self
    }

    fn src(mut self, addr: &str) -> Self {
        self.0.prefsrc = Some(ip(addr));
        self
    }

    fn table(mut self, table: u32) -> Self {
        self.0.key.table = table;
        self
    }

    fn insert_into(self, ns: &mut NetnsState) {
        ns.insert_route(self.0);
    }
}

fn link(index: u32, kind: Option<&str>, peer: Option<(u32, i32)>, addrs: &[String]) -> Link {
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

fn kernel_rules(ns: &mut NetnsState) {
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

fn set_sysctl(ns: &mut NetnsState, iface: &str, name: SysctlName, value: u8) {
    ns.sysctls
        .insert(SysctlKey::new(iface, name), i64::from(value));
}

/// The subnet number of a chained interface: net1 in 192.168.50.0/24 and fd50::/64,
/// net2 in .60 and fd60::.
fn subnet_of(ifname: &str) -> u8 {
    match ifname {
        "net1" => 50,
        _ => 60,
    }
}

fn chained_index(ifname: &str) -> u32 {
    match ifname {
        "net1" => 3,
        _ => 4,
    }
}

/// C's addresses as CIDR strings, IPv4 first.
fn chained_addresses(ifname: &str, c: &ChainedKnobs) -> Vec<String> {
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

fn overlay_addr(w: &WorldKnobs, family: Family) -> String {
    match family {
        Family::Ipv4 => format!("10.244.{}.2", w.overlay_octet),
        Family::Ipv6 => format!("fd00:10:244:{:x}::2", w.overlay_octet),
    }
}

fn overlay_gateway(w: &WorldKnobs, family: Family) -> String {
    match family {
        Family::Ipv4 => format!("10.244.{}.1", w.overlay_octet),
        Family::Ipv6 => format!("fd00:10:244:{:x}::1", w.overlay_octet),
    }
}

fn chained_gateway(ifname: &str, family: Family) -> String {
    let s = subnet_of(ifname);
    match family {
        Family::Ipv4 => format!("192.168.{s}.254"),
        Family::Ipv6 => format!("fd{s}::fe"),
    }
}

fn uplink_name(w: &WorldKnobs, ifname: &str) -> String {
    let prefix = if w.uplinks_look_like_plumbing {
        "cbr-"
    } else {
        ""
    };
    format!("{prefix}up{}", subnet_of(ifname) / 10 - 5)
}

fn host_link_addr(position: usize, a: HostAddr) -> String {
    match a {
        HostAddr::V4(b) => format!("172.{}.0.{}/16", 16 + position, b.max(1)),
        HostAddr::V6(b) => format!("fd72:{position:x}::{:x}/64", u16::from(b) + 1),
        HostAddr::V4LinkLocal(b) => format!("169.254.{position}.{}/16", b.max(1)),
        HostAddr::V6LinkLocal(b) => format!("fe80::{position:x}:{b:x}/64"),
    }
}

/// The pod with eth0 (and lo), the host with its uplinks, H and other links: everything but
/// the chained interfaces.
fn base_world(w: &WorldKnobs) -> ActualState {
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
        route("0.0.0.0/0", O, PROTOCOL_BOOT)
            .via(&gw4)
            .metric(m)
            .insert_into(&mut pod);
    }
    if let Some(m) = w.eth0_default_v6 {
        route("::/0", O, PROTOCOL_BOOT)
            .via(&gw6)
            .metric(m)
            .insert_into(&mut pod);
    }
    route(
        &format!("10.244.{}.0/24", w.overlay_octet),
        O,
        PROTOCOL_BOOT,
    )
    .via(&gw4)
    .src(&src4)
    .insert_into(&mut pod);
    route(&format!("{gw4}/32"), O, PROTOCOL_BOOT)
        .link_scope()
        .src(&src4)
        .insert_into(&mut pod);
    route(&format!("{gw6}/128"), O, PROTOCOL_BOOT)
        .metric(1024)
        .src(&src6)
        .insert_into(&mut pod);
    route(
        &format!("fd00:10:244:{:x}::/64", w.overlay_octet),
        O,
        PROTOCOL_BOOT,
    )
    .via(&gw6)
    .metric(1024)
    .src(&src6)
    .insert_into(&mut pod);
    route("fe80::/64", O, PROTOCOL_KERNEL)
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
fn other_pods(host: &mut NetnsState, count: u8) {
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
            route(
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
fn add_chained(actual: &mut ActualState, ifname: &str, c: &ChainedKnobs) {
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
        route(&format!("192.168.{s}.0/24"), ifname, PROTOCOL_KERNEL)
            .link_scope()
            .src(&format!("192.168.{s}.{}", c.host_byte))
            .insert_into(pod);
        if let Some(m) = c.default_v4 {
            route("0.0.0.0/0", ifname, PROTOCOL_BOOT)
                .via(&chained_gateway(ifname, Family::Ipv4))
                .metric(m)
                .insert_into(pod);
        }
    }
    if c.fams.has(Family::Ipv6) {
        route(&format!("fd{s}::/64"), ifname, PROTOCOL_KERNEL)
            .metric(256)
            .insert_into(pod);
        if let Some(m) = c.default_v6 {
            route("::/0", ifname, PROTOCOL_BOOT)
                .via(&chained_gateway(ifname, Family::Ipv6))
                .metric(m)
                .insert_into(pod);
        }
    }
    route("fe80::/64", ifname, PROTOCOL_KERNEL)
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
fn add_extra_routes(actual: &mut ActualState, w: &WorldKnobs, ifname: &str, c: &ChainedKnobs) {
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
        let mut r = route(&dst, dev, e.protocol).metric(e.metric);
        if e.gateway {
            r = r.via(&gw);
        }
        r.insert_into(pod);
    }
}

fn config_json(k: &ConfigKnobs) -> Value {
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

fn prev_result_json(ifname: &str, c: &ChainedKnobs) -> Value {
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
struct Attachment {
    ifname: String,
    config: Config,
    prev: PrevView,
    peers: Vec<Record>,
}

fn attachment(ifname: &str, c: &ChainedKnobs, k: &ConfigKnobs, peers: Vec<Record>) -> Attachment {
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
    fn compile(&self, actual: &ActualState, record: Option<&Record>, mode: Mode) -> Compiled {
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
struct Scenario {
    before: ActualState,
    att: Attachment,
}

fn applied(actual: &ActualState, ops: &[Op]) -> ActualState {
    let mut after = actual.clone();
    after.apply(ops);
    after
}

fn net1_attachment(k: &Knobs) -> Attachment {
    attachment("net1", &k.net1, &k.config, Vec::new())
}

fn build(k: &Knobs) -> Scenario {
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
        att: attachment("net2", c2, config2, vec![first.record]),
    }
}

/// ADD then DEL of the scenario's attachment, each applied to the model kernel.
struct Cycle {
    add: Compiled,
    add_plan: Plan,
    a1: ActualState,
    del: Compiled,
    del_plan: Plan,
    a2: ActualState,
}

fn cycle(s: &Scenario) -> Cycle {
    let add = s.att.compile(&s.before, None, Mode::Add);
    let add_plan = plan(&add.desired, &s.before, Mode::Add);
    let a1 = applied(&s.before, &add_plan.ops);
    let del = s.att.compile(&a1, Some(&add.record), Mode::Del);
    let del_plan = plan(&del.desired, &a1, Mode::Del);
    let a2 = applied(&a1, &del_plan.ops);
    Cycle {
        add,
        add_plan,
        a1,
        del,
        del_plan,
        a2,
    }
}

fn show(plan: &Plan) -> String {
    let mut lines: Vec<String> = plan
        .ops
        .iter()
        .map(|op| format!("{} {}", op.side(), op_command(op)))
        .collect();
    lines.extend(plan.blocked.iter().map(|b| format!("blocked: {b:?}")));
    lines.join("\n")
}

/// Every op of `plan` is due to `address` having been added (or removed) on the node.
fn prop_assert_caused_by(plan: &Plan, address: IpAddr, added: bool) -> Result<(), TestCaseError> {
    prop_assert!(plan.blocked.is_empty(), "blocked:\n{}", show(plan));
    for op in &plan.ops {
        let cause = plan.cause_of(op);
        let ok = match &cause {
            Some(Cause::NodeAddressAdded { address: a, .. }) => added && *a == address,
            Some(Cause::NodeAddressRemoved { address: a, .. }) => !added && *a == address,
            None => false,
        };
        prop_assert!(
            ok,
            "{} has cause {:?}:\n{}",
            op_command(op),
            cause,
            show(plan)
        );
    }
    Ok(())
}

fn prop_assert_empty(plan: &Plan, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(plan.is_empty(), "{what} is not empty:\n{}", show(plan));
    Ok(())
}

/// The state without C's default hops in the pod's main table and without host sysctls
/// (BEHAVIOUR 4: DEL replaces C's default with P's; host sysctls are not restored).
fn comparable(actual: &ActualState, chained: &str) -> ActualState {
    let mut out = actual.clone();
    if let Some(pod) = out.pod.as_mut() {
        pod.routes.retain(|k, _| {
            !(k.table == MAIN_TABLE && k.is_default() && k.dev.as_deref() == Some(chained))
        });
    }
    out.host.sysctls.clear();
    out
}

fn main_default_families(actual: &ActualState) -> Vec<Family> {
    let pod = actual.pod.as_ref().expect("pod netns");
    Family::all()
        .into_iter()
        .filter(|f| pod.main_defaults(*f).next().is_some())
        .collect()
}

/// Applies ops one at a time; after each, main still has a default for every family that
/// had one before.
fn prop_assert_default_at_every_step(
    before: &ActualState,
    ops: &[Op],
    what: &str,
) -> Result<(), TestCaseError> {
    let families = main_default_families(before);
    let mut state = before.clone();
    for (i, op) in ops.iter().enumerate() {
        state.apply(std::slice::from_ref(op));
        let now = main_default_families(&state);
        for family in &families {
            prop_assert!(
                now.contains(family),
                "{what}: no {family} default in main after op {i} `{}`",
                op_command(op)
            );
        }
    }
    Ok(())
}

/// BEHAVIOUR "owned": no op deletes or changes an object the plugin does not own, except
/// the documented moves (P's default out of main on ADD, back in replacing C's on DEL);
/// everything created carries ROUTER_PROTOCOL but the restored originals; sysctls and MACs
/// only on the interfaces BEHAVIOUR names.
fn prop_assert_touches_only_owned(
    ops: &[Op],
    desired: &DesiredState,
    actual: &ActualState,
    att: &Attachment,
    host_peer: Option<&str>,
) -> Result<(), TestCaseError> {
    for op in ops {
        let side = op.side();
        let d: &DesiredNetns = desired.side(side);
        let ns = actual.side(side).expect("netns of an op exists");
        let cmd = op_command(op);
        match op {
            Op::DelRoute { route, .. } => {
                prop_assert_eq!(ns.routes.get(&route.key), Some(route), "{}", cmd);
                let moved_out = d.absent_routes.contains(&route.key);
                prop_assert!(
                    route.is_owned() || moved_out,
                    "deletes an unowned route: {}",
                    cmd
                );
                prop_assert!(
                    d.scope.holds_route(route) || moved_out,
                    "deletes a route outside the attachment: {}",
                    cmd
                );
            }
            Op::ReplaceRoute { old, new, .. } => {
                let takeover = d.takeover.contains(&new.key);
                for r in old {
                    prop_assert_eq!(ns.routes.get(&r.key), Some(r), "{}", cmd);
                    prop_assert!(
                        r.is_owned() || (takeover && d.absent_routes.contains(&r.key)),
                        "replaces an unowned route: {} (old {:?})",
                        cmd,
                        r
                    );
                }
                prop_assert!(new.is_owned() || takeover, "unowned new route: {}", cmd);
            }
            Op::AddRoute { route, .. } => prop_assert!(
                route.is_owned() || d.takeover.contains(&route.key),
                "adds an unowned route: {}",
                cmd
            ),
            Op::AddRule { rule, .. } => prop_assert!(rule.is_owned(), "{}", cmd),
            Op::DelRule { rule, .. } => {
                prop_assert_eq!(ns.rules.get(&rule.key), Some(rule), "{}", cmd);
                prop_assert!(rule.is_owned(), "deletes an unowned rule: {}", cmd);
            }
            Op::AddNeighbour { neighbour, .. } => prop_assert!(neighbour.is_owned(), "{}", cmd),
            Op::ReplaceNeighbour { old, new, .. } => {
                prop_assert_eq!(ns.neighbours.get(&old.key), Some(old), "{}", cmd);
                prop_assert!(old.is_owned() && new.is_owned(), "{}", cmd);
            }
            Op::DelNeighbour { neighbour, .. } => {
                prop_assert_eq!(
                    ns.neighbours.get(&neighbour.key),
                    Some(neighbour),
                    "{}",
                    cmd
                );
                prop_assert!(
                    neighbour.is_owned(),
                    "deletes an unowned neighbour: {}",
                    cmd
                );
            }
            Op::SetMac { dev, .. } => {
                prop_assert!(side == Side::Pod && *dev == att.ifname, "{}", cmd);
            }
            Op::SetSysctl { key, .. } => {
                let allowed: Vec<&str> = match side {
                    Side::Pod => vec!["all", "default", O, att.ifname.as_str()],
                    Side::Host => ["all", "default"].into_iter().chain(host_peer).collect(),
                };
                prop_assert!(allowed.contains(&key.iface.as_str()), "{}", cmd);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The laws.

/// CASES cases each; no regression files written next to the test.
fn laws_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(CASES)
    }
}

proptest! {
    #![proptest_config(laws_config())]

    /// Applying plan(d, a) gives a state whose plan against d is empty, for ADD and DEL;
    /// a second DEL (with the record, and without it once DEL removed the file) is a no-op.
    #[test]
    fn plan_of_desired_against_its_own_outcome_is_empty(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        prop_assert!(c.add_plan.blocked.is_empty(), "blocked ADD:\n{}", show(&c.add_plan));
        prop_assert_empty(&plan(&c.add.desired, &c.a1, Mode::Add), "ADD after ADD applied")?;
        prop_assert!(c.del_plan.blocked.is_empty(), "blocked DEL:\n{}", show(&c.del_plan));
        prop_assert_empty(&plan(&c.del.desired, &c.a2, Mode::Del), "DEL after DEL applied")?;
        let again = s.att.compile(&c.a2, Some(&c.add.record), Mode::Del);
        prop_assert_empty(&plan(&again.desired, &c.a2, Mode::Del), "second DEL")?;
        let no_record = s.att.compile(&c.a2, None, Mode::Del);
        prop_assert_empty(&plan(&no_record.desired, &c.a2, Mode::Del), "DEL without record")?;
    }

    /// A state that already is what d wants: CHECK (compile as ADD with the record) and a
    /// repeated ADD with the same input find nothing to do.
    #[test]
    fn plan_of_a_state_against_itself_is_empty(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        let check = s.att.compile(&c.a1, Some(&c.add.record), Mode::Add);
        prop_assert_empty(&plan(&check.desired, &c.a1, Mode::Add), "CHECK after ADD")?;
        prop_assert_eq!(&check.record, &c.add.record, "CHECK compiles another record");
        let repeat = s.att.compile(&c.a1, Some(&check.record), Mode::Add);
        prop_assert_empty(&plan(&repeat.desired, &c.a1, Mode::Add), "repeated ADD")?;
    }

    /// DEL after ADD gives back the state before ADD, but for C's default hops in main
    /// (replaced by P's restored default) and host sysctls (shared, not restored: they hold
    /// their old value or the one ADD wrote).
    #[test]
    fn add_then_del_restores_the_pre_add_state(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        let ifname = s.att.ifname.as_str();
        let (after, before) = (comparable(&c.a2, ifname), comparable(&s.before, ifname));
        prop_assert!(
            after == before,
            "DEL did not restore:\n{}\nADD:\n{}\nDEL:\n{}",
            state_diff(&before, &after), show(&c.add_plan), show(&c.del_plan)
        );
        let wanted = &c.add.desired.host.present.sysctls;
        for (key, value) in &c.a2.host.sysctls {
            let old = s.before.host.sysctls.get(key);
            prop_assert!(
                old == Some(value) || wanted.get(key) == Some(value),
                "host {} = {}: neither {:?} before nor {:?} from ADD", key, value, old, wanted.get(key)
            );
        }
        for family in main_default_families(&s.before) {
            prop_assert!(main_default_families(&c.a2).contains(&family), "{} default lost", family);
        }
    }

    /// Ops touch owned objects only, except the documented moves.
    #[test]
    fn no_op_touches_an_unowned_object_except_documented_moves(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        let host_peer = c.add.record.host_peer.as_deref();
        prop_assert_touches_only_owned(&c.add_plan.ops, &c.add.desired, &s.before, &s.att, host_peer)?;
        for key in &c.del.desired.pod.absent_routes {
            prop_assert!(
                key.table == MAIN_TABLE && key.is_default() && key.dev.as_deref() == Some(s.att.ifname.as_str()),
                "DEL moves out what is not C's default: {:?}", key
            );
        }
        prop_assert!(c.del.desired.host.absent_routes.is_empty());
        prop_assert_touches_only_owned(&c.del_plan.ops, &c.del.desired, &c.a1, &s.att, host_peer)?;
    }

    /// Op by op, ADD then DEL never leave main without a default it had.
    #[test]
    fn no_moment_without_a_default_route(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        prop_assert_default_at_every_step(&s.before, &c.add_plan.ops, "ADD")?;
        prop_assert_default_at_every_step(&c.a1, &c.del_plan.ops, "DEL")?;
    }

    /// A node address that comes after ADD, then goes: CHECK's drift is only its routes and
    /// neighbour, each saying the address was added (then removed), and applying that plan
    /// (what --repair and a repeated ADD do) leaves CHECK clean and the pod as it was.
    #[test]
    fn a_node_address_coming_and_going_is_the_only_drift_and_says_so(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        let chained = s.att.prev.addresses_of(&s.att.ifname);
        let Some(c_addr) = chained.first() else { return Ok(()) };
        let (new, address) = match Family::of_net(c_addr) {
            Family::Ipv4 => ("198.51.100.2/24", ip("198.51.100.2")),
            Family::Ipv6 => ("2001:db8:5::2/64", ip("2001:db8:5::2")),
        };
        let mut gained = c.a1.clone();
        gained.host.links.insert("up9".into(), link(9999, None, None, &[new.to_string()]));
        let check = s.att.compile(&gained, Some(&c.add.record), Mode::Add);
        let drift = plan(&check.desired, &gained, Mode::Add);
        prop_assert_caused_by(&drift, address, true)?;
        // Whenever the pod gets host-address routes at all (a usable host peer: the host
        // side is made too), the new address is drift.
        let routed = !c.add.desired.host.present.rules.is_empty();
        prop_assert_eq!(drift.ops.is_empty(), !routed, "drift:\n{}", show(&drift));
        let repaired = applied(&gained, &drift.ops);
        let again = s.att.compile(&repaired, Some(&check.record), Mode::Add);
        prop_assert_empty(&plan(&again.desired, &repaired, Mode::Add), "CHECK after the repair")?;

        let mut lost = repaired.clone();
        lost.host.links.remove("up9");
        let check = s.att.compile(&lost, Some(&again.record), Mode::Add);
        let drift = plan(&check.desired, &lost, Mode::Add);
        prop_assert_caused_by(&drift, address, false)?;
        let repaired = applied(&lost, &drift.ops);
        let again = s.att.compile(&repaired, Some(&check.record), Mode::Add);
        prop_assert_empty(&plan(&again.desired, &repaired, Mode::Add), "CHECK after the second repair")?;
        prop_assert_eq!(&repaired.pod, &c.a1.pod, "the pod is not as it was after ADD");
    }

    /// The record survives its JSON file: same value, and CHECK and DEL compiled from the
    /// read-back record plan the same ops.
    #[test]
    fn record_survives_json(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        let text = serde_json::to_string(&c.add.record).expect("serialise record");
        let back: Record = serde_json::from_str(&text).expect("read record back");
        prop_assert_eq!(&back, &c.add.record);
        let del = s.att.compile(&c.a1, Some(&back), Mode::Del);
        prop_assert_eq!(plan(&del.desired, &c.a1, Mode::Del), c.del_plan);
        let check = s.att.compile(&c.a1, Some(&back), Mode::Add);
        let check_orig = s.att.compile(&c.a1, Some(&c.add.record), Mode::Add);
        prop_assert_eq!(
            plan(&check.desired, &c.a1, Mode::Add),
            plan(&check_orig.desired, &c.a1, Mode::Add)
        );
    }
}

/// The ops of a CHECK that are only sysctls the other attachment set to another value
/// (two configs disagreeing: the last writer wins; BEHAVIOUR 4 does not restore host ones).
fn prop_assert_only_conflicting_sysctls(
    check: &Plan,
    other: &DesiredState,
    sides: &[Side],
    what: &str,
) -> Result<(), TestCaseError> {
    prop_assert!(check.blocked.is_empty(), "{what}:\n{}", show(check));
    for op in &check.ops {
        let conflict = match op {
            Op::SetSysctl {
                netns,
                key,
                old,
                new,
            } => {
                let theirs = other.side(*netns).present.sysctls.get(key);
                sides.contains(netns)
                    && theirs.is_some()
                    && theirs == old.as_ref()
                    && theirs != Some(new)
            }
            _ => false,
        };
        prop_assert!(
            conflict,
            "{what}: drift `{}` in\n{}",
            op_command(op),
            show(check)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(laws_config())]

    /// net2 coming and going does not make net1 drift (BEHAVIOUR 3: objects added by anything
    /// else are not drift; 2.2: P is fixed by the first ADD; 4: DEL keeps and restores what
    /// other attachments want), but for sysctls the two configs set to different values.
    #[test]
    fn another_attachment_leaves_this_ones_check_clean(k in knobs(true)) {
        let s = build(&k);
        let net1 = net1_attachment(&k);
        let net1_record = s.att.peers.first().expect("net1 is attached");
        let c = cycle(&s);
        let check = net1.compile(&s.before, Some(net1_record), Mode::Add);
        prop_assert_empty(&plan(&check.desired, &s.before, Mode::Add), "net1 CHECK, net2 created")?;
        let with_peer = Attachment { peers: vec![c.add.record.clone()], ..net1.clone() };
        let check = with_peer.compile(&c.a1, Some(net1_record), Mode::Add);
        let drift = plan(&check.desired, &c.a1, Mode::Add);
        prop_assert_only_conflicting_sysctls(&drift, &c.add.desired, &[Side::Pod, Side::Host], "net1 CHECK, net2 attached")?;
        let check = net1.compile(&c.a2, Some(net1_record), Mode::Add);
        let drift = plan(&check.desired, &c.a2, Mode::Add);
        prop_assert_only_conflicting_sysctls(&drift, &c.add.desired, &[Side::Host], "net1 CHECK, net2 detached")?;
    }
}

// ---------------------------------------------------------------------------------------
// Examples on the fixture.

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/fixtures/add-seed-dual-stack/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture file");
    serde_json::from_str(&text).expect("fixture JSON")
}

fn fixture_scenario() -> Scenario {
    let plugin = plugin_from_conflist_or_plugin(fixture("config.json")).expect("conflist");
    let config = parse_netconf(&plugin, &AllowedDirs::default())
        .expect("fixture config")
        .config;
    let prev = PrevView::parse(&fixture("prev-result.json")).expect("fixture prevResult");
    let before: ActualState = serde_json::from_value(fixture("snapshot.json")).expect("snapshot");
    Scenario {
        before,
        att: Attachment {
            ifname: "net1".into(),
            config,
            prev,
            peers: Vec::new(),
        },
    }
}

fn main_default_devs(actual: &ActualState, family: Family) -> Vec<String> {
    let pod = actual.pod.as_ref().expect("pod netns");
    pod.main_defaults(family)
        .filter_map(|r| r.key.dev.clone())
        .collect()
}

#[test]
fn fixture_add_moves_eth0_defaults_into_table_100_and_leaves_net1_in_main() {
    let s = fixture_scenario();
    let c = cycle(&s);
    assert!(c.add_plan.blocked.is_empty(), "{}", show(&c.add_plan));
    let pod = c.a1.pod.as_ref().expect("pod");
    for (family, gateway) in [
        (Family::Ipv4, "10.244.1.1"),
        (Family::Ipv6, "fd00:10:244:1::1"),
    ] {
        assert_eq!(main_default_devs(&c.a1, family), ["net1"], "{family}");
        let in_t: Vec<&Route> = pod
            .routes
            .values()
            .filter(|r| r.key.table == 100 && r.key.is_default() && r.key.family() == family)
            .collect();
        assert_eq!(in_t.len(), 1, "{family}: {in_t:?}");
        assert_eq!(in_t[0].key.dev.as_deref(), Some(O));
        assert_eq!(in_t[0].key.gateway, Some(ip(gateway)));
        assert!(in_t[0].is_owned());
    }
    assert!(pod
        .rules
        .values()
        .any(|r| r.is_owned() && r.key.from == Some(net("10.244.1.2/32")) && r.key.table == 100));
    assert_eq!(pod.macs["net1"], mac("0a:0b:c0:a8:32:0a"));
    let check = s.att.compile(&c.a1, Some(&c.add.record), Mode::Add);
    assert!(plan(&check.desired, &c.a1, Mode::Add).is_empty());
}

#[test]
fn fixture_del_restores_eth0_defaults_in_place_of_net1s() {
    let s = fixture_scenario();
    let c = cycle(&s);
    for family in Family::all() {
        assert_eq!(main_default_devs(&c.a2, family), [O], "{family}");
    }
    let pod = c.a2.pod.as_ref().expect("pod");
    let before = s.before.pod.as_ref().expect("pod");
    for (key, route) in pod.routes.iter().filter(|(k, _)| k.is_default()) {
        assert_eq!(before.routes.get(key), Some(route), "restored as it was");
    }
    assert!(!pod.routes.values().any(Route::is_owned));
    assert!(!pod.rules.values().any(Rule::is_owned));
    assert!(!c.a2.host.routes.values().any(Route::is_owned));
    assert!(!c.a2.host.rules.values().any(Rule::is_owned));
    assert_eq!(pod.macs, before.macs);
    assert_eq!(pod.sysctls, before.sysctls);
    assert!(c.del_plan.ops.iter().any(|op| matches!(op,
        Op::ReplaceRoute { old, new, .. } if new.key.dev.as_deref() == Some(O)
            && old.iter().all(|r| r.key.dev.as_deref() == Some("net1")))));
}

#[test]
fn fixture_host_side_routes_net1_addresses_through_the_host_peer() {
    let s = fixture_scenario();
    let c = cycle(&s);
    assert_eq!(c.add.record.host_peer.as_deref(), Some(H));
    for addr in ["192.168.50.10/32", "fd50::10/128"] {
        let found = c.a1.host.routes.values().find(|r| {
            r.key.table == HOST_RULE_TABLE
                && r.key.dst == net(addr)
                && r.key.dev.as_deref() == Some(H)
        });
        assert!(found.is_some_and(Route::is_owned), "{addr}");
    }
    for family in Family::all() {
        assert!(c.a1.host.rules.values().any(|r| r.is_owned()
            && r.key.family == family
            && r.key.table == HOST_RULE_TABLE
            && r.key.from.is_none()));
    }
}

// ---------------------------------------------------------------------------------------
// Regressions found by the laws above, as examples.

fn example_chained(host_byte: u8) -> ChainedKnobs {
    ChainedKnobs {
        fams: Fams::Both,
        host_byte,
        mac: [0xda, 0x5e, 0xd2, 0xd6, 0xb7, host_byte],
        default_v4: Some(0),
        default_v6: Some(1024),
        rp_filter: 1,
        disable_ipv6: 0,
        preferred_src: true,
        ips_without_index: false,
    }
}

fn example_config(migrate_route: i64, rp_filter: Option<(bool, u8)>) -> ConfigKnobs {
    ConfigKnobs {
        migrate_route,
        sriov: false,
        mac_prefix: None,
        only_op_mac: false,
        rp_filter,
        route_table: None,
        rule_priority: None,
        hijack: vec![(net("10.240.0.0/12"), 0), (net("172.96.0.0/18"), 1)],
    }
}

/// The fixture's pod as knobs, with net2 attached after net1.
fn example_knobs() -> Knobs {
    Knobs {
        world: WorldKnobs {
            overlay_octet: 1,
            eth0_default_v4: Some(0),
            eth0_default_v6: Some(1024),
            extra_routes: Vec::new(),
            host_links: Vec::new(),
            uplinks_look_like_plumbing: false,
            pod_rp_filter: [1, 1, 1],
            pod_disable_ipv6: [0, 0, 0],
            host_rp_filter: [1, 1, 1],
            peer: PeerKind::Veth,
            other_pods: 0,
        },
        net1: example_chained(10),
        config: example_config(-1, None),
        second: Some((example_chained(20), example_config(-1, None))),
    }
}

fn pod_sysctl(actual: &ActualState, iface: &str) -> Option<i64> {
    let pod = actual.pod.as_ref().expect("pod netns");
    pod.sysctls
        .get(&SysctlKey::new(iface, SysctlName::RpFilter))
        .copied()
}

/// DEL of net2 skipped the pod sysctls net1's record also names, leaving net2's rp_filter
/// in place of the value net1 wants (and had set): net1's CHECK then reported drift.
#[test]
fn del_of_net2_puts_back_the_rp_filter_net1_wants() {
    let mut k = example_knobs();
    k.second = Some((example_chained(20), example_config(-1, Some((false, 0)))));
    let s = build(&k);
    for iface in ["all", "default", O] {
        assert_eq!(pod_sysctl(&s.before, iface), Some(2), "net1 set {iface}");
    }
    let c = cycle(&s);
    for iface in ["all", "default", O] {
        assert_eq!(pod_sysctl(&c.a1, iface), Some(0), "net2 set {iface}");
        assert_eq!(
            pod_sysctl(&c.a2, iface),
            Some(2),
            "net2's DEL gave back {iface}"
        );
    }
    let net1 = net1_attachment(&k);
    let check = net1.compile(&c.a2, Some(&s.att.peers[0]), Mode::Add);
    let drift = plan(&check.desired, &c.a2, Mode::Add);
    assert!(drift.is_empty(), "{}", show(&drift));
}

/// With eth0's defaults left in main by net1 (migrate_route 0), net2 moves them; its DEL put
/// them back by replacing the whole slot, net1's defaults included, instead of only net2's.
#[test]
fn del_of_net2_restores_eth0s_default_next_to_net1s() {
    let mut k = example_knobs();
    k.config = example_config(0, None);
    k.second = Some((example_chained(20), example_config(1, None)));
    let s = build(&k);
    let c = cycle(&s);
    for family in Family::all() {
        assert_eq!(main_default_devs(&s.before, family), [O, "net1", "net2"]);
        assert_eq!(main_default_devs(&c.a1, family), ["net1", "net2"]);
        assert_eq!(main_default_devs(&c.a2, family), [O, "net1"], "{family}");
    }
    for op in &c.del_plan.ops {
        if let Op::ReplaceRoute { old, .. } = op {
            assert!(
                old.iter().all(|r| r.key.dev.as_deref() == Some("net2")),
                "{}",
                op_command(op)
            );
        }
    }
}

/// net1 found no previous interface at ADD (eth0 has no default); once net2 added its default
/// to main, net1's CHECK took net2 for P and reported its routes and rules as drift.
#[test]
fn a_default_net2_adds_later_does_not_become_net1s_previous_interface() {
    let mut k = example_knobs();
    k.world.eth0_default_v4 = None;
    k.world.eth0_default_v6 = None;
    k.net1.default_v4 = None;
    k.net1.default_v6 = None;
    let s = build(&k);
    assert!(s.att.peers[0].moved.is_empty(), "net1 has no P");
    let net1 = net1_attachment(&k);
    let check = net1.compile(&s.before, Some(&s.att.peers[0]), Mode::Add);
    let drift = plan(&check.desired, &s.before, Mode::Add);
    assert!(drift.is_empty(), "{}", show(&drift));
}
