use super::diff::*;
use super::drift::*;
use serde_json::json;

use super::json::*;
use super::text::*;
use super::*;
use crate::model::notation::proto_text;
use crate::plan::{Blocked, Object, Plan};
use ipnet::IpNet;

use crate::model::{
    ActualState, Change, Neighbour, NeighbourKey, NetnsState, RouteKey, RouteKind, RouteScope,
    RuleAction, SysctlKey, SysctlName, MAIN_TABLE, PROTOCOL_BOOT, PROTOCOL_KERNEL, ROUTER_PROTOCOL,
};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// An owned unicast route in main via `dev`, nothing else set.
fn route(dst: &str, dev: &str) -> Route {
    Route {
        key: RouteKey {
            table: MAIN_TABLE,
            dst: net(dst),
            tos: 0,
            metric: 0,
            dev: Some(dev.to_string()),
            gateway: None,
        },
        scope: RouteScope::Universe,
        kind: RouteKind::Unicast,
        protocol: ROUTER_PROTOCOL,
        prefsrc: None,
        onlink: false,
    }
}

fn via(mut r: Route, gw: &str, table: u32) -> Route {
    r.key.gateway = Some(gw.parse().unwrap());
    r.key.table = table;
    r
}

fn rule(from: Option<&str>, to: Option<&str>, table: u32, pref: u32) -> Rule {
    let family = Family::of_net(&net(from.or(to).unwrap_or("0.0.0.0/0")));
    Rule::owned_lookup(family, pref, from.map(net), to.map(net), table)
}

fn neighbour(addr: &str, lladdr: &str) -> Neighbour {
    Neighbour {
        key: NeighbourKey {
            dev: "net1".to_string(),
            addr: addr.parse().unwrap(),
        },
        lladdr: Some(mac(lladdr)),
        protocol: ROUTER_PROTOCOL,
    }
}

fn rp_filter(iface: &str, old: Option<i64>, new: i64) -> Op {
    let key = SysctlKey::new(iface, SysctlName::RpFilter);
    Op::new(Side::Host, Change::SetSysctl { key, old, new })
}

fn set_mac(old: Option<&str>) -> Op {
    let (old, new) = (old.map(mac), mac("0a:0b:0a:14:14:5f"));
    Op::new(
        Side::Pod,
        Change::SetMac {
            dev: "net1".to_string(),
            old,
            new,
        },
    )
}

fn add_route(netns: Side, route: Route) -> Op {
    Op::new(netns, Change::AddRoute { route })
}

fn add_rule(netns: Side, rule: Rule) -> Op {
    Op::new(netns, Change::AddRule { rule })
}

fn blocked_default(netns: Side) -> Blocked {
    let wanted = via(route("0.0.0.0/0", "net1"), "192.168.50.254", 100);
    let mut found = wanted.clone();
    found.protocol = PROTOCOL_BOOT;
    found.key.gateway = Some("192.168.50.1".parse().unwrap());
    Blocked {
        netns,
        wanted: Object::Route(wanted),
        found: Object::Route(found),
    }
}

fn labels() -> NetnsLabels {
    NetnsLabels {
        pod: "/var/run/netns/x".to_string(),
        host: "host".to_string(),
    }
}

fn plan(ops: Vec<Op>, blocked: Vec<Blocked>) -> Plan {
    Plan {
        ops,
        blocked,
        ..Plan::default()
    }
}

