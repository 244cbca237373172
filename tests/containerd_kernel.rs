//! containerd end to end (issue 21): Debian's containerd 1.6 driven through its CRI API, as
//! kubelet drives it, runs router from a CNI bin dir. containerd runs in a throwaway node
//! netns with its own config and scratch directory (tests/common/containerd.rs); the node
//! has an uplink `up0` to an upstream netns, the macvlan master. eth0 is Debian's ptp +
//! host-local (the overlay), eth1 macvlan + host-local + router (the underlay), in
//! containerd's own two-network mode (`max_conf_num = 2`, two conflists, which go-cni
//! attaches in parallel). A pod is fully right when the node reaches its eth1 address
//! through table 500, its table 100 holds a copy of every route eth0 has in main and
//! `router check --all` over containerd's CNI cache finds it clean.
//!
//! A single chained conflist gives a pod one interface only (containerd names each
//! conflist's interface, eth0 for the first): router chained after ptp would be chained to
//! the overlay itself, which it refuses with code 104. That refusal, and that containerd
//! then leaves nothing, is what the one-conflist test proves.
//!
//! The tests share the machine's two cores with containerd: they run one at a time.

mod common;
#[path = "common/containerd.rs"]
mod containerd;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use common::cni::{host_state, Shell};
use common::run;
use containerd::{Containerd, Networks};

/// One containerd at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Pods started at once by the parallel test.
const PARALLEL: usize = 20;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `ip ARGS` in the pod netns at `netns` (containerd's mount, not a /run/netns name).
fn in_pod(netns: &Path, args: &[&str]) -> String {
    let mut all = vec![format!("--net={}", netns.display()), "ip".into()];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run("nsenter", &all)
}

/// The first IPv4 address of `dev` in the pod, without its prefix length.
fn pod_address(netns: &Path, dev: &str) -> Option<String> {
    let brief = in_pod(netns, &["-4", "-br", "addr", "show", "dev", dev]);
    let addr = brief.split_whitespace().nth(2)?;
    Some(addr.split('/').next().unwrap_or_default().to_string())
}

/// The routes of `table` through eth0, as (destination, gateway); none when the table does
/// not exist.
fn eth0_routes(netns: &Path, table: &str) -> BTreeSet<(String, Option<String>)> {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["ip", "-4", "route", "show", "table", table, "dev", "eth0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let dst = words.first()?.to_string();
            let via = words
                .iter()
                .position(|w| *w == "via")
                .and_then(|i| words.get(i + 1))
                .map(|g| g.to_string());
            Some((dst, via))
        })
        .collect()
}

/// The node's name of the link whose index is `index`.
fn node_link(c: &Containerd, index: &str) -> Option<String> {
    let links = c.node.host.ipx(&["-o", "link"]);
    links.lines().find_map(|line| {
        let (n, rest) = line.split_once(": ")?;
        let name = rest.split([':', '@']).next()?;
        (n == index).then(|| name.to_string())
    })
}

/// What makes a pod fully right, or what is missing: ready, eth1 addressed, the node's
/// table 500 routes eth1's address through eth0's veth peer and the node reaches it, and
/// table 100 holds ptp's default and a copy of every route eth0 has in main. Its eth1
/// address when right.
fn fully_right(c: &Containerd, id: &str) -> Result<String, String> {
    let status = c.status(id);
    if !status.ready {
        return Err("not ready".into());
    }
    let netns = &status.netns;
    let eth1 = pod_address(netns, "eth1").ok_or("eth1 has no address")?;
    let eth0_address = pod_address(netns, "eth0");
    if eth0_address.as_deref() != Some(status.eth0.as_str()) {
        return Err(format!(
            "PodSandboxStatus says {:?}, eth0 has {eth0_address:?}",
            status.eth0
        ));
    }
    let eth0 = in_pod(netns, &["-o", "link", "show", "dev", "eth0"]);
    let peer_index = eth0
        .split_once("eth0@if")
        .and_then(|(_, rest)| rest.split(':').next())
        .ok_or_else(|| format!("eth0 is no veth: {eth0}"))?;
    let peer = node_link(c, peer_index)
        .ok_or_else(|| format!("eth0's peer (index {peer_index}) is not in the node"))?;
    let t500 = c.node.host.table("-4", "500");
    if !t500.contains(&format!("{eth1} dev {peer} ")) {
        return Err(format!(
            "no table 500 route to {eth1} dev {peer} in the node ({} routes there)",
            t500.lines().count()
        ));
    }
    if !c.node.host.pings(&eth1) {
        return Err(format!("the node does not reach eth1 {eth1}"));
    }
    let main = eth0_routes(netns, "main");
    let t100 = eth0_routes(netns, "100");
    let missing: Vec<_> = main.difference(&t100).collect();
    if !missing.is_empty() {
        return Err(format!(
            "table 100 lacks eth0's main routes {missing:?} (table 100: {t100:?})"
        ));
    }
    if !t100
        .iter()
        .any(|(dst, via)| dst == "default" && via.is_some())
    {
        return Err(format!("table 100 has no default through eth0: {t100:?}"));
    }
    Ok(eth1)
}

