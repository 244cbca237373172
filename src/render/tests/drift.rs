//! render tests, `drift`: drifts typed by object kind and state, the node-address cause's
//! wording, blocked holders, the one-line summary.

use super::*;

#[test]
fn route_and_rule_drifts_name_the_object_without_protocol() {
    let r = via(route("0.0.0.0/0", "net1"), "192.168.50.254", 100);
    let ru = rule(None, Some("10.240.0.0/12"), 100, 1000);
    assert_eq!(
        only_drift(add_route(Side::Pod, r.clone())),
        drift_of(
            ObjectKind::Route(Family::Ipv4),
            "default via 192.168.50.254 dev net1 table 100",
            DriftState::Missing,
            "present",
            "missing"
        )
    );
    assert_eq!(
        only_drift(Op::new(Side::Pod, Change::DelRule { rule: ru.clone() })),
        drift_of(
            ObjectKind::Rule(Family::Ipv4),
            "from all to 10.240.0.0/12 lookup 100 pref 1000",
            DriftState::Unexpected,
            "absent",
            "present"
        )
    );
    assert_eq!(only_drift(add_rule(Side::Pod, ru)).actual, "missing");
    let v6 = route("fd00::/64", "net1").normalised();
    assert_eq!(
        only_drift(add_route(Side::Pod, v6)).object,
        "route -6 fd00::/64 dev net1 metric 1024"
    );
}

#[test]
fn replace_route_drift_compares_new_spec_with_old_specs() {
    let new = route("0.0.0.0/0", "eth0");
    let old = vec![route("0.0.0.0/0", "net1"), route("0.0.0.0/0", "eth1")];
    let replace = Op::new(
        Side::Pod,
        Change::ReplaceRoute {
            old,
            new: new.clone(),
        },
    );
    assert_eq!(
        only_drift(replace),
        drift_of(
            ObjectKind::Route(Family::Ipv4),
            "default dev eth0",
            DriftState::Differs,
            "default dev eth0 proto 176",
            "default dev net1 proto 176; default dev eth1 proto 176"
        )
    );
    let fresh = Op::new(Side::Pod, Change::ReplaceRoute { old: vec![], new });
    assert_eq!(only_drift(fresh).actual, "missing");
}

#[test]
fn neighbour_drifts_compare_lladdr() {
    let n = neighbour("10.0.0.1", "0a:0b:0c:0d:0e:0f");
    let add = Op::new(
        Side::Pod,
        Change::AddNeighbour {
            neighbour: n.clone(),
        },
    );
    let object = "10.0.0.1 dev net1";
    let kind = ObjectKind::Neighbour;
    assert_eq!(
        only_drift(add),
        drift_of(
            kind,
            object,
            DriftState::Missing,
            "lladdr 0a:0b:0c:0d:0e:0f",
            "missing"
        )
    );
    let old = neighbour("10.0.0.1", "0a:0b:0c:0d:0e:01");
    let replace = Op::new(
        Side::Pod,
        Change::ReplaceNeighbour {
            old,
            new: n.clone(),
        },
    );
    assert_eq!(
        only_drift(replace),
        drift_of(
            kind,
            object,
            DriftState::Differs,
            "lladdr 0a:0b:0c:0d:0e:0f",
            "lladdr 0a:0b:0c:0d:0e:01"
        )
    );
    let del = Op::new(Side::Pod, Change::DelNeighbour { neighbour: n });
    assert_eq!(
        only_drift(del),
        drift_of(kind, object, DriftState::Unexpected, "absent", "present")
    );
}

#[test]
fn sysctl_and_mac_drifts_show_new_against_old_or_unset() {
    let set = only_drift(rp_filter("all", Some(2), 0));
    assert_eq!(
        (set.netns, set.object.as_str()),
        (Side::Host, "sysctl net.ipv4.conf.all.rp_filter")
    );
    assert_eq!((set.expected.as_str(), set.actual.as_str()), ("0", "2"));
    assert_eq!(only_drift(rp_filter("all", None, 0)).actual, "unset");
    assert_eq!(
        only_drift(set_mac(Some("02:00:00:00:00:01"))),
        drift_of(
            ObjectKind::Mac,
            "net1",
            DriftState::Differs,
            "0a:0b:0a:14:14:5f",
            "02:00:00:00:00:01"
        )
    );
    assert_eq!(only_drift(set_mac(None)).actual, "unknown");
}

