//! CNI 1.1 GC and STATUS through the real binary on a real kernel: pods attached by the real
//! chain (ptp + host-local, macvlan + static, router), then GC with fewer and fewer valid
//! attachments: what is not listed loses its host routes, neighbours and record, what is
//! listed (and another network's record) is never touched, the shared host rule goes with
//! the last owned route, and the runtime's DEL afterwards still succeeds. Every namespace and
//! directory is the test's own.

mod common;

use std::fs;
use std::path::PathBuf;

use common::cni::*;
use serde_json::{json, Value};

/// router alone, run in the host netns as a runtime runs GC and STATUS: only CNI_COMMAND
/// and CNI_PATH are set.
fn plugin(node: &Node, command: &str, stdin: &Value) -> CniOutput {
    let env = [
        ("CNI_COMMAND", command.to_string()),
        ("CNI_PATH", "/usr/lib/cni".to_string()),
    ];
    CniOutput::from(
        node.spawn(&router_bin(), &env, stdin)
            .wait_with_output()
            .unwrap(),
    )
}

/// router's config in the net1 network as libcni passes it for GC (cniVersion 1.1.0).
fn gc_config(net1: &Network, valid: &[(&Pod, &str)]) -> Value {
    let mut conf = net1.conflist["plugins"][1].clone();
    conf["cniVersion"] = json!("1.1.0");
    conf["name"] = net1.conflist["name"].clone();
    conf["cni.dev/valid-attachments"] = valid
        .iter()
        .map(|(pod, ifname)| json!({"containerID": pod.id, "ifname": ifname}))
        .collect();
    conf
}

