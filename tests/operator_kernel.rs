//! The operator commands (`router plan`, `router snapshot`, `router check [--all]
//! [--repair]`) on a real kernel: pods attached by the real chain (Debian's ptp, host-local,
//! macvlan, static, then router) as libcni does, a result cache written in libcni's
//! format, and the router binary run inside the test's "host" netns. Every namespace and
//! directory is the test's own and is removed when it ends.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::cni::*;
use common::operator::*;
use common::unique;
use serde_json::{json, Value};

/// `router check --all` over these caches and the node's data_dir only (never the
/// machine's own /var/lib/cni or /run/cni/router).
fn check_all(node: &Node, caches: &[&Cache], extra: &[&str]) -> Run {
    let data_dir = node.dir.join("router");
    let mut args = vec!["check", "--all", "--data-dir", data_dir.to_str().unwrap()];
    for cache in caches {
        args.extend(["--cache-dir", cache.path()]);
    }
    args.extend_from_slice(extra);
    router(node, &args)
}

fn attachment_args<'a>(cache: &'a Cache, pod: &'a Pod) -> Vec<&'a str> {
    vec![
        "--cache-dir",
        cache.path(),
        "--container-id",
        &pod.id,
        "--ifname",
        "net1",
    ]
}

fn with<'a>(mut base: Vec<&'a str>, more: &[&'a str]) -> Vec<&'a str> {
    base.extend_from_slice(more);
    base
}

#[test]
fn plan_is_empty_after_add_and_after_tampering_lists_exactly_the_repairs() {
    let node = Node::new("oplan");
    let (pod, _overlay, net1) = attached_pod(&node, "oplan", 1);
    let cache = Cache::new("oplanc");
    cache.write(&net1, &pod.id, Some(&pod.netns.path()));
    let plan = with(vec!["plan"], &attachment_args(&cache, &pod));

    let clean = router(&node, &plan);
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
    assert_eq!(clean.stdout, "nothing to do\n");
    // The same with the config and the netns named instead of taken from the cache.
    let conflist = cache.dir.join("conflist.json");
    fs::write(&conflist, net1.conflist.to_string()).unwrap();
    let netns = pod.netns.path();
    let explicit = router(
        &node,
        &with(
            plan.clone(),
            &[
                "--config",
                conflist.to_str().unwrap(),
                "--netns",
                netns.to_str().unwrap(),
            ],
        ),
    );
    assert_eq!(
        (explicit.code, explicit.stdout.as_str()),
        (0, "nothing to do\n")
    );

    let veth = tamper(&node, &pod, 1);
    let drifted = router(&node, &plan);
    assert_eq!(drifted.code, 2, "{}{}", drifted.stdout, drifted.stderr);
    let expected = format!(
        "pod netns {}:\n  \
         ~ sysctl -w net.ipv4.conf.net1.rp_filter=0  # was 1\n  \
         + ip rule add from all to 10.96.0.0/12 lookup 100 pref 1000 proto 176\n\
         host netns (local):\n  \
         + ip route add {} dev {veth} table 500 scope link proto 176\n\
         3 ops pending\n",
        netns.display(),
        underlay_v4(1)
    );
    assert_eq!(drifted.stdout, expected);

    let json = router(&node, &with(plan.clone(), &["--output", "json"]));
    assert_eq!(json.code, 2);
    let doc = json.json();
    assert_eq!(doc["schema"], "router.plan/v1");
    assert_eq!(doc["pending"], 3);
    assert_eq!(doc["netns"]["pod"], json!(netns));
    let commands: Vec<&str> = doc["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        // Plan order: the pod's ops (sysctls, routes, rules), then the host's.
        [
            "sysctl -w net.ipv4.conf.net1.rp_filter=0".to_string(),
            "ip rule add from all to 10.96.0.0/12 lookup 100 pref 1000 proto 176".to_string(),
            format!(
                "ip route add {} dev {veth} table 500 scope link proto 176",
                underlay_v4(1)
            ),
        ]
    );
    // router's own CHECK agrees that this is drift.
    assert_eq!(
        net1.invoke_one(&node, &pod, "CHECK", "router").code(),
        Some(100)
    );
}

/// The ops (and blocked objects) of a plan in JSON: what must match between two plans
/// whose netns labels differ.
fn ops_of(run: &Run) -> (Value, Value) {
    let doc = run.json();
    (doc["ops"].clone(), doc["blocked"].clone())
}

/// The plan of `plan_args` offline, from a snapshot taken with `snapshot_args`, against
/// the live plan: the same ops, for an ADD and a DEL.
fn assert_offline_equals_live(
    node: &Node,
    cache: &Cache,
    record: &Path,
    plan_args: &[&str],
    snapshot_args: &[&str],
    what: &str,
) {
    let snapshot = router(node, &with(vec!["snapshot"], snapshot_args));
    assert_eq!(snapshot.code, 0, "{what}: {}", snapshot.stderr);
    let file = cache.dir.join("snapshot.json");
    fs::write(&file, &snapshot.stdout).unwrap();
    for del in [false, true] {
        let mode: &[&str] = if del { &["--del"] } else { &[] };
        let plan = with(with(vec!["plan", "--output", "json"], plan_args), mode);
        let live = router(node, &plan);
        let files = [
            "--snapshot",
            file.to_str().unwrap(),
            "--record",
            record.to_str().unwrap(),
        ];
        let offline = router(node, &with(plan.clone(), &files));
        assert!(
            live.code == 0 || live.code == 2,
            "{what} del={del}: {}{}",
            live.stdout,
            live.stderr
        );
        assert_eq!(
            offline.code, live.code,
            "{what} del={del}: {}",
            offline.stderr
        );
        assert_eq!(ops_of(&offline), ops_of(&live), "{what} del={del}");
        assert!(offline.json()["netns"]["pod"]
            .as_str()
            .unwrap()
            .contains("snapshot"));
    }
}

#[test]
fn an_offline_plan_of_a_fresh_snapshot_equals_the_live_plan() {
    let node = Node::new("osnap");
    let (pod, _overlay, net1) = attached_pod(&node, "osnap", 2);
    let cache = Cache::new("osnapc");
    cache.write(&net1, &pod.id, Some(&pod.netns.path()));
    let args = attachment_args(&cache, &pod);
    let record = node
        .dir
        .join("router")
        .join(format!("{}-net1.json", pod.id));
    assert!(
        record.exists(),
        "ADD wrote no record at {}",
        record.display()
    );
    let netns = pod.netns.path();
    // A snapshot for the attachment, and one of the whole pod (no config: every table).
    let whole_pod = ["--netns", netns.to_str().unwrap()];
    for tampered in [false, true] {
        if tampered {
            tamper(&node, &pod, 2);
        }
        for (snapshot_args, kind) in [(&args[..], "attachment"), (&whole_pod[..], "whole pod")] {
            let what = format!("{kind} snapshot, tampered={tampered}");
            assert_offline_equals_live(&node, &cache, &record, &args, snapshot_args, &what);
        }
    }
}

#[test]
fn an_offline_plan_refuses_a_snapshot_without_a_table_it_needs() {
    let node = Node::new("otbl");
    let (pod, _overlay, net1) = attached_pod(&node, "otbl", 5);
    let cache = Cache::new("otblc");
    cache.write(&net1, &pod.id, Some(&pod.netns.path()));
    let netns = pod.netns.path();
    let snapshot = router(&node, &["snapshot", "--netns", netns.to_str().unwrap()]);
    assert_eq!(snapshot.code, 0, "{}", snapshot.stderr);
    let mut state = snapshot.json();
    assert_eq!(state["tables"], json!({"pod": "all", "host": "all"}));
    // What a snapshot of the pod's main table alone says of itself (and holds).
    state["tables"]["pod"] = json!([254]);
    let main_only = cache.dir.join("main-only.json");
    fs::write(&main_only, state.to_string()).unwrap();
    let plan = router(
        &node,
        &with(
            vec!["plan", "--snapshot", main_only.to_str().unwrap()],
            &attachment_args(&cache, &pod),
        ),
    );
    assert_eq!(plan.code, 1, "{}{}", plan.stdout, plan.stderr);
    assert_eq!(plan.stdout, "");
    assert!(
        plan.stderr.contains("route table 100")
            && plan.stderr.contains("router snapshot --netns PATH"),
        "{}",
        plan.stderr
    );
}

/// A node with: pod A's net1 (clean; its cache entry records no netns, as libcni before
/// 1.2 writes it, so the netns comes from router's record), pod A's eth0 (ptp: no router),
/// pod B's net1 (drifted), a net1 whose netns is gone, and a legacy file that is no
/// cniCacheV1 entry.
struct Scene {
    node: Node,
    a: Pod,
    b: Pod,
    b_net1: Network,
    cache: Cache,
    gone_id: String,
    _keep: Vec<Network>,
}

fn scene(tag: &str) -> Scene {
    let node = Node::new(tag);
    let (a, a_eth0, a_net1) = attached_pod(&node, &format!("{tag}a"), 3);
    let (b, _b_eth0, b_net1) = attached_pod(&node, &format!("{tag}b"), 4);
    let cache = Cache::new(&format!("{tag}c"));
    cache.write(&a_net1, &a.id, None);
    cache.write(&a_eth0, &a.id, Some(&a.netns.path()));
    cache.write(&b_net1, &b.id, Some(&b.netns.path()));
    let gone_id = format!("ctr-{}", unique("gone"));
    let gone_netns = PathBuf::from("/run/netns").join(unique("gone"));
    cache.write(&a_net1, &gone_id, Some(&gone_netns));
    fs::write(
        cache.dir.join("results").join("legacy-c9-eth0"),
        r#"{"cniVersion":"0.3.1","ips":[]}"#,
    )
    .unwrap();
    tamper(&node, &b, 4);
    Scene {
        node,
        a,
        b,
        b_net1,
        cache,
        gone_id,
        _keep: vec![a_eth0, a_net1],
    }
}

impl Scene {
    fn check_all(&self, extra: &[&str]) -> Run {
        check_all(&self.node, &[&self.cache], extra)
    }

    /// (status, drift count) per "container/ifname" of a `router.check/v1` document.
    fn statuses(doc: &Value) -> Vec<(String, String, usize)> {
        let mut rows: Vec<(String, String, usize)> = doc["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    format!(
                        "{}/{}",
                        a["container_id"].as_str().unwrap(),
                        a["ifname"].as_str().unwrap()
                    ),
                    a["status"].as_str().unwrap().to_string(),
                    a["drifts"].as_array().unwrap().len(),
                )
            })
            .collect();
        rows.sort();
        rows
    }

    fn expected(&self, b_status: &str, b_drifts: usize) -> Vec<(String, String, usize)> {
        let mut rows = vec![
            ("/".to_string(), "skipped".to_string(), 0),
            (format!("{}/eth0", self.a.id), "skipped".to_string(), 0),
            (format!("{}/net1", self.a.id), "clean".to_string(), 0),
            (
                format!("{}/net1", self.b.id),
                b_status.to_string(),
                b_drifts,
            ),
            (format!("{}/net1", self.gone_id), "gone".to_string(), 0),
        ];
        rows.sort();
        rows
    }
}

