//! The default network's plugin and router's chain started at the same moment on one pod,
//! as containerd does when it attaches several networks itself (go-cni runs them in
//! parallel): every router ADD either leaves a fully right pod or fails with code 104 and
//! leaves nothing of router's. Never a half-configured success.

mod common;

use std::sync::Barrier;
use std::time::Duration;

use common::cni::*;
use common::Netns;
use serde_json::json;

const RUNS: usize = 50;
const POD_INDEX: u8 = 31;

/// Whether `ns` holds any object of router's (protocol 176), and which.
fn owned(ns: &Netns) -> Vec<String> {
    let mut found = Vec::new();
    for args in [
        &["route", "show", "table", "all"][..],
        &["rule"],
        &["neigh", "show"],
    ] {
        let shown = ns.ipx(args);
        found.extend(
            shown
                .lines()
                .filter(|l| l.contains("proto 176"))
                .map(str::to_string),
        );
    }
    found
}

/// The destinations of the pod's main-table routes through eth0 that are not router's.
fn eth0_main_destinations(pod: &Pod) -> Vec<String> {
    pod.netns
        .ipx(&["route", "show", "table", "main", "dev", "eth0"])
        .lines()
        .filter(|l| !l.contains("proto 176"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The destinations of the routes through eth0 in the pod table (100 for net1).
fn eth0_table_destinations(pod: &Pod) -> Vec<String> {
    pod.netns
        .ipx(&["route", "show", "table", "100"])
        .lines()
        .filter(|l| l.contains("dev eth0"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// A pod router says it configured: the node reaches net1, CHECK is clean, the pod table
/// holds a copy of every route eth0 has in main and the moved default.
fn assert_fully_right(node: &Node, pod: &Pod, net1: &Network, run: usize) {
    let address = underlay_v4(POD_INDEX);
    assert!(
        node.host.pings(&address),
        "run {run}: the node cannot reach net1 {address} after a successful ADD\n{}\n{}",
        node.host.ipx(&["route", "show", "table", "all"]),
        pod.netns.ipx(&["route", "show", "table", "all"])
    );
    let check = net1.invoke_one(node, pod, "CHECK", "router");
    assert!(
        check.ok,
        "run {run}: CHECK after a successful ADD: {}",
        check.stdout
    );
    let in_table = eth0_table_destinations(pod);
    assert!(
        in_table.iter().any(|d| d == "default"),
        "run {run}: no default through eth0 in table 100: {in_table:?}"
    );
    for dst in eth0_main_destinations(pod) {
        assert!(
            in_table.contains(&dst),
            "run {run}: eth0's route {dst} is in main but not copied into table 100: {in_table:?}"
        );
    }
}

#[test]
fn router_racing_the_overlay_plugin_either_configures_fully_or_fails_104_leaving_nothing() {
    let node = Node::new("race");
    let host_before = host_state(&node);
    let (mut succeeded, mut refused) = (0, 0);
    for run in 0..RUNS {
        let pod = Pod::new("race");
        let mut overlay = overlay_network(&node, POD_INDEX, &[4]);
        let mut net1 = macvlan_network(&node, "net1", POD_INDEX, &[4], json!({}));
        let start = Barrier::new(2);
        // The overlay plugin's start is swept across router's chain (macvlan and static run
        // first), so that some runs read the overlay before it exists, some before its
        // veth peer reaches the node and some while its routes are still being added.
        let offset = Duration::from_micros(600 * run as u64);
        let (overlay_out, router_out) = std::thread::scope(|s| {
            let overlay_side = s.spawn(|| {
                start.wait();
                std::thread::sleep(offset);
                overlay.add(&node, &pod)
            });
            let router_side = s.spawn(|| {
                start.wait();
                net1.add(&node, &pod)
            });
            let joined = (overlay_side.join(), router_side.join());
            match joined {
                (Ok(o), Ok(r)) => (o, r),
                _ => panic!("run {run}: a chain thread panicked"),
            }
        });
        if router_out.ok {
            succeeded += 1;
            assert!(
                overlay_out.ok,
                "run {run}: router succeeded though the overlay failed: {}",
                overlay_out.stdout
            );
            assert_fully_right(&node, &pod, &net1, run);
        } else {
            refused += 1;
            assert_eq!(
                router_out.code(),
                Some(104),
                "run {run}: router failed with another code: {} {}",
                router_out.stdout,
                router_out.stderr
            );
            assert!(
                owned(&pod.netns).is_empty() && owned(&node.host).is_empty(),
                "run {run}: a refused ADD left router's objects: {:?} {:?}",
                owned(&pod.netns),
                owned(&node.host)
            );
        }
        let del = net1.del(&node, &pod);
        assert!(del.ok, "run {run}: net1 DEL: {} {}", del.stdout, del.stderr);
        let del = overlay.del(&node, &pod);
        assert!(del.ok, "run {run}: eth0 DEL: {} {}", del.stdout, del.stderr);
        assert!(
            owned(&pod.netns).is_empty(),
            "run {run}: DEL left {:?}",
            owned(&pod.netns)
        );
    }
    assert_eq!(host_state(&node), host_before, "the node after {RUNS} runs");
    let log = std::fs::read_to_string(node.dir.join("router.log")).unwrap_or_default();
    let waits = log
        .lines()
        .filter(|l| l.contains("overlay interface not ready yet"))
        .count();
    let restarts = log
        .lines()
        .filter(|l| l.contains("the overlay interface changed while ADD ran"))
        .count();
    eprintln!(
        "{succeeded} of {RUNS} ADDs configured the pod fully, {refused} failed with 104; \
         {waits} reads found the overlay not ready, {restarts} ADDs rolled back and started over"
    );
    assert_eq!(succeeded + refused, RUNS);
}
