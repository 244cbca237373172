//! Kernel integration tests (run as root). Each test builds its own network namespaces with
//! `ip` and removes them on drop; the machine's own netns is only ever read. The "host" of
//! a snapshot is a test netns entered by a run_in_netns thread, never the real host.
//! These tests fail (never skip) when namespaces cannot be made.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use router::error::Error;
use router::model::{
    ActualState, Family, LinkPeer, MacAddr, Rule, SysctlKey, SysctlName, Tables, MAIN_TABLE,
    PROTOCOL_BOOT, PROTOCOL_KERNEL, ROUTER_PROTOCOL,
};
use router::netlink::{Netlink, Write};
use router::netns::{read_sysctl, run_in_netns, visiting, write_sysctl, NetnsVisitor};
use router::snapshot::{FileSnapshot, HostObjects, LiveSnapshot, SnapshotRequest, SnapshotSource};

/// A file in the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("{}.json", unique("snap")));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn request(pod: Option<PathBuf>) -> SnapshotRequest {
    SnapshotRequest {
        pod_netns: pod,
        // 4242 does not exist: it must read as empty.
        pod_tables: BTreeSet::from([100, 4242]),
        host_tables: BTreeSet::from([MAIN_TABLE]),
        host_sysctl_ifaces: BTreeSet::from(["vethpod".to_string(), "gone0".to_string()]),
        preferred_src_for: vec![ip("10.244.1.2"), ip("fd00:10:244:1::2"), ip("203.0.113.9")],
        links_only: false,
        every_table: false,
        host_objects: HostObjects::All,
        pod_only: false,
    }
}

#[test]
fn a_links_only_read_has_the_pods_links_macs_and_announcing_sysctls_and_nothing_else() {
    let t = topology();
    let req = SnapshotRequest {
        links_only: true,
        ..request(Some(t.pod.path()))
    };
    let state = snapshot_from(&t.host, req);
    let pod = state.pod.expect("pod");
    assert!(pod.links.contains_key("eth0") && pod.links.contains_key("net1"));
    assert_eq!(pod.macs["net1"].to_string(), POD_NET1_MAC);
    assert!(pod.routes.is_empty() && pod.rules.is_empty());
    // The MAC step owns arp_notify and ndisc_notify (BEHAVIOUR 2.1): read for every link.
    let names: BTreeSet<SysctlName> = pod.sysctls.keys().map(|k| k.name).collect();
    assert_eq!(
        names,
        BTreeSet::from([SysctlName::ArpNotify, SysctlName::NdiscNotify])
    );
    for key in pod.sysctls.keys() {
        assert_eq!(pod.sysctls[key], t.pod.sysctl(key), "{key:?}");
    }
    assert_eq!(state.host, Default::default());
}

/// What ADD reads again after applying, to see the overlay interface held still: the pod's
/// links (with their addresses) and the tables asked for, nothing of the host and no
/// sysctls; a full read says which netns the host side was read in.
#[test]
fn a_pod_only_read_has_the_pods_links_and_tables_and_nothing_of_the_host() {
    let t = topology();
    let full = snapshot_from(&t.host, request(Some(t.pod.path())));
    let req = SnapshotRequest {
        pod_only: true,
        pod_tables: BTreeSet::from([MAIN_TABLE]),
        ..request(Some(t.pod.path()))
    };
    let state = snapshot_from(&t.host, req);
    let pod = state.pod.expect("pod");
    let full_pod = full.pod.expect("pod");
    assert_eq!(pod.links, full_pod.links);
    let main: Vec<_> = full_pod
        .routes
        .keys()
        .filter(|k| k.table == MAIN_TABLE)
        .collect();
    assert_eq!(pod.routes.keys().collect::<Vec<_>>(), main);
    assert!(pod.rules.is_empty() && pod.neighbours.is_empty() && pod.sysctls.is_empty());
    assert_eq!(state.host, Default::default());
    assert!(state.host_netns.is_none());
    let host_inode = std::fs::metadata(t.host.path()).map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.ino()
    });
    assert_eq!(full.host_netns.map(|n| n.inode), host_inode.ok());
}

