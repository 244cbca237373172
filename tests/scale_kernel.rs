//! Scale on a real kernel: 50 pods (eth0 from Debian's ptp + host-local) get net1 (macvlan +
//! static + router) ADDed all at once, then DELed all at once, for 3 rounds. Every router
//! run takes the node-wide host lock. After each round nothing router owns is left in any
//! netns, data_dir holds no record, and the host and every pod are exactly as before; no run
//! meets the lock timeout (code 11). Prints per round: the wall time of each phase, router's
//! ADD and DEL latencies (median and max) and the lock waits the plugin logged.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::cni::*;
use serde_json::{json, Value};

const PODS: u8 = 50;
const ROUNDS: usize = 3;
/// Pod indexes: overlay 10.244.<i>.0/24, underlay 192.168.50.<10 + i>.
const FIRST_INDEX: u8 = 150;

fn stats(mut latencies: Vec<Duration>) -> (Duration, Duration) {
    latencies.sort();
    (
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    )
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The host-lock waits (µs) the plugin logged after byte `from` of the log.
fn lock_waits(node: &Node, from: usize) -> Vec<u64> {
    let log = fs::read_to_string(node.dir.join("router.log")).unwrap_or_default();
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "host lock acquired")
        .filter_map(|l| l["fields"]["waited_us"].as_u64())
        .collect()
}

fn log_len(node: &Node) -> usize {
    fs::metadata(node.dir.join("router.log")).map_or(0, |m| m.len() as usize)
}

/// Lines of router's objects (protocol 176) in a netns.
fn owned(ns: &common::Netns) -> Vec<String> {
    [
        ns.ipx(&["rule"]),
        ns.ipx(&["-6", "rule"]),
        ns.ipx(&["route", "show", "table", "all"]),
        ns.ipx(&["neigh", "show"]),
    ]
    .concat()
    .lines()
    .filter(|l| l.contains(" proto 176"))
    .map(String::from)
    .collect()
}

#[test]
fn fifty_pods_added_and_deleted_in_parallel_for_three_rounds_leave_nothing_behind() {
    let started = Instant::now();
    let node = Node::new("scale");
    let host_before = host_state(&node);
    let pods: Vec<(u8, Pod)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PODS)
            .map(|i| {
                let node = &node;
                s.spawn(move || {
                    let index = FIRST_INDEX + i;
                    let pod = Pod::new("scale");
                    let mut overlay = overlay_network(node, index, &[4]);
                    let out = overlay.add(node, &pod);
                    assert!(out.ok, "ptp ADD: {}", out.stdout);
                    (index, pod)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let pods_before: Vec<String> = pods.iter().map(|(_, pod)| pod_state(pod)).collect();
    println!("setup: {PODS} pods with eth0 in {:?}", started.elapsed());

    for round in 1..=ROUNDS {
        let log_from = log_len(&node);
        let add_started = Instant::now();
        let attached: Vec<(Network, Duration)> = std::thread::scope(|s| {
            let handles: Vec<_> = pods
                .iter()
                .map(|(index, pod)| {
                    let node = &node;
                    s.spawn(move || {
                        let mut net1 = macvlan_network(node, "net1", *index, &[4], json!({}));
                        let prev = net1.add_until(node, pod, "router");
                        let t = Instant::now();
                        let out = net1.invoke_with(node, pod, "ADD", "router", &prev);
                        let took = t.elapsed();
                        assert!(out.ok, "router ADD of pod {index}: {}", out.stdout);
                        net1.cached = Some(out.json());
                        (net1, took)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let add_wall = add_started.elapsed();
        let table = node.host.table("-4", "500");
        assert_eq!(table.lines().count(), usize::from(PODS), "{table}");
        assert!(node.host.ipx(&["rule"]).contains("lookup 500 proto 176"));

        let del_started = Instant::now();
        let del_latencies: Vec<Duration> = std::thread::scope(|s| {
            let handles: Vec<_> = pods
                .iter()
                .zip(&attached)
                .map(|((index, pod), (net1, _))| {
                    let node = &node;
                    s.spawn(move || {
                        let t = Instant::now();
                        let out = net1.invoke_one(node, pod, "DEL", "router");
                        let took = t.elapsed();
                        assert!(out.ok, "router DEL of pod {index}: {}", out.stdout);
                        let out = net1.invoke_one(node, pod, "DEL", "macvlan");
                        assert!(out.ok, "macvlan DEL of pod {index}: {}", out.stdout);
                        took
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let del_wall = del_started.elapsed();

        assert_eq!(
            host_state(&node),
            host_before,
            "round {round}: the host changed"
        );
        assert_eq!(owned(&node.host), Vec::<String>::new(), "round {round}");
        for ((index, pod), before) in pods.iter().zip(&pods_before) {
            assert_eq!(
                &pod_state(pod),
                before,
                "round {round}: pod {index} changed"
            );
            assert_eq!(owned(&pod.netns), Vec::<String>::new(), "pod {index}");
        }
        let records: Vec<String> = fs::read_dir(node.dir.join("router"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        assert!(
            records.is_empty(),
            "round {round}: records left: {records:?}"
        );

        let (add_median, add_max) = stats(attached.iter().map(|(_, d)| *d).collect());
        let (del_median, del_max) = stats(del_latencies);
        let waits = lock_waits(&node, log_from);
        assert_eq!(
            waits.len(),
            2 * usize::from(PODS),
            "one lock per ADD and per DEL"
        );
        let waited = waits.iter().map(|w| Duration::from_micros(*w));
        let (wait_median, wait_max) = stats(waited.clone().collect());
        let wait_total: Duration = waited.sum();
        println!(
            "round {round}: ADD phase {} (router ADD median {}, max {}), DEL phase {} (router DEL median {}, max {}); host lock waits: median {}, max {}, total {} over {} runs",
            ms(add_wall),
            ms(add_median),
            ms(add_max),
            ms(del_wall),
            ms(del_median),
            ms(del_max),
            ms(wait_median),
            ms(wait_max),
            ms(wait_total),
            waits.len()
        );
    }
    println!("scale test: {:?} in all", started.elapsed());
}
