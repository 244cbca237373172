//! cni tests, an attachment's life: ADD's result, a repeated ADD, CHECK clean and drifted,
//! DEL and a second DEL, a fault at every op, an ADD blocked by unowned objects.

use super::*;

#[test]
fn skip_call_passes_prev_result_through_and_touches_nothing() {
    let h = Harness::new();
    let before = h.kernel.state();
    let mut conf = netconf("1.0.0", true);
    conf["skip_call"] = json!(true);
    let out = h.command("ADD", &conf);
    assert_eq!(out.exit_code, 0);
    let mut expected = conf["prevResult"].clone();
    expected["cniVersion"] = json!("1.0.0");
    assert_eq!(body(&out), expected);
    conf.as_object_mut().unwrap().remove("prevResult");
    let out = h.command("ADD", &conf);
    assert_eq!(
        body(&out),
        json!({"cniVersion": "1.0.0", "interfaces": [], "ips": [], "dns": {}})
    );
    assert_eq!(h.kernel.state(), before);
}

#[test]
fn add_prints_prev_result_with_only_cs_mac_changed_and_the_config_version() {
    let h = Harness::new();
    let conf = netconf("1.0.0", true);
    let out = h.command("ADD", &conf);
    assert_eq!(out.exit_code, 0, "{}", out.stdout);
    let mut expected = conf["prevResult"].clone();
    expected["cniVersion"] = json!("1.0.0");
    expected["interfaces"][0]["mac"] = json!("0a:0b:c0:a8:32:0a");
    assert_eq!(body(&out), expected);
    assert!(h.records.load("c1", "net1").unwrap().is_some());
    let pod = h.kernel.state().pod.unwrap();
    assert!(pod.rules.values().any(|r| r.protocol == ROUTER_PROTOCOL));
}

#[test]
fn repeated_add_changes_nothing_and_prints_the_same_result() {
    let h = Harness::new();
    let conf = netconf("1.0.0", true);
    let first = h.command("ADD", &conf);
    let state = h.kernel.state();
    let second = h.command("ADD", &conf);
    assert_eq!(first, second);
    assert_eq!(h.kernel.state(), state);
}

#[test]
fn check_after_add_succeeds_silently() {
    let h = Harness::new();
    let conf = netconf("1.0.0", true);
    h.command("ADD", &conf);
    let out = h.command("CHECK", &conf);
    assert_eq!(
        out,
        Output {
            stdout: String::new(),
            exit_code: 0
        }
    );
}

#[test]
fn check_reports_a_removed_rule_as_code_100_naming_it() {
    let h = Harness::new();
    let conf = netconf("1.0.0", true);
    h.command("ADD", &conf);
    let mut state = h.kernel.state();
    let pod = state.pod.as_mut().unwrap();
    pod.rules
        .retain(|k, _| k.to.map(|t| t.to_string()) != Some("10.240.0.0/12".into()));
    h.kernel.set_state(state);
    let out = h.command("CHECK", &conf);
    assert_error(&out, Code::Drift, "10.240.0.0/12");
    assert!(body(&out)["details"]
        .as_str()
        .unwrap()
        .contains("pod netns"));
}

#[test]
fn del_restores_the_pod_and_host_and_a_second_del_succeeds() {
    let h = Harness::new();
    let before = h.kernel.state();
    let conf = netconf("1.0.0", true);
    h.command("ADD", &conf);
    assert_eq!(h.command("DEL", &conf).exit_code, 0);
    let after = h.kernel.state();
    // Host sysctls are shared by every pod: not restored (BEHAVIOUR 4).
    let mut host = after.host.clone();
    host.sysctls = before.host.sysctls.clone();
    assert_eq!(host, before.host);
    let pod = after.pod.unwrap();
    assert!(pod.routes.values().all(|r| r.protocol != ROUTER_PROTOCOL));
    assert_eq!(pod.macs, before.pod.as_ref().unwrap().macs);
    assert_eq!(pod.sysctls, before.pod.unwrap().sysctls);
    assert!(h.records.load("c1", "net1").unwrap().is_none());
    assert_eq!(h.command("DEL", &conf).exit_code, 0);
    assert_eq!(h.command("DEL", &netconf("0.3.1", false)).exit_code, 0);
}

#[test]
fn a_fault_at_any_op_of_an_add_leaves_everything_as_before() {
    let h = Harness::new();
    let before = h.kernel.state();
    let conf = netconf("1.0.0", true);
    let mut n = 0;
    loop {
        h.kernel.fail_at(Some(n));
        let out = h.command("ADD", &conf);
        if out.exit_code == 0 {
            break;
        }
        assert_error(&out, Code::Kernel, "injected fault");
        assert_eq!(h.kernel.state(), before, "fault at op {n}");
        assert!(h.records.load("c1", "net1").unwrap().is_none());
        n += 1;
    }
    assert!(n > 20, "the ADD had only {n} ops");
}

#[test]
fn add_blocked_by_an_unowned_object_is_code_103_and_changes_nothing() {
    let h = Harness::new();
    let mut state = h.kernel.state();
    let conf = netconf("1.0.0", true);
    let squatter = crate::testkit::build::neighbour("eth0", "192.168.50.1", "00:00:00:00:00:01", 0);
    state.pod.as_mut().unwrap().insert_neighbour(squatter);
    h.kernel.set_state(state.clone());
    let out = h.command("ADD", &conf);
    assert_error(&out, Code::Blocked, "not touched");
    assert_eq!(h.kernel.state(), state);
}
