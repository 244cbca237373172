//! render tests, `text`: each op as its `ip`/`sysctl` command and sign, the plan grouped
//! by netns with blocked entries last, overwritten values as comments, colour only when asked.

use super::*;

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
