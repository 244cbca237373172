//! Unit tests of compile::overlay.

use super::*;
use crate::model::LinkPeer;

fn config() -> Config {
    let value = serde_json::json!({
        "cniVersion": "1.0.0", "name": "n", "type": "router",
        "overlay_hijack_subnet": ["10.240.0.0/12"], "service_hijack_subnet": []
    });
    crate::config::parse_netconf(&value, &crate::config::AllowedDirs::default())
        .unwrap()
        .config
}

fn link(index: u32, kind: &str, peer: Option<(u32, Option<i32>)>, addrs: &[&str]) -> Link {
    Link {
        index,
        kind: Some(kind.to_string()),
        peer: peer.map(|(ifindex, netnsid)| LinkPeer { ifindex, netnsid }),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

/// A pod with eth0 (a veth, peer index 7 in netns id 0) and net1; the host with the
/// peer when `peer_in_host`.
fn world(peer_in_host: bool, eth0_addrs: &[&str], defaults: &[&str]) -> ActualState {
    let mut pod = NetnsState {
        other_netns_id: Some(0),
        ..NetnsState::default()
    };
    pod.links.insert(
        "eth0".into(),
        link(3, "veth", Some((7, Some(0))), eth0_addrs),
    );
    pod.links.insert(
        "net1".into(),
        link(4, "macvlan", Some((2, Some(0))), &["192.0.2.10/24"]),
    );
    for dev in defaults {
        let mut route = Route::link(MAIN_TABLE, "0.0.0.0/0".parse().unwrap(), dev, 3);
        route.key.gateway = Some("10.1.0.1".parse().unwrap());
        pod.insert_route(route);
    }
    let mut host = NetnsState {
        other_netns_id: Some(1),
        ..NetnsState::default()
    };
    if peer_in_host {
        host.links
            .insert("veth1".into(), link(7, "veth", Some((3, Some(1))), &[]));
    }
    ActualState {
        pod: Some(pod),
        host,
        ..ActualState::default()
    }
}

fn c_addrs() -> Vec<IpNet> {
    vec!["192.0.2.10/24".parse().unwrap()]
}

#[test]
fn a_veth_overlay_with_its_peer_here_an_address_and_a_default_is_ready() {
    let actual = world(true, &["10.1.0.5/32"], &["eth0"]);
    assert_eq!(
        overlay_unready(&config(), "net1", &c_addrs(), &actual, None),
        vec![]
    );
}

#[test]
fn a_veth_overlay_whose_peer_is_not_in_the_node_yet_is_not_ready() {
    let actual = world(false, &["10.1.0.5/32"], &["eth0"]);
    assert_eq!(
        overlay_unready(&config(), "net1", &c_addrs(), &actual, None),
        vec![Unready::PeerNotInNode]
    );
}

#[test]
fn an_overlay_without_address_or_default_route_is_not_ready() {
    let actual = world(true, &["fe80::1/64"], &["net1"]);
    assert_eq!(
        overlay_unready(&config(), "net1", &c_addrs(), &actual, None),
        vec![Unready::NoAddress]
    );
    let actual = world(true, &["10.1.0.5/32"], &["net1"]);
    assert_eq!(
        overlay_unready(&config(), "net1", &c_addrs(), &actual, None),
        vec![Unready::NoDefaultRoute(Family::Ipv4)]
    );
}

#[test]
fn a_missing_default_is_fine_once_a_record_says_it_moved_or_nothing_moves() {
    let actual = world(true, &["10.1.0.5/32"], &[]);
    let record = Record::new("c", "net1", 100, 500, "eth0");
    assert_eq!(
        overlay_unready(&config(), "net1", &c_addrs(), &actual, Some(&record)),
        vec![]
    );
    let never = Config {
        migrate_route: MigrateRoute::Never,
        ..config()
    };
    assert_eq!(
        overlay_unready(&never, "net1", &c_addrs(), &actual, None),
        vec![]
    );
}

#[test]
fn an_overlay_that_is_no_veth_has_no_host_peer_by_design_and_is_ready() {
    let mut actual = world(false, &["10.1.0.5/32"], &["eth0"]);
    let pod = actual.pod.as_mut().unwrap();
    pod.links.get_mut("eth0").unwrap().kind = Some("ipvlan".into());
    assert_eq!(
        overlay_unready(&config(), "net1", &c_addrs(), &actual, None),
        vec![]
    );
}

#[test]
fn an_overlay_not_in_the_pod_is_missing() {
    let mut actual = world(true, &["10.1.0.5/32"], &["eth0"]);
    actual.pod.as_mut().unwrap().links.remove("eth0");
    assert_eq!(
        overlay_unready(&config(), "net1", &c_addrs(), &actual, None),
        vec![Unready::Missing]
    );
}

#[test]
fn overlay_facts_ignore_the_chained_interface_routers_own_and_what_the_plan_removes() {
    let mut actual = world(true, &["10.1.0.5/32"], &["eth0", "net1"]);
    let pod = actual.pod.as_mut().unwrap();
    pod.insert_route(Route::link(
        MAIN_TABLE,
        "192.0.2.2/32".parse().unwrap(),
        "eth0",
        ROUTER_PROTOCOL,
    ));
    let default_eth0 = pod
        .main_defaults(Family::Ipv4)
        .find(|r| r.key.dev.as_deref() == Some("eth0"))
        .unwrap()
        .key
        .clone();
    let before = OverlayFacts::of(pod, "eth0", "net1", &BTreeSet::new());
    assert_eq!(before.routes, BTreeSet::from([default_eth0.clone()]));
    let ignore = BTreeSet::from([default_eth0.clone()]);
    let planned = OverlayFacts::of(pod, "eth0", "net1", &ignore);
    pod.routes.remove(&default_eth0);
    assert_eq!(OverlayFacts::of(pod, "eth0", "net1", &ignore), planned);
    pod.insert_route(Route::link(
        MAIN_TABLE,
        "10.1.0.1/32".parse().unwrap(),
        "eth0",
        3,
    ));
    let later = OverlayFacts::of(pod, "eth0", "net1", &ignore);
    assert_eq!(
        planned.changes_to(&later),
        vec!["route 10.1.0.1/32 dev eth0 added"]
    );
}
