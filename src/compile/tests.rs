use super::*;
use crate::config::{parse_netconf, AllowedDirs};
use crate::model::{Change, LinkPeer, SysctlName};
use crate::plan::plan;
use serde_json::{json, Value};

const SNAPSHOT: &str = include_str!("../../fixtures/add-seed-dual-stack/snapshot.json");
const PREV: &str = include_str!("../../fixtures/add-seed-dual-stack/prev-result.json");

fn world() -> ActualState {
    serde_json::from_str(SNAPSHOT).unwrap()
}

fn prev() -> PrevView {
    PrevView::parse(&serde_json::from_str::<Value>(PREV).unwrap()).unwrap()
}

fn config(patch: Value) -> Config {
    let mut base = json!({
        "cniVersion": "1.0.0",
        "name": "macvlan-overlay",
        "overlay_hijack_subnet": ["10.240.0.0/12", "fd00:10:244::/96"],
        "service_hijack_subnet": ["172.96.0.0/18", "2001:4860:fd00::/108"],
        "rp_filter": {"set_host": true, "value": 0},
        "mac_prefix": "0a:0b"
    });
    if let (Some(b), Some(p)) = (base.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            b.insert(k.clone(), v.clone());
        }
    }
    parse_netconf(&base, &AllowedDirs::default())
        .unwrap()
        .config
}

fn run(
    config: &Config,
    actual: &ActualState,
    mode: Mode,
    record: Option<&Record>,
) -> Result<Compiled> {
    let prev = prev();
    compile(&CompileInput {
        config,
        container_id: "c1",
        ifname: "net1",
        prev: Some(&prev),
        actual,
        record,
        peers: &[],
        mode,
    })
}

fn add(patch: Value) -> Compiled {
    run(&config(patch), &world(), Mode::Add, None).unwrap()
}

fn has_rule(ns: &NetnsState, text_from: Option<&str>, text_to: Option<&str>, table: u32) -> bool {
    ns.rules.values().any(|r| {
        r.key.from.map(|n| n.to_string()).as_deref() == text_from
            && r.key.to.map(|n| n.to_string()).as_deref() == text_to
            && r.key.table == table
            && r.is_owned()
    })
}

fn route<'a>(ns: &'a NetnsState, table: u32, dst: &str, dev: &str) -> Option<&'a Route> {
    ns.routes.values().find(|r| {
        r.key.table == table && r.key.dst.to_string() == dst && r.key.dev.as_deref() == Some(dev)
    })
}

#[test]
fn mac_takes_the_prefix_and_the_first_ipv4_address() {
    let addrs: Vec<IpNet> = vec![
        "fd00::1:0:101/64".parse().unwrap(),
        "10.20.20.95/24".parse().unwrap(),
    ];
    assert_eq!(
        derive_mac([0x0a, 0x0b], &addrs).unwrap().to_string(),
        "0a:0b:0a:14:14:5f"
    );
}

#[test]
fn mac_falls_back_to_the_last_four_bytes_of_ipv6_keeping_leading_zeros() {
    let addrs: Vec<IpNet> = vec!["fd00::1:0:101/64".parse().unwrap()];
    assert_eq!(
        derive_mac([0x0a, 0x0b], &addrs).unwrap().to_string(),
        "0a:0b:00:00:01:01"
    );
    let zeros: Vec<IpNet> = vec!["0.0.1.2/8".parse().unwrap()];
    assert_eq!(
        derive_mac([0x0a, 0x0b], &zeros).unwrap().to_string(),
        "0a:0b:00:00:01:02"
    );
    assert_eq!(derive_mac([0x0a, 0x0b], &[]), None);
}

#[test]
fn name_order_sorts_by_stem_then_number() {
    assert!(name_order("eth0") < name_order("net1"));
    assert!(name_order("net1") < name_order("net2"));
    assert!(name_order("net2") < name_order("net10"));
    assert!(migration_applies(MigrateRoute::Auto, "net1", "eth0"));
    assert!(!migration_applies(MigrateRoute::Auto, "net1", "pod0"));
    assert!(migration_applies(MigrateRoute::Always, "net1", "pod0"));
    assert!(!migration_applies(MigrateRoute::Never, "net2", "eth0"));
}

