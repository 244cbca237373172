//! plan tests: the ops and blocked reports a desired and an actual state give.

use super::*;
use crate::model::{
    Change, Family, RouteSelector, Scope, SysctlKey, SysctlName, PROTOCOL_BOOT, ROUTER_PROTOCOL,
};
use crate::testkit::build::{holding, link_route, neighbour, rule};

fn selector(table: u32, dev: Option<&str>) -> RouteSelector {
    RouteSelector {
        table,
        dev: dev.map(str::to_string),
        dst_in: Default::default(),
    }
}

fn host_only(desired: DesiredNetns, actual: NetnsState, mode: Mode) -> Plan {
    let d = DesiredState {
        pod: DesiredNetns::default(),
        host: desired,
    };
    let a = ActualState {
        pod: None,
        host: actual,
        ..ActualState::default()
    };
    plan(&d, &a, mode)
}

fn wanting(routes: &[Route]) -> DesiredNetns {
    let mut d = DesiredNetns::default();
    for r in routes {
        d.present.insert_route(r.clone());
    }
    d
}

#[test]
fn missing_route_is_added() {
    let want = link_route(500, "10.0.0.5/32", "vethA", ROUTER_PROTOCOL);
    let p = host_only(
        wanting(std::slice::from_ref(&want)),
        NetnsState::default(),
        Mode::Add,
    );
    assert_eq!(
        p.ops,
        vec![Op::new(Side::Host, Change::AddRoute { route: want })]
    );
}

#[test]
fn stale_owned_route_through_another_device_is_replaced_in_one_step() {
    let want = link_route(500, "10.0.0.5/32", "vethA", ROUTER_PROTOCOL);
    let stale = link_route(500, "10.0.0.5/32", "vethOld", ROUTER_PROTOCOL);
    let p = host_only(
        wanting(std::slice::from_ref(&want)),
        holding(std::slice::from_ref(&stale)),
        Mode::Add,
    );
    assert_eq!(
        p.ops,
        vec![Op::new(
            Side::Host,
            Change::ReplaceRoute {
                old: vec![stale],
                new: want
            }
        )]
    );
}

#[test]
fn unowned_route_in_the_slot_blocks_and_is_not_touched() {
    let want = link_route(500, "10.0.0.5/32", "vethA", ROUTER_PROTOCOL);
    let foreign = link_route(500, "10.0.0.5/32", "vethOld", PROTOCOL_BOOT);
    let p = host_only(
        wanting(std::slice::from_ref(&want)),
        holding(std::slice::from_ref(&foreign)),
        Mode::Add,
    );
    assert!(p.ops.is_empty());
    assert_eq!(
        p.blocked,
        vec![Blocked {
            netns: Side::Host,
            wanted: Object::Route(want),
            found: Object::Route(foreign)
        }]
    );
}

#[test]
fn takeover_route_goes_next_to_an_unowned_route_it_is_not_told_to_replace() {
    let restore = link_route(254, "0.0.0.0/0", "eth0", PROTOCOL_BOOT);
    let other = link_route(254, "0.0.0.0/0", "net1", PROTOCOL_BOOT);
    let mut d = wanting(std::slice::from_ref(&restore));
    d.ownership.takeover.insert(restore.key.clone());
    let p = host_only(d, holding(std::slice::from_ref(&other)), Mode::Del);
    assert_eq!(
        p.ops,
        vec![Op::new(Side::Host, Change::AddRoute { route: restore })]
    );
}

#[test]
fn takeover_route_replaces_the_unowned_route_listed_absent_in_its_slot() {
    let restore = link_route(254, "0.0.0.0/0", "eth0", PROTOCOL_BOOT);
    let cs = link_route(254, "0.0.0.0/0", "net1", PROTOCOL_BOOT);
    let mut d = wanting(std::slice::from_ref(&restore));
    d.ownership.takeover.insert(restore.key.clone());
    d.ownership.absent_routes.push(cs.key.clone());
    let p = host_only(d, holding(std::slice::from_ref(&cs)), Mode::Del);
    assert_eq!(
        p.ops,
        vec![Op::new(
            Side::Host,
            Change::ReplaceRoute {
                old: vec![cs],
                new: restore
            }
        )]
    );
}

