//! The live reconciler on a real kernel with the real upstream plugins (Debian's ptp,
//! host-local, macvlan, static), invoked as libcni does. Every namespace is the test's own.

mod common;

use common::cni::*;
use common::{run, Netns};
use router::model::{SysctlKey, SysctlName};
use serde_json::{json, Value};

fn added(node: &Node, pod: &Pod, network: &mut Network) -> Value {
    let out = network.add(node, pod);
    assert!(
        out.ok,
        "{} ADD: {} {}",
        network.ifname, out.stdout, out.stderr
    );
    out.json()
}

#[test]
fn router_makes_the_node_reach_the_pods_macvlan_address_which_fails_without_it() {
    let (node, pod, _overlay) = pod_with_overlay("reach", 1, &[4, 6]);
    let mut bare = bare_macvlan_network(&node, "net1", 1, &[4, 6]);
    added(&node, &pod, &mut bare);
    assert!(
        !node.host.pings(&underlay_v4(1)),
        "the node reaches a macvlan pod without router?"
    );
    assert!(bare.del(&node, &pod).ok);

    let mut net1 = macvlan_network(&node, "net1", 1, &[4, 6], json!({}));
    added(&node, &pod, &mut net1);
    assert!(node.host.pings(&underlay_v4(1)), "node -> pod net1 (IPv4)");
    assert!(node.host.pings(&underlay_v6(1)), "node -> pod net1 (IPv6)");
    assert!(node.ext.pings(&underlay_v4(1)), "ext -> pod net1 (IPv4)");
    assert!(node.ext.pings(&underlay_v6(1)), "ext -> pod net1 (IPv6)");
    assert!(pod.netns.pings(NODE_V4), "pod -> node over eth0 (IPv4)");
    assert!(pod.netns.pings(NODE_V6), "pod -> node over eth0 (IPv6)");
}

#[test]
fn add_leaves_exactly_the_documented_kernel_state_and_the_result_carries_the_mac() {
    let (node, pod, _overlay) = pod_with_overlay("state", 2, &[4, 6]);
    let mut net1 = macvlan_network(&node, "net1", 2, &[4, 6], json!({"mac_prefix": "0a:0b"}));
    let result = added(&node, &pod, &mut net1);
    let ns = &pod.netns;

    let rules = ns.ipx(&["rule"]);
    for rule in [
        "1000:\tfrom all to 10.244.0.0/16 lookup 100 proto 176",
        "1000:\tfrom all to 10.96.0.0/12 lookup 100 proto 176",
        "1000:\tfrom 10.244.2.2 lookup 100 proto 176",
    ] {
        assert!(rules.contains(rule), "missing {rule:?} in\n{rules}");
    }
    let rules6 = ns.ipx(&["-6", "rule"]);
    assert!(
        rules6.contains("from all to fd00:10:244::/48 lookup 100 proto 176"),
        "{rules6}"
    );
    let t = ns.table("-4", "100");
    assert!(
        t.contains("default via 10.244.2.1 dev eth0 table 100 proto 176"),
        "{t}"
    );
    assert!(
        t.contains("192.168.50.1 dev eth0 table 100 proto 176 scope link"),
        "{t}"
    );
    let main = ns.ipx(&["route", "show", "table", "main"]);
    assert!(
        main.contains("default via 192.168.50.254 dev net1"),
        "{main}"
    );
    assert!(
        !main.contains("default via 10.244.2.1"),
        "eth0's default stayed in main:\n{main}"
    );
    assert!(
        main.contains("192.168.50.1 dev eth0 proto 176 scope link"),
        "{main}"
    );
    let main6 = ns.ipx(&["-6", "route", "show", "table", "main"]);
    assert!(
        !main6.contains("via fd00:10:244:2::1 dev eth0 metric 1024"),
        "{main6}"
    );
    let neigh = ns.ipx(&["neigh", "show", "nud", "permanent"]);
    assert!(neigh.contains("192.168.50.1 dev eth0 lladdr"), "{neigh}");
    assert_eq!(ns.sysctl_text("net.ipv4.conf.net1.rp_filter"), "0");
    assert_eq!(ns.sysctl_text("net.ipv6.conf.all.disable_ipv6"), "0");

    let mac = "0a:0b:c0:a8:32:0c";
    assert!(ns.ipx(&["link", "show", "net1"]).contains(mac));
    let net1_entry = result["interfaces"]
        .as_array()
        .and_then(|i| i.iter().find(|i| i["name"] == "net1"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(net1_entry["mac"], mac, "{result}");

    let log = std::fs::read_to_string(node.dir.join("router.log")).unwrap_or_default();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "done"),
        "{log}"
    );

    let host = &node.host;
    assert!(host
        .ipx(&["rule"])
        .contains("1000:\tfrom all lookup 500 proto 176"));
    assert!(host
        .ipx(&["-6", "rule"])
        .contains("from all lookup 500 proto 176"));
    let t500 = host.table("-4", "500");
    assert!(
        t500.contains(&format!("{} dev veth", underlay_v4(2))),
        "{t500}"
    );
    let t500v6 = host.table("-6", "500");
    assert!(
        t500v6.contains(&format!("{} dev veth", underlay_v6(2))),
        "{t500v6}"
    );
    assert!(host
        .ipx(&["neigh", "show", "nud", "permanent"])
        .contains(&underlay_v4(2)));
}