/// `router check --all` lists every pod of `ids` clean and exits 0. The cache is the
/// machine's: when another runtime's entries are there too (a podman test running beside
/// this one), their verdicts are not this test's and neither is the exit code.
fn assert_check_all_clean(c: &Containerd, ids: &[String]) {
    let (code, report) = c.check_all();
    let foreign = c.foreign_cache_entries();
    if foreign.is_empty() {
        assert_eq!(code, 0, "router check --all:\n{report}");
    } else {
        eprintln!(
            "router check --all exit {code} not judged: {} cache entries of other runtimes",
            foreign.len()
        );
    }
    for id in ids {
        let clean = report
            .lines()
            .any(|l| l.starts_with("clean") && l.contains(&format!("{id}/eth1")));
        assert!(
            clean,
            "router check --all does not list {id}/eth1 clean:\n{report}"
        );
    }
}

/// What the test's pods leave: router's records, containerd's pod netns mounts, this
/// instance's libcni cache entries and the node's rules, table 500 and neighbours.
fn traces(c: &Containerd) -> (Vec<String>, Vec<String>, usize, String) {
    (
        c.records(),
        c.netns_mounts(),
        c.cache_entries().len(),
        host_state(&c.node),
    )
}

fn stop_and_remove_all(c: &Containerd, ids: &[String]) {
    for id in ids {
        c.stop_and_remove(id)
            .unwrap_or_else(|e| panic!("StopPodSandbox/RemovePodSandbox {id}: {e}"));
    }
    assert_eq!(
        c.sandboxes().unwrap(),
        Vec::<String>::new(),
        "sandboxes left"
    );
}

/// Whether a failed RunPodSandbox is router's refusal, code 104 (the overlay missing, not
/// ready, or the chained interface itself). containerd's error carries the CNI error's
/// message, not its code: libcni prints `msg` (and `details`) only.
fn is_router_refusal(error: &str) -> bool {
    error.contains("type=\"router\"") && error.contains("overlay_interface eth0 ")
}

/// RunPodSandbox, retried (as kubelet retries) while router refuses the pod with 104;
/// any other failure fails the test. What a refusal is worth is the parallel test's
/// business: this one needs running pods.
fn run_pod_as_kubelet(c: &Containerd, name: &str) -> String {
    let mut refusals = Vec::new();
    for _ in 0..5 {
        match c.run_pod(name) {
            Ok(id) => return id,
            Err(e) if is_router_refusal(&e) => refusals.push(e),
            Err(e) => panic!("RunPodSandbox {name}: {e}"),
        }
    }
    panic!("RunPodSandbox {name} refused 5 times: {refusals:#?}");
}

#[test]
fn containerd_two_network_pod_is_fully_right_checked_clean_and_removed_without_trace() {
    let _serial = serial();
    let c = Containerd::start(Networks::TwoConflists);
    let before = traces(&c);

    let id = c.run_pod("single").expect("RunPodSandbox");
    let eth1 = fully_right(&c, &id).unwrap_or_else(|e| panic!("pod {id}: {e}"));
    assert_eq!(c.records(), [format!("{id}-eth1.json")], "router's record");
    assert_check_all_clean(&c, std::slice::from_ref(&id));

    stop_and_remove_all(&c, std::slice::from_ref(&id));
    assert_eq!(
        traces(&c),
        before,
        "after StopPodSandbox + RemovePodSandbox"
    );
    assert!(!c.node.host.pings(&eth1), "{eth1} still answers");
}