fn only_drift(op: Op) -> Drift {
    let mut all = drifts(&plan(vec![op], vec![]));
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn drift_of(
    kind: ObjectKind,
    name: &str,
    state: DriftState,
    expected: &str,
    actual: &str,
) -> Drift {
    Drift::new(Side::Pod, (kind, name.to_string()), state, expected, actual)
}

#[test]
fn ipv4_route_prints_every_field_in_ip_route_order() {
    let mut r = via(route("10.240.0.0/12", "net1"), "192.168.50.254", 100);
    r.key.metric = 10;
    r.scope = RouteScope::Link;
    r.prefsrc = Some("192.168.50.7".parse().unwrap());
    r.onlink = true;
    assert_eq!(
        add_route(Side::Pod, r).to_string(),
        "ip route add 10.240.0.0/12 via 192.168.50.254 dev net1 table 100 metric 10 \
         scope link src 192.168.50.7 proto 176 onlink"
    );
}

#[test]
fn default_route_prints_default_and_leaves_main_table_implicit() {
    let r = via(route("0.0.0.0/0", "eth0"), "10.0.0.1", MAIN_TABLE);
    assert_eq!(r.to_string(), "default via 10.0.0.1 dev eth0 proto 176");
}

#[test]
fn host_prefixes_print_without_length_for_both_families() {
    let mut v4 = route("10.1.2.3/32", "eth0");
    v4.protocol = PROTOCOL_BOOT;
    let del = Op::new(Side::Host, Change::DelRoute { route: v4 });
    assert_eq!(del.to_string(), "ip route del 10.1.2.3 dev eth0 proto boot");
    let v6 = route("fd00::5/128", "eth0").normalised();
    assert_eq!(v6.to_string(), "fd00::5 dev eth0 metric 1024 proto 176");
}

#[test]
fn ipv6_route_commands_use_ip_dash_6() {
    let new = via(route("::/0", "net1"), "fd00::1", 100).normalised();
    let replace = Op::new(Side::Pod, Change::ReplaceRoute { old: vec![], new });
    assert_eq!(
        replace.to_string(),
        "ip -6 route replace default via fd00::1 dev net1 table 100 metric 1024 proto 176"
    );
}

#[test]
fn non_unicast_route_prints_its_type_first_and_tos_in_hex() {
    let mut r = route("10.0.0.0/8", "lo");
    r.kind = RouteKind::Blackhole;
    r.key.dev = None;
    r.key.tos = 0x10;
    assert_eq!(r.to_string(), "blackhole 10.0.0.0/8 tos 0x10 proto 176");
}

#[test]
fn protocols_print_as_numbers_except_kernel_boot_static() {
    let names: Vec<String> = [PROTOCOL_KERNEL, PROTOCOL_BOOT, 4, ROUTER_PROTOCOL, 12]
        .into_iter()
        .map(proto_text)
        .collect();
    assert_eq!(names, ["kernel", "boot", "static", "176", "12"]);
}

#[test]
fn rule_commands_print_from_to_and_host_prefixes() {
    let from = rule(Some("10.0.0.5/32"), None, 100, 1000);
    assert_eq!(
        add_rule(Side::Pod, from).to_string(),
        "ip rule add from 10.0.0.5 lookup 100 pref 1000 proto 176"
    );
    let to = rule(None, Some("10.240.0.0/12"), MAIN_TABLE, 1001);
    assert_eq!(
        to.to_string(),
        "from all to 10.240.0.0/12 lookup main pref 1001 proto 176"
    );
}

#[test]
fn rule_prints_not_fwmark_with_mask_iif_oif_and_tos() {
    let mut r = rule(None, None, 100, 900);
    r.key.invert = true;
    r.key.fwmark = Some(0x10);
    r.key.fwmask = Some(0xff);
    r.key.iif = Some("eth0".to_string());
    r.key.oif = Some("net1".to_string());
    r.key.tos = 0x08;
    r.protocol = 0;
    assert_eq!(
        r.to_string(),
        "not from all iif eth0 oif net1 fwmark 0x10/0xff tos 0x08 lookup 100 pref 900"
    );
}

#[test]
fn ipv6_rule_delete_uses_ip_dash_6_and_non_lookup_actions_print_their_name() {
    let del = Op::new(
        Side::Pod,
        Change::DelRule {
            rule: rule(Some("fd00::/64"), None, 100, 1000),
        },
    );
    assert_eq!(
        del.to_string(),
        "ip -6 rule del from fd00::/64 lookup 100 pref 1000 proto 176"
    );
    let mut prohibit = rule(None, None, 0, 5);
    prohibit.key.action = RuleAction::Prohibit;
    assert_eq!(prohibit.to_string(), "from all prohibit pref 5 proto 176");
}

#[test]
fn neighbour_add_and_replace_are_permanent_replaces_and_delete_names_the_key() {
    let n = neighbour("192.168.50.254", "0a:0b:0c:0d:0e:0f");
    let expected = "ip neigh replace 192.168.50.254 lladdr 0a:0b:0c:0d:0e:0f dev net1 \
                    nud permanent proto 176";
    let add = Op::new(
        Side::Pod,
        Change::AddNeighbour {
            neighbour: n.clone(),
        },
    );
    let old = neighbour("192.168.50.254", "0a:0b:0c:0d:0e:01");
    let replace = Op::new(
        Side::Pod,
        Change::ReplaceNeighbour {
            old,
            new: n.clone(),
        },
    );
    let del = Op::new(Side::Pod, Change::DelNeighbour { neighbour: n });
    assert_eq!(add.to_string(), expected);
    assert_eq!(replace.to_string(), expected);
    assert_eq!(del.to_string(), "ip neigh del 192.168.50.254 dev net1");
    let v6 = Op::new(
        Side::Pod,
        Change::DelNeighbour {
            neighbour: neighbour("fd00::1", "0a:0b:0c:0d:0e:0f"),
        },
    );
    assert_eq!(v6.to_string(), "ip neigh del fd00::1 dev net1");
}

#[test]
fn sysctl_and_mac_commands() {
    assert_eq!(
        rp_filter("all", Some(2), 0).to_string(),
        "sysctl -w net.ipv4.conf.all.rp_filter=0"
    );
    assert_eq!(
        set_mac(None).to_string(),
        "ip link set dev net1 address 0a:0b:0a:14:14:5f"
    );
}

#[test]
fn signs_are_plus_for_adds_minus_for_deletes_tilde_for_changes() {
    let r = route("10.0.0.0/8", "net1");
    let ops = [
        add_route(Side::Pod, r.clone()),
        Op::new(Side::Pod, Change::DelRoute { route: r.clone() }),
        Op::new(
            Side::Pod,
            Change::ReplaceRoute {
                old: vec![],
                new: r,
            },
        ),
        rp_filter("all", None, 0),
        set_mac(None),
    ];
    let signs: String = ops.iter().map(op_sign).collect();
    assert_eq!(signs, "+-~~~");
}

#[test]
fn text_groups_pod_before_host_keeps_op_order_and_puts_blocked_last_in_group() {
    let r = rule(None, Some("10.240.0.0/12"), 100, 1000);
    let ops = vec![
        rp_filter("all", Some(2), 0),
        add_route(Side::Pod, route("10.240.0.0/12", "net1")),
        add_rule(Side::Pod, r),
    ];
    let text = render_text(
        &plan(ops, vec![blocked_default(Side::Pod)]),
        &labels(),
        false,
    );
    let expected = "\
pod netns /var/run/netns/x:
  + ip route add 10.240.0.0/12 dev net1 proto 176
  + ip rule add from all to 10.240.0.0/12 lookup 100 pref 1000 proto 176
  ! route default via 192.168.50.254 dev net1 table 100 proto 176 wanted, but route default \
via 192.168.50.1 dev net1 table 100 proto boot is in the way (not touched)
host netns host:
  ~ sysctl -w net.ipv4.conf.all.rp_filter=0  # was 2
3 ops pending, 1 blocked
";
    assert_eq!(text, expected);
}

#[test]
fn changes_carry_the_overwritten_value_as_a_comment() {
    let old = vec![route("0.0.0.0/0", "net1"), route("0.0.0.0/0", "eth1")];
    let replace = Op::new(
        Side::Pod,
        Change::ReplaceRoute {
            old,
            new: route("0.0.0.0/0", "eth0"),
        },
    );
    let n = neighbour("10.0.0.1", "0a:0b:0c:0d:0e:0f");
    let old_n = neighbour("10.0.0.1", "0a:0b:0c:0d:0e:01");
    let neigh = Op::new(Side::Pod, Change::ReplaceNeighbour { old: old_n, new: n });
    let ops = vec![
        rp_filter("all", None, 0),
        set_mac(Some("02:00:00:00:00:01")),
        replace,
        neigh,
    ];
    let text = render_text(&plan(ops, vec![]), &labels(), false);
    assert!(text.contains("rp_filter=0  # was unset\n"), "{text}");
    assert!(
        text.contains("address 0a:0b:0a:14:14:5f  # was 02:00:00:00:00:01\n"),
        "{text}"
    );
    assert!(
        text.contains("# replaces: default dev net1 proto 176; default dev eth1 proto 176\n"),
        "{text}"
    );
    assert!(
        text.contains("nud permanent proto 176  # was lladdr 0a:0b:0c:0d:0e:01\n"),
        "{text}"
    );
    assert!(text.ends_with("4 ops pending\n"), "{text}");
}

#[test]
fn text_has_escape_bytes_only_when_colour_is_asked() {
    let ops = vec![
        add_route(Side::Pod, route("10.0.0.0/8", "net1")),
        Op::new(
            Side::Pod,
            Change::DelRoute {
                route: route("10.1.0.0/16", "net1"),
            },
        ),
        rp_filter("all", Some(1), 0),
    ];
    let p = plan(ops, vec![blocked_default(Side::Host)]);
    assert!(!render_text(&p, &labels(), false).contains('\x1b'));
    let coloured = render_text(&p, &labels(), true);
    assert!(coloured.contains(&format!("{BOLD}pod netns /var/run/netns/x:{RESET}")));
    assert!(coloured.contains(&format!("{GREEN}  + ip route add")));
    assert!(coloured.contains(&format!("{RED}  - ip route del")));
    assert!(coloured.contains(&format!("{YELLOW}  ~ sysctl")));
    assert!(coloured.contains(&format!("{MAGENTA}  ! route")));
}

#[test]
fn empty_plan_says_nothing_to_do_and_blocked_only_plan_still_lists_them() {
    assert_eq!(
        render_text(&Plan::default(), &labels(), true),
        "nothing to do\n"
    );
    let text = render_text(
        &plan(vec![], vec![blocked_default(Side::Host)]),
        &labels(),
        false,
    );
    assert!(
        text.starts_with("host netns host:\n  ! route default"),
        "{text}"
    );
    assert!(!text.contains("pod netns"), "{text}");
    assert!(text.ends_with("0 ops pending, 1 blocked\n"), "{text}");
    let one = render_text(&plan(vec![set_mac(None)], vec![]), &labels(), false);
    assert!(one.ends_with("\n1 op pending\n"), "{one}");
}

#[test]
fn route_and_rule_drifts_name_the_object_without_protocol() {
    let r = via(route("0.0.0.0/0", "net1"), "192.168.50.254", 100);
    let ru = rule(None, Some("10.240.0.0/12"), 100, 1000);
    assert_eq!(
        only_drift(add_route(Side::Pod, r.clone())),
        drift_of(
            ObjectKind::Route(Family::Ipv4),
            "default via 192.168.50.254 dev net1 table 100",
            DriftState::Missing,
            "present",
            "missing"
        )
    );
    assert_eq!(
        only_drift(Op::new(Side::Pod, Change::DelRule { rule: ru.clone() })),
        drift_of(
            ObjectKind::Rule(Family::Ipv4),
            "from all to 10.240.0.0/12 lookup 100 pref 1000",
            DriftState::Unexpected,
            "absent",
            "present"
        )
    );
    assert_eq!(only_drift(add_rule(Side::Pod, ru)).actual, "missing");
    let v6 = route("fd00::/64", "net1").normalised();
    assert_eq!(
        only_drift(add_route(Side::Pod, v6)).object,
        "route -6 fd00::/64 dev net1 metric 1024"
    );
}

#[test]
fn replace_route_drift_compares_new_spec_with_old_specs() {
    let new = route("0.0.0.0/0", "eth0");
    let old = vec![route("0.0.0.0/0", "net1"), route("0.0.0.0/0", "eth1")];
    let replace = Op::new(
        Side::Pod,
        Change::ReplaceRoute {
            old,
            new: new.clone(),
        },
    );
    assert_eq!(
        only_drift(replace),
        drift_of(
            ObjectKind::Route(Family::Ipv4),
            "default dev eth0",
            DriftState::Differs,
            "default dev eth0 proto 176",
            "default dev net1 proto 176; default dev eth1 proto 176"
        )
    );
    let fresh = Op::new(Side::Pod, Change::ReplaceRoute { old: vec![], new });
    assert_eq!(only_drift(fresh).actual, "missing");
}

#[test]
fn neighbour_drifts_compare_lladdr() {
    let n = neighbour("10.0.0.1", "0a:0b:0c:0d:0e:0f");
    let add = Op::new(
        Side::Pod,
        Change::AddNeighbour {
            neighbour: n.clone(),
        },
    );
    let object = "10.0.0.1 dev net1";
    let kind = ObjectKind::Neighbour;
    assert_eq!(
        only_drift(add),
        drift_of(
            kind,
            object,
            DriftState::Missing,
            "lladdr 0a:0b:0c:0d:0e:0f",
            "missing"
        )
    );
    let old = neighbour("10.0.0.1", "0a:0b:0c:0d:0e:01");
    let replace = Op::new(
        Side::Pod,
        Change::ReplaceNeighbour {
            old,
            new: n.clone(),
        },
    );
    assert_eq!(
        only_drift(replace),
        drift_of(
            kind,
            object,
            DriftState::Differs,
            "lladdr 0a:0b:0c:0d:0e:0f",
            "lladdr 0a:0b:0c:0d:0e:01"
        )
    );
    let del = Op::new(Side::Pod, Change::DelNeighbour { neighbour: n });
    assert_eq!(
        only_drift(del),
        drift_of(kind, object, DriftState::Unexpected, "absent", "present")
    );
}

#[test]
fn sysctl_and_mac_drifts_show_new_against_old_or_unset() {
    let set = only_drift(rp_filter("all", Some(2), 0));
    assert_eq!(
        (set.netns, set.object.as_str()),
        (Side::Host, "sysctl net.ipv4.conf.all.rp_filter")
    );
    assert_eq!((set.expected.as_str(), set.actual.as_str()), ("0", "2"));
    assert_eq!(only_drift(rp_filter("all", None, 0)).actual, "unset");
    assert_eq!(
        only_drift(set_mac(Some("02:00:00:00:00:01"))),
        drift_of(
            ObjectKind::Mac,
            "net1",
            DriftState::Differs,
            "0a:0b:0a:14:14:5f",
            "02:00:00:00:00:01"
        )
    );
    assert_eq!(only_drift(set_mac(None)).actual, "unknown");
}

#[test]
fn a_drift_due_to_a_node_address_says_so_in_the_summary_and_the_detail() {
    let n = neighbour("10.0.0.1", "0a:0b:0c:0d:0e:0f");
    let mut p = plan(
        vec![Op::new(Side::Pod, Change::AddNeighbour { neighbour: n })],
        vec![],
    );
    p.node_addresses.via = "net1".into();
    p.node_addresses.added.insert("10.0.0.1".parse().unwrap());
    let all = drifts(&p);
    let expected = "node address 10.0.0.1 (added since ADD) has no neighbour entry on net1";
    assert_eq!(
        all[0].cause.as_ref().map(ToString::to_string).as_deref(),
        Some(expected)
    );
    assert_eq!(drift_summary(&all), format!("1 drift: {expected}"));
    assert_eq!(
        drift_detail(&all[0]),
        format!("pod netns: neighbour 10.0.0.1 dev net1: expected lladdr 0a:0b:0c:0d:0e:0f, actual missing; {expected}")
    );
    let json = drifts_json(&all);
    assert_eq!(json[0]["cause"]["kind"], "node_address_added");
    assert_eq!(json[0]["cause"]["object"]["type"], "neighbour");
    // Without the change, the same op has no cause.
    p.node_addresses = Default::default();
    assert_eq!(drifts(&p)[0].cause, None);
}

#[test]
fn blocked_drift_names_the_unowned_holder_after_the_ops() {
    let p = plan(vec![set_mac(None)], vec![blocked_default(Side::Pod)]);
    let all = drifts(&p);
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[1],
        drift_of(
            ObjectKind::Route(Family::Ipv4),
            "default via 192.168.50.254 dev net1 table 100",
            DriftState::Blocked,
            "present",
            "held by unowned route default via 192.168.50.1 dev net1 table 100 proto boot"
        )
    );
}