#[test]
fn the_whole_chain_checks_clean_after_add_and_a_repeated_add_changes_nothing() {
    let (node, pod, _overlay) = pod_with_overlay("check", 3, &[4, 6]);
    let mut net1 = macvlan_network(&node, "net1", 3, &[4, 6], json!({"mac_prefix": "0a:0b"}));
    let first = added(&node, &pod, &mut net1);
    let check = net1.check(&node, &pod);
    assert!(check.ok, "chain CHECK: {} {}", check.stdout, check.stderr);
    let before = (pod_state(&pod), host_state(&node));
    let again = net1.invoke_one(&node, &pod, "ADD", "router");
    assert!(again.ok, "{}", again.stdout);
    assert_eq!(again.json(), first);
    assert_eq!((pod_state(&pod), host_state(&node)), before);
}

/// A change made behind router's back.
type Tamper<'a> = Box<dyn Fn() + 'a>;

/// Each kind of tampering is drift that router's CHECK reports with code 100, naming it.
#[test]
fn check_reports_each_kind_of_tampering_with_code_100() {
    let (node, pod, _overlay) = pod_with_overlay("tamper", 4, &[4]);
    let mut net1 = macvlan_network(&node, "net1", 4, &[4], json!({"mac_prefix": "0a:0b"}));
    added(&node, &pod, &mut net1);
    let pod_ns = &pod.netns;
    let tampers: Vec<(&str, Tamper)> = vec![
        (
            "10.96.0.0/12",
            Box::new(|| {
                pod_ns.ipx(&[
                    "rule",
                    "del",
                    "to",
                    "10.96.0.0/12",
                    "lookup",
                    "100",
                    "pref",
                    "1000",
                ]);
            }),
        ),
        (
            "default via 10.244.4.1",
            Box::new(|| {
                pod_ns.ipx(&[
                    "route",
                    "replace",
                    "default",
                    "via",
                    "10.244.4.1",
                    "dev",
                    "eth0",
                    "table",
                    "100",
                    "proto",
                    "176",
                    "metric",
                    "0",
                    "onlink",
                ]);
            }),
        ),
        (
            "neighbour 192.168.50.1",
            Box::new(|| {
                pod_ns.ipx(&["neigh", "del", "192.168.50.1", "dev", "eth0"]);
            }),
        ),
        (
            "rp_filter",
            Box::new(|| pod_ns.set_sysctl("net.ipv4.conf.net1.rp_filter", 1)),
        ),
        (
            "mac of net1",
            Box::new(|| {
                pod_ns.ipx(&["link", "set", "net1", "address", "02:00:00:00:00:01"]);
            }),
        ),
    ];
    for (what, tamper) in &tampers {
        tamper();
        let out = net1.invoke_one(&node, &pod, "CHECK", "router");
        assert!(!out.ok, "{what}: CHECK passed");
        assert_eq!(out.code(), Some(100), "{what}: {}", out.stdout);
        assert!(
            out.stdout.contains(what),
            "{what} not named: {}",
            out.stdout
        );
        let repaired = net1.invoke_one(&node, &pod, "ADD", "router");
        assert!(repaired.ok, "{what}: ADD repairs: {}", repaired.stdout);
        assert!(
            net1.invoke_one(&node, &pod, "CHECK", "router").ok,
            "{what}: clean after repair"
        );
    }
    let host_route = underlay_v4(4);
    let veth = node.host.table("-4", "500");
    let dev = veth
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    node.host
        .ipx(&["route", "del", &host_route, "dev", &dev, "table", "500"]);
    let out = net1.invoke_one(&node, &pod, "CHECK", "router");
    assert_eq!(out.code(), Some(100), "{}", out.stdout);
    assert!(
        out.stdout.contains(&host_route) && out.stdout.contains("host"),
        "{}",
        out.stdout
    );
}

