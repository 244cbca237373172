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