#[test]
fn add_moves_eth0_routes_into_table_100_and_removes_only_its_defaults_from_main() {
    let c = add(json!({}));
    let pod = &c.desired.pod;
    assert!(route(&pod.present, 100, "0.0.0.0/0", "eth0").is_some());
    assert!(route(&pod.present, 100, "10.244.1.0/24", "eth0").is_some());
    assert!(route(&pod.present, 100, "::/0", "eth0").is_some());
    assert!(
        route(&pod.present, 100, "fe80::/64", "eth0").is_none(),
        "link-local kernel route stays"
    );
    let absent: Vec<String> = pod
        .ownership
        .absent_routes
        .iter()
        .map(|k| format!("{} {}", k.dst, k.dev.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(absent, ["0.0.0.0/0 eth0", "::/0 eth0"]);
    assert_eq!(c.record.moved[&Family::Ipv4].interface, "eth0");
}

#[test]
fn add_writes_from_and_hijack_rules_for_each_family() {
    let c = add(json!({}));
    let rules = &c.desired.pod.present.rules;
    let pod = &c.desired.pod.present;
    assert!(has_rule(pod, Some("10.244.1.2/32"), None, 100));
    assert!(has_rule(pod, Some("fd00:10:244:1::2/128"), None, 100));
    for cidr in [
        "10.240.0.0/12",
        "fd00:10:244::/96",
        "172.96.0.0/18",
        "2001:4860:fd00::/108",
    ] {
        assert!(has_rule(pod, None, Some(cidr), 100), "{cidr}");
    }
    assert_eq!(rules.len(), 6);
    assert!(rules.values().all(|r| r.key.priority == 1000));
}

#[test]
fn add_routes_host_addresses_through_eth0_with_the_host_peer_mac() {
    let c = add(json!({}));
    let pod = &c.desired.pod.present;
    for table in [MAIN_TABLE, 100] {
        assert!(route(pod, table, "192.168.50.1/32", "eth0").is_some());
        assert!(route(pod, table, "fd50::1/128", "eth0").is_some());
    }
    assert!(
        route(pod, MAIN_TABLE, "10.244.1.1/32", "eth0").is_none(),
        "veth* host links are not node addresses"
    );
    let n = &pod.neighbours[&NeighbourKey {
        dev: "eth0".into(),
        addr: "192.168.50.1".parse().unwrap(),
    }];
    assert_eq!(n.lladdr.unwrap().to_string(), "a6:03:c3:8d:c9:f4");
}

#[test]
fn add_host_side_routes_the_chained_addresses_through_the_veth_peer() {
    let c = add(json!({}));
    let host = &c.desired.host.present;
    assert!(route(host, 500, "192.168.50.10/32", "veth2df2119e").is_some());
    assert!(route(host, 500, "fd50::10/128", "veth2df2119e").is_some());
    assert!(has_rule(host, None, None, 500));
    assert_eq!(host.rules.len(), 2);
    let n = &host.neighbours[&NeighbourKey {
        dev: "veth2df2119e".into(),
        addr: "192.168.50.10".parse().unwrap(),
    }];
    assert_eq!(n.lladdr.unwrap().to_string(), "c2:ec:4a:ab:61:96");
}

#[test]
fn add_sets_rp_filter_and_enables_ipv6_and_records_the_old_values() {
    let c = add(json!({}));
    let pod = &c.desired.pod.present.sysctls;
    for iface in ["all", "default", "eth0", "net1"] {
        assert_eq!(pod[&SysctlKey::new(iface, SysctlName::RpFilter)], 0);
        assert_eq!(pod[&SysctlKey::new(iface, SysctlName::DisableIpv6)], 0);
        assert_eq!(
            c.record.original_sysctls[&SysctlKey::new(iface, SysctlName::RpFilter)],
            2
        );
    }
    let host = &c.desired.host.present.sysctls;
    assert_eq!(host.len(), 3);
    assert_eq!(
        host[&SysctlKey::new("veth2df2119e", SysctlName::RpFilter)],
        0
    );
}

#[test]
fn add_sets_the_mac_and_remembers_the_original() {
    let c = add(json!({}));
    assert_eq!(c.new_mac.unwrap().to_string(), "0a:0b:c0:a8:32:0a");
    assert_eq!(c.desired.pod.present.macs["net1"], c.new_mac.unwrap());
    assert_eq!(
        c.record.original_mac.unwrap().to_string(),
        "da:5e:d2:d6:b7:6d"
    );
}

#[test]
fn only_op_mac_wants_nothing_but_the_mac_and_the_kernel_announcing_it() {
    let c = add(json!({"only_op_mac": true}));
    let pod = &c.desired.pod.present;
    assert_eq!(pod.macs.len(), 1);
    assert!(pod.routes.is_empty() && pod.rules.is_empty());
    let sysctls: Vec<String> = pod.sysctls.keys().map(ToString::to_string).collect();
    assert_eq!(
        sysctls,
        [
            "net.ipv4.conf.net1.arp_notify",
            "net.ipv6.conf.net1.ndisc_notify"
        ]
    );
    assert!(pod.sysctls.values().all(|v| *v == 1));
    assert!(c.desired.host.present.is_empty());
}

#[test]
fn sriov_skips_the_host_side_and_host_address_routes() {
    let c = add(json!({"sriov": true}));
    assert!(c.desired.host.present.routes.is_empty());
    assert!(c.desired.host.present.rules.is_empty());
    assert!(c.desired.pod.present.neighbours.is_empty());
    assert!(route(
        &c.desired.pod.present,
        MAIN_TABLE,
        "192.168.50.1/32",
        "eth0"
    )
    .is_none());
    assert!(route(&c.desired.pod.present, 100, "0.0.0.0/0", "eth0").is_some());
}

#[test]
fn migrate_zero_copies_but_keeps_the_default_in_main_and_adds_no_from_rule() {
    let c = add(json!({"migrate_route": 0}));
    assert!(c.desired.pod.ownership.absent_routes.is_empty());
    assert!(route(&c.desired.pod.present, 100, "0.0.0.0/0", "eth0").is_some());
    assert!(!has_rule(
        &c.desired.pod.present,
        Some("10.244.1.2/32"),
        None,
        100
    ));
    assert!(c.record.moved[&Family::Ipv4].removed_from_main.is_empty());
}

#[test]
fn overlay_without_host_peer_skips_every_step_that_needs_it() {
    let mut world = world();
    if let Some(eth0) = world.pod.as_mut().unwrap().links.get_mut("eth0") {
        eth0.peer = Some(LinkPeer {
            ifindex: 99,
            netnsid: Some(0),
        });
    }
    let c = run(&config(json!({})), &world, Mode::Add, None).unwrap();
    assert!(c.desired.host.present.routes.is_empty());
    assert!(c.desired.pod.present.neighbours.is_empty());
    assert!(c
        .warnings
        .iter()
        .any(|n| n.contains("eth0 is in the pod but has no veth peer")));
}

#[test]
fn default_is_not_removed_from_main_when_c_has_none() {
    let mut world = world();
    world
        .pod
        .as_mut()
        .unwrap()
        .routes
        .retain(|k, _| !(k.is_default() && k.dev.as_deref() == Some("net1")));
    let c = run(&config(json!({})), &world, Mode::Add, None).unwrap();
    assert!(c.desired.pod.ownership.absent_routes.is_empty());
    assert!(c.notes.iter().any(|n| n.contains("not removed")));
}

#[test]
fn chained_interface_without_address_and_mac_prefix_is_invalid_input() {
    let config = config(json!({}));
    let empty = PrevView::default();
    let err = compile(&CompileInput {
        config: &config,
        container_id: "c1",
        ifname: "net1",
        prev: Some(&empty),
        actual: &world(),
        record: None,
        peers: &[],
        mode: Mode::Add,
    })
    .unwrap_err();
    assert_eq!(err.code(), crate::error::Code::InvalidConfig);
}

#[test]
fn add_needs_the_pod_netns() {
    let mut world = world();
    world.pod = None;
    let err = run(&config(json!({})), &world, Mode::Add, None).unwrap_err();
    assert_eq!(err.code(), crate::error::Code::UnknownContainer);
}

fn applied(c: &Compiled, actual: &ActualState, mode: Mode) -> ActualState {
    let mut after = actual.clone();
    after.apply(&plan(&c.desired, actual, mode).ops);
    after
}

#[test]
fn check_after_add_compiles_from_the_record_to_an_empty_plan() {
    let config = config(json!({}));
    let first = run(&config, &world(), Mode::Add, None).unwrap();
    let after = applied(&first, &world(), Mode::Add);
    let again = run(&config, &after, Mode::Add, Some(&first.record())).unwrap();
    assert!(plan(&again.desired, &after, Mode::Add).is_empty());
    assert_eq!(again.record(), first.record());
}

#[test]
fn check_after_add_without_record_recovers_p_from_the_copies() {
    let config = config(json!({}));
    let first = run(&config, &world(), Mode::Add, None).unwrap();
    let after = applied(&first, &world(), Mode::Add);
    let again = run(&config, &after, Mode::Add, None).unwrap();
    assert_eq!(
        plan(&again.desired, &after, Mode::Add),
        crate::plan::Plan::default()
    );
}

#[test]
fn del_restores_the_moved_defaults_by_replacing_cs_and_the_mac() {
    let config = config(json!({}));
    let first = run(&config, &world(), Mode::Add, None).unwrap();
    let after = applied(&first, &world(), Mode::Add);
    let del = run(&config, &after, Mode::Del, Some(&first.record())).unwrap();
    let ops = plan(&del.desired, &after, Mode::Del).ops;
    let replaced = ops
        .iter()
        .filter(|op| matches!(&op.change, Change::ReplaceRoute { new, old } if new.key.dev.as_deref() == Some("eth0") && old.iter().all(|o| o.key.dev.as_deref() == Some("net1"))))
        .count();
    assert_eq!(replaced, 2);
    let restored = applied(&del, &after, Mode::Del);
    let pod = restored.pod.unwrap();
    assert_eq!(pod.macs["net1"].to_string(), "da:5e:d2:d6:b7:6d");
    assert!(pod.routes.values().all(|r| !r.is_owned()));
    assert!(pod.rules.values().all(|r| !r.is_owned()));
    assert!(restored.host.routes.is_empty() && restored.host.neighbours.is_empty());
    assert_eq!(restored.host.rules, world().host.rules);
}

#[test]
fn del_without_record_still_removes_everything_owned_and_restores_defaults() {
    let config = config(json!({}));
    let first = run(&config, &world(), Mode::Add, None).unwrap();
    let after = applied(&first, &world(), Mode::Add);
    let del = run(&config, &after, Mode::Del, None).unwrap();
    let restored = applied(&del, &after, Mode::Del);
    let pod = restored.pod.unwrap();
    assert!(pod.routes.values().all(|r| !r.is_owned()));
    assert!(pod
        .main_defaults(Family::Ipv4)
        .any(|r| r.key.dev.as_deref() == Some("eth0")));
    assert!(pod
        .main_defaults(Family::Ipv6)
        .any(|r| r.key.dev.as_deref() == Some("eth0")));
    assert!(restored.host.routes.is_empty());
}

#[test]
fn del_keeps_what_another_attachment_of_the_pod_wants() {
    let config = config(json!({}));
    let first = run(&config, &world(), Mode::Add, None).unwrap();
    let after = applied(&first, &world(), Mode::Add);
    let prev = prev();
    let mut peer = first.record();
    peer.ifname = "net2".into();
    let del = compile(&CompileInput {
        config: &config,
        container_id: "c1",
        ifname: "net1",
        prev: Some(&prev),
        actual: &after,
        record: Some(&first.record()),
        peers: std::slice::from_ref(&peer),
        mode: Mode::Del,
    })
    .unwrap();
    let restored = applied(&del, &after, Mode::Del);
    let neighbours = &restored.pod.as_ref().unwrap().neighbours;
    assert_eq!(neighbours.len(), first.record().pod.neighbours.len());
    assert!(restored.host.rules.values().any(|r| r.is_owned()));
}

#[test]
fn del_with_the_pod_gone_cleans_the_host_side() {
    let config = config(json!({}));
    let first = run(&config, &world(), Mode::Add, None).unwrap();
    let mut after = applied(&first, &world(), Mode::Add);
    after.pod = None;
    let del = run(&config, &after, Mode::Del, Some(&first.record())).unwrap();
    let restored = applied(&del, &after, Mode::Del);
    assert!(restored.host.routes.is_empty());
    assert!(restored.host.neighbours.is_empty());
    assert!(restored.host.rules.values().all(|r| !r.is_owned()));
}

/// The world after a first ADD, with the node's uplink addresses edited afterwards.
fn node_changed_after_add(edit: impl FnOnce(&mut Vec<IpNet>)) -> (Config, Compiled, ActualState) {
    let config = config(json!({}));
    let first = run(&config, &world(), Mode::Add, None).unwrap();
    let mut after = applied(&first, &world(), Mode::Add);
    let uplink = after.host.links.get_mut("up0").unwrap();
    edit(&mut uplink.addresses);
    (config, first, after)
}

fn causes(c: &Compiled, actual: &ActualState) -> Vec<String> {
    crate::render::drifts(&plan(&c.desired, actual, Mode::Add))
        .iter()
        .map(|d| {
            d.cause
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn a_node_address_added_since_add_is_drift_that_says_so() {
    let (config, first, now) =
        node_changed_after_add(|addrs| addrs.push("198.51.100.2/24".parse().unwrap()));
    let again = run(&config, &now, Mode::Add, Some(&first.record())).unwrap();
    let change = &again.desired.pod.node_addresses;
    assert_eq!(
        change.added,
        BTreeSet::from(["198.51.100.2".parse().unwrap()])
    );
    assert!(change.removed.is_empty());
    assert_eq!(
        causes(&again, &now),
        [
            "node address 198.51.100.2 (added since ADD) has no route through eth0 in table 100",
            "node address 198.51.100.2 (added since ADD) has no route through eth0",
            "node address 198.51.100.2 (added since ADD) has no neighbour entry on eth0",
        ]
    );
    // The plan applied (what --repair or a repeated ADD does) leaves nothing to say.
    let repaired = applied(&again, &now, Mode::Add);
    let after_repair = run(&config, &repaired, Mode::Add, Some(&again.record())).unwrap();
    assert!(plan(&after_repair.desired, &repaired, Mode::Add).is_empty());
    assert!(after_repair.desired.pod.node_addresses.is_empty());
}

#[test]
fn an_owned_route_toward_an_address_the_node_lost_is_drift_that_says_so() {
    let (config, first, now) =
        node_changed_after_add(|addrs| addrs.retain(|a| a.addr().to_string() != "fd50::1"));
    // The host's preferred source toward the chained interface was that address too.
    let mut now = now;
    now.host_preferred_src.clear();
    let again = run(&config, &now, Mode::Add, Some(&first.record())).unwrap();
    let removed: BTreeSet<IpAddr> = BTreeSet::from(["fd50::1".parse().unwrap()]);
    assert_eq!(again.desired.pod.node_addresses.removed, removed);
    let mut said = causes(&again, &now);
    said.sort();
    assert_eq!(
        said,
        [
            "neighbour entry for fd50::1 on eth0, no longer a node address",
            "route toward fd50::1 through eth0 in table 100, no longer a node address",
            "route toward fd50::1 through eth0, no longer a node address",
        ]
    );
}

#[test]
fn a_first_add_has_no_node_address_change_to_report() {
    let c = add(json!({}));
    assert!(c.desired.pod.node_addresses.is_empty());
}
