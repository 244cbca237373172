//! cni tests, an attachment after `router rollout`: its record's rolled-out config is what
//! ADD, CHECK and DEL act on, whatever config the runtime sends on stdin.

use super::*;

const NEW_CIDR: &str = "10.250.0.0/16";

/// The rule the rolled-out config adds, in the pod, if the kernel holds it.
fn has_new_rule(h: &Harness) -> bool {
    let cidr: ipnet::IpNet = NEW_CIDR.parse().unwrap();
    h.kernel
        .state()
        .pod
        .is_some_and(|pod| pod.rules.keys().any(|k| k.to == Some(cidr)))
}

/// ADD with the runtime's config, then a record naming a rolled-out config that adds
/// `NEW_CIDR`, as `router rollout` writes it before applying.
fn rolled_out_pending() -> (Harness, Value) {
    let h = Harness::new();
    let stdin = netconf("1.0.0", true);
    assert_eq!(h.command("ADD", &stdin).exit_code, 0);
    let mut rolled = netconf("1.0.0", false);
    rolled["additional_hijack_subnet"] = json!([NEW_CIDR]);
    let mut record = h.records.load("c1", "net1").unwrap().unwrap();
    record.rolled_out = Some(rolled);
    h.records.save(&record).unwrap();
    (h, stdin)
}

#[test]
fn check_with_the_add_time_config_judges_by_the_rolled_out_one() {
    let (h, stdin) = rolled_out_pending();
    let out = h.command("CHECK", &stdin);
    assert_error(&out, Code::Drift, NEW_CIDR);
}

#[test]
fn a_repeated_add_applies_the_rolled_out_config_and_keeps_it_recorded() {
    let (h, stdin) = rolled_out_pending();
    assert_eq!(h.command("ADD", &stdin).exit_code, 0);
    assert!(has_new_rule(&h));
    assert_eq!(h.command("CHECK", &stdin).exit_code, 0);
    let record = h.records.load("c1", "net1").unwrap().unwrap();
    assert!(record.rolled_out.is_some(), "{record:?}");
}

#[test]
fn del_with_the_add_time_config_removes_what_the_rolled_out_one_added() {
    let (h, stdin) = rolled_out_pending();
    assert_eq!(h.command("ADD", &stdin).exit_code, 0);
    assert!(has_new_rule(&h));
    assert_eq!(h.command("DEL", &stdin).exit_code, 0);
    assert!(!has_new_rule(&h));
    let owned = h.kernel.state().pod.map_or(0, |pod| {
        pod.rules
            .values()
            .filter(|r| r.protocol == ROUTER_PROTOCOL)
            .count()
    });
    assert_eq!(owned, 0);
    assert!(h.records.load("c1", "net1").unwrap().is_none());
}

#[test]
fn an_unreadable_rolled_out_config_fails_check_but_not_del() {
    let (h, stdin) = rolled_out_pending();
    let mut record = h.records.load("c1", "net1").unwrap().unwrap();
    record.rolled_out = Some(json!({"cniVersion": "1.0.0", "type": "router"}));
    h.records.save(&record).unwrap();
    let out = h.command("CHECK", &stdin);
    assert_error(&out, Code::Decode, "rolled out");
    assert_eq!(h.command("DEL", &stdin).exit_code, 0);
    assert!(h.records.load("c1", "net1").unwrap().is_none());
}
