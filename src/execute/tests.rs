//! execute tests: what a route replace removes, the batches, ops without a pod netns.

use super::*;
use crate::model::{Rule, SysctlKey, SysctlName};
use crate::testkit::build::link_route;

fn rule_op(netns: Side, priority: u32) -> Op {
    Op::new(
        netns,
        Change::AddRule {
            rule: Rule::owned_lookup(crate::model::Family::Ipv4, priority, None, None, 100),
        },
    )
}

fn sysctl_op() -> Op {
    Op::new(
        Side::Pod,
        Change::SetSysctl {
            key: SysctlKey::new("all", SysctlName::RpFilter),
            old: None,
            new: 2,
        },
    )
}

/// A link route in main with `metric` set after normalising (IPv6 metric 0 stays 0).
fn route(dst: &str, dev: &str, metric: u32, protocol: u8) -> Route {
    let mut route = link_route(254, dst, dev, protocol);
    route.key.metric = metric;
    route
}

#[test]
fn a_replace_leaves_every_old_route_but_one_with_new_key_and_protocol() {
    let new = route("10.9.0.0/16", "net1", 0, 176);
    let same = route("10.9.0.0/16", "net1", 0, 176);
    let other_protocol = route("10.9.0.0/16", "net1", 0, 3);
    let other_dev = route("10.9.0.0/16", "eth0", 0, 176);
    let old = [same, other_protocol.clone(), other_dev.clone()];
    assert_eq!(
        routes_left_by_replace(&new, &old),
        vec![other_protocol, other_dev]
    );
    // Keys compare normalised: IPv6 metric 0 is 1024, the destination masked.
    let mut new = route("fd00:9::/64", "net1", 0, 176);
    new.key.dst = "fd00:9::1/64".parse().unwrap();
    let old = [route("fd00:9::/64", "net1", 1024, 176)];
    assert!(routes_left_by_replace(&new, &old).is_empty());
}

#[test]
fn batches_are_runs_of_one_single_request_kind() {
    let ops = [
        rule_op(Side::Pod, 1),
        rule_op(Side::Pod, 2),
        rule_op(Side::Pod, 3),
        sysctl_op(),
        sysctl_op(),
        rule_op(Side::Pod, 4),
    ];
    assert_eq!(batch_end(&ops, 0), 3);
    assert_eq!(batch_end(&ops, 1), 3);
    // A sysctl is a file write: never batched.
    assert_eq!(batch_end(&ops, 3), 4);
    assert_eq!(batch_end(&ops, 4), 5);
    assert_eq!(batch_end(&ops, 5), 6);
}

#[test]
fn ops_without_a_pod_netns_fail_at_the_first_pod_op() {
    let executor = LiveExecutor::new(None);
    // Host ops first would touch this process's netns: only pod ops here.
    let ops = [rule_op(Side::Pod, 1), rule_op(Side::Pod, 2)];
    let failed = executor.apply(&ops, &ActualState::default()).unwrap_err();
    assert_eq!(failed.index, 0);
    assert!(matches!(failed.error, Error::Io { .. }), "{failed:?}");
    let failures = executor.apply_all(&ops, &ActualState::default()).failures;
    assert_eq!(
        failures.iter().map(|f| f.index).collect::<Vec<_>>(),
        vec![0, 1]
    );
}