fn records(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(node.dir.join("router"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn record_of(pod: &Pod) -> String {
    format!("{}-net1.json", pod.id)
}

/// Lines of the host's table 500 (both families) and its permanent neighbours naming `addr`.
fn host_lines_for(node: &Node, addr: &str) -> Vec<String> {
    [
        node.host.table("-4", "500"),
        node.host.table("-6", "500"),
        node.host.ipx(&["neigh", "show", "nud", "permanent"]),
    ]
    .concat()
    .lines()
    .filter(|l| l.split_whitespace().next() == Some(addr))
    .map(String::from)
    .collect()
}

fn attach(node: &Node, tag: &str, index: u8) -> (Pod, Network, Network) {
    let pod = Pod::new(tag);
    let mut overlay = overlay_network(node, index, &[4, 6]);
    assert!(overlay.add(node, &pod).ok);
    let mut net1 = macvlan_network(node, "net1", index, &[4, 6], json!({}));
    let out = net1.add(node, &pod);
    assert!(out.ok, "{}", out.stdout);
    (pod, overlay, net1)
}

#[test]
fn gc_collects_what_is_not_listed_keeps_what_is_and_del_still_succeeds_afterwards() {
    let node = Node::new("gc");
    let host_before = host_state(&node);
    let (a, _, net_a) = attach(&node, "gca", 41);
    let (b, _, _net_b) = attach(&node, "gcb", 42);
    let (c, _, net_c) = attach(&node, "gcc", 43);
    let dir = node.dir.join("router");
    // A record of another network sharing data_dir, and a file that is no record.
    let mut other: Value =
        serde_json::from_slice(&fs::read(dir.join(record_of(&a))).unwrap()).unwrap();
    other["container_id"] = json!("ctr-other");
    other["network"] = json!("another-network");
    // Owning nothing: a record that wants A's objects would keep them from GC (rightly).
    other["pod"] = json!({});
    other["host"] = json!({});
    fs::write(dir.join("ctr-other-net1.json"), other.to_string()).unwrap();
    fs::write(dir.join("garbage.json"), b"{not a record").unwrap();
    let mut all = vec![
        record_of(&a),
        record_of(&b),
        record_of(&c),
        "ctr-other-net1.json".to_string(),
        "garbage.json".to_string(),
    ];
    all.sort();
    assert_eq!(records(&node), all);
    for index in [41, 42, 43] {
        assert_eq!(host_lines_for(&node, &underlay_v4(index)).len(), 2);
        assert_eq!(host_lines_for(&node, &underlay_v6(index)).len(), 2);
    }

    // C is not listed: its host routes and neighbours and its record go; A and B stay clean.
    let out = plugin(
        &node,
        "GC",
        &gc_config(&net_a, &[(&a, "net1"), (&b, "net1")]),
    );
    assert!(out.ok, "GC: {} {}", out.stdout, out.stderr);
    assert_eq!(out.stdout, "", "GC prints nothing on success");
    assert!(host_lines_for(&node, &underlay_v4(43)).is_empty());
    assert!(host_lines_for(&node, &underlay_v6(43)).is_empty());
    assert!(!records(&node).contains(&record_of(&c)));
    for index in [41, 42] {
        assert_eq!(host_lines_for(&node, &underlay_v4(index)).len(), 2);
    }
    assert!(net_a.invoke_one(&node, &a, "CHECK", "router").ok);
    assert!(node.host.ipx(&["rule"]).contains("lookup 500 proto 176"));

    // B's pod goes without a DEL (its veth and the routes through it with it): GC drops its
    // record.
    drop(b);
    let out = plugin(&node, "GC", &gc_config(&net_a, &[(&a, "net1")]));
    assert!(out.ok, "GC: {}", out.stdout);
    let mut left = vec![
        record_of(&a),
        "ctr-other-net1.json".to_string(),
        "garbage.json".to_string(),
    ];
    left.sort();
    assert_eq!(records(&node), left);
    assert!(net_a.invoke_one(&node, &a, "CHECK", "router").ok);

    // Nothing listed: A's host side goes, and with the last owned route the host rule.
    let out = plugin(&node, "GC", &gc_config(&net_a, &[]));
    assert!(out.ok, "GC: {}", out.stdout);
    assert_eq!(host_state(&node), host_before);
    assert_eq!(
        records(&node),
        vec![
            "ctr-other-net1.json".to_string(),
            "garbage.json".to_string()
        ]
    );

    // The runtime's DEL after GC (the pods live on) still succeeds and leaves nothing owned.
    for (pod, net) in [(&a, &net_a), (&c, &net_c)] {
        let out = net.del(&node, pod);
        assert!(out.ok, "DEL after GC: {}", out.stdout);
        let owned = pod.netns.ipx(&["route", "show", "table", "all"]);
        assert!(!owned.contains("proto 176"), "{owned}");
        assert!(!pod.netns.ipx(&["rule"]).contains("proto 176"));
    }
    assert_eq!(host_state(&node), host_before);
}

#[test]
fn status_is_ready_with_no_output_or_code_50_naming_an_unusable_data_dir() {
    let node = Node::new("status");
    let net1 = macvlan_network(&node, "net1", 44, &[4], json!({}));
    let mut conf = net1.conflist["plugins"][1].clone();
    conf["cniVersion"] = json!("1.1.0");
    conf["name"] = net1.conflist["name"].clone();
    let out = plugin(&node, "STATUS", &conf);
    assert!(out.ok, "{}", out.stdout);
    assert_eq!(out.stdout, "");
    let blocker: PathBuf = node.dir.join("not-a-dir");
    fs::write(&blocker, b"a file").unwrap();
    for data_dir in [blocker.clone(), blocker.join("data")] {
        conf["data_dir"] = json!(data_dir);
        let out = plugin(&node, "STATUS", &conf);
        assert!(!out.ok);
        assert_eq!(out.code(), Some(50), "{}", out.stdout);
        let msg = out.json()["msg"].as_str().unwrap_or_default().to_string();
        assert!(
            msg.contains(&*data_dir.to_string_lossy()) && msg.contains("not usable"),
            "{msg}"
        );
    }
}