#[test]
fn sysctls_are_read_and_written_in_the_netns_of_the_thread_only() {
    let ns = Netns::new("sys");
    let all = SysctlKey::new("all", SysctlName::RpFilter);
    let default = SysctlKey::new("default", SysctlName::RpFilter);
    let own_netns = || std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let before = own_netns();
    // Reading the machine's own values is the only thing done to it.
    let machine_all = read_sysctl(&all).unwrap().unwrap();
    let machine_default = read_sysctl(&default).unwrap().unwrap();

    let value = (machine_all + 1) % 3;
    ns.set_sysctl("net.ipv4.conf.all.rp_filter", value);
    let key = all.clone();
    let seen = run_in_netns(&ns.path(), move || read_sysctl(&key)).unwrap();
    assert_eq!(seen, Some(value));

    let written = (machine_default + 2) % 3;
    let key = default.clone();
    run_in_netns(&ns.path(), move || write_sysctl(&key, written)).unwrap();
    assert_eq!(ns.sysctl(&default), written);

    let missing = run_in_netns(&ns.path(), || {
        read_sysctl(&SysctlKey::new("nope0", SysctlName::RpFilter))
    })
    .unwrap();
    assert_eq!(missing, None);
    let err = run_in_netns(&ns.path(), || {
        write_sysctl(&SysctlKey::new("nope0", SysctlName::RpFilter), 1)
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::Io { what, .. } if what.contains("nope0")),
        "{err:?}"
    );

    assert_eq!(read_sysctl(&all).unwrap(), Some(machine_all));
    assert_eq!(read_sysctl(&default).unwrap(), Some(machine_default));
    assert_eq!(own_netns(), before, "the calling thread changed netns");
}