#[test]
fn unowned_route_with_the_same_effect_satisfies_the_wish() {
    let want = link_route(254, "10.0.0.5/32", "eth0", ROUTER_PROTOCOL);
    let theirs = link_route(254, "10.0.0.5/32", "eth0", PROTOCOL_BOOT);
    assert!(host_only(wanting(&[want]), holding(&[theirs]), Mode::Add).is_empty());
}

#[test]
fn owned_extras_in_scope_are_removed_but_unowned_and_kept_ones_are_not() {
    let extra = link_route(100, "10.9.0.0/16", "eth0", ROUTER_PROTOCOL);
    let kept = link_route(100, "10.8.0.0/16", "eth0", ROUTER_PROTOCOL);
    let foreign = link_route(100, "10.7.0.0/16", "eth0", PROTOCOL_BOOT);
    let other_table = link_route(101, "10.6.0.0/16", "eth0", ROUTER_PROTOCOL);
    let mut d = DesiredNetns::default();
    d.ownership.scope = Scope {
        routes: vec![selector(100, None)],
        ..Scope::default()
    };
    d.ownership.keep.insert_route(kept.clone());
    let p = host_only(
        d,
        holding(&[extra.clone(), kept, foreign, other_table]),
        Mode::Add,
    );
    assert_eq!(
        p.ops,
        vec![Op::new(Side::Host, Change::DelRoute { route: extra })]
    );
}

#[test]
fn absent_route_is_removed_even_when_unowned_as_a_documented_move() {
    let p_default = link_route(254, "0.0.0.0/0", "eth0", PROTOCOL_BOOT);
    let mut d = DesiredNetns::default();
    d.ownership.absent_routes.push(p_default.key.clone());
    let p = host_only(d, holding(std::slice::from_ref(&p_default)), Mode::Add);
    assert_eq!(
        p.ops,
        vec![Op::new(Side::Host, Change::DelRoute { route: p_default })]
    );
}

#[test]
fn rules_are_added_when_missing_and_owned_extras_of_the_table_removed() {
    let want = rule(
        Family::Ipv4,
        1000,
        None,
        Some("10.240.0.0/12"),
        100,
        ROUTER_PROTOCOL,
    );
    let extra = rule(
        Family::Ipv4,
        1000,
        None,
        Some("10.250.0.0/16"),
        100,
        ROUTER_PROTOCOL,
    );
    let foreign = rule(
        Family::Ipv4,
        1000,
        None,
        Some("10.251.0.0/16"),
        100,
        PROTOCOL_BOOT,
    );
    let mut d = DesiredNetns::default();
    d.present.insert_rule(want.clone());
    d.ownership.scope.rule_tables.insert(100);
    let mut a = NetnsState::default();
    a.insert_rule(extra.clone());
    a.insert_rule(foreign);
    let p = host_only(d, a, Mode::Add);
    assert_eq!(
        p.ops,
        vec![
            Op::new(Side::Host, Change::AddRule { rule: want }),
            Op::new(Side::Host, Change::DelRule { rule: extra })
        ]
    );
}

#[test]
fn neighbour_with_another_mac_is_replaced_when_owned_and_blocked_when_not() {
    let want = neighbour("eth0", "192.168.50.1", "a6:03:c3:8d:c9:f4", ROUTER_PROTOCOL);
    let stale = neighbour("eth0", "192.168.50.1", "00:00:00:00:00:01", ROUTER_PROTOCOL);
    let mut d = DesiredNetns::default();
    d.present.insert_neighbour(want.clone());
    let mut a = NetnsState::default();
    a.insert_neighbour(stale.clone());
    let p = host_only(d.clone(), a, Mode::Add);
    assert_eq!(
        p.ops,
        vec![Op::new(
            Side::Host,
            Change::ReplaceNeighbour {
                old: stale,
                new: want
            }
        )]
    );
    let mut foreign = NetnsState::default();
    foreign.insert_neighbour(neighbour("eth0", "192.168.50.1", "00:00:00:00:00:01", 0));
    let p = host_only(d, foreign, Mode::Add);
    assert!(p.ops.is_empty());
    assert_eq!(p.blocked.len(), 1);
}