#[test]
fn check_all_reports_clean_drifted_gone_and_non_router_attachments() {
    let s = scene("ochk");
    let json = s.check_all(&["--output", "json"]);
    assert_eq!(json.code, 2, "{}{}", json.stdout, json.stderr);
    let doc = json.json();
    assert_eq!(doc["schema"], "router.check/v1");
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(Scene::statuses(&doc), s.expected("drift", 3));
    assert_eq!(
        doc["summary"],
        json!({"attachments": 5, "clean": 1, "drift": 1, "repaired": 0, "gone": 1, "stale": 0,
               "skipped": 2, "error": 0})
    );
    let b = doc["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["container_id"] == json!(s.b.id) && a["ifname"] == "net1")
        .unwrap();
    let objects: Vec<(&str, &str)> = b["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["netns"].as_str().unwrap(), d["object"].as_str().unwrap()))
        .collect();
    assert_eq!(objects.len(), 3);
    assert!(
        objects.contains(&("pod", "sysctl net.ipv4.conf.net1.rp_filter")),
        "{objects:?}"
    );
    assert!(objects
        .iter()
        .any(|(ns, o)| *ns == "host" && o.contains(&underlay_v4(4))));

    let text = s.check_all(&[]);
    assert_eq!(text.code, 2);
    let lines: Vec<&str> = text.stdout.lines().collect();
    let line_of = |prefix: &str, who: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(prefix) && l.contains(who))
    };
    assert!(
        line_of("clean ", &format!("{}/net1", s.a.id)),
        "{}",
        text.stdout
    );
    assert!(
        line_of("drift ", &format!("{}/net1", s.b.id)),
        "{}",
        text.stdout
    );
    assert!(line_of("gone ", &s.gone_id), "{}", text.stdout);
    assert!(
        !text.stdout.contains("/eth0"),
        "skipped entries are only counted in text: {}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("pod netns: sysctl net.ipv4.conf.net1.rp_filter: expected 0, actual 1"),
        "{}",
        text.stdout
    );
    assert!(text
        .stdout
        .ends_with("5 attachments: 1 clean, 1 drift, 1 gone, 2 skipped\n"));

    // One attachment at a time: the drifted one is 2, the clean one 0, the gone one 1.
    let one = |id: &str| {
        router(
            &s.node,
            &[
                "check",
                "--cache-dir",
                s.cache.path(),
                "--container-id",
                id,
                "--ifname",
                "net1",
            ],
        )
    };
    assert_eq!(one(&s.b.id).code, 2);
    let a_netns = s.a.netns.path();
    let a_check = router(
        &s.node,
        &[
            "check",
            "--cache-dir",
            s.cache.path(),
            "--container-id",
            &s.a.id,
            "--ifname",
            "net1",
            "--netns",
            a_netns.to_str().unwrap(),
        ],
    );
    assert_eq!(a_check.code, 0, "{}{}", a_check.stdout, a_check.stderr);
    assert_eq!(one(&s.gone_id).code, 1);
}