#[test]
fn containerd_parallel_pods_are_each_fully_right_or_refused_by_router() {
    let _serial = serial();
    let c = Containerd::start(Networks::TwoConflists);
    let before = traces(&c);

    let names: Vec<String> = (0..PARALLEL).map(|i| format!("par{i}")).collect();
    let results = c.run_pods_in_parallel(&names);
    let mut started = Vec::new();
    let mut half = Vec::new();
    let mut refused = Vec::new();
    let mut other = Vec::new();
    for (name, result) in names.iter().zip(results) {
        match result {
            Ok(id) => {
                if let Err(why) = fully_right(&c, &id) {
                    half.push(format!("{name} ({id}): {why}"));
                }
                started.push(id);
            }
            Err(e) if is_router_refusal(&e) => refused.push(name.clone()),
            Err(e) => other.push(format!("{name}: {e}")),
        }
    }
    let (code, report) = c.check_all();
    eprintln!(
        "{PARALLEL} parallel RunPodSandbox: {} started ({} of them half-configured), {} refused \
         by router (104), {} failed otherwise; router check --all exit {code}",
        started.len(),
        half.len(),
        refused.len(),
        other.len()
    );
    for line in half.iter().chain(&other) {
        eprintln!("  {line}");
    }
    // Success is the norm: router waits for a settling overlay rather than refuse it.
    assert!(
        started.len() > PARALLEL / 2,
        "only {} of {PARALLEL} pods started: {refused:?} {other:#?}",
        started.len()
    );
    assert!(
        other.is_empty(),
        "failures that are not router's 104: {other:#?}"
    );
    assert!(
        half.is_empty(),
        "half-configured pods reported as started: {half:#?}\n{report}"
    );
    assert_check_all_clean(&c, &started);
    let records: BTreeSet<String> = c.records().into_iter().collect();
    let expected: BTreeSet<String> = started.iter().map(|id| format!("{id}-eth1.json")).collect();
    assert_eq!(
        records, expected,
        "a record per started pod, none for a refused one"
    );
    assert_eq!(
        c.netns_mounts().len(),
        started.len(),
        "a netns per started pod"
    );
    assert_eq!(
        c.node.host.table("-4", "500").lines().count(),
        started.len(),
        "a table 500 route per started pod, none for a refused one"
    );

    stop_and_remove_all(&c, &started);
    assert_eq!(traces(&c), before, "after every pod was removed");
}

#[test]
fn containerd_restart_keeps_running_pods_right_and_removable() {
    let _serial = serial();
    let mut c = Containerd::start(Networks::TwoConflists);
    let before = traces(&c);
    let ids: Vec<String> = (0..3)
        .map(|i| run_pod_as_kubelet(&c, &format!("kept{i}")))
        .collect();
    for id in &ids {
        fully_right(&c, id).unwrap_or_else(|e| panic!("pod {id} before the restart: {e}"));
    }
    let node_with_pods = host_state(&c.node);
    let shims = c.shims().len();
    assert_eq!(shims, ids.len(), "a shim per pod");
    assert!(
        !c.pod_processes().is_empty(),
        "no pod process in the pods' cgroup parent"
    );

    c.restart_process();
    assert_eq!(c.shims().len(), shims, "the pods' shims outlive containerd");
    let mut after: Vec<String> = c.sandboxes().unwrap();
    after.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(after, expected, "containerd recovered its pods");
    for id in &ids {
        fully_right(&c, id).unwrap_or_else(|e| panic!("pod {id} after the restart: {e}"));
    }
    assert_eq!(
        host_state(&c.node),
        node_with_pods,
        "node after the restart"
    );
    assert_check_all_clean(&c, &ids);

    stop_and_remove_all(&c, &ids);
    assert_eq!(traces(&c), before, "after the pods were removed");
    assert_eq!(c.pod_processes(), Vec::<i32>::new(), "pod processes left");
}

#[test]
fn containerd_one_chained_conflist_is_refused_by_router_and_leaves_nothing() {
    let _serial = serial();
    let c = Containerd::start(Networks::OneChainedConflist);
    let before = traces(&c);
    let error = c
        .run_pod("chained")
        .expect_err("router chained to eth0 itself must refuse the pod");
    assert!(
        is_router_refusal(&error) && error.contains("is the interface router is chained to"),
        "containerd's error does not carry router's refusal: {error}"
    );
    assert_eq!(
        c.sandboxes().unwrap(),
        Vec::<String>::new(),
        "sandboxes left"
    );
    assert_eq!(traces(&c), before, "after the refused pod");
}
