//! Unit tests of agent::triggers.

use super::*;

fn tables() -> BTreeSet<u32> {
    BTreeSet::from([500])
}

fn route(change: Change, table: u32, owned: bool) -> Event {
    Event::Route {
        change,
        table,
        dst: Some("192.168.50.11".parse().unwrap()),
        owned,
    }
}

#[test]
fn routers_own_additions_wake_nothing_and_its_deletions_wake_the_owner() {
    let mut links = NodeLinks::default();
    let added = route(Change::New, 500, true);
    assert!(!pod_event_matters(&added));
    assert_eq!(node_target(&added, &tables(), &mut links), NodeTarget::None);
    let deleted = route(Change::Deleted, 500, true);
    assert!(pod_event_matters(&deleted));
    assert_eq!(
        node_target(&deleted, &tables(), &mut links),
        NodeTarget::Toward("192.168.50.11".parse().unwrap())
    );
}

#[test]
fn an_unowned_route_put_in_the_host_table_wakes_its_attachment_and_other_tables_nothing() {
    let mut links = NodeLinks::default();
    assert!(matches!(
        node_target(&route(Change::New, 500, false), &tables(), &mut links),
        NodeTarget::Toward(_)
    ));
    for change in [Change::New, Change::Deleted] {
        assert_eq!(
            node_target(&route(change, 254, false), &tables(), &mut links),
            NodeTarget::None
        );
    }
}

#[test]
fn a_rule_deleted_on_the_node_wakes_every_attachment() {
    let mut links = NodeLinks::default();
    let rule = Event::Rule {
        change: Change::Deleted,
        owned: true,
    };
    assert_eq!(node_target(&rule, &tables(), &mut links), NodeTarget::All);
}

#[test]
fn node_addresses_wake_every_attachment_but_link_local_ones_and_those_of_pod_plumbing() {
    let mut links = NodeLinks::new([
        (2, "up0".to_string(), None),
        (9, "veth1234".to_string(), None),
    ]);
    for (index, address, expected) in [
        (2, "192.168.60.1", NodeTarget::All),
        (2, "fd50::9", NodeTarget::All),
        (2, "fe80::1", NodeTarget::None),
        (2, "169.254.1.1", NodeTarget::None),
        // A pod's ptp gateway address on its host veth.
        (9, "10.244.7.1", NodeTarget::None),
        // A link not seen yet may be the node's.
        (40, "192.168.70.1", NodeTarget::All),
    ] {
        let event = Event::Address {
            change: Change::New,
            index,
            address: address.parse().unwrap(),
        };
        assert_eq!(
            node_target(&event, &tables(), &mut links),
            expected,
            "{address}"
        );
    }
}

#[test]
fn only_a_known_links_mac_changing_wakes_every_attachment() {
    let mut links = NodeLinks::new([(7, "veth7".to_string(), Some(MacAddr([2, 0, 0, 0, 0, 7])))]);
    let link = |index, last| Event::Link {
        change: Change::New,
        index,
        name: None,
        mac: Some(MacAddr([2, 0, 0, 0, 0, last])),
    };
    // The same MAC again (a flag change): nothing.
    assert_eq!(
        node_target(&link(7, 7), &tables(), &mut links),
        NodeTarget::None
    );
    // A new link (a pod's veth made): nothing.
    assert_eq!(
        node_target(&link(8, 8), &tables(), &mut links),
        NodeTarget::None
    );
    assert_eq!(
        node_target(&link(7, 9), &tables(), &mut links),
        NodeTarget::All
    );
    assert_eq!(
        node_target(&link(8, 1), &tables(), &mut links),
        NodeTarget::All
    );
}