#[test]
fn equal_sysctl_is_not_rewritten() {
    let key = SysctlKey::new("all", SysctlName::RpFilter);
    let mut d = DesiredNetns::default();
    d.present.sysctls.insert(key.clone(), 0);
    let mut a = NetnsState::default();
    a.sysctls.insert(key.clone(), 0);
    assert!(host_only(d.clone(), a.clone(), Mode::Add).is_empty());
    a.sysctls.insert(key.clone(), 2);
    assert_eq!(
        host_only(d, a, Mode::Add).ops,
        vec![Op::new(
            Side::Host,
            Change::SetSysctl {
                key,
                old: Some(2),
                new: 0
            }
        )]
    );
}

fn release_setup(routes_left: &[Route]) -> Plan {
    let host_rule = Rule::owned_lookup(Family::Ipv4, 1000, None, None, 500);
    let mine = link_route(500, "10.0.0.5/32", "vethA", ROUTER_PROTOCOL);
    let mut d = DesiredNetns::default();
    d.ownership.scope.routes.push(selector(500, Some("vethA")));
    d.ownership.release_when_unused.push(host_rule.key.clone());
    let mut a = holding(routes_left);
    a.insert_route(mine);
    a.insert_rule(host_rule);
    host_only(d, a, Mode::Del)
}

#[test]
fn shared_host_rule_is_released_with_the_last_owned_route_of_its_table() {
    let p = release_setup(&[]);
    assert!(
        matches!(
            p.ops.first().map(|op| &op.change),
            Some(Change::DelRule { .. })
        ),
        "{:?}",
        p.ops
    );
    assert_eq!(p.ops.len(), 2);
}

#[test]
fn shared_host_rule_stays_while_another_pod_has_a_route_in_its_table() {
    let p = release_setup(&[link_route(500, "10.0.0.6/32", "vethB", ROUTER_PROTOCOL)]);
    assert_eq!(p.ops.len(), 1);
    assert!(matches!(p.ops[0].change, Change::DelRoute { .. }));
}

#[test]
fn add_orders_copies_before_main_changes_and_removals_last() {
    let copy = link_route(100, "0.0.0.0/0", "eth0", ROUTER_PROTOCOL);
    let main_host = link_route(254, "192.168.50.1/32", "eth0", ROUTER_PROTOCOL);
    let p_default = link_route(254, "0.0.0.0/0", "eth0", PROTOCOL_BOOT);
    let cs_default = link_route(254, "0.0.0.0/0", "net1", PROTOCOL_BOOT);
    let mut d = wanting(&[main_host.clone(), copy.clone()]);
    d.ownership.absent_routes.push(p_default.key.clone());
    d.present
        .sysctls
        .insert(SysctlKey::new("all", SysctlName::RpFilter), 0);
    let p = host_only(d, holding(&[p_default.clone(), cs_default]), Mode::Add);
    let kinds: Vec<String> = p
        .ops
        .iter()
        .map(|op| {
            format!("{:?}", op.change)
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["SetSysctl", "AddRoute", "AddRoute", "DelRoute"]);
    assert_eq!(
        p.ops[1],
        Op::new(Side::Host, Change::AddRoute { route: copy })
    );
}

#[test]
fn pod_that_is_gone_gets_no_ops() {
    let mut d = DesiredState::default();
    d.pod
        .present
        .insert_route(link_route(100, "0.0.0.0/0", "eth0", ROUTER_PROTOCOL));
    assert!(plan(&d, &ActualState::default(), Mode::Del).is_empty());
}
