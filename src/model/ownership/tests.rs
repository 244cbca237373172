//! model::ownership tests: what an attachment may remove, displace or release.

use super::*;
use crate::model::{PROTOCOL_BOOT, ROUTER_PROTOCOL};
use crate::testkit::build::link_route;

fn ns(routes: &[&Route]) -> NetnsState {
    let mut ns = NetnsState::default();
    routes.iter().for_each(|r| ns.insert_route((*r).clone()));
    ns
}

/// Owns table 100 and routes of main through eth0.
fn owning_table_100() -> Ownership {
    let mut o = Ownership::default();
    o.scope.routes.push(RouteSelector {
        table: 100,
        dev: None,
        dst_in: BTreeSet::new(),
    });
    o.scope.rule_tables.insert(100);
    o
}

#[test]
fn removes_only_its_owned_objects_that_nobody_wants() {
    let mut o = owning_table_100();
    let stale = link_route(100, "10.1.0.0/16", "eth0", ROUTER_PROTOCOL);
    let wanted = link_route(100, "10.2.0.0/16", "eth0", ROUTER_PROTOCOL);
    let peers = link_route(100, "10.3.0.0/16", "eth0", ROUTER_PROTOCOL);
    let unowned = link_route(100, "10.4.0.0/16", "eth0", PROTOCOL_BOOT);
    let elsewhere = link_route(101, "10.5.0.0/16", "eth0", ROUTER_PROTOCOL);
    o.keep.insert_route(peers.clone());
    let present = ns(&[&wanted]);
    assert!(o.may_remove(&stale, &present));
    for r in [&wanted, &peers, &unowned, &elsewhere] {
        assert!(!o.may_remove(r, &present), "{r}");
    }
    let rule = Rule::owned_lookup(Family::Ipv4, 1000, None, None, 100);
    assert!(o.may_remove(&rule, &present));
    assert!(!o.may_remove(
        &Rule {
            protocol: 3,
            ..rule
        },
        &present
    ));
}

#[test]
fn a_slot_is_taken_from_stale_owned_routes_and_by_a_takeover_from_those_listed_absent() {
    let mut o = Ownership::default();
    let want = link_route(254, "0.0.0.0/0", "eth0", PROTOCOL_BOOT);
    let stale = link_route(254, "0.0.0.0/0", "net9", ROUTER_PROTOCOL);
    let kept = link_route(254, "0.0.0.0/0", "net2", ROUTER_PROTOCOL);
    let cs = link_route(254, "0.0.0.0/0", "net1", PROTOCOL_BOOT);
    o.keep.insert_route(kept.clone());
    o.absent_routes.push(cs.key.clone());
    assert!(o.may_displace(&want.key, &stale));
    assert!(!o.may_displace(&want.key, &kept));
    assert!(!o.may_displace(&want.key, &cs), "absent, but no takeover");
    assert!(!o.may_replace(&want.key, &cs));
    o.takeover.insert(want.key.clone());
    assert!(o.may_displace(&want.key, &cs));
    assert!(!o.may_displace(&want.key, &kept));
    assert!(o.may_replace(&want.key, &cs));
    assert!(o.must_be_absent(&cs.key) && !o.must_be_absent(&want.key));
    let actual = ns(&[&want, &cs]);
    assert_eq!(o.absent_in(&actual).collect::<Vec<_>>(), [&cs]);
}

#[test]
fn a_shared_rule_is_released_only_when_no_owned_route_of_its_family_is_left() {
    let rule = Rule::owned_lookup(Family::Ipv4, 1000, None, None, 500);
    let o = Ownership::releasing(vec![rule.key.clone()]);
    assert!(o.releases_rules() && !Ownership::default().releases_rules());
    let mut actual = NetnsState::default();
    actual.insert_rule(rule.clone());
    let v4 = link_route(500, "10.0.0.1/32", "vethA", ROUTER_PROTOCOL);
    let v6 = link_route(500, "fd00::1/128", "vethA", ROUTER_PROTOCOL);
    let unowned = link_route(500, "10.0.0.2/32", "vethA", PROTOCOL_BOOT);
    assert!(o.released(&actual, &ns(&[&v4])).is_empty());
    assert_eq!(o.released(&actual, &ns(&[&v6, &unowned])), [&rule]);
    let foreign = Rule {
        protocol: 3,
        ..rule
    };
    actual.insert_rule(foreign);
    assert!(o.released(&actual, &NetnsState::default()).is_empty());
}