#[test]
fn live_snapshot_reads_pod_and_host_as_exact_model_objects() {
    let t = topology();
    let state = snapshot_from(&t.host, request(Some(t.pod.path())));
    let pod = state.pod.as_ref().expect("pod netns was read");
    let host = &state.host;

    // Links: kinds, peers across netns, addresses with host bits, MACs.
    let eth0 = &pod.links["eth0"];
    let net1 = &pod.links["net1"];
    assert_eq!(eth0.kind.as_deref(), Some("veth"));
    assert_eq!(net1.kind.as_deref(), Some("macvlan"));
    assert_eq!(pod.links["lo"].kind, None);
    assert_eq!(pod.links["lo"].peer, None);
    let LinkPeer { ifindex, netnsid } = eth0.peer.clone().expect("eth0 has a peer");
    assert_eq!(ifindex, t.host.ifindex("vethpod"));
    assert_eq!(ifindex, host.links["vethpod"].index);
    assert!(netnsid.is_some(), "the peer is in another netns");
    // Each side's id for the other is what the other side's peers carry.
    assert_eq!(netnsid, pod.other_netns_id, "the pod's id for the host");
    let vethpod_peer = host.links["vethpod"].peer.as_ref().map(|p| p.netnsid);
    assert_eq!(
        vethpod_peer,
        Some(host.other_netns_id),
        "the host's id for the pod"
    );
    assert!(host.other_netns_id.is_some_and(|id| id >= 0));
    assert_eq!(
        net1.peer.as_ref().map(|p| p.ifindex),
        Some(host.links["vp0"].index)
    );
    assert_eq!(
        eth0.addresses,
        vec![net("10.244.1.2/24"), net("fd00:10:244:1::2/64")]
    );
    assert_eq!(
        net1.addresses,
        vec![net("192.168.50.2/24"), net("fd00:50::2/64")]
    );
    assert_eq!(pod.macs["eth0"], POD_ETH0_MAC.parse::<MacAddr>().unwrap());
    assert_eq!(pod.macs["net1"], POD_NET1_MAC.parse::<MacAddr>().unwrap());
    assert_eq!(
        host.links.keys().collect::<Vec<_>>(),
        ["lo", "vethpod", "vp0", "vp1"]
    );
    assert_eq!(
        host.links["vethpod"].addresses,
        vec![net("10.244.1.1/24"), net("fd00:10:244:1::1/64")]
    );

    // Routes: main (always) and 100 (asked); 4242 does not exist and reads as empty.
    let expected_routes = [
        route(
            MAIN_TABLE,
            "0.0.0.0/0",
            0,
            "eth0",
            Some("10.244.1.1"),
            PROTOCOL_BOOT,
        ),
        route(
            MAIN_TABLE,
            "0.0.0.0/0",
            0,
            "net1",
            Some("192.168.50.254"),
            PROTOCOL_BOOT,
        ),
        route(
            MAIN_TABLE,
            "::/0",
            1024,
            "eth0",
            Some("fd00:10:244:1::1"),
            PROTOCOL_BOOT,
        ),
        route(
            MAIN_TABLE,
            "::/0",
            1024,
            "net1",
            Some("fd00:50::254"),
            PROTOCOL_BOOT,
        ),
        route(
            100,
            "10.240.0.0/12",
            0,
            "eth0",
            Some("10.244.1.1"),
            ROUTER_PROTOCOL,
        ),
        connected("10.244.1.0/24", "eth0", Some("10.244.1.2")),
        connected("192.168.50.0/24", "net1", Some("192.168.50.2")),
        connected("fd00:10:244:1::/64", "eth0", None),
        connected("fd00:50::/64", "net1", None),
    ];
    assert_eq!(pod.routes, by_key(&expected_routes, |r| r.key.clone()));
    assert!(pod.routes.keys().all(|k| k.table != 4242));
    assert_eq!(
        host.routes,
        by_key(
            &[
                connected("10.244.1.0/24", "vethpod", Some("10.244.1.1")),
                connected("fd00:10:244:1::/64", "vethpod", None),
            ],
            |r| r.key.clone()
        )
    );

    // Rules of both families, with their protocol.
    let expected_rules = [
        rule(Family::Ipv4, 0, None, None, 255, PROTOCOL_KERNEL),
        Rule::owned_lookup(Family::Ipv4, 1000, None, Some(net("10.240.0.0/12")), 100),
        rule(Family::Ipv4, 32766, None, None, MAIN_TABLE, PROTOCOL_KERNEL),
        rule(Family::Ipv4, 32767, None, None, 253, PROTOCOL_KERNEL),
        rule(Family::Ipv6, 0, None, None, 255, PROTOCOL_KERNEL),
        rule(
            Family::Ipv6,
            1001,
            Some("fd00:10:244:1::2/128"),
            None,
            100,
            0,
        ),
        rule(Family::Ipv6, 32766, None, None, MAIN_TABLE, PROTOCOL_KERNEL),
    ];
    assert_eq!(pod.rules, by_key(&expected_rules, |r| r.key.clone()));

    // Permanent neighbours only, with their protocol.
    let owned = neighbour("eth0", "10.244.1.1", GW_MAC, ROUTER_PROTOCOL);
    assert_eq!(pod.neighbours, by_key(&[owned], |n| n.key.clone()));
    assert!(host.neighbours.is_empty());

    // Sysctls: every existing one asked for, with the values `sysctl` shows.
    let shared = [SysctlName::RpFilter, SysctlName::DisableIpv6];
    let announcing = [SysctlName::ArpNotify, SysctlName::NdiscNotify];
    let mut pod_keys: Vec<SysctlKey> = Vec::new();
    for iface in ["all", "default", "eth0", "net1"] {
        let per_link = ["eth0", "net1"].contains(&iface);
        let names = shared.iter().chain(announcing.iter().filter(|_| per_link));
        pod_keys.extend(names.map(|n| SysctlKey::new(iface, *n)));
    }
    let expected: BTreeMap<_, _> = pod_keys
        .iter()
        .map(|k| (k.clone(), t.pod.sysctl(k)))
        .collect();
    assert_eq!(pod.sysctls, expected);
    assert_eq!(
        pod.sysctls[&SysctlKey::new("eth0", SysctlName::RpFilter)],
        2
    );
    assert_eq!(
        pod.sysctls[&SysctlKey::new("net1", SysctlName::RpFilter)],
        1
    );
    let host_keys = ["all", "default", "vethpod"].map(|i| SysctlKey::new(i, SysctlName::RpFilter));
    let expected: BTreeMap<_, _> = host_keys
        .iter()
        .map(|k| (k.clone(), t.host.sysctl(k)))
        .collect();
    assert_eq!(host.sysctls, expected);
    assert_eq!(
        host.sysctls[&SysctlKey::new("vethpod", SysctlName::RpFilter)],
        1
    );

    // Preferred sources of the host toward the pod; none toward the unreachable address.
    assert_eq!(
        state.host_preferred_src,
        BTreeMap::from([
            (ip("10.244.1.2"), ip("10.244.1.1")),
            (ip("fd00:10:244:1::2"), ip("fd00:10:244:1::1")),
        ])
    );

    // A second read gives the same state.
    let again = snapshot_from(&t.host, request(Some(t.pod.path())));
    assert_eq!(again, state);
}