#[test]
fn drift_summary_singular_names_object_state_and_netns() {
    let d = only_drift(add_rule(
        Side::Pod,
        rule(None, Some("10.240.0.0/12"), 100, 1000),
    ));
    assert_eq!(
        drift_summary(&[d]),
        "1 drift: rule `from all to 10.240.0.0/12 lookup 100 pref 1000` missing in pod"
    );
    assert_eq!(drift_summary(&[]), "no drift");
}

#[test]
fn drift_summary_plural_words_each_state() {
    let r = route("10.0.0.0/8", "net1");
    let p = plan(
        vec![
            Op::new(Side::Pod, Change::DelRoute { route: r }),
            rp_filter("all", Some(2), 0),
            set_mac(None),
        ],
        vec![blocked_default(Side::Host)],
    );
    assert_eq!(
        drift_summary(&drifts(&p)),
        "4 drifts: route `10.0.0.0/8 dev net1` unexpected in pod, \
         sysctl `net.ipv4.conf.all.rp_filter` differs in host, \
         mac of `net1` differs in pod, \
         route `default via 192.168.50.254 dev net1 table 100` blocked in host"
    );
}

#[test]
fn drift_summary_names_five_and_counts_the_rest() {
    let ops: Vec<Op> = (1..=7)
        .map(|i| add_route(Side::Pod, route(&format!("10.{i}.0.0/16"), "net1")))
        .collect();
    let line = drift_summary(&drifts(&plan(ops, vec![])));
    assert!(
        line.starts_with("7 drifts: route `10.1.0.0/16 dev net1` missing in pod, "),
        "{line}"
    );
    assert!(
        line.contains("route `10.5.0.0/16 dev net1` missing in pod, and 2 more"),
        "{line}"
    );
    assert!(!line.contains("10.6.0.0"), "{line}");
    assert_eq!(line.matches("missing").count(), 5);
}