#[test]
fn a_drift_due_to_a_node_address_says_so_in_the_summary_and_the_detail() {
    let n = neighbour("10.0.0.1", "0a:0b:0c:0d:0e:0f");
    let mut p = plan(
        vec![Op::new(Side::Pod, Change::AddNeighbour { neighbour: n })],
        vec![],
    );
    p.node_addresses.via = "net1".into();
    p.node_addresses.added.insert("10.0.0.1".parse().unwrap());
    let all = drifts(&p);
    let expected = "node address 10.0.0.1 (added since ADD) has no neighbour entry on net1";
    assert_eq!(
        all[0].cause.as_ref().map(ToString::to_string).as_deref(),
        Some(expected)
    );
    assert_eq!(drift_summary(&all), format!("1 drift: {expected}"));
    assert_eq!(
        drift_detail(&all[0]),
        format!("pod netns: neighbour 10.0.0.1 dev net1: expected lladdr 0a:0b:0c:0d:0e:0f, actual missing; {expected}")
    );
    let json = drifts_json(&all);
    assert_eq!(json[0]["cause"]["kind"], "node_address_added");
    assert_eq!(json[0]["cause"]["object"]["type"], "neighbour");
    // Without the change, the same op has no cause.
    p.node_addresses = Default::default();
    assert_eq!(drifts(&p)[0].cause, None);
}

#[test]
fn blocked_drift_names_the_unowned_holder_after_the_ops() {
    let p = plan(vec![set_mac(None)], vec![blocked_default(Side::Pod)]);
    let all = drifts(&p);
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[1],
        drift_of(
            ObjectKind::Route(Family::Ipv4),
            "default via 192.168.50.254 dev net1 table 100",
            DriftState::Blocked,
            "present",
            "held by unowned route default via 192.168.50.1 dev net1 table 100 proto boot"
        )
    );
}

#[test]
fn drift_summary_singular_names_object_state_and_netns() {
    let d = only_drift(add_rule(
        Side::Pod,
        rule(None, Some("10.240.0.0/12"), 100, 1000),
    ));
    assert_eq!(
        drift_summary(&[d]),
        "1 drift: rule `from all to 10.240.0.0/12 lookup 100 pref 1000` missing in pod"
    );
    assert_eq!(drift_summary(&[]), "no drift");
}

#[test]
fn drift_summary_plural_words_each_state() {
    let r = route("10.0.0.0/8", "net1");
    let p = plan(
        vec![
            Op::new(Side::Pod, Change::DelRoute { route: r }),
            rp_filter("all", Some(2), 0),
            set_mac(None),
        ],
        vec![blocked_default(Side::Host)],
    );
    assert_eq!(
        drift_summary(&drifts(&p)),
        "4 drifts: route `10.0.0.0/8 dev net1` unexpected in pod, \
         sysctl `net.ipv4.conf.all.rp_filter` differs in host, \
         mac of `net1` differs in pod, \
         route `default via 192.168.50.254 dev net1 table 100` blocked in host"
    );
}

#[test]
fn drift_summary_names_five_and_counts_the_rest() {
    let ops: Vec<Op> = (1..=7)
        .map(|i| add_route(Side::Pod, route(&format!("10.{i}.0.0/16"), "net1")))
        .collect();
    let line = drift_summary(&drifts(&plan(ops, vec![])));
    assert!(
        line.starts_with("7 drifts: route `10.1.0.0/16 dev net1` missing in pod, "),
        "{line}"
    );
    assert!(
        line.contains("route `10.5.0.0/16 dev net1` missing in pod, and 2 more"),
        "{line}"
    );
    assert!(!line.contains("10.6.0.0"), "{line}");
    assert_eq!(line.matches("missing").count(), 5);
}
