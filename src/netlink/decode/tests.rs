//! netlink::decode tests: kernel messages into model objects.

use std::collections::HashMap;

use netlink_packet_route::link::InfoKind;
use netlink_packet_route::neighbour::NeighbourState;
use netlink_packet_route::route::{RouteNextHop, RouteProtocol, RouteScope as NlScope};
use netlink_packet_route::rule::RuleHeader;

use super::*;

fn names() -> HashMap<u32, String> {
    HashMap::from([(2, "eth0".to_string()), (3, "net1".to_string())])
}

fn v4(s: &str) -> RouteAddress {
    RouteAddress::Inet(s.parse().unwrap())
}

fn v6(s: &str) -> RouteAddress {
    RouteAddress::Inet6(s.parse().unwrap())
}

fn hop(index: u32, gateway: RouteAddress, flags: RouteNextHopFlags) -> RouteNextHop {
    let mut hop = RouteNextHop::default();
    hop.interface_index = index;
    hop.flags = flags;
    hop.attributes.push(RouteAttribute::Gateway(gateway));
    hop
}

#[test]
fn a_plain_route_reads_every_field() {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.destination_prefix_length = 12;
    m.header.table = 100;
    m.header.protocol = RouteProtocol::Other(176);
    m.header.scope = NlScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.header.flags = RouteFlags::Onlink;
    m.attributes = vec![
        RouteAttribute::Table(100),
        RouteAttribute::Destination(v4("10.240.0.0")),
        RouteAttribute::Priority(5),
        RouteAttribute::Oif(2),
        RouteAttribute::Gateway(v4("10.244.1.1")),
        RouteAttribute::PrefSource(v4("10.244.1.2")),
    ];
    let routes = routes_from_message(&m, &names()).unwrap();
    assert_eq!(
        routes,
        vec![Route {
            key: RouteKey {
                table: 100,
                dst: "10.240.0.0/12".parse().unwrap(),
                tos: 0,
                metric: 5,
                dev: Some("eth0".into()),
                gateway: Some("10.244.1.1".parse().unwrap()),
            },
            scope: RouteScope::Universe,
            kind: RouteKind::Unicast,
            protocol: 176,
            prefsrc: Some("10.244.1.2".parse().unwrap()),
            onlink: true,
        }]
    );
}

#[test]
fn a_route_without_destination_is_the_family_default_and_table_falls_back_to_header() {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.table = 254;
    m.header.kind = RouteType::BlackHole;
    let routes = routes_from_message(&m, &names()).unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].key.table, 254);
    assert_eq!(routes[0].key.dst, Family::Ipv4.any());
    assert_eq!(routes[0].key.dev, None);
    assert_eq!(routes[0].kind, RouteKind::Blackhole);
}

#[test]
fn a_multipath_route_is_one_route_per_hop() {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet6;
    m.header.protocol = RouteProtocol::Boot;
    m.attributes = vec![
        RouteAttribute::Table(254),
        RouteAttribute::Priority(1024),
        RouteAttribute::MultiPath(vec![
            hop(2, v6("fd00:10:244:1::1"), RouteNextHopFlags::empty()),
            hop(3, v6("fd00:50::254"), RouteNextHopFlags::Onlink),
        ]),
    ];
    let routes = routes_from_message(&m, &names()).unwrap();
    let hops: Vec<_> = routes
        .iter()
        .map(|r| {
            (
                r.key.dev.as_deref(),
                r.key.gateway.map(|g| g.to_string()),
                r.onlink,
            )
        })
        .collect();
    assert_eq!(
        hops,
        vec![
            (Some("eth0"), Some("fd00:10:244:1::1".to_string()), false),
            (Some("net1"), Some("fd00:50::254".to_string()), true),
        ]
    );
    assert!(routes
        .iter()
        .all(|r| r.key.metric == 1024 && r.protocol == 3));
    assert!(routes.iter().all(|r| r.key.dst == Family::Ipv6.any()));
}

#[test]
fn cloned_routes_are_skipped_and_unknown_devices_ask_to_read_again() {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.flags = RouteFlags::Cloned;
    assert!(routes_from_message(&m, &names()).unwrap().is_empty());
    m.header.flags = RouteFlags::empty();
    m.attributes.push(RouteAttribute::Oif(42));
    let err = routes_from_message(&m, &names()).unwrap_err();
    assert!(matches!(err, Error::TryAgain(_)), "{err:?}");
}