#[test]
fn repair_restores_the_drifted_attachment_and_check_passes_again() {
    let s = scene("orep");
    let repaired = s.check_all(&["--repair", "--output", "json"]);
    assert_eq!(repaired.code, 0, "{}{}", repaired.stdout, repaired.stderr);
    let doc = repaired.json();
    assert_eq!(Scene::statuses(&doc), s.expected("repaired", 3));
    let b = doc["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["container_id"] == json!(s.b.id) && a["ifname"] == "net1")
        .unwrap();
    assert_eq!(b["repair"]["applied"].as_array().unwrap().len(), 3, "{b}");
    assert_eq!(b["repair"]["remaining"], json!([]));

    let check = s.b_net1.invoke_one(&s.node, &s.b, "CHECK", "router");
    assert!(check.ok, "router's CHECK after repair: {}", check.stdout);
    let chain = s.b_net1.check(&s.node, &s.b);
    assert!(chain.ok, "the chain's CHECK after repair: {}", chain.stdout);
    let again = s.check_all(&[]);
    assert_eq!(again.code, 0, "{}", again.stdout);
    assert!(s.node.host.pings(&underlay_v4(4)), "node -> repaired pod");
}

/// Everything protocol 176 marks in a netns, as `ip` shows it: routes of every table,
/// rules and permanent neighbours of both families.
fn owned_objects(ns: &common::Netns) -> Vec<String> {
    let mut lines = Vec::new();
    for family in ["-4", "-6"] {
        for what in [
            &["route", "show", "table", "all"][..],
            &["rule", "show"][..],
            &["neigh", "show", "nud", "permanent"][..],
        ] {
            let out = ns.ipx(&with(vec![family], what));
            lines.extend(
                out.lines()
                    .filter(|l| l.contains("proto 176"))
                    .map(String::from),
            );
        }
    }
    lines
}

fn router_check(network: &Network, node: &Node, pod: &Pod) -> CniOutput {
    network.invoke_one(node, pod, "CHECK", "router")
}

fn assert_clean(network: &Network, node: &Node, pod: &Pod, when: &str) {
    let check = router_check(network, node, pod);
    assert!(
        check.ok,
        "{} CHECK {when}: {}",
        network.ifname, check.stdout
    );
}

/// `router check --all --repair` over the cache: one attachment, repaired with `ops` ops.
fn repair_all(node: &Node, cache: &Cache, ops: usize) {
    let run = check_all(node, &[cache], &["--repair", "--output", "json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let doc = run.json();
    let net1 = &doc["attachments"][0];
    assert_eq!(net1["status"], "repaired", "{doc}");
    assert_eq!(
        net1["repair"]["applied"].as_array().unwrap().len(),
        ops,
        "{doc}"
    );
}

#[test]
fn a_node_address_coming_and_going_is_named_and_repaired_and_net2_leaves_net1_alone() {
    const ADDED: &str = "198.51.100.2";
    let node = Node::new("oflow");
    let pod = Pod::new("oflow");
    let mut overlay = overlay_network(&node, 6, &[4, 6]);
    assert!(overlay.add(&node, &pod).ok);
    let before = (pod_state(&pod), host_state(&node));
    assert_eq!(owned_objects(&pod.netns), Vec::<String>::new());

    let mut net1 = macvlan_network(&node, "net1", 6, &[4, 6], json!({}));
    let out = net1.add(&node, &pod);
    assert!(out.ok, "net1 ADD: {} {}", out.stdout, out.stderr);
    // libcni 1.1's cache (containerd 1.7, podman 4): no netns; router's record has it.
    let cache = Cache::new("oflowc");
    cache.write(&net1, &pod.id, None);
    assert_clean(&net1, &node, &pod, "after ADD");

    // A second address on a node link: the pod lacks its routes and neighbour.
    node.host
        .ipx(&["addr", "add", &format!("{ADDED}/24"), "dev", "up0"]);
    let check = router_check(&net1, &node, &pod);
    assert_eq!(check.code(), Some(100), "{}", check.stdout);
    let error = check.json();
    let named = format!("node address {ADDED} (added since ADD) has no route through eth0");
    let msg = error["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("3 drifts: ") && msg.contains(&named),
        "{msg}"
    );
    let details = error["details"].as_str().unwrap();
    assert!(
        details.contains(&format!("{named} in table 100"))
            && details.contains(&format!(
                "node address {ADDED} (added since ADD) has no neighbour entry on eth0"
            )),
        "{details}"
    );
    repair_all(&node, &cache, 3);
    assert_clean(&net1, &node, &pod, "after the repair");
    assert!(pod
        .netns
        .ipx(&["route", "show", ADDED])
        .contains("dev eth0"));

    // A sibling attachment coming and going leaves net1's CHECK as it was.
    let mut net2 = macvlan_network(&node, "net2", 7, &[4, 6], json!({}));
    let out = net2.add(&node, &pod);
    assert!(out.ok, "net2 ADD: {} {}", out.stdout, out.stderr);
    assert_clean(&net1, &node, &pod, "with net2");
    assert_clean(&net2, &node, &pod, "beside net1");
    let out = net2.del(&node, &pod);
    assert!(out.ok, "net2 DEL: {} {}", out.stdout, out.stderr);
    assert_clean(&net1, &node, &pod, "after net2 went");

    // The address goes: router's routes and neighbour toward it are stale.
    node.host
        .ipx(&["addr", "del", &format!("{ADDED}/24"), "dev", "up0"]);
    let check = router_check(&net1, &node, &pod);
    assert_eq!(check.code(), Some(100), "{}", check.stdout);
    let error = check.json();
    let details = error["details"].as_str().unwrap();
    for stale in [
        format!("route toward {ADDED} through eth0, no longer a node address"),
        format!("route toward {ADDED} through eth0 in table 100, no longer a node address"),
        format!("neighbour entry for {ADDED} on eth0, no longer a node address"),
    ] {
        assert!(details.contains(&stale), "{stale}:\n{details}");
    }
    repair_all(&node, &cache, 3);
    assert_clean(&net1, &node, &pod, "after the second repair");

    // The NetworkAttachmentDefinition is edited meanwhile into a config that no longer
    // validates: DEL still removes everything from the record.
    net1.conflist["plugins"][1]["service_hijack_subnet"] = json!(["172.96.0.1/18"]);
    let out = net1.del(&node, &pod);
    assert!(out.ok, "net1 DEL: {} {}", out.stdout, out.stderr);
    assert_eq!((pod_state(&pod), host_state(&node)), before);
    assert_eq!(owned_objects(&pod.netns), Vec::<String>::new());
    assert_eq!(owned_objects(&node.host), Vec::<String>::new());
}

/// The attachment of `id`/net1 in a `router.check/v1` document.
fn attachment<'a>(doc: &'a Value, id: &str) -> &'a Value {
    doc["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["container_id"] == json!(id) && a["ifname"] == "net1")
        .unwrap_or_else(|| panic!("no {id}/net1 in {doc}"))
}

/// One pod per way a runtime keeps (or does not keep) its results: a libcni 1.1 cache (no
/// netns, containerd 1.7 and podman 4), a 1.2 cache (with it), Multus's own cache dir for
/// its delegates (no netns before Multus 4.1; Multus's own eth0 entry in the runtime's
/// cache), and no cache entry at all.
#[test]
fn check_all_finds_and_repairs_drift_whatever_the_runtime_caches() {
    let node = Node::new("olay");
    let (v11, _v11_eth0, v11_net1) = attached_pod(&node, "olay1", 5);
    let (v12, _v12_eth0, v12_net1) = attached_pod(&node, "olay2", 6);
    let (mts, mts_eth0, mts_net1) = attached_pod(&node, "olay3", 7);
    let (bare, _bare_eth0, _bare_net1) = attached_pod(&node, "olay4", 8);
    let runtime = Cache::new("olayr");
    let multus = Cache::new("olaym");
    runtime.write(&v11_net1, &v11.id, None);
    runtime.write(&v12_net1, &v12.id, Some(&v12.netns.path()));
    let mut multus_itself = Network::new(
        json!({"cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus",
               "delegates": [mts_eth0.conflist.clone(), mts_net1.conflist.clone()]}),
        "eth0",
    );
    multus_itself.cached = mts_eth0.cached.clone();
    runtime.write(&multus_itself, &mts.id, None);
    multus.write(&mts_net1, &mts.id, None);
    let pods = [(&v11, 5), (&v12, 6), (&mts, 7), (&bare, 8)];
    for (pod, index) in pods {
        tamper(&node, pod, index);
    }
    let ids: Vec<String> = pods.iter().map(|(p, _)| format!("{}/net1", p.id)).collect();
    let rows = |doc: &Value, status: &str, drifts: usize| {
        let mut want: Vec<(String, String, usize)> = ids
            .iter()
            .map(|id| (id.clone(), status.to_string(), drifts))
            .collect();
        want.push((format!("{}/eth0", mts.id), "skipped".into(), 0));
        want.sort();
        assert_eq!(Scene::statuses(doc), want, "{doc:#}");
    };

    let found = check_all(&node, &[&runtime, &multus], &["--output", "json"]);
    assert_eq!(found.code, 2, "{}{}", found.stdout, found.stderr);
    let doc = found.json();
    rows(&doc, "drift", 3);
    for (pod, _) in pods {
        assert_eq!(attachment(&doc, &pod.id)["netns"], json!(pod.netns.path()));
    }
    assert!(attachment(&doc, &mts.id)["cache_entry"]
        .as_str()
        .unwrap()
        .starts_with(multus.path()));
    assert_eq!(attachment(&doc, &bare.id)["cache_entry"], Value::Null);
    // One attachment by name from a 1.1 cache: the netns comes from the record too.
    let one = router(
        &node,
        &with(vec!["check"], &attachment_args(&runtime, &v11)),
    );
    assert_eq!(one.code, 2, "{}{}", one.stdout, one.stderr);

    let repaired = check_all(
        &node,
        &[&runtime, &multus],
        &["--repair", "--output", "json"],
    );
    assert_eq!(repaired.code, 0, "{}{}", repaired.stdout, repaired.stderr);
    rows(&repaired.json(), "repaired", 3);
    let clean = check_all(&node, &[&runtime, &multus], &["--output", "json"]);
    assert_eq!(clean.code, 0, "{}", clean.stdout);
    rows(&clean.json(), "clean", 0);
    for (pod, net1) in [(&v11, &v11_net1), (&v12, &v12_net1), (&mts, &mts_net1)] {
        let check = net1.invoke_one(&node, pod, "CHECK", "router");
        assert!(check.ok, "router's CHECK after repair: {}", check.stdout);
    }
    let record = node
        .dir
        .join("router")
        .join(format!("{}-net1.json", bare.id));
    let recorded: Value = serde_json::from_str(&fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(recorded["inputs"]["netns"], json!(bare.netns.path()));
    assert!(recorded["inputs"]["config"].get("prevResult").is_none());
    assert_eq!(recorded["inputs"]["config"]["type"], "router");
    assert_eq!(
        recorded["inputs"]["prev_result"]["ips"][0]["address"],
        json!(format!("{}/24", underlay_v4(8)))
    );

    // The 1.1 pod goes away without a DEL: its recorded netns path no longer exists.
    let v11_id = v11.id.clone();
    drop(v11);
    let after = check_all(&node, &[&runtime, &multus], &["--output", "json"]);
    assert_eq!(after.code, 0, "{}", after.stdout);
    let doc = after.json();
    assert_eq!(attachment(&doc, &v11_id)["status"], "gone", "{doc:#}");
    assert_eq!(doc["summary"]["gone"], 1);
}

/// Never silently clean: a 1.1 cache entry with no record to take the netns from, a record
/// from before router kept its inputs with no cache entry, and a netns in a directory not
/// visible here are errors naming what is missing.
#[test]
fn an_attachment_whose_netns_cannot_be_located_is_an_error() {
    let node = Node::new("oloc");
    let (pod, _eth0, net1) = attached_pod(&node, "oloc", 1);
    let cache = Cache::new("olocc");
    let entry = cache.write(&net1, "ctr-no-record", None);
    let unmounted = PathBuf::from("/nonexistent-netns-dir").join(unique("cni"));
    cache.write(&net1, "ctr-unmounted", Some(&unmounted));
    let data_dir = node.dir.join("router");
    let mut old: Value = serde_json::from_str(
        &fs::read_to_string(data_dir.join(format!("{}-net1.json", pod.id))).unwrap(),
    )
    .unwrap();
    old.as_object_mut().unwrap().remove("inputs");
    old["container_id"] = json!("ctr-old-record");
    let old_file = data_dir.join("ctr-old-record-net1.json");
    fs::write(&old_file, old.to_string()).unwrap();

    let run = check_all(&node, &[&cache], &["--output", "json"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let doc = run.json();
    assert_eq!(attachment(&doc, &pod.id)["status"], "clean", "{doc:#}");
    let no_record = attachment(&doc, "ctr-no-record");
    assert_eq!(no_record["status"], "error");
    assert_eq!(no_record["error_code"], 3);
    assert_eq!(no_record["cache_entry"], json!(entry));
    let message = no_record["message"].as_str().unwrap();
    assert!(message.contains("records no netns"), "{message}");
    assert!(
        message.contains(&format!(
            "no record ctr-no-record-net1.json in data_dir {}",
            data_dir.display()
        )),
        "{message}"
    );
    let old_record = attachment(&doc, "ctr-old-record");
    assert_eq!(old_record["status"], "error");
    let message = old_record["message"].as_str().unwrap();
    assert!(
        message.contains(&old_file.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("no result cache entry names it"),
        "{message}"
    );
    let not_here = attachment(&doc, "ctr-unmounted");
    assert_eq!(
        not_here["status"], "error",
        "a netns dir not mounted is no pod gone"
    );
    let message = not_here["message"].as_str().unwrap();
    assert!(
        message.contains("its directory does not exist here"),
        "{message}"
    );
    assert_eq!(doc["summary"]["error"], 3);

    let text = check_all(&node, &[&cache], &[]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains("ctr-no-record/net1"),
        "{}",
        text.stdout
    );
}

/// Whether router's rule sending the service CIDR to the pod table is in the pod.
fn has_service_rule(pod: &Pod) -> bool {
    pod.netns
        .exec(&["ip", "-4", "rule", "show"])
        .lines()
        .any(|l| l.contains("to 10.96.0.0/12 lookup 100"))
}

/// The attachment's lock as a plugin run holds it (the same file and flock).
fn hold_attachment_lock(node: &Node, pod: &Pod) -> router::record::AttachmentLock {
    router::record::FileRecords::new(&node.dir.join("router"))
        .lock_attachment(&pod.id, "net1", false)
        .unwrap()
        .expect("the node's data_dir exists")
}

/// `router check --repair` of net1 started on its own thread, as an operator would run it
/// while the runtime's ADD or DEL is at work.
fn repair_in_background(node: &Node, cache: &Cache, pod: &Pod) -> std::thread::JoinHandle<Run> {
    let args: Vec<String> = with(
        vec!["check"],
        &with(
            attachment_args(cache, pod),
            &["--repair", "--output", "json"],
        ),
    )
    .into_iter()
    .map(String::from)
    .collect();
    let host = node.host.name.clone();
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        router_in_named(&host, &args)
    })
}

/// A repair from the CLI waits for a plugin run holding the attachment's lock, as the
/// agent and rollout do: what the run is doing is not drift to undo. Once the run lets
/// go, the repair goes ahead.
#[test]
fn check_repair_waits_for_a_plugin_run_holding_the_attachment_and_then_repairs() {
    let (node, pod, _net1, cache) = cached_pod("orwait", 7);
    delete_service_rule(&pod);
    let run = hold_attachment_lock(&node, &pod);
    let repair = repair_in_background(&node, &cache, &pod);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !has_service_rule(&pod),
        "repaired while a plugin run held the attachment"
    );
    assert!(
        !repair.is_finished(),
        "the repair did not wait for the lock"
    );
    drop(run);
    let out = repair.join().unwrap();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.json()["attachments"][0]["status"],
        "repaired",
        "{}",
        out.stdout
    );
    assert!(has_service_rule(&pod));
}

/// A repair that waited for the attachment's lock while the runtime's DEL removed the
/// attachment (its record gone under the lock) re-creates nothing: the DEL's work stands
/// and the attachment is reported as drift, not repaired.
#[test]
fn check_repair_never_recreates_what_a_del_removed_while_it_waited() {
    let (node, pod, _net1, cache) = cached_pod("ordel", 8);
    let del = hold_attachment_lock(&node, &pod);
    let repair = repair_in_background(&node, &cache, &pod);
    std::thread::sleep(std::time::Duration::from_millis(200));
    // What a DEL does under the lock, as far as this test needs: one of router's objects
    // of the pod removed, then the record.
    delete_service_rule(&pod);
    fs::remove_file(
        node.dir
            .join("router")
            .join(format!("{}-net1.json", pod.id)),
    )
    .unwrap();
    drop(del);
    let out = repair.join().unwrap();
    let doc = out.json();
    let net1_report = &doc["attachments"][0];
    assert_eq!(net1_report["status"], "drift", "{}", out.stdout);
    assert!(
        net1_report["message"]
            .as_str()
            .unwrap_or("")
            .contains("not repaired"),
        "{}",
        out.stdout
    );
    assert!(
        !has_service_rule(&pod),
        "the repair re-created what DEL removed"
    );
}
