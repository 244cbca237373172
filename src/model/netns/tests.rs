//! model::netns tests: the JSON of a netns's state, and which host veth is the host peer.

use super::*;
use crate::model::*;

#[test]
fn netns_state_serialises_objects_as_lists_and_reads_them_back() {
    let mut ns = NetnsState::default();
    ns.insert_rule(Rule::owned_lookup(
        Family::Ipv4,
        1000,
        None,
        Some("10.240.0.0/12".parse().unwrap()),
        100,
    ));
    ns.sysctls
        .insert(SysctlKey::new("all", SysctlName::RpFilter), 0);
    let json = serde_json::to_value(&ns).unwrap();
    assert!(json["rules"].is_array());
    assert_eq!(json["sysctls"]["net.ipv4.conf.all.rp_filter"], 0);
    let back: NetnsState = serde_json::from_value(json).unwrap();
    assert_eq!(back, ns);
}

/// One veth end named `name` with index `index` whose peer is `peer` (ifindex, netnsid).
fn netns_with_veth(name: &str, index: u32, peer: (u32, i32), other_id: Option<i32>) -> NetnsState {
    let link = Link {
        index,
        kind: Some("veth".to_string()),
        peer: Some(LinkPeer {
            ifindex: peer.0,
            netnsid: Some(peer.1),
        }),
        addresses: Vec::new(),
    };
    NetnsState {
        links: BTreeMap::from([(name.to_string(), link)]),
        other_netns_id: other_id,
        ..NetnsState::default()
    }
}

/// The pod gives the host id 0, the host gives the pod id 5; netns X and Y are elsewhere.
const POD_ID_OF_HOST: i32 = 0;
const HOST_ID_OF_POD: i32 = 5;

#[test]
fn the_host_peer_is_the_veth_pointing_back_from_the_host_netns() {
    let pod = netns_with_veth("eth0", 2, (7, POD_ID_OF_HOST), Some(POD_ID_OF_HOST));
    let host = netns_with_veth("veth1", 7, (2, HOST_ID_OF_POD), Some(HOST_ID_OF_POD));
    let (name, _) = pod.veth_peer_in("eth0", &host).expect("H");
    assert_eq!(name, "veth1");
    let actual = ActualState {
        pod: Some(pod),
        host,
        ..ActualState::default()
    };
    assert_eq!(actual.host_peer("eth0"), Some("veth1"));
    assert_eq!(actual.host_peer("net1"), None);
    let gone = ActualState {
        pod: None,
        ..actual
    };
    assert_eq!(gone.host_peer("eth0"), None);
}

#[test]
fn a_host_veth_with_colliding_indexes_but_its_peer_in_a_third_netns_is_not_the_host_peer() {
    // eth0's peer is index 7 in netns X (the pod's id 1 for it); the host's up0 is
    // index 7 and its peer is index 2 in netns Y (the host's id 3 for it).
    let pod = netns_with_veth("eth0", 2, (7, 1), Some(POD_ID_OF_HOST));
    let host = netns_with_veth("up0", 7, (2, 3), Some(HOST_ID_OF_POD));
    assert_eq!(pod.veth_peer_in("eth0", &host), None);
    // Either side's id alone tells them apart.
    let host_unknown = NetnsState {
        other_netns_id: None,
        ..host.clone()
    };
    assert_eq!(pod.veth_peer_in("eth0", &host_unknown), None);
    let pod_unknown = NetnsState {
        other_netns_id: None,
        ..pod.clone()
    };
    assert_eq!(pod_unknown.veth_peer_in("eth0", &host), None);
}

#[test]
fn a_netns_without_an_id_for_the_other_has_no_peer_there() {
    let pod = netns_with_veth("eth0", 2, (7, POD_ID_OF_HOST), Some(-1));
    let host = netns_with_veth("veth1", 7, (2, HOST_ID_OF_POD), None);
    assert_eq!(pod.veth_peer_in("eth0", &host), None);
}

#[test]
fn snapshots_without_netns_ids_match_veth_peers_by_index_alone() {
    let pod = netns_with_veth("eth0", 2, (7, 1), None);
    let host = netns_with_veth("up0", 7, (2, 3), None);
    assert_eq!(
        pod.veth_peer_in("eth0", &host).map(|(n, _)| n.as_str()),
        Some("up0")
    );
    let json = serde_json::to_value(&pod).unwrap();
    assert!(json.get("other_netns_id").is_none());
    let back: NetnsState = serde_json::from_value(json).unwrap();
    assert_eq!(back.other_netns_id, None);
}

/// Routes inserted at once end as they would one after another: normalised, a later route
/// of a key already there (in the map or earlier in the batch) in its place.
#[test]
fn routes_inserted_at_once_end_as_inserted_one_by_one() {
    let route = |dst: &str, protocol: u8| Route::link(100, dst.parse().unwrap(), "eth0", protocol);
    let mut one_by_one = NetnsState::default();
    let mut at_once = NetnsState::default();
    for state in [&mut one_by_one, &mut at_once] {
        state.insert_route(route("10.0.0.0/8", 2));
        state.insert_route(route("192.0.2.0/24", 2));
    }
    // A host address with bits past its prefix, a key already in the map, one twice in
    // the batch, and one new.
    let batch = vec![
        route("10.1.2.3/8", 176),
        route("192.0.2.0/24", 176),
        route("198.51.100.0/24", 3),
        route("198.51.100.0/24", 176),
        route("fd00::/64", 176),
    ];
    for r in batch.clone() {
        one_by_one.insert_route(r);
    }
    at_once.insert_routes(batch);
    assert_eq!(at_once, one_by_one);
    assert_eq!(at_once.routes.len(), 4);
    assert!(
        at_once.routes.values().all(|r| r.protocol == 176),
        "the later route of each key"
    );
}
