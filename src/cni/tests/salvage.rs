//! cni tests, DEL and GC going on past input they cannot use (a config made invalid, an
//! underivable table, undecodable stdin, paths outside the allowed directories): what the
//! records prove is removed, nothing else.

use super::*;

/// What DEL leaves of an ADD: everything as before but the host's shared sysctls (never
/// restored, BEHAVIOUR 4), no owned object, no record. The chained interface's default is
/// replaced by the previous default interface's restored one (the chained interface goes
/// with the previous plugin's DEL).
fn assert_as_before_add(h: &Harness, before: &ActualState) {
    let after = h.kernel.state();
    let mut host = after.host.clone();
    host.sysctls = before.host.sysctls.clone();
    assert!(host == before.host, "the host differs");
    let (pod, was) = (after.pod.clone().unwrap(), before.pod.clone().unwrap());
    assert!(pod.rules == was.rules, "pod rules differ");
    assert!(pod.macs == was.macs && pod.sysctls == was.sysctls);
    assert_eq!(owned_objects(&after), 0, "an owned object is left");
    assert!(h.records.all().unwrap().is_empty());
}

/// Routes, rules and neighbours with protocol 176, in pod and host.
fn owned_objects(state: &ActualState) -> usize {
    state
        .pod
        .iter()
        .chain([&state.host])
        .map(|ns| {
            ns.routes
                .values()
                .filter(|r| r.protocol == ROUTER_PROTOCOL)
                .count()
                + ns.rules.values().filter(|r| r.is_owned()).count()
                + ns.neighbours
                    .values()
                    .filter(|n| n.protocol == ROUTER_PROTOCOL)
                    .count()
        })
        .sum()
}

fn env_for(command: &'static str, ifname: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut env = pod_env(command);
    env[3] = ("CNI_IFNAME", ifname);
    env
}

#[test]
fn del_of_an_interface_whose_table_cannot_be_derived_succeeds_and_removes_nothing() {
    let h = Harness::new();
    let before = h.kernel.state();
    let conf = netconf("1.0.0", true)
        .to_string()
        .replace("\"net1\"", "\"macv\"");
    let add = h.invoke(&env_for("ADD", "macv"), conf.as_bytes());
    assert_error(&add, Code::InvalidConfig, "route_table");
    let del = h.invoke(&env_for("DEL", "macv"), conf.as_bytes());
    assert_eq!(del, Output::success(None), "{}", del.stdout);
    assert_eq!(h.kernel.state(), before);
    assert!(h.records.all().unwrap().is_empty());
}

#[test]
fn del_with_a_config_made_invalid_after_add_removes_what_the_record_proves() {
    let h = Harness::new();
    let before = h.kernel.state();
    let conf = netconf("1.0.0", true);
    assert_eq!(h.command("ADD", &conf).exit_code, 0);
    let mut edited = conf.clone();
    edited["service_hijack_subnet"] = json!(["172.96.0.1/18"]);
    assert_error(
        &h.command("CHECK", &edited),
        Code::InvalidConfig,
        "172.96.0.1/18",
    );
    assert_eq!(h.command("DEL", &edited), Output::success(None));
    assert_as_before_add(&h, &before);
}

#[test]
fn a_rejected_add_rolled_back_with_del_leaves_nothing_and_del_succeeds() {
    let h = Harness::new();
    let before = h.kernel.state();
    let mut conf = netconf("1.0.0", true);
    conf["service_hijack_subnet"] = json!(["172.96.0.1/18"]);
    assert_error(&h.command("ADD", &conf), Code::InvalidConfig, "host bits");
    // Multus rolls the failed ADD back with a DEL of the same input.
    assert_eq!(h.command("DEL", &conf), Output::success(None));
    assert_eq!(h.kernel.state(), before);
    assert!(h.records.all().unwrap().is_empty());
}

#[test]
fn del_goes_on_from_the_record_past_undecodable_stdin_and_unsupported_versions() {
    for stdin in [&b"{not json"[..], br#"{"cniVersion":"9.9.9"}"#, b"[]"] {
        let h = Harness::new();
        let before = h.kernel.state();
        assert_eq!(h.command("ADD", &netconf("1.0.0", true)).exit_code, 0);
        let out = h.invoke(&pod_env("DEL"), stdin);
        assert_eq!(
            out,
            Output::success(None),
            "{}",
            String::from_utf8_lossy(stdin)
        );
        assert_as_before_add(&h, &before);
    }
}

#[test]
fn gc_with_an_invalid_config_collects_only_what_records_of_its_network_prove() {
    let h = Harness::new();
    let before = h.kernel.state();
    assert_eq!(h.command("ADD", &netconf("1.1.0", true)).exit_code, 0);
    let attached = h.kernel.state();
    let mut nameless = gc_input(json!([]));
    nameless["migrate_route"] = json!(5);
    nameless["name"] = json!(5);
    let out = h.invoke(&gc_env(), nameless.to_string().as_bytes());
    assert_eq!(out, Output::success(None), "{}", out.stdout);
    assert_eq!(
        saved_records(&h),
        ids(&[("c1", "net1")]),
        "no network name proves it"
    );
    assert_eq!(h.kernel.state(), attached);

    let mut invalid = gc_input(json!([]));
    invalid["service_hijack_subnet"] = json!(["172.96.0.1/18"]);
    let out = h.invoke(&gc_env(), invalid.to_string().as_bytes());
    assert_eq!(out, Output::success(None), "{}", out.stdout);
    assert!(saved_records(&h).is_empty());
    let mut host = h.kernel.state().host;
    host.sysctls = before.host.sysctls.clone();
    assert_eq!(host, before.host);
}

#[test]
fn paths_outside_the_allowed_directories_are_code_7_but_del_goes_on() {
    for (key, value) in [
        ("data_dir", json!("/etc/router")),
        ("log_options", json!({"log_file": "/etc/shadow"})),
        (
            "log_options",
            json!({"log_file": "/var/log/../../etc/shadow"}),
        ),
        ("data_dir", json!("/running/router")),
    ] {
        let h = Harness::new();
        let before = h.kernel.state();
        let mut conf = netconf("1.1.0", true);
        conf[key] = value.clone();
        conf[VALID_ATTACHMENTS_KEY] = json!([]);
        for env in [pod_env("ADD"), pod_env("CHECK"), gc_env()] {
            let out = h.invoke(&env, conf.to_string().as_bytes());
            assert_error(&out, Code::InvalidConfig, key);
        }
        assert_eq!(h.kernel.state(), before);
        assert_eq!(h.command("ADD", &netconf("1.1.0", true)).exit_code, 0);
        assert_eq!(
            h.command("DEL", &conf),
            Output::success(None),
            "{key} = {value}"
        );
        assert_as_before_add(&h, &before);
    }
}