#[test]
fn del_restores_the_pod_and_the_host_exactly_and_a_second_del_succeeds() {
    let (node, pod, _overlay) = pod_with_overlay("del", 5, &[4, 6]);
    let (pod_before, host_before) = (pod_state(&pod), host_state(&node));
    let mut net1 = macvlan_network(&node, "net1", 5, &[4, 6], json!({"mac_prefix": "0a:0b"}));
    added(&node, &pod, &mut net1);
    let out = net1.del(&node, &pod);
    assert!(out.ok, "chain DEL: {} {}", out.stdout, out.stderr);
    assert_eq!(pod_state(&pod), pod_before);
    assert_eq!(host_state(&node), host_before);
    let again = net1.invoke_one(&node, &pod, "DEL", "router");
    assert!(again.ok, "second DEL: {}", again.stdout);
    let mut without_prev = net1.conflist["plugins"][1].clone();
    without_prev["cniVersion"] = json!("0.3.1");
    without_prev["name"] = json!("old");
    let bare = node.invoke(&router_bin(), "DEL", &pod, "net1", &without_prev);
    assert!(bare.ok, "DEL without prevResult: {}", bare.stdout);
}

#[test]
fn del_when_the_pod_netns_is_gone_cleans_the_host() {
    let (node, pod, _overlay) = pod_with_overlay("gone", 6, &[4]);
    let host_before = host_state(&node);
    let mut net1 = macvlan_network(&node, "net1", 6, &[4], json!({}));
    added(&node, &pod, &mut net1);
    let Pod { netns, id } = pod;
    let path = netns.path();
    drop(netns);
    let ghost = Pod {
        netns: Netns {
            name: format!("gone-{}", std::process::id()),
        },
        id,
    };
    let mut conf = net1.conflist["plugins"][1].clone();
    conf["cniVersion"] = json!("1.0.0");
    conf["name"] = json!("macvlan-overlay-net1");
    conf["prevResult"] = net1.cached.clone().unwrap_or(Value::Null);
    let out = node.invoke(&router_bin(), "DEL", &ghost, "net1", &conf);
    std::mem::forget(ghost);
    assert!(
        out.ok,
        "DEL with the pod gone ({}): {}",
        path.display(),
        out.stdout
    );
    assert_eq!(host_state(&node), host_before);
}