#[test]
fn a_missing_or_stale_pod_netns_reads_as_no_pod() {
    let host = Netns::new("host");
    let gone = Path::new("/run/netns").join(unique("gone"));
    let state = snapshot_from(&host, request(Some(gone)));
    assert_eq!(state.pod, None);
    assert!(state.host.links.contains_key("lo"));

    // What a runtime leaves behind after unmounting a netns: a plain file.
    let stale = TempFile::new("");
    let state = snapshot_from(&host, request(Some(stale.0.clone())));
    assert_eq!(state.pod, None);

    let state = snapshot_from(&host, request(None));
    assert_eq!(state.pod, None);
}

#[test]
fn a_live_snapshot_round_trips_through_file_snapshot() {
    let t = topology();
    let state = snapshot_from(&t.host, request(Some(t.pod.path())));
    let file = TempFile::new(&serde_json::to_string_pretty(&state).unwrap());
    // Read back for the request it was taken with (a file is held to what a request reads).
    let read = FileSnapshot {
        path: file.0.clone(),
    }
    .snapshot(&request(Some(t.pod.path())))
    .unwrap();
    assert_eq!(read, state);

    let bad = TempFile::new("{\"host\": [");
    let err = FileSnapshot {
        path: bad.0.clone(),
    }
    .snapshot(&SnapshotRequest::default())
    .unwrap_err();
    let shown = bad.0.display().to_string();
    assert!(
        matches!(&err, Error::Decode { what, .. } if what.contains(&shown)),
        "{err:?}"
    );

    let missing = FileSnapshot {
        path: std::env::temp_dir().join(unique("missing")),
    };
    let err = missing.snapshot(&SnapshotRequest::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
}

#[test]
fn a_snapshot_of_every_table_reads_tables_no_request_names_and_says_so() {
    let t = topology();
    t.pod
        .ip("route add 192.0.2.2 dev eth0 table 4321 proto 176");
    t.host
        .ip("route add 192.0.2.9 dev vethpod table 777 proto 176");
    let req = SnapshotRequest {
        pod_netns: Some(t.pod.path()),
        every_table: true,
        ..SnapshotRequest::default()
    };
    let state = snapshot_from(&t.host, req);
    let pod = state.pod.as_ref().expect("pod");
    let tables = |ns: &router::model::NetnsState| -> BTreeSet<u32> {
        ns.routes.keys().map(|k| k.table).collect()
    };
    for table in [MAIN_TABLE, 100, 4321, 255] {
        assert!(
            tables(pod).contains(&table),
            "pod table {table}: {:?}",
            tables(pod)
        );
    }
    for table in [MAIN_TABLE, 777, 255] {
        assert!(tables(&state.host).contains(&table), "host table {table}");
    }
    let held = state.tables.expect("a live snapshot states its tables");
    assert_eq!((held.pod, held.host), (Tables::ALL, Tables::ALL));
    // The host's source toward the pod's addresses, as an attachment's request would ask.
    assert!(state.host_preferred_src.contains_key(&ip("10.244.1.2")));

    // An attachment's request states exactly what it read.
    let narrow = snapshot_from(&t.host, request(Some(t.pod.path())));
    let held = narrow.tables.expect("tables");
    assert_eq!(
        held.pod,
        Tables::Only(BTreeSet::from([MAIN_TABLE, 100, 4242]))
    );
    assert_eq!(held.host, Tables::Only(BTreeSet::from([MAIN_TABLE])));
    assert!(!tables(narrow.pod.as_ref().unwrap()).contains(&4321));
}

/// The host as a node with other pods: routes in table 500 through H (vethpod) and through
/// other devices, owned and not, and permanent neighbours on both.
fn node_with_other_pods(t: &Topology) {
    t.host
        .ip("route add 192.168.50.2/32 dev vethpod table 500 proto 176
         -6 route add fd00:50::2/128 dev vethpod table 500 proto 176
         route add 192.168.60.2/32 dev vp0 table 500 proto 176
         route add 192.168.70.2/32 dev vp0 table 500 proto boot
         neigh add 192.168.50.2 lladdr 02:50:00:00:00:02 dev vethpod nud permanent protocol 176
         neigh add 192.168.60.2 lladdr 02:60:00:00:00:02 dev vp0 nud permanent protocol 176
         rule add from all lookup 500 pref 32000 protocol 176");
}

fn host_read(t: &Topology, host_objects: HostObjects) -> ActualState {
    let req = SnapshotRequest {
        host_tables: BTreeSet::from([500]),
        host_objects,
        ..request(Some(t.pod.path()))
    };
    snapshot_from(&t.host, req)
}

fn route_dsts(state: &ActualState) -> BTreeSet<String> {
    state
        .host
        .routes
        .keys()
        .map(|k| format!("{} {}", k.dst, k.dev.as_deref().unwrap_or("-")))
        .collect()
}

#[test]
fn a_read_through_the_pods_peers_sees_only_the_host_objects_through_h() {
    let t = topology();
    node_with_other_pods(&t);
    let all = host_read(&t, HostObjects::All);
    assert_eq!(
        route_dsts(&all),
        BTreeSet::from([
            "192.168.50.2/32 vethpod".to_string(),
            "fd00:50::2/128 vethpod".to_string(),
            "192.168.60.2/32 vp0".to_string(),
            "192.168.70.2/32 vp0".to_string(),
        ])
    );
    let through = host_read(&t, HostObjects::ThroughPodPeers);
    assert_eq!(
        route_dsts(&through),
        BTreeSet::from([
            "192.168.50.2/32 vethpod".to_string(),
            "fd00:50::2/128 vethpod".to_string(),
        ])
    );
    let neighbour_devs: BTreeSet<&str> = through
        .host
        .neighbours
        .keys()
        .map(|k| k.dev.as_str())
        .collect();
    assert_eq!(neighbour_devs, BTreeSet::from(["vethpod"]));
    assert_eq!(all.host.neighbours.len(), 2);
    // Of the links, H as a whole read reads it (by its index, from the pod's side) and the
    // links holding addresses beyond link-local ones (the node's addresses), not the node's
    // other links (vp0, vp1): their count would make every ADD grow with the node's pods.
    assert_eq!(
        through.host.links.keys().collect::<BTreeSet<_>>(),
        BTreeSet::from([&"lo".to_string(), &"vethpod".to_string()])
    );
    assert_eq!(through.host.links["vethpod"], all.host.links["vethpod"]);
    assert_eq!(
        through.host.links["lo"].addresses,
        all.host.links["lo"].addresses
    );
    assert_eq!(
        through.host.macs.get("vethpod"),
        all.host.macs.get("vethpod")
    );
    assert_eq!(through.host_peer("eth0"), Some("vethpod"));
    // Everything else but the routes and neighbours is read as a whole read reads it.
    assert_eq!(through.host.rules, all.host.rules);
    assert_eq!(through.host.sysctls, all.host.sysctls);
    assert_eq!(through.host.other_netns_id, all.host.other_netns_id);
    assert_eq!(through.pod, all.pod);
}

#[test]
fn a_del_read_holds_what_is_through_the_pods_peers_but_not_the_node_addresses() {
    let t = topology();
    node_with_other_pods(&t);
    let through = host_read(&t, HostObjects::ThroughPodPeers);
    let del = host_read(&t, HostObjects::PodPeersOnly);
    // What DEL removes or restores on the host is read as ADD's read reads it.
    assert_eq!(del.host.routes, through.host.routes);
    assert_eq!(del.host.neighbours, through.host.neighbours);
    assert_eq!(del.host.rules, through.host.rules);
    assert_eq!(del.host.sysctls, through.host.sysctls);
    assert_eq!(
        del.host.macs.get("vethpod"),
        through.host.macs.get("vethpod")
    );
    assert_eq!(del.host_peer("eth0"), Some("vethpod"));
    assert_eq!(del.pod, through.pod);
    // The node's addresses, the links holding them and the preferred sources are facts
    // only ADD builds from: not read.
    assert_eq!(
        del.host.links.keys().collect::<BTreeSet<_>>(),
        BTreeSet::from([&"vethpod".to_string()])
    );
    assert!(del.host.links["vethpod"].addresses.is_empty());
    assert!(del.host_preferred_src.is_empty());
}

#[test]
fn a_read_through_the_pods_peers_without_the_pod_reads_everything() {
    let t = topology();
    node_with_other_pods(&t);
    let req = |host_objects| SnapshotRequest {
        host_tables: BTreeSet::from([500]),
        host_objects,
        ..request(None)
    };
    let through = snapshot_from(&t.host, req(HostObjects::ThroughPodPeers));
    let del = snapshot_from(&t.host, req(HostObjects::PodPeersOnly));
    let all = snapshot_from(&t.host, req(HostObjects::All));
    assert_eq!(through, all);
    // DEL's read, without the pod, also reads the whole node, but never preferred sources.
    assert_eq!(del.host, all.host);
    assert!(del.host_preferred_src.is_empty() && !all.host_preferred_src.is_empty());
    assert_eq!(all.host.routes.len(), 4);
}

#[test]
fn the_shared_rules_reads_hold_the_rules_and_only_owned_routes() {
    let t = topology();
    node_with_other_pods(&t);
    let rules = host_read(&t, HostObjects::Rules);
    assert!(rules.host.routes.is_empty() && rules.host.neighbours.is_empty());
    assert!(rules.host.links.is_empty() && rules.host.sysctls.is_empty());
    assert!(rules.host.rules.keys().any(|k| k.table == 500));
    let owned = host_read(&t, HostObjects::RulesAndOwnedRoutes);
    assert_eq!(owned.host.rules, rules.host.rules);
    // A thread that read no link before names the devices by index (no link is read).
    let (vethpod, vp0) = (t.host.ifindex("vethpod"), t.host.ifindex("vp0"));
    assert_eq!(
        route_dsts(&owned),
        BTreeSet::from([
            format!("192.168.50.2/32 if{vethpod}"),
            format!("fd00:50::2/128 if{vethpod}"),
            format!("192.168.60.2/32 if{vp0}"),
        ])
    );
    assert!(owned
        .host
        .routes
        .values()
        .all(|r| r.protocol == ROUTER_PROTOCOL));
}

/// The inode of the netns the calling thread is in.
fn netns_inode_here() -> router::error::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata("/proc/thread-self/ns/net")
        .map_err(|e| Error::io("/proc/thread-self/ns/net", e))?;
    Ok(meta.ino())
}

fn netns_inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

/// A visit runs its work inside the netns and brings the calling thread back to its own,
/// whatever the work did: returned, failed or panicked. Once the path is gone a visit
/// fails naming it without moving the thread; the same path naming a new netns is visited
/// as it is now.
#[test]
fn a_visit_runs_inside_its_netns_and_always_brings_the_thread_back() {
    let ns = Netns::new("visit");
    let visitor = NetnsVisitor::new(ns.path());
    let home = netns_inode_here().unwrap();
    let inside = visitor.visit(netns_inode_here).unwrap();
    assert_eq!(inside, netns_inode(&ns.path()));
    assert_ne!(inside, home);
    assert_eq!(netns_inode_here().unwrap(), home, "back after a result");
    assert!(!visiting());

    let err = visitor.visit(|| -> router::error::Result<()> { Err(Error::TryAgain("x".into())) });
    assert_eq!(err, Err(Error::TryAgain("x".into())));
    assert_eq!(netns_inode_here().unwrap(), home, "back after an error");

    let err = visitor
        .visit(|| -> router::error::Result<()> { panic!("boom") })
        .unwrap_err();
    assert!(
        matches!(&err, Error::Io { what, reason, .. } if reason.contains("boom") && what.contains(&ns.name)),
        "{err:?}"
    );
    assert_eq!(netns_inode_here().unwrap(), home, "back after a panic");
    assert!(!visiting());

    run("ip", &["netns", "del", &ns.name]);
    let err = visitor.visit(netns_inode_here).unwrap_err();
    let Error::Io { what, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(what.contains(&ns.name), "{what}");
    assert_eq!(netns_inode_here().unwrap(), home);

    run("ip", &["netns", "add", &ns.name]);
    assert_eq!(
        visitor.visit(netns_inode_here).unwrap(),
        netns_inode(&ns.path())
    );
    assert_eq!(netns_inode_here().unwrap(), home);
}

/// Inside a visit the thread refuses to open its own netlink handle: opened there, it
/// would be the visited netns's, kept as the thread's own for node work after the visit.
/// A handle the thread opened before a visit still talks to its own netns after it.
#[test]
fn a_thread_visiting_another_netns_refuses_its_own_handle_and_keeps_the_one_it_had() {
    let ns = Netns::new("visitown");
    ns.ip("link add vo0 type veth peer name vo1");
    let visitor = NetnsVisitor::new(ns.path());
    // A thread of the test's own whose netns is another test netns: its "own" handle is
    // that one's (lo only), never the visited pod's (lo, vo0, vo1).
    let home = Netns::new("visithome");
    let home_path = home.path();
    let seen = run_in_netns(&home_path, move || {
        let before = Netlink::on_this_thread(|nl| nl.links())?;
        let inside = visitor.visit(|| {
            let visiting_inside = visiting();
            Ok((
                visiting_inside,
                Netlink::on_this_thread(|nl| nl.links()).err(),
            ))
        })?;
        let after = Netlink::on_this_thread(|nl| nl.links())?;
        let names = |l: &router::netlink::Links| l.links.keys().cloned().collect::<Vec<_>>();
        Ok((names(&before), inside, names(&after)))
    })
    .unwrap();
    let (before, (visiting_inside, refused), after) = seen;
    assert_eq!(before, ["lo"]);
    assert!(visiting_inside, "visiting() inside the visit");
    let Some(Error::Kernel { reason, .. }) = &refused else {
        panic!("the handle was not refused: {refused:?}")
    };
    assert!(reason.contains("visiting"), "{reason}");
    assert_eq!(after, ["lo"], "still the home netns's handle");
}

/// The pod's netlink handle is opened in a visit to the pod and used from the calling
/// thread back in its own netns: what it reads and writes is the pod's. A path that names
/// a new netns by now gets a handle of that one.
#[test]
fn a_handle_opened_in_a_visit_talks_to_its_netns_from_the_thread_back_home() {
    let ns = Netns::new("handle");
    ns.ip("link add hv0 type veth peer name hv1");
    let visitor = NetnsVisitor::new(ns.path());
    let caller = netns_inode_here().unwrap();
    let names = || {
        let links = Netlink::in_netns(&visitor, |nl| nl.links()).unwrap();
        links.links.keys().cloned().collect::<Vec<_>>()
    };
    assert_eq!(names(), ["hv0", "hv1", "lo"]);
    let mac: MacAddr = "0a:0b:0c:0d:0e:0f".parse().unwrap();
    let written = Netlink::in_netns(&visitor, |nl| {
        let links = nl.link_names()?;
        nl.write(Write::set_mac("hv0", mac, &links)?)
    });
    assert!(written.is_ok(), "{written:?}");
    let address = ns.exec(&["cat", "/sys/class/net/hv0/address"]);
    assert_eq!(address.trim(), "0a:0b:0c:0d:0e:0f");
    assert_eq!(netns_inode_here().unwrap(), caller, "the caller is back");

    run("ip", &["netns", "del", &ns.name]);
    let err = Netlink::in_netns(&visitor, |nl| nl.links()).unwrap_err();
    assert!(
        matches!(&err, Error::Io { what, .. } if what.contains(&ns.name)),
        "{err:?}"
    );
    run("ip", &["netns", "add", &ns.name]);
    assert_eq!(names(), ["lo"], "the new netns's handle, not the old one's");
}

/// A run's pod sysctls go through files a visit opened inside the pod, read and written
/// from the calling thread back in its own netns: they are the pod's, the caller's netns
/// is untouched, a key without a file reads as absent, and one never held is read or
/// written in a visit.
#[test]
fn sysctl_files_held_from_a_visit_are_the_pods_from_any_thread() {
    let ns = Netns::new("held");
    let visitor = NetnsVisitor::new(ns.path());
    let all = SysctlKey::new("all", SysctlName::RpFilter);
    let default = SysctlKey::new("default", SysctlName::RpFilter);
    let missing = SysctlKey::new("nosuchdev", SysctlName::RpFilter);
    let machine_all = read_sysctl(&all).unwrap();
    ns.set_sysctl("net.ipv4.conf.all.rp_filter", 2);
    ns.set_sysctl("net.ipv4.conf.default.rp_filter", 1);
    visitor
        .hold_sysctl_files([all.clone(), missing.clone()])
        .unwrap();

    let read = visitor
        .read_sysctls(vec![all.clone(), missing.clone(), default.clone()])
        .unwrap();
    assert_eq!(
        read,
        BTreeMap::from([(all.clone(), 2), (default.clone(), 1)])
    );
    visitor.write_sysctl(&all, 1).unwrap();
    assert_eq!(ns.sysctl(&all), 1);
    assert_eq!(
        visitor.read_sysctls(vec![all.clone()]).unwrap()[&all],
        1,
        "read afresh"
    );
    visitor.write_sysctl(&default, 2).unwrap();
    assert_eq!(ns.sysctl(&default), 2);
    assert!(visitor.write_sysctl(&missing, 1).is_err(), "no such sysctl");
    assert_eq!(
        read_sysctl(&all).unwrap(),
        machine_all,
        "the machine's is untouched"
    );

    // The path naming a new netns: its files, not the old ones (which still exist while
    // held, in a netns nobody names any more).
    run("ip", &["netns", "del", &ns.name]);
    run("ip", &["netns", "add", &ns.name]);
    ns.set_sysctl("net.ipv4.conf.all.rp_filter", 2);
    visitor.hold_sysctl_files([all.clone()]).unwrap();
    assert_eq!(visitor.read_sysctls(vec![all.clone()]).unwrap()[&all], 2);
    visitor.write_sysctl(&all, 0).unwrap();
    assert_eq!(ns.sysctl(&all), 0);
}

/// DEL's locked read of the owned routes reads no link (a node's every link would cost more
/// than the rest): every device is named by its index, as iproute2 names it, whether the
/// run read it before the lock or it was made since (another pod's); whether an owned
/// route is left does not depend on it.
#[test]
fn the_owned_routes_read_reads_no_link_and_names_every_device_by_index() {
    let t = topology();
    node_with_other_pods(&t);
    let host = t.host.name.clone();
    let req = |host_objects| SnapshotRequest {
        host_tables: BTreeSet::from([500]),
        host_objects,
        ..request(Some(t.pod.path()))
    };
    let (all, owned) = (req(HostObjects::All), req(HostObjects::RulesAndOwnedRoutes));
    let owned = run_in_netns(&t.host.path(), move || {
        LiveSnapshot::default().snapshot(&all)?;
        for command in [
            "link add vlate type veth peer name vlate-p",
            "link set vlate up",
            "route add 192.168.80.2/32 dev vlate table 500 proto 176",
        ] {
            let mut args = vec!["-n", host.as_str()];
            args.extend(command.split_whitespace());
            run("ip", &args);
        }
        LiveSnapshot::default().snapshot(&owned)
    })
    .unwrap();
    let vlate = format!("192.168.80.2/32 if{}", t.host.ifindex("vlate"));
    assert!(
        route_dsts(&owned).contains(&vlate),
        "{:?}",
        route_dsts(&owned)
    );
    let vp0 = format!("192.168.60.2/32 if{}", t.host.ifindex("vp0"));
    assert!(
        route_dsts(&owned).contains(&vp0),
        "{:?}",
        route_dsts(&owned)
    );
    assert_eq!(route_dsts(&owned).len(), 4);
}

/// The managed sysctls of a link are taken from what the kernel sends with the link
/// (IFLA_AF_SPEC's devconf), not read from /proc/sys one file each: every one of them,
/// set away from its default, reads as `sysctl` shows it.
#[test]
fn sysctls_sent_with_the_links_are_those_proc_sys_shows() {
    let t = topology();
    for (key, value) in [
        ("net.ipv4.conf.net1.arp_notify", 1),
        ("net.ipv6.conf.net1.ndisc_notify", 1),
        ("net.ipv6.conf.eth0.disable_ipv6", 1),
        ("net.ipv4.conf.eth0.rp_filter", 2),
    ] {
        t.pod.set_sysctl(key, value);
    }
    let pod = snapshot_from(&t.host, request(Some(t.pod.path())))
        .pod
        .unwrap();
    for (iface, name, value) in [
        ("net1", SysctlName::ArpNotify, 1),
        ("net1", SysctlName::NdiscNotify, 1),
        ("eth0", SysctlName::DisableIpv6, 1),
        ("eth0", SysctlName::RpFilter, 2),
        ("eth0", SysctlName::ArpNotify, 0),
    ] {
        let key = SysctlKey::new(iface, name);
        assert_eq!(pod.sysctls.get(&key), Some(&value), "{key}");
        assert_eq!(t.pod.sysctl(&key), value, "{key}");
    }
}
