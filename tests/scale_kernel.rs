//! Scale on a real kernel: 50 pods (eth0 from Debian's ptp + host-local) get net1 (macvlan +
//! static + router) ADDed all at once, then DELed all at once, for 3 rounds. Every router
//! run takes the node-wide host lock. After each round nothing router owns is left in any
//! netns, data_dir holds no record, and the host and every pod are exactly as before; no run
//! meets the lock timeout (code 11). Prints per round: the wall time of each phase, router's
//! ADD and DEL latencies (median and max) and the lock waits the plugin logged. Then the
//! halves of the pods churn (one half DELed while the other is ADDed, three times), so that
//! the number of attached pods crosses zero while runs are in flight. Throughout, a watcher
//! reads the host's rules: the shared host rule is never missing while a pod is attached,
//! and never present while no pod is attached and no ADD or DEL runs (only the rule's
//! decision is under the host lock: ARCHITECTURE "Ordering").

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
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
/// Each host lock taken since `from` in the log: how long its run waited (µs), and
/// whether it was held shared.
fn lock_waits(node: &Node, from: usize) -> Vec<(u64, bool)> {
    let log = fs::read_to_string(node.dir.join("router.log")).unwrap_or_default();
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "host lock acquired")
        .filter_map(|l| {
            let waited = l["fields"]["waited_us"].as_u64()?;
            Some((waited, l["fields"]["shared"].as_bool()?))
        })
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

/// Which pods are attached (router ADD returned, DEL not begun) and how many runs are in
/// flight, with a generation that changes with either.
#[derive(Clone, Default)]
struct Attached {
    pods: BTreeSet<u8>,
    in_flight: usize,
    generation: u64,
}

#[derive(Default)]
struct Watch {
    state: Mutex<Attached>,
    stop: AtomicBool,
}

impl Watch {
    fn change(&self, f: impl FnOnce(&mut Attached)) {
        let mut state = self.state.lock().unwrap();
        f(&mut state);
        state.generation += 1;
    }

    fn adding(&self) {
        self.change(|s| s.in_flight += 1);
    }

    fn added(&self, index: u8) {
        self.change(|s| {
            s.in_flight -= 1;
            s.pods.insert(index);
        });
    }

    fn deleting(&self, index: u8) {
        self.change(|s| {
            s.pods.remove(&index);
            s.in_flight += 1;
        });
    }

    fn deleted(&self) {
        self.change(|s| s.in_flight -= 1);
    }

    fn now(&self) -> Attached {
        self.state.lock().unwrap().clone()
    }