#[test]
fn plan_json_carries_the_schema_fields() {
    let ops = vec![
        add_route(Side::Pod, route("10.0.0.0/8", "net1")),
        rp_filter("all", Some(2), 0),
    ];
    let p = plan(ops, vec![blocked_default(Side::Host)]);
    let v = plan_json(&p, &labels());
    assert_eq!(v["schema"], "router.plan/v1");
    assert_eq!(
        (v["pending"].as_u64(), v["blocked_count"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        v["netns"],
        json!({"pod": "/var/run/netns/x", "host": "host"})
    );
    assert_eq!(v["ops"][0]["netns"], "pod");
    assert_eq!(v["ops"][0]["action"], "add");
    assert_eq!(v["ops"][0]["object"], "route");
    assert_eq!(
        v["ops"][0]["command"],
        "ip route add 10.0.0.0/8 dev net1 proto 176"
    );
    assert_eq!(
        (
            v["ops"][1]["action"].as_str(),
            v["ops"][1]["object"].as_str()
        ),
        (Some("change"), Some("sysctl"))
    );
    let b = &v["blocked"][0];
    assert_eq!(b["netns"], "host");
    assert_eq!(b["description"], blocked_description(&p.blocked[0]));
    let found: Object = serde_json::from_value(b["found"].clone()).unwrap();
    assert_eq!(found, p.blocked[0].found);
}

#[test]
fn plan_json_detail_round_trips_into_the_op() {
    let ops = vec![
        add_rule(Side::Pod, rule(Some("10.0.0.5/32"), None, 100, 1000)),
        set_mac(Some("02:00:00:00:00:01")),
        Op::new(
            Side::Host,
            Change::ReplaceNeighbour {
                old: neighbour("10.0.0.1", "0a:0b:0c:0d:0e:01"),
                new: neighbour("10.0.0.1", "0a:0b:0c:0d:0e:0f"),
            },
        ),
    ];
    let v = plan_json(&plan(ops.clone(), vec![]), &labels());
    let back: Vec<Op> = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| serde_json::from_value(o["detail"].clone()).unwrap())
        .collect();
    assert_eq!(back, ops);
}

#[test]
fn drifts_json_is_an_array_that_reads_back() {
    let all = drifts(&plan(
        vec![rp_filter("all", None, 0)],
        vec![blocked_default(Side::Pod)],
    ));
    let v = drifts_json(&all);
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    assert_eq!(v[0]["netns"], "host");
    let back: Vec<Drift> = serde_json::from_value(v).unwrap();
    assert_eq!(back, all);
}

#[test]
fn state_lines_are_sorted_and_name_every_reconciled_object() {
    let mut ns = NetnsState::default();
    ns.insert_route(route("10.0.0.0/8", "net1"));
    ns.insert_route(route("::/0", "net1"));
    ns.insert_rule(rule(None, Some("10.240.0.0/12"), 100, 1000));
    ns.insert_neighbour(neighbour("10.0.0.1", "0a:0b:0c:0d:0e:0f"));
    ns.sysctls
        .insert(SysctlKey::new("all", SysctlName::RpFilter), 0);
    ns.macs.insert("net1".to_string(), mac("0a:0b:0a:14:14:5f"));
    assert_eq!(
        state_lines(&ns),
        [
            "mac net1 0a:0b:0a:14:14:5f",
            "neigh 10.0.0.1 lladdr 0a:0b:0c:0d:0e:0f dev net1 proto 176",
            "route -6 default dev net1 metric 1024 proto 176",
            "route 10.0.0.0/8 dev net1 proto 176",
            "rule from all to 10.240.0.0/12 lookup 100 pref 1000 proto 176",
            "sysctl net.ipv4.conf.all.rp_filter = 0",
        ]
    );
}

#[test]
fn state_diff_shows_added_and_removed_routes_per_netns() {
    let mut before = ActualState {
        pod: Some(NetnsState::default()),
        ..Default::default()
    };
    before.host.insert_route(route("10.9.0.0/16", "eth0"));
    let mut after = before.clone();
    after.host.routes.clear();
    if let Some(pod) = after.pod.as_mut() {
        pod.insert_route(route("10.0.0.0/8", "net1"));
    }
    let diff = state_diff(&before, &after);
    assert!(diff.contains("--- a/pod\n+++ b/pod\n"), "{diff}");
    assert!(
        diff.contains("\n+route 10.0.0.0/8 dev net1 proto 176\n"),
        "{diff}"
    );
    assert!(diff.contains("--- a/host\n+++ b/host\n"), "{diff}");
    assert!(
        diff.contains("\n-route 10.9.0.0/16 dev eth0 proto 176\n"),
        "{diff}"
    );
    assert!(diff.find("a/pod") < diff.find("a/host"), "{diff}");
}

#[test]
fn state_diff_is_empty_for_equal_states() {
    let mut state = ActualState::default();
    state.host.insert_route(route("10.9.0.0/16", "eth0"));
    assert_eq!(state_diff(&state, &state.clone()), "");
}