#[test]
fn an_ipv4_route_via_an_ipv6_gateway_keeps_it() {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.attributes = vec![
        RouteAttribute::Oif(2),
        RouteAttribute::Via(RouteVia::Inet6("fe80::1".parse().unwrap())),
    ];
    let routes = routes_from_message(&m, &names()).unwrap();
    assert_eq!(routes[0].key.gateway, Some("fe80::1".parse().unwrap()));
}

#[test]
fn a_rule_reads_selectors_action_table_and_protocol() {
    let mut m = RuleMessage::default();
    m.header = RuleHeader::default();
    m.header.family = AddressFamily::Inet;
    m.header.dst_len = 12;
    m.header.action = NlRuleAction::ToTable;
    m.header.flags = RuleFlags::Invert;
    m.attributes = vec![
        RuleAttribute::Priority(1000),
        RuleAttribute::Destination("10.240.0.0".parse().unwrap()),
        RuleAttribute::Table(100),
        RuleAttribute::Iifname("eth0".into()),
        RuleAttribute::FwMark(0x10),
        RuleAttribute::FwMask(0xffff_ffff),
        RuleAttribute::Protocol(RouteProtocol::Other(176)),
    ];
    let rule = rule_from_message(&m).unwrap().unwrap();
    let mut expected = Rule::owned_lookup(
        Family::Ipv4,
        1000,
        None,
        Some("10.240.0.0/12".parse().unwrap()),
        100,
    );
    expected.key.iif = Some("eth0".into());
    expected.key.fwmark = Some(0x10);
    expected.key.fwmask = Some(0xffff_ffff);
    expected.key.invert = true;
    assert_eq!(rule, expected);
}

#[test]
fn neighbours_other_than_permanent_are_skipped() {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.ifindex = 2;
    m.header.state = NeighbourState::Reachable;
    m.attributes = vec![
        NeighbourAttribute::Destination(NeighbourAddress::Inet("10.244.1.1".parse().unwrap())),
        NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 1, 1]),
        NeighbourAttribute::Protocol(RouteProtocol::Other(176)),
    ];
    assert_eq!(neighbour_from_message(&m, &names()).unwrap(), None);
    m.header.state = NeighbourState::Permanent;
    assert_eq!(
        neighbour_from_message(&m, &names()).unwrap(),
        Some(Neighbour {
            key: NeighbourKey {
                dev: "eth0".into(),
                addr: "10.244.1.1".parse().unwrap()
            },
            lladdr: Some(MacAddr([2, 0, 0, 0, 1, 1])),
            protocol: 176,
        })
    );
}

#[test]
fn a_link_reads_kind_peer_and_six_byte_macs_only() {
    let mut m = LinkMessage::default();
    m.header.index = 2;
    m.attributes = vec![
        LinkAttribute::IfName("eth0".into()),
        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
        LinkAttribute::Link(7),
        LinkAttribute::LinkNetNsId(0),
        LinkAttribute::Address(vec![0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02]),
    ];
    let (name, link, mac) = link_from_message(&m).unwrap();
    assert_eq!(name, "eth0");
    assert_eq!(link.kind.as_deref(), Some("veth"));
    assert_eq!(
        link.peer,
        Some(LinkPeer {
            ifindex: 7,
            netnsid: Some(0)
        })
    );
    assert_eq!(mac, Some(MacAddr([0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02])));

    // The same index in another netns is a peer.
    m.attributes = vec![
        LinkAttribute::IfName("eth0".into()),
        LinkAttribute::Link(2),
        LinkAttribute::LinkNetNsId(0),
    ];
    let (_, link, _) = link_from_message(&m).unwrap();
    assert_eq!(
        link.peer,
        Some(LinkPeer {
            ifindex: 2,
            netnsid: Some(0)
        })
    );

    // IFLA_LINK naming the link itself is no peer; a 20-byte (InfiniBand) address no MAC.
    m.attributes = vec![
        LinkAttribute::IfName("ib0".into()),
        LinkAttribute::Link(2),
        LinkAttribute::Address(vec![0; 20]),
    ];
    let (_, link, mac) = link_from_message(&m).unwrap();
    assert_eq!(link.peer, None);
    assert_eq!(mac, None);
}

#[test]
fn addresses_keep_host_bits_and_prefer_ifa_local() {
    let mut m = AddressMessage::default();
    m.header.index = 2;
    m.header.prefix_len = 24;
    m.attributes = vec![
        AddressAttribute::Address("10.0.0.9".parse().unwrap()),
        AddressAttribute::Local("10.244.1.2".parse().unwrap()),
    ];
    assert_eq!(
        address_from_message(&m),
        Some((2, "10.244.1.2/24".parse().unwrap()))
    );
}
