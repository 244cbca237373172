//! IP conflict detection and address announcement on a real L2 segment (BEHAVIOUR 5, 2.1).
//! The pod's net1 is Debian's macvlan on the node's `up0`, a veth whose peer `ext0` is in
//! the "ext" netns, which takes the pod's address when a test wants a conflict. What ext
//! sees is read with router's own raw-socket code, in ext. Every namespace is the test's.

mod common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::cni::*;
use common::Netns;
use router::conflict::packet::{self, ETHERTYPE_ARP, ETHERTYPE_IPV6};
use router::conflict::socket::{self, PacketSocket};
use router::conflict::{AddressProbe, Conflict, RawSocketProbe, Target};
use router::error::Error;
use router::model::MacAddr;
use router::netns::{run_in_netns, spawn_in_netns, NetnsThread};
use serde_json::{json, Value};

const RETRIES: u32 = 3;
const INTERVAL: Duration = Duration::from_millis(100);

/// net1 (macvlan + static) then router with a MAC prefix and conflict detection.
fn probed_network(node: &Node, pod_index: u8, families: &[u8], interval: Duration) -> Network {
    macvlan_network(
        node,
        "net1",
        pod_index,
        families,
        json!({
            "mac_prefix": "0a:0b",
            "ip_conflict": {
                "enabled": true,
                "interval": format!("{}ms", interval.as_millis()),
                "retries": RETRIES
            }
        }),
    )
}

/// ext takes `addr` on the segment; IPv6 with `nodad`, so it holds it at once and answers
/// DAD solicitations for it.
fn ext_takes(node: &Node, addr: &str) {
    let v6 = addr.contains(':');
    let cidr = format!("{addr}/{}", if v6 { 64 } else { 24 });
    let mut args = vec!["addr", "add", cidr.as_str(), "dev", "ext0"];
    if v6 {
        args.push("nodad");
    }
    node.ext.ipx(&args);
}

fn ext_drops(node: &Node, addr: &str) {
    let cidr = format!("{addr}/{}", if addr.contains(':') { 64 } else { 24 });
    node.ext.ipx(&["addr", "del", &cidr, "dev", "ext0"]);
}

/// Everything router could have changed: rules, main/100 and the host's 500, permanent
/// neighbours, sysctls of both sides, net1's MAC.
fn everything(node: &Node, pod: &Pod) -> String {
    [
        pod_state(pod),
        host_state(node),
        pod.netns.link_mac("net1"),
        pod.netns
            .exec(&["sysctl", "-a", "--pattern", "rp_filter|disable_ipv6"]),
        node.host.exec(&["sysctl", "-a", "--pattern", "rp_filter"]),
    ]
    .join("\n")
}