/// 20 pods ADDed in parallel, then DELed in parallel: the host ends as it began, and the
/// shared host rule is there exactly while any pod is attached.
#[test]
fn twenty_pods_in_parallel_leave_the_host_as_before() {
    const PODS: u8 = 20;
    let node = Node::new("par");
    let host_before = host_state(&node);
    let pods: Vec<(Pod, Network, Network)> = (0..PODS)
        .map(|i| {
            let pod = Pod::new("par");
            let overlay = overlay_network(&node, 100 + i, &[4]);
            let net1 = macvlan_network(&node, "net1", 100 + i, &[4], json!({}));
            (pod, overlay, net1)
        })
        .collect();
    let pods: Vec<(Pod, Network, Network)> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .into_iter()
            .map(|(pod, mut overlay, mut net1)| {
                let node = &node;
                s.spawn(move || {
                    added(node, &pod, &mut overlay);
                    added(node, &pod, &mut net1);
                    (pod, overlay, net1)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let routes = node.host.table("-4", "500");
    assert_eq!(routes.lines().count(), usize::from(PODS), "{routes}");
    let (last, rest) = pods.split_last().unwrap();
    std::thread::scope(|s| {
        for (pod, _, net1) in rest {
            let node = &node;
            s.spawn(move || assert!(net1.del(node, pod).ok));
        }
    });
    assert!(
        node.host.ipx(&["rule"]).contains("lookup 500"),
        "the shared rule went early"
    );
    assert!(last.2.del(&node, &last.0).ok);
    assert!(!node.host.ipx(&["rule"]).contains("lookup 500"));
    for (pod, overlay, _) in &pods {
        assert!(overlay.del(&node, pod).ok);
    }
    assert_eq!(host_state(&node), host_before);
}

#[test]
fn an_ipv6_only_pod_is_reached_over_its_macvlan_address() {
    let (node, pod, _overlay) = pod_with_overlay("six", 8, &[6]);
    let (pod_before, host_before) = (pod_state(&pod), host_state(&node));
    let mut net1 = macvlan_network(&node, "net1", 8, &[6], json!({}));
    added(&node, &pod, &mut net1);
    assert!(node.host.pings(&underlay_v6(8)), "node -> pod net1 (IPv6)");
    assert!(node.ext.pings(&underlay_v6(8)), "ext -> pod net1 (IPv6)");
    assert!(pod.netns.pings(NODE_V6), "pod -> node over eth0 (IPv6)");
    assert!(pod
        .netns
        .ipx(&["-6", "rule"])
        .contains("lookup 100 proto 176"));
    assert!(
        !pod.netns.ipx(&["rule"]).contains("lookup 100"),
        "IPv4 rules in an IPv6-only pod"
    );
    assert!(
        !node.host.ipx(&["rule"]).contains("lookup 500"),
        "IPv4 host rule for an IPv6-only pod"
    );
    assert!(net1.check(&node, &pod).ok);
    assert!(net1.del(&node, &pod).ok);
    assert_eq!(
        (pod_state(&pod), host_state(&node)),
        (pod_before, host_before)
    );
}

/// net2, a second macvlan: its own table 101 takes net1's routes, and net1 keeps working
/// and checking clean while net2 comes and goes.
#[test]
fn a_second_macvlan_gets_its_own_table_and_leaves_the_first_intact() {
    let (node, pod, _overlay) = pod_with_overlay("two", 9, &[4]);
    let mut net1 = macvlan_network(&node, "net1", 9, &[4], json!({}));
    added(&node, &pod, &mut net1);
    let with_net1 = (pod_state(&pod), host_state(&node));
    let mut net2 = macvlan_network(&node, "net2", 29, &[4], json!({}));
    added(&node, &pod, &mut net2);
    let t101 = pod.netns.table("-4", "101");
    assert!(
        t101.contains("default via 192.168.50.254 dev net1"),
        "{t101}"
    );
    assert!(pod
        .netns
        .ipx(&["rule"])
        .contains("from 192.168.50.19 lookup 101"));
    assert!(
        net1.check(&node, &pod).ok,
        "net1 drifts once net2 is attached"
    );
    assert!(net2.check(&node, &pod).ok);
    assert!(node.host.pings(&underlay_v4(9)), "node -> net1");
    assert!(node.host.pings(&underlay_v4(29)), "node -> net2");
    assert!(net2.del(&node, &pod).ok);
    assert_eq!(pod.netns.table("-4", "101"), "", "net2's table outlived it");
    assert!(net1.check(&node, &pod).ok, "net1 drifts once net2 is gone");
    assert!(
        node.host.pings(&underlay_v4(9)),
        "node -> net1 after net2 went"
    );
    assert_eq!((pod_state(&pod), host_state(&node)), with_net1);
}

#[test]
fn only_op_mac_changes_the_mac_and_nothing_else_and_del_restores_it() {
    let (node, pod, _overlay) = pod_with_overlay("mac", 10, &[4]);
    let mut bare = bare_macvlan_network(&node, "net1", 10, &[4]);
    added(&node, &pod, &mut bare);
    let before = (pod_state(&pod), host_state(&node));
    let old_mac = pod.netns.link_mac("net1");
    let mut net1 = macvlan_network(
        &node,
        "net1",
        10,
        &[4],
        json!({"mac_prefix": "0a:0b", "only_op_mac": true}),
    );
    net1.cached = bare.cached.clone();
    let add = net1.invoke_one(&node, &pod, "ADD", "router");
    assert!(add.ok, "{}", add.stdout);
    let new_mac = "0a:0b:c0:a8:32:14";
    assert_eq!(pod.netns.link_mac("net1"), new_mac);
    assert_eq!(
        add.json()["interfaces"][0]["mac"],
        new_mac,
        "{}",
        add.stdout
    );
    assert_eq!((pod_state(&pod), host_state(&node)), before);
    net1.cached = Some(add.json());
    assert!(
        net1.check(&node, &pod).ok,
        "the chain's CHECK, macvlan's included"
    );
    assert!(net1.invoke_one(&node, &pod, "DEL", "router").ok);
    assert_eq!(pod.netns.link_mac("net1"), old_mac);
    assert_eq!((pod_state(&pod), host_state(&node)), before);
}

#[test]
fn a_derived_mac_taken_by_a_pod_with_the_same_address_is_explained() {
    let node = Node::new("dupmac");
    let mut pods = Vec::new();
    let mut outputs = Vec::new();
    for (tag, overlay_index) in [("dupa", 11), ("dupb", 12)] {
        let pod = Pod::new(tag);
        let mut overlay = overlay_network(&node, overlay_index, &[4]);
        added(&node, &pod, &mut overlay);
        // Both pods get 192.168.50.21 on up0: the same derived MAC.
        let mut net1 = macvlan_network(&node, "net1", 11, &[4], json!({"mac_prefix": "0a:0b"}));
        outputs.push(net1.add(&node, &pod));
        pods.push((pod, overlay, net1));
    }
    assert!(outputs[0].ok, "{}", outputs[0].stdout);
    let second = &outputs[1];
    assert_eq!(second.code(), Some(102), "{}", second.stdout);
    let msg = second.json()["msg"].as_str().unwrap().to_string();
    for words in [
        "the derived MAC 0a:0b:c0:a8:32:15 for net1 is taken by another interface on the same master",
        "another pod holds 192.168.50.21 on the same master",
    ] {
        assert!(msg.contains(words), "{words}:\n{msg}");
    }
    let (pod_b, _, _) = &pods[1];
    assert_ne!(pod_b.netns.link_mac("net1"), "0a:0b:c0:a8:32:15");
}

#[test]
fn a_repeated_add_routes_a_node_address_added_since_the_first() {
    let (node, pod, _overlay) = pod_with_overlay("naddr", 13, &[4]);
    let mut net1 = macvlan_network(&node, "net1", 13, &[4], json!({}));
    let result = added(&node, &pod, &mut net1);
    node.host
        .ipx(&["addr", "add", "198.51.100.3/24", "dev", "up0"]);
    let check = net1.invoke_one(&node, &pod, "CHECK", "router");
    assert_eq!(check.code(), Some(100), "{}", check.stdout);
    let again = net1.invoke_with(&node, &pod, "ADD", "router", &result);
    assert!(again.ok, "{}", again.stdout);
    for table in ["main", "100"] {
        let routes = pod.netns.ipx(&["route", "show", "table", table]);
        assert!(
            routes.contains("198.51.100.3 dev eth0"),
            "table {table}:\n{routes}"
        );
    }
    assert!(
        net1.check(&node, &pod).ok,
        "the chain's CHECK after the repeated ADD"
    );
}

/// No route, rule or neighbour with router's protocol is left in `ns`.
fn assert_nothing_owned(ns: &Netns) {
    for args in [
        &["route", "show", "table", "all"][..],
        &["-6", "route", "show", "table", "all"],
        &["rule"],
        &["-6", "rule"],
        &["neigh", "show"],
        &["-6", "neigh", "show"],
    ] {
        let shown = ns.ipx(args);
        let owned: Vec<&str> = shown.lines().filter(|l| l.contains("proto 176")).collect();
        assert!(owned.is_empty(), "{args:?} in {}: {owned:?}", ns.name);
    }
}

/// An ADD router rejects (code 7) fails the chain after macvlan made the interface; the
/// runtime's DEL (no cached result, reverse order, as libcni and Multus's rollback run it)
/// must pass router so that macvlan's DEL removes the interface.
fn rejected_add_is_undone_by_the_chain_del(tag: &str, index: u8, ifname: &str, router: Value) {
    let (node, pod, _overlay) = pod_with_overlay(tag, index, &[4, 6]);
    let (pod_before, host_before) = (pod_state(&pod), host_state(&node));
    let mut net = macvlan_network(&node, ifname, index, &[4, 6], router);
    let add = net.add(&node, &pod);
    assert!(!add.ok, "router accepted the ADD: {}", add.stdout);
    assert_eq!(add.code(), Some(7), "{}", add.stdout);
    assert!(
        pod.netns.try_exec(&["ip", "link", "show", ifname]),
        "macvlan made no {ifname}"
    );
    let del = net.del(&node, &pod);
    assert!(del.ok, "chain DEL: {} {}", del.stdout, del.stderr);
    assert!(
        !pod.netns.try_exec(&["ip", "link", "show", ifname]),
        "{ifname} stayed: macvlan's DEL did not run"
    );
    assert_eq!(pod_state(&pod), pod_before);
    assert_eq!(host_state(&node), host_before);
    assert_nothing_owned(&pod.netns);
    assert_nothing_owned(&node.host);
}

#[test]
fn an_interface_without_a_derivable_table_fails_add_with_7_and_the_chain_del_removes_it() {
    rejected_add_is_undone_by_the_chain_del("macv", 40, "macv", json!({}));
}

#[test]
fn a_multus_rollback_of_a_rejected_config_passes_router_and_removes_net1() {
    let invalid = json!({ "service_hijack_subnet": ["172.96.0.1/18"] });
    rejected_add_is_undone_by_the_chain_del("rollb", 41, "net1", invalid);
}

#[test]
fn del_with_the_config_made_invalid_after_add_leaves_pod_and_node_as_before() {
    let (node, pod, _overlay) = pod_with_overlay("edited", 42, &[4, 6]);
    let (pod_before, host_before) = (pod_state(&pod), host_state(&node));
    let mut net1 = macvlan_network(&node, "net1", 42, &[4, 6], json!({"mac_prefix": "0a:0b"}));
    added(&node, &pod, &mut net1);
    assert!(
        !node.host.table("-4", "500").is_empty(),
        "ADD made no host route"
    );
    net1.conflist["plugins"][1]["service_hijack_subnet"] = json!(["172.96.0.1/18"]);
    let check = net1.invoke_one(&node, &pod, "CHECK", "router");
    assert_eq!(check.code(), Some(7), "{}", check.stdout);
    let del = net1.del(&node, &pod);
    assert!(del.ok, "chain DEL: {} {}", del.stdout, del.stderr);
    assert_eq!(pod_state(&pod), pod_before);
    assert_eq!(host_state(&node), host_before);
    assert_nothing_owned(&pod.netns);
    assert_nothing_owned(&node.host);
    let log = std::fs::read_to_string(node.dir.join("router.log")).unwrap();
    assert!(
        log.contains("the config is not usable") && log.contains("172.96.0.1/18"),
        "DEL did not log the invalid key and value:\n{log}"
    );
}

/// A runtime that attaches networks in random order (podman) runs router before eth0
/// exists: ADD fails loudly, naming eth0 and the pod netns, with nothing applied; the DEL
/// the runtime then sends succeeds; once eth0 is there the same network attaches fully.
#[test]
fn add_before_eth0_exists_fails_naming_it_and_changes_nothing_and_del_succeeds() {
    let node = Node::new("noo");
    let pod = Pod::new("noo");
    let (pod_before, host_before) = (routing(&pod.netns), host_state(&node));
    // A short wait: the overlay never comes while this ADD waits for it.
    let mut net1 = macvlan_network(&node, "net1", 11, &[4], json!({"overlay_wait": "100ms"}));
    let out = net1.add(&node, &pod);
    assert!(!out.ok, "ADD without eth0 succeeded: {}", out.stdout);
    assert_eq!(out.code(), Some(104), "{}", out.stdout);
    let msg = out.json()["msg"].as_str().unwrap_or_default().to_string();
    let netns = pod.netns.path().display().to_string();
    for part in [
        "overlay_interface eth0 is not in the pod",
        netns.as_str(),
        "nothing was changed",
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
    // The macvlan made net1; router changed nothing around it and wrote no record.
    let records = node.dir.join("router");
    let no_records = || {
        std::fs::read_dir(&records)
            .map(|d| {
                d.flatten()
                    .all(|e| !e.file_name().to_string_lossy().ends_with(".json"))
            })
            .unwrap_or(true)
    };
    assert!(no_records(), "a record was written");
    assert_eq!(host_state(&node), host_before);
    let del = net1.del(&node, &pod);
    assert!(
        del.ok,
        "DEL after the refused ADD: {} {}",
        del.stdout, del.stderr
    );
    assert_eq!(
        (routing(&pod.netns), host_state(&node)),
        (pod_before, host_before)
    );
    assert!(no_records());

    let mut overlay = overlay_network(&node, 11, &[4]);
    assert!(overlay.add(&node, &pod).ok);
    added(&node, &pod, &mut net1);
    assert!(node.host.pings(&underlay_v4(11)), "node -> pod net1");
    let rules = pod.netns.ipx(&["rule"]);
    assert!(rules.contains("from 10.244.11.2 lookup 100"), "{rules}");
    assert!(net1.check(&node, &pod).ok, "the chain's CHECK");
}

/// Every rule, route and permanent neighbour of a netns, both families.
fn routing(ns: &Netns) -> String {
    [
        ns.ipx(&["rule"]),
        ns.ipx(&["-6", "rule"]),
        ns.ipx(&["route", "show", "table", "all"]),
        ns.ipx(&["-6", "route", "show", "table", "all"]),
        ns.ipx(&["neigh", "show", "nud", "permanent"]),
    ]
    .join("\n")
}

/// One end of a veth pair: its name, ifindex and netns.
struct VethEnd<'a>(&'a str, u32, &'a Netns);

/// A veth pair with explicit indexes (ifindexes are per netns, so they can be made to
/// collide on purpose).
fn veth_pair(a: VethEnd, b: VethEnd) {
    let (a_index, b_index) = (a.1.to_string(), b.1.to_string());
    run(
        "ip",
        &[
            "link", "add", a.0, "index", &a_index, "netns", &a.2.name, "type", "veth", "peer",
            "name", b.0, "index", &b_index, "netns", &b.2.name,
        ],
    );
}

/// A pod whose eth0 is a veth with its peer in a netns other than the node's (returned,
/// for the caller to keep alive), both ends with the given indexes.
fn pod_with_eth0_peered_elsewhere(tag: &str, indexes: (u32, u32)) -> (Pod, Netns) {
    let pod = Pod::new(tag);
    let elsewhere = netns_up(&format!("{tag}o"));
    veth_pair(
        VethEnd("eth0", indexes.0, &pod.netns),
        VethEnd("peer0", indexes.1, &elsewhere),
    );
    pod.netns.ip("addr add 10.244.12.2/24 dev eth0
         link set eth0 up
         route add default via 10.244.12.1 dev eth0");
    (pod, elsewhere)
}

/// ADD on a pod whose eth0 is a veth with its peer outside the node netns: the overlay is
/// not ready (a default network's plugin moves the peer to the node), so after waiting
/// `overlay_wait` ADD fails with code 104 saying why, and nothing changed anywhere.
fn refused_while_the_peer_is_elsewhere(node: &Node, pod: &Pod) {
    let (pod_before, host_before) = (routing(&pod.netns), host_state(node));
    let mut net1 = macvlan_network(node, "net1", 12, &[4], json!({"overlay_wait": "200ms"}));
    let out = net1.add(node, pod);
    assert_eq!(out.code(), Some(104), "{} {}", out.stdout, out.stderr);
    let msg = out.json()["msg"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains("veth whose peer is not in this (the node's) netns")
            && msg.contains("nothing was changed"),
        "{msg}"
    );
    assert_eq!(host_state(node), host_before, "the node changed");
    // macvlan made net1 before router ran; the chain's DEL removes it.
    assert!(net1.del(node, pod).ok);
    assert_eq!(routing(&pod.netns), pod_before, "the pod's routing changed");
}

/// eth0 a veth whose peer sits in another netns than the node's (the indexes are chosen
/// so that no node veth collides with them).
#[test]
fn eth0_a_veth_peered_outside_the_node_fails_104_after_the_wait_and_changes_nothing() {
    let node = Node::new("nopeer");
    let (pod, _elsewhere) = pod_with_eth0_peered_elsewhere("nopeer", (4000, 4001));
    refused_while_the_peer_is_elsewhere(&node, &pod);
}

/// eth0 no veth at all (here a macvlan whose master is outside the pod): no host peer by
/// design, so the host side is skipped as documented, with a warning, and ADD succeeds.
#[test]
fn eth0_that_is_no_veth_skips_the_host_side_with_a_warning() {
    let node = Node::new("noveth");
    let pod = Pod::new("noveth");
    let elsewhere = netns_up("novetho");
    elsewhere.ipx(&["link", "add", "m0", "type", "veth", "peer", "name", "m0p"]);
    elsewhere.ipx(&["link", "set", "m0", "up"]);
    elsewhere.ipx(&[
        "link", "add", "eth0", "link", "m0", "type", "macvlan", "mode", "bridge",
    ]);
    elsewhere.ipx(&["link", "set", "eth0", "netns", &pod.netns.name]);
    pod.netns.ip("addr add 10.244.13.2/24 dev eth0
         link set eth0 up
         route add default via 10.244.13.1 dev eth0");
    let host_before = host_state(&node);
    let mut net1 = macvlan_network(&node, "net1", 13, &[4], json!({}));
    added(&node, &pod, &mut net1);
    assert_eq!(
        host_state(&node),
        host_before,
        "a host side without a host peer"
    );
    let log = std::fs::read_to_string(node.dir.join("router.log")).unwrap_or_default();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("eth0 is in the pod but has no veth peer in the host netns")),
        "{log}"
    );
    assert!(net1.del(&node, &pod).ok);
}

/// The podman case: eth0's peer is in another netns, and the node's uplink veth up0 has
/// the index of eth0's peer while up0's own peer (ext0, in a third netns) has eth0's
/// index. Indexes alone take up0 for H and build the host side through the uplink; the
/// netns ids say up0's peer is not eth0, so the overlay is not ready and nothing is
/// touched, up0 least of all.
#[test]
fn a_node_veth_with_colliding_indexes_is_not_taken_for_the_host_peer() {
    let node = Node::new("collide");
    let (up0, ext0) = (node.host.ifindex("up0"), node.ext.ifindex("ext0"));
    let (pod, _elsewhere) = pod_with_eth0_peered_elsewhere("collide", (ext0, up0));
    // Not the value router writes to H, so a write to up0 would show.
    node.host.set_sysctl("net.ipv4.conf.up0.rp_filter", 1);
    refused_while_the_peer_is_elsewhere(&node, &pod);
    let up0_rp_filter = SysctlKey::new("up0", SysctlName::RpFilter);
    assert_eq!(node.host.sysctl(&up0_rp_filter), 1, "up0's rp_filter");
}

/// A record damaged on disk (a crash mid-write on a filesystem without atomic rename, a
/// hand edit) must not block the teardown: DEL logs it, goes on from the config,
/// prevResult and the owned objects the kernel shows, and removes the record.
#[test]
fn del_with_an_unreadable_record_removes_what_router_owns_and_the_record() {
    let (node, pod, _overlay) = pod_with_overlay("badrec", 43, &[4, 6]);
    let mut net1 = macvlan_network(&node, "net1", 43, &[4, 6], json!({}));
    added(&node, &pod, &mut net1);
    let record = node
        .dir
        .join("router")
        .join(format!("{}-net1.json", pod.id));
    std::fs::write(&record, b"{\"version\": 1, \"container_id\": tru").unwrap();
    let check = net1.invoke_one(&node, &pod, "CHECK", "router");
    assert!(!check.ok, "CHECK read a damaged record: {}", check.stdout);
    let del = net1.del(&node, &pod);
    assert!(del.ok, "chain DEL: {} {}", del.stdout, del.stderr);
    assert_nothing_owned(&pod.netns);
    assert_nothing_owned(&node.host);
    assert!(!record.exists(), "the damaged record is left");
    let log = std::fs::read_to_string(node.dir.join("router.log")).unwrap();
    assert!(
        log.contains("DEL goes on without the attachment record it cannot read"),
        "{log}"
    );
}

/// The shared host rule's priority is the one ADD made it with: a `host_rule_priority`
/// edited after ADD must not leave the old rule on the node when the last pod goes.
#[test]
fn del_releases_the_host_rule_add_made_after_its_priority_was_edited() {
    let (node, pod, _overlay) = pod_with_overlay("hprio", 44, &[4, 6]);
    let host_before = host_state(&node);
    let mut net1 = macvlan_network(&node, "net1", 44, &[4, 6], json!({}));
    added(&node, &pod, &mut net1);
    net1.conflist["plugins"][1]["host_rule_priority"] = json!(2000);
    let del = net1.del(&node, &pod);
    assert!(del.ok, "chain DEL: {} {}", del.stdout, del.stderr);
    assert_nothing_owned(&node.host);
    assert_eq!(host_state(&node), host_before);
}

/// router's log lines about entering and leaving `netns` (its debug line for each setns),
/// in order, from byte `from` on: true for an entry, false for a return.
fn visits_to(node: &Node, netns: &Netns, from: usize) -> Vec<bool> {
    let log = std::fs::read_to_string(node.dir.join("router.log")).unwrap_or_default();
    let path = netns.path().display().to_string();
    log[from..]
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["fields"]["netns"] == path)
        .filter_map(|l| match l["fields"]["message"].as_str() {
            Some("entered netns") => Some(true),
            Some("left netns") => Some(false),
            _ => None,
        })
        .collect()
}

/// Every entry into the pod netns is followed by the return from it before anything else
/// enters, and a run enters only to open what must be opened inside (the netlink socket,
/// the files of `all` and `default`, the IPv6 link sysctl files a plan writes) and for the
/// IP conflict probe: the snapshot, every run of pod ops and any re-read then go from the
/// node through what was opened.
#[test]
fn an_add_and_a_del_visit_the_pod_netns_only_to_open_what_lives_there_and_always_come_back() {
    let (node, pod, _overlay) = pod_with_overlay("once", 21, &[4, 6]);
    let extra = json!({
        "mac_prefix": "0a:0b",
        "ip_conflict": {"enabled": true, "interval": "50ms", "retries": 1}
    });
    let mut net1 = macvlan_network(&node, "net1", 21, &[4, 6], extra);
    added(&node, &pod, &mut net1);
    let add = visits_to(&node, &pod.netns, 0);
    let from = std::fs::metadata(node.dir.join("router.log")).map_or(0, |m| m.len() as usize);
    let out = net1.del(&node, &pod);
    assert!(out.ok, "chain DEL: {} {}", out.stdout, out.stderr);
    let del = visits_to(&node, &pod.netns, from);
    for (command, visits, most) in [("ADD", &add, 4), ("DEL", &del, 3)] {
        let paired = visits.chunks(2).all(|pair| pair == [true, false]);
        assert!(paired && visits.len() % 2 == 0, "{command}: {visits:?}");
        let entries = visits.len() / 2;
        assert!(
            (1..=most).contains(&entries),
            "{command} entered {entries} times"
        );
    }
}

/// The `phase` lines router logged from byte `from` of its log on: their names, in order.
fn phases_since(node: &Node, from: usize) -> Vec<String> {
    let log = std::fs::read_to_string(node.dir.join("router.log")).unwrap_or_default();
    log[from..]
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["fields"]["message"] == "phase")
        .map(|l| {
            l["fields"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// DEL reads once what it must remove and restore, and once under the host lock whether the
/// shared rule is still used; the restore of the previous default by one ACKed route replace
/// needs no read after it.
#[test]
fn del_reads_the_attachment_once_and_the_shared_rule_once_and_nothing_after_its_replace() {
    let (node, pod, _overlay) = pod_with_overlay("delreads", 45, &[4, 6]);
    let mut net1 = macvlan_network(&node, "net1", 45, &[4, 6], json!({}));
    added(&node, &pod, &mut net1);
    let from = std::fs::metadata(node.dir.join("router.log"))
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let del = net1.del(&node, &pod);
    assert!(del.ok, "chain DEL: {} {}", del.stdout, del.stderr);
    let phases = phases_since(&node, from);
    let reads = phases.iter().filter(|p| *p == "snapshot").count();
    assert_eq!(reads, 2, "{phases:?}");
    assert!(!phases.iter().any(|p| p == "verify"), "{phases:?}");
    assert_nothing_owned(&pod.netns);
    assert_nothing_owned(&node.host);
}
