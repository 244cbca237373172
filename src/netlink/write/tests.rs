//! netlink::write tests: each write's request, read back through the decoder.

use std::collections::BTreeMap;

use netlink_packet_route::route::{
    RouteAttribute, RouteFlags, RouteScope as NlRouteScope, RouteType,
};
use netlink_packet_route::rule::RuleAttribute;

use super::super::decode::{neighbour_from_message, routes_from_message, rule_from_message};
use super::*;
use crate::model::{
    Family, Link, NeighbourKey, RouteKey, RouteKind, RouteScope, RuleAction, IPV6_DEFAULT_METRIC,
};

fn links() -> Links {
    let link = |index| Link {
        index,
        kind: None,
        peer: None,
        addresses: Vec::new(),
    };
    Links {
        links: BTreeMap::from([("eth0".to_string(), link(2)), ("net1".to_string(), link(3))]),
        ..Links::default()
    }
}

fn model_route(table: u32, dst: &str, dev: &str, gateway: Option<&str>) -> Route {
    Route {
        key: RouteKey {
            table,
            dst: dst.parse().unwrap(),
            tos: 0,
            metric: 0,
            dev: Some(dev.to_string()),
            gateway: gateway.map(|g| g.parse().unwrap()),
        },
        scope: RouteScope::Universe,
        kind: RouteKind::Unicast,
        protocol: 176,
        prefsrc: None,
        onlink: false,
    }
}

fn request_of(write: Write) -> Request {
    write.request.expect("a request to send")
}

#[test]
fn a_route_add_sends_every_field_and_reads_back_as_itself() {
    let mut route = model_route(500, "10.240.0.0/12", "net1", Some("192.168.50.254"));
    route.prefsrc = Some("192.168.50.2".parse().unwrap());
    route.onlink = true;
    route.key.metric = 7;
    let write = Write::add_route(&route, &links()).unwrap();
    assert_eq!(write.object(), route.ip_command("add"));
    let request = request_of(write);
    assert_eq!(request.flags, NLM_F_CREATE | NLM_F_APPEND);
    assert_eq!(request.already_so, &[libc::EEXIST]);
    let RouteNetlinkMessage::NewRoute(message) = request.message else {
        panic!("{:?}", request.message)
    };
    // Table 500 does not fit the header byte: RT_TABLE_UNSPEC there, RTA_TABLE says it.
    assert_eq!(message.header.table, 0);
    assert_eq!(message.header.protocol, RouteProtocol::Other(176));
    assert_eq!(message.header.kind, RouteType::Unicast);
    assert!(message.header.flags.contains(RouteFlags::Onlink));
    assert!(message.attributes.contains(&RouteAttribute::Oif(3)));
    let read = routes_from_message(&message, &links().names_by_index()).unwrap();
    assert_eq!(read, vec![route]);
}

#[test]
fn a_default_route_has_no_destination_and_ipv4_metric_zero_is_left_out() {
    let route = model_route(254, "0.0.0.0/0", "eth0", Some("10.244.1.1"));
    let RouteNetlinkMessage::NewRoute(message) =
        request_of(Write::add_route(&route, &links()).unwrap()).message
    else {
        panic!()
    };
    assert_eq!(message.header.table, 254);
    assert!(!message.attributes.iter().any(|a| matches!(
        a,
        RouteAttribute::Destination(_) | RouteAttribute::Priority(_)
    )));
    // IPv6 spells its default metric out, so a delete matches only that metric.
    let route = model_route(254, "::/0", "eth0", Some("fd00::1"));
    let RouteNetlinkMessage::DelRoute(message) =
        request_of(Write::del_route(&route, &links()).unwrap()).message
    else {
        panic!()
    };
    assert!(message
        .attributes
        .contains(&RouteAttribute::Priority(IPV6_DEFAULT_METRIC)));
}

#[test]
fn a_route_delete_names_the_protocol_and_matches_any_scope() {
    let mut route = model_route(100, "10.244.1.1/32", "eth0", None);
    route.scope = RouteScope::Link;
    route.prefsrc = Some("10.244.1.2".parse().unwrap());
    let request = request_of(Write::del_route(&route, &links()).unwrap());
    assert_eq!(request.already_so, &[libc::ESRCH, libc::ENOENT]);
    let RouteNetlinkMessage::DelRoute(message) = request.message else {
        panic!()
    };
    assert_eq!(message.header.scope, NlRouteScope::NoWhere);
    assert_eq!(message.header.protocol, RouteProtocol::Other(176));
    assert!(!message
        .attributes
        .iter()
        .any(|a| matches!(a, RouteAttribute::PrefSource(_))));
}

#[test]
fn a_missing_device_fails_an_add_and_is_gone_for_a_delete() {
    let route = model_route(100, "10.9.0.0/16", "nope0", None);
    let err = Write::add_route(&route, &links()).unwrap_err();
    let Error::Kernel { object, reason } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(object, &route.ip_command("add"));
    assert!(reason.contains("nope0"), "{reason}");
    assert!(Write::del_route(&route, &links())
        .unwrap()
        .request
        .is_none());
    let neighbour = Neighbour {
        key: NeighbourKey {
            dev: "nope0".into(),
            addr: "10.9.9.9".parse().unwrap(),
        },
        lladdr: None,
        protocol: 176,
    };
    assert!(Write::del_neighbour(&neighbour, &links()).request.is_none());
    assert!(Write::replace_neighbour(&neighbour, &links()).is_err());
}

#[test]
fn a_rule_add_reads_back_as_itself_with_all_as_no_selector() {
    let mut rule = Rule::owned_lookup(
        Family::Ipv4,
        1000,
        Some("0.0.0.0/0".parse().unwrap()),
        Some("10.240.0.0/12".parse().unwrap()),
        500,
    );
    rule.key.oif = Some("net1".into());
    rule.key.invert = true;
    let request = request_of(Write::add_rule(&rule).unwrap());
    assert_eq!(request.flags, NLM_F_CREATE | NLM_F_EXCL);
    let RouteNetlinkMessage::NewRule(message) = request.message else {
        panic!()
    };
    assert_eq!(message.header.table, 0);
    assert!(!message
        .attributes
        .iter()
        .any(|a| matches!(a, RuleAttribute::Source(_))));
    let mut expected = rule.clone();
    expected.key.from = None;
    assert_eq!(rule_from_message(&message).unwrap(), Some(expected));

    rule.key.action = RuleAction::Other;
    assert!(Write::add_rule(&rule).is_err());
    let RouteNetlinkMessage::DelRule(message) = request_of(Write::del_rule(&rule)).message else {
        panic!()
    };
    assert_eq!(message.header.action, NlRuleAction::Unspec);
}

#[test]
fn a_neighbour_replace_is_permanent_with_its_mac_and_protocol() {
    let neighbour = Neighbour {
        key: NeighbourKey {
            dev: "eth0".into(),
            addr: "fd00::1".parse().unwrap(),
        },
        lladdr: Some(MacAddr([2, 0, 0, 0, 1, 1])),
        protocol: 176,
    };
    let request = request_of(Write::replace_neighbour(&neighbour, &links()).unwrap());
    assert_eq!(request.flags, NLM_F_CREATE | NLM_F_REPLACE);
    let RouteNetlinkMessage::NewNeighbour(message) = request.message else {
        panic!()
    };
    assert_eq!(message.header.ifindex, 2);
    assert_eq!(
        neighbour_from_message(&message, &links().names_by_index()).unwrap(),
        Some(neighbour)
    );
}