fn records(node: &Node) -> Vec<String> {
    std::fs::read_dir(node.dir.join("router"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_conflict(out: &CniOutput, addr: &str, mac: &str) {
    assert!(!out.ok, "ADD passed: {}", out.stdout);
    assert_eq!(out.code(), Some(101), "{}", out.stdout);
    let msg = out.json()["msg"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains(&format!("{addr} is in use by {mac}")), "{msg}");
}

/// A conflicting ADD fails with 101 naming the address and ext's MAC, and leaves pod, host
/// and data_dir exactly as before it.
fn conflicting_add_changes_nothing(tag: &str, pod_index: u8, families: &[u8], taken: &str) {
    let (node, pod, _overlay) = pod_with_overlay(tag, pod_index, &[4, 6]);
    let net1 = probed_network(&node, pod_index, families, INTERVAL);
    let prev = net1.add_until(&node, &pod, "router");
    ext_takes(&node, taken);
    let before = everything(&node, &pod);
    let out = net1.invoke_with(&node, &pod, "ADD", "router", &prev);
    assert_conflict(&out, taken, &node.ext.link_mac("ext0"));
    assert_eq!(everything(&node, &pod), before);
    assert!(records(&node).is_empty(), "{:?}", records(&node));
}

#[test]
fn an_ipv4_address_held_by_another_host_fails_the_add_with_101_and_changes_nothing() {
    conflicting_add_changes_nothing("c4", 1, &[4], &underlay_v4(1));
}

#[test]
fn an_ipv6_address_held_by_another_host_fails_the_add_with_101_and_changes_nothing() {
    conflicting_add_changes_nothing("c6", 2, &[6], &underlay_v6(2));
}

#[test]
fn a_dual_stack_pod_with_a_conflict_on_one_family_names_that_address_only() {
    let (node, pod, _overlay) = pod_with_overlay("c46", 3, &[4, 6]);
    let net1 = probed_network(&node, 3, &[4, 6], INTERVAL);
    let prev = net1.add_until(&node, &pod, "router");
    let before = everything(&node, &pod);
    let ext_mac = node.ext.link_mac("ext0");
    for (taken, free) in [
        (underlay_v6(3), underlay_v4(3)),
        (underlay_v4(3), underlay_v6(3)),
    ] {
        ext_takes(&node, &taken);
        let out = net1.invoke_with(&node, &pod, "ADD", "router", &prev);
        assert_conflict(&out, &taken, &ext_mac);
        assert!(!out.stdout.contains(&free), "{}", out.stdout);
        assert_eq!(everything(&node, &pod), before, "conflict on {taken}");
        ext_drops(&node, &taken);
    }
    let out = net1.invoke_with(&node, &pod, "ADD", "router", &prev);
    assert!(out.ok, "without a conflict: {}", out.stdout);
}

/// The pod's underlay addresses plus one more per family: 4 addresses probed at once.
fn four_addresses(network: &mut Network, pod_index: u8) -> Vec<IpAddr> {
    let extra_v4 = format!("192.168.50.{}", 100 + pod_index);
    let extra_v6 = format!("fd50::{:x}", 0x100 + u32::from(pod_index));
    if let Some(addresses) = network.conflist["plugins"][0]["ipam"]["addresses"].as_array_mut() {
        addresses.push(json!({ "address": format!("{extra_v4}/24") }));
        addresses.push(json!({ "address": format!("{extra_v6}/64") }));
    }
    [
        underlay_v4(pod_index),
        underlay_v6(pod_index),
        extra_v4,
        extra_v6,
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect()
}

/// Packet sockets open in the netns, as /proc shows them from a thread inside it.
fn packet_sockets(ns: &Netns) -> usize {
    run_in_netns(&ns.path(), || {
        std::fs::read_to_string("/proc/thread-self/net/packet")
            .map_err(|e| Error::io("/proc/thread-self/net/packet", e))
    })
    .unwrap()
    .lines()
    .skip(1)
    .count()
}

#[test]
fn without_a_conflict_the_add_passes_in_about_retries_x_interval_whatever_the_address_count() {
    const SLOW: Duration = Duration::from_millis(200);
    let (node, pod, _overlay) = pod_with_overlay("free", 4, &[4, 6]);
    let mut net1 = probed_network(&node, 4, &[4, 6], SLOW);
    let addrs = four_addresses(&mut net1, 4);
    let prev = net1.add_until(&node, &pod, "router");
    let rounds = SLOW * RETRIES;

    // The probe alone, in process: all four addresses in one schedule.
    let mac: MacAddr = pod.netns.link_mac("net1").parse().unwrap();
    let started = Instant::now();
    let netns = pod.netns.path();
    let target = Target {
        pod_netns: &netns,
        ifname: "net1",
        mac,
        addrs: &addrs,
    };
    let found = RawSocketProbe::default()
        .detect(&target, SLOW, RETRIES)
        .unwrap();
    let probe_took = started.elapsed();
    assert_eq!(found, None);
    let probe_bound = SLOW * (RETRIES + 1) + Duration::from_millis(100);
    assert!(
        probe_took >= rounds && probe_took < probe_bound,
        "4 addresses probed in {probe_took:?}, expected {rounds:?} to {probe_bound:?}"
    );
    assert_eq!(packet_sockets(&pod.netns), 0, "a raw socket was left open");

    // The whole router ADD: a process, the snapshot, the probe, apply and verify.
    let started = Instant::now();
    let out = net1.invoke_with(&node, &pod, "ADD", "router", &prev);
    let add_took = started.elapsed();
    assert!(out.ok, "{}", out.stdout);
    let bound = SLOW * (RETRIES + 1) + Duration::from_millis(600);
    assert!(
        add_took >= rounds && add_took < bound,
        "the ADD took {add_took:?}; expected {rounds:?} to {bound:?} (one address after another \
         would take {:?})",
        rounds * 4
    );
    eprintln!(
        "no-conflict timing, {} addresses, {RETRIES} x {SLOW:?}: probe {probe_took:?}, \
         router ADD {add_took:?}",
        addrs.len()
    );
    assert_eq!(pod.netns.link_mac("net1"), "0a:0b:c0:a8:32:0e");
}

/// ADDs on one node probe at the same time: the host lock is not held while probing.
#[test]
fn parallel_adds_probe_concurrently_instead_of_queueing_on_the_host_lock() {
    const PODS: u8 = 4;
    const SLOW: Duration = Duration::from_millis(300);
    let node = Node::new("cpar");
    let pods: Vec<(Pod, Network, Network, Value)> = (0..PODS)
        .map(|i| {
            let pod = Pod::new("cpar");
            let mut overlay = overlay_network(&node, 20 + i, &[4]);
            assert!(overlay.add(&node, &pod).ok);
            let net1 = probed_network(&node, 20 + i, &[4], SLOW);
            let prev = net1.add_until(&node, &pod, "router");
            (pod, overlay, net1, prev)
        })
        .collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        for (pod, _, net1, prev) in &pods {
            let node = &node;
            s.spawn(move || {
                let out = net1.invoke_with(node, pod, "ADD", "router", prev);
                assert!(out.ok, "{}", out.stdout);
            });
        }
    });
    let took = started.elapsed();
    let one = SLOW * RETRIES;
    eprintln!("{PODS} parallel ADDs with {RETRIES} x {SLOW:?} probing: {took:?}");
    assert!(took >= one, "{took:?}");
    assert!(
        took < one * 3,
        "{PODS} ADDs took {took:?}: queued one after another would be at least {:?}",
        one * u32::from(PODS)
    );
}

/// What a raw socket in a netns hears on one device, until stopped.
struct Listener {
    stop: Arc<AtomicBool>,
    thread: NetnsThread<Vec<Vec<u8>>>,
}

impl Listener {
    /// Returns once the sockets are open: nothing sent afterwards is missed.
    fn start(ns: &Netns, dev: &str) -> Listener {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (flag, dev) = (stop.clone(), dev.to_string());
        let thread = spawn_in_netns(&ns.path(), move || {
            let io = |e| Error::io("listener", e);
            let index = socket::ifindex(&dev).map_err(io)?;
            let arp = PacketSocket::open(index, ETHERTYPE_ARP).map_err(io)?;
            let nd = PacketSocket::open(index, ETHERTYPE_IPV6).map_err(io)?;
            let _ = ready_tx.send(());
            let mut frames = Vec::new();
            let mut buf = vec![0u8; 2048];
            while !flag.load(Ordering::SeqCst) {
                socket::wait_readable(&[&arp, &nd], Duration::from_millis(20)).map_err(io)?;
                for sock in [&arp, &nd] {
                    while let Some(n) = sock.recv(&mut buf).map_err(io)? {
                        frames.push(buf[..n].to_vec());
                    }
                }
            }
            Ok(frames)
        })
        .unwrap();
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("listener ready");
        Listener { stop, thread }
    }

    fn frames(self) -> Vec<Vec<u8>> {
        std::thread::sleep(Duration::from_millis(200));
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

fn positions(frames: &[Vec<u8>], wanted: &[u8]) -> Vec<usize> {
    frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.starts_with(wanted))
        .map(|(i, _)| i)
        .collect()
}

fn neighbour_mac(ns: &Netns, addr: &str) -> String {
    let line = ns.ipx(&["neigh", "show", addr, "dev", "ext0"]);
    let mut words = line.split_whitespace();
    words
        .by_ref()
        .find(|w| *w == "lladdr")
        .and_then(|_| words.next())
        .unwrap_or_default()
        .to_string()
}

/// Probes go out from net1's MAC before it changes, `retries` per address; router sets
/// arp_notify and ndisc_notify on net1 before changing its MAC, so the kernel announces
/// every address from the new MAC, and ext's cache follows it (BEHAVIOUR 2.1). Both are
/// turned off first (Debian's macvlan sets arp_notify=1) to prove router sets them; DEL
/// sets them back.
#[test]
fn each_address_is_announced_by_the_kernel_from_the_new_mac_after_probes_from_the_old_one() {
    let (node, pod, _overlay) = pod_with_overlay("ann", 5, &[4, 6]);
    let net1 = probed_network(&node, 5, &[4, 6], INTERVAL);
    let prev = net1.add_until(&node, &pod, "router");
    pod.netns.set_sysctl("net.ipv4.conf.net1.arp_notify", 0);
    assert_eq!(
        pod.netns.sysctl_text("net.ipv6.conf.net1.ndisc_notify"),
        "0"
    );
    let (v4, v6) = (underlay_v4(5), underlay_v6(5));
    assert!(
        node.ext.pings(&v4) && node.ext.pings(&v6),
        "ext reaches net1"
    );
    let old = pod.netns.link_mac("net1");
    assert_eq!(neighbour_mac(&node.ext, &v4), old);
    assert_eq!(neighbour_mac(&node.ext, &v6), old);

    let listener = Listener::start(&node.ext, "ext0");
    let out = net1.invoke_with(&node, &pod, "ADD", "router", &prev);
    assert!(out.ok, "{}", out.stdout);
    assert_eq!(pod.netns.sysctl_text("net.ipv4.conf.net1.arp_notify"), "1");
    assert_eq!(
        pod.netns.sysctl_text("net.ipv6.conf.net1.ndisc_notify"),
        "1"
    );
    // The kernel's unsolicited advertisements may trail the ADD by a moment.
    std::thread::sleep(Duration::from_millis(200));
    let frames = listener.frames();

    let new = pod.netns.link_mac("net1");
    assert_eq!(new, "0a:0b:c0:a8:32:0f");
    let (old_mac, new_mac): (MacAddr, MacAddr) = (old.parse().unwrap(), new.parse().unwrap());
    let (a4, a6): (IpAddr, IpAddr) = (v4.parse().unwrap(), v6.parse().unwrap());
    let claims = |addr: IpAddr, mac: MacAddr| -> Vec<usize> {
        let probe = packet::probe(mac, addr);
        (0..frames.len())
            .filter(|i| {
                !frames[*i].starts_with(&probe)
                    && frames[*i].get(6..12) == Some(&mac.0[..])
                    && packet::claim(&frames[*i]) == Some(packet::Claim { addr, mac })
            })
            .collect()
    };
    for addr in [a4, a6] {
        let probes = positions(&frames, &packet::probe(old_mac, addr));
        let announced = claims(addr, new_mac);
        assert_eq!(probes.len(), RETRIES as usize, "probes for {addr}");
        assert!(
            !announced.is_empty(),
            "announcement of {addr}: {frames:02x?}"
        );
        assert!(probes.iter().all(|p| *p < announced[0]), "{addr}");
        assert!(
            claims(addr, old_mac).is_empty(),
            "{addr} announced from the old MAC"
        );
    }
    // The gratuitous ARP is exactly RFC 5227's announcement.
    assert_eq!(
        positions(&frames, &packet::announcement(new_mac, a4)).len(),
        1
    );
    // The announcements moved ext's cache entries (it resolved nothing in between).
    let deadline = Instant::now() + Duration::from_secs(1);
    while neighbour_mac(&node.ext, &v4) != new && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(neighbour_mac(&node.ext, &v4), new);
    assert_eq!(neighbour_mac(&node.ext, &v6), new);

    let out = net1.invoke_with(&node, &pod, "DEL", "router", &prev);
    assert!(out.ok, "{}", out.stdout);
    assert_eq!(pod.netns.sysctl_text("net.ipv4.conf.net1.arp_notify"), "0");
    assert_eq!(
        pod.netns.sysctl_text("net.ipv6.conf.net1.ndisc_notify"),
        "0"
    );
}

/// A pod netns with `net1`, a veth whose peer `ext0` is in an ext netns: the probe alone.
struct Segment {
    pod: Netns,
    ext: Netns,
}

const SEG_POD_MAC: &str = "02:50:00:00:00:02";

fn segment() -> Segment {
    let pod = Netns::new("sp");
    let ext = Netns::new("se");
    common::run(
        "ip",
        &[
            "link", "add", "net1", "netns", &pod.name, "type", "veth", "peer", "name", "ext0",
            "netns", &ext.name,
        ],
    );
    pod.ip(&format!(
        "link set net1 address {SEG_POD_MAC} addrgenmode none
         link set net1 up
         addr add 192.168.77.2/24 dev net1
         addr add fd77::2/64 dev net1 nodad"
    ));
    ext.ip("link set ext0 addrgenmode none
         link set ext0 up");
    Segment { pod, ext }
}

fn seg_addrs() -> Vec<IpAddr> {
    ["192.168.77.2", "fd77::2"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect()
}

fn detect(seg: &Segment, ifname: &str) -> router::error::Result<Option<Conflict>> {
    let (netns, addrs) = (seg.pod.path(), seg_addrs());
    let target = Target {
        pod_netns: &netns,
        ifname,
        mac: SEG_POD_MAC.parse().unwrap(),
        addrs: &addrs,
    };
    RawSocketProbe::default().detect(&target, INTERVAL, RETRIES)
}

#[test]
fn the_raw_sockets_are_closed_on_every_path() {
    let seg = segment();
    assert_eq!(detect(&seg, "net1").unwrap(), None);
    assert_eq!(packet_sockets(&seg.pod), 0, "after silence");

    seg.ext.ip("addr add fd77::2/64 dev ext0 nodad");
    let ext_mac: MacAddr = seg.ext.link_mac("ext0").parse().unwrap();
    let started = Instant::now();
    let conflict = detect(&seg, "net1").unwrap();
    assert_eq!(
        conflict,
        Some(Conflict {
            addr: "fd77::2".parse().unwrap(),
            mac: ext_mac
        })
    );
    assert!(
        started.elapsed() < INTERVAL,
        "a conflict ends the probing at once: {:?}",
        started.elapsed()
    );
    assert_eq!(packet_sockets(&seg.pod), 0, "after a conflict");

    seg.pod.ip("link set net1 down");
    let err = detect(&seg, "net1").unwrap_err();
    assert_eq!(err.code().number(), 102, "{err}");
    assert!(err.to_string().contains("net1"), "{err}");
    assert_eq!(packet_sockets(&seg.pod), 0, "after a send failure");

    let err = detect(&seg, "net9").unwrap_err();
    assert!(err.to_string().contains("net9"), "{err}");
}