    /// Reads the host's rules until stopped. A pod attached both before and after a read
    /// was attached during it, so the rule must be there; nothing attached or running
    /// before and after, with nothing changed between, means no pod during the read, so
    /// the rule must be gone. Returns the violations and the number of reads.
    fn observe(&self, node: &Node) -> (Vec<String>, usize) {
        let mut violations = Vec::new();
        let mut reads = 0;
        while !self.stop.load(Ordering::Relaxed) {
            let before = self.now();
            let present = node.host.ipx(&["rule"]).contains("lookup 500 proto 176");
            let after = self.now();
            reads += 1;
            let through = before.pods.intersection(&after.pods).next();
            match (present, through) {
                (false, Some(pod)) => violations.push(format!("pod {pod} without the rule")),
                (true, None)
                    if before.generation == after.generation
                        && before.pods.is_empty()
                        && before.in_flight == 0 =>
                {
                    violations.push("the rule with no pod".into())
                }
                _ => {}
            }
        }
        (violations, reads)
    }
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// net1 (macvlan + static, then router) for one pod; returns it and router's ADD latency.
fn attach(node: &Node, index: u8, pod: &Pod, watch: &Watch) -> (Network, Duration) {
    let mut net1 = macvlan_network(node, "net1", index, &[4], json!({}));
    let prev = net1.add_until(node, pod, "router");
    watch.adding();
    let t = Instant::now();
    let out = net1.invoke_with(node, pod, "ADD", "router", &prev);
    let took = t.elapsed();
    assert!(out.ok, "router ADD of pod {index}: {}", out.stdout);
    watch.added(index);
    net1.cached = Some(out.json());
    (net1, took)
}

/// DEL of router, then macvlan; returns router's DEL latency.
fn detach(node: &Node, index: u8, pod: &Pod, net1: &Network, watch: &Watch) -> Duration {
    watch.deleting(index);
    let t = Instant::now();
    let out = net1.invoke_one(node, pod, "DEL", "router");
    let took = t.elapsed();
    assert!(out.ok, "router DEL of pod {index}: {}", out.stdout);
    watch.deleted();
    let out = net1.invoke_one(node, pod, "DEL", "macvlan");
    assert!(out.ok, "macvlan DEL of pod {index}: {}", out.stdout);
    took
}

/// Nothing router owns is left on the host or in any pod, no record in data_dir, and the
/// host and every pod are exactly as before.
fn assert_as_before(
    node: &Node,
    host_before: &str,
    pods: &[(u8, Pod)],
    pods_before: &[String],
    when: &str,
) {
    assert_eq!(host_state(node), host_before, "{when}: the host changed");
    assert_eq!(owned(&node.host), Vec::<String>::new(), "{when}");
    for ((index, pod), before) in pods.iter().zip(pods_before) {
        assert_eq!(&pod_state(pod), before, "{when}: pod {index} changed");
        assert_eq!(owned(&pod.netns), Vec::<String>::new(), "pod {index}");
    }
    let records: Vec<String> = fs::read_dir(node.dir.join("router"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert!(records.is_empty(), "{when}: records left: {records:?}");
}

/// The even pods ADDed, then `cycles` times one half DELed while the other is ADDed;
/// everything DELed at the end.
fn churn(node: &Node, pods: &[(u8, Pod)], watch: &Watch, cycles: usize) {
    let (evens, odds): (Vec<_>, Vec<_>) = pods.iter().partition(|(index, _)| index % 2 == 0);
    let attach_all = |half: &[&(u8, Pod)]| -> Vec<Network> {
        std::thread::scope(|s| {
            let handles: Vec<_> = half
                .iter()
                .map(|(index, pod)| s.spawn(move || attach(node, *index, pod, watch).0))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let mut attached = attach_all(&evens);
    let mut halves = [evens, odds];
    for _ in 0..cycles {
        let [going, coming] = &halves;
        attached = std::thread::scope(|s| {
            for ((index, pod), net1) in going.iter().zip(&attached) {
                s.spawn(move || detach(node, *index, pod, net1, watch));
            }
            let handles: Vec<_> = coming
                .iter()
                .map(|(index, pod)| s.spawn(move || attach(node, *index, pod, watch).0))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        halves.reverse();
    }
    std::thread::scope(|s| {
        for ((index, pod), net1) in halves[0].iter().zip(&attached) {
            s.spawn(move || detach(node, *index, pod, net1, watch));
        }
    });
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

    let watch = Watch::default();
    let (violations, reads) = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch.observe(&node));
        // A failed assertion below must still stop the watcher, or the scope never ends.
        let stop = StopOnDrop(&watch.stop);
        for round in 1..=ROUNDS {
            burst(&node, &pods, &watch, round);
            assert_as_before(
                &node,
                &host_before,
                &pods,
                &pods_before,
                &format!("round {round}"),
            );
        }
        let churn_started = Instant::now();
        churn(&node, &pods, &watch, ROUNDS);
        println!(
            "churn: {ROUNDS} half-and-half swaps in {:?}",
            churn_started.elapsed()
        );
        assert_as_before(&node, &host_before, &pods, &pods_before, "after the churn");
        drop(stop);
        watcher.join().unwrap()
    });
    println!("watcher: {reads} reads of the host's rules");
    assert!(reads > 0);
    assert_eq!(violations, Vec::<String>::new());
    println!("scale test: {:?} in all", started.elapsed());
}

/// All pods ADDed at once, then DELed at once; prints the figures of the round.
fn burst(node: &Node, pods: &[(u8, Pod)], watch: &Watch, round: usize) {
    let log_from = log_len(node);
    let add_started = Instant::now();
    let attached: Vec<(Network, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|(index, pod)| s.spawn(move || attach(node, *index, pod, watch)))
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
                s.spawn(move || detach(node, *index, pod, net1, watch))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let del_wall = del_started.elapsed();

    let (add_median, add_max) = stats(attached.iter().map(|(_, d)| *d).collect());
    let (del_median, del_max) = stats(del_latencies);
    let waits = lock_waits(node, log_from);
    // Every ADD looks for the shared rule, and adds it when missing (each round starts
    // without it), under the lock held shared: ADDs never hold it alone. Every DEL takes
    // it alone to decide the rule's removal.
    let shared = waits.iter().filter(|(_, shared)| *shared).count();
    let alone = waits.len() - shared;
    assert_eq!(shared, usize::from(PODS), "one shared lock per ADD");
    assert_eq!(alone, usize::from(PODS), "one lock held alone per DEL");
    let waited = waits.iter().map(|(w, _)| Duration::from_micros(*w));
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
