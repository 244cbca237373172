//! The protocol end to end, in process, over the in-memory model kernel.

use super::*;
use crate::conflict::{Conflict, Target};
use crate::error::Code;
use crate::execute::ModelKernel;
use crate::model::{ActualState, ROUTER_PROTOCOL};
use crate::record::MemRecords;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SNAPSHOT: &str = include_str!("../../fixtures/add-seed-dual-stack/snapshot.json");
const PREV: &str = include_str!("../../fixtures/add-seed-dual-stack/prev-result.json");

struct Harness {
    kernel: Arc<ModelKernel>,
    records: Arc<MemRecords>,
    probe: Arc<ScriptedProbe>,
}

/// One `detect` call as the probe saw it, with what the kernel and data_dir held then.
#[derive(Clone, Debug)]
struct Detect {
    netns: PathBuf,
    ifname: String,
    mac: MacAddr,
    addrs: Vec<IpAddr>,
    interval: Duration,
    retries: u32,
    kernel: ActualState,
    record_saved: bool,
}

/// C's segment, scripted: answers `detect` with `conflict`, records every call.
struct ScriptedProbe {
    kernel: Arc<ModelKernel>,
    records: Arc<MemRecords>,
    conflict: Mutex<Option<Conflict>>,
    detects: Mutex<Vec<Detect>>,
}

impl AddressProbe for ScriptedProbe {
    fn detect(
        &self,
        target: &Target<'_>,
        interval: Duration,
        retries: u32,
    ) -> Result<Option<Conflict>> {
        self.detects.lock().unwrap().push(Detect {
            netns: target.pod_netns.to_path_buf(),
            ifname: target.ifname.to_string(),
            mac: target.mac,
            addrs: target.addrs.to_vec(),
            interval,
            retries,
            kernel: self.kernel.state(),
            record_saved: self.records.load("c1", target.ifname).unwrap().is_some(),
        });
        Ok(*self.conflict.lock().unwrap())
    }
}

impl Harness {
    fn new() -> Harness {
        let state: ActualState = serde_json::from_str(SNAPSHOT).unwrap();
        let kernel = Arc::new(ModelKernel::new(state));
        let records = Arc::new(MemRecords::default());
        let probe = Arc::new(ScriptedProbe {
            kernel: kernel.clone(),
            records: records.clone(),
            conflict: Mutex::new(None),
            detects: Mutex::new(Vec::new()),
        });
        Harness {
            kernel,
            records,
            probe,
        }
    }

    fn detects(&self) -> Vec<Detect> {
        self.probe.detects.lock().unwrap().clone()
    }

    fn invoke(&self, env: &[(&str, &str)], stdin: &[u8]) -> Output {
        let vars: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |name: &str| vars.get(name).cloned();
        let kernel = self.kernel.clone();
        let records = self.records.clone();
        let probe = self.probe.clone();
        let factory = move |_: &Config, _: &Invocation| -> Result<Backends> {
            Ok(Backends {
                snapshots: Box::new(kernel.clone()),
                executor: Box::new(kernel.clone()),
                records: Box::new(records.clone()),
                host: Box::new(records.clone()),
                probe: Box::new(probe.clone()),
            })
        };
        run(&lookup, &mut &stdin[..], &factory)
    }

    fn command(&self, command: &str, stdin: &Value) -> Output {
        self.invoke(&pod_env(command), stdin.to_string().as_bytes())
    }
}

fn pod_env(command: &str) -> Vec<(&str, &str)> {
    vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/var/run/netns/pod-1"),
        ("CNI_IFNAME", "net1"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
}

fn netconf(version: &str, with_prev: bool) -> Value {
    let mut conf = json!({
        "cniVersion": version,
        "name": "macvlan-overlay",
        "type": "router",
        "overlay_hijack_subnet": ["10.240.0.0/12", "fd00:10:244::/96"],
        "service_hijack_subnet": ["172.96.0.0/18", "2001:4860:fd00::/108"],
        "rp_filter": {"set_host": true, "value": 0},
        "mac_prefix": "0a:0b"
    });
    if with_prev {
        let mut prev: Value = serde_json::from_str(PREV).unwrap();
        prev["x-unknown-field"] = json!({"kept": true});
        conf["prevResult"] = prev;
    }
    conf
}

fn body(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or(Value::Null)
}

fn assert_error(out: &Output, code: Code, text: &str) {
    assert_eq!(out.exit_code, 1, "{}", out.stdout);
    let b = body(out);
    assert_eq!(b["code"], code.number(), "{}", out.stdout);
    assert!(
        b["msg"].as_str().unwrap_or("").contains(text),
        "{}",
        out.stdout
    );
}

#[test]
fn version_lists_the_supported_versions_and_echoes_the_request() {
    let h = Harness::new();
    let out = h.invoke(&[("CNI_COMMAND", "VERSION")], br#"{"cniVersion":"0.4.0"}"#);
    assert_eq!(out.exit_code, 0);
    let b = body(&out);
    assert_eq!(b["cniVersion"], "0.4.0");
    assert_eq!(
        b["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn missing_variables_are_code_4_naming_each() {
    let h = Harness::new();
    let out = h.invoke(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1")], b"{}");
    assert_error(&out, Code::InvalidEnv, "missing CNI_NETNS, CNI_IFNAME");
    let out = h.invoke(&[("CNI_COMMAND", "DEL")], b"{}");
    assert_error(
        &out,
        Code::InvalidEnv,
        "missing CNI_CONTAINERID, CNI_IFNAME",
    );
}

#[test]
fn unknown_command_and_bad_identities_are_code_4() {
    let h = Harness::new();
    assert_error(
        &h.invoke(&[("CNI_COMMAND", "FROB")], b"{}"),
        Code::InvalidEnv,
        "FROB",
    );
    let mut env = pod_env("ADD");
    env[1] = ("CNI_CONTAINERID", "../../etc");
    assert_error(&h.invoke(&env, b"{}"), Code::InvalidEnv, "CNI_CONTAINERID");
    let mut env = pod_env("ADD");
    env[3] = ("CNI_IFNAME", "net/1");
    assert_error(&h.invoke(&env, b"{}"), Code::InvalidEnv, "CNI_IFNAME");
    let mut env = pod_env("ADD");
    env[2] = ("CNI_NETNS", "relative/path");
    assert_error(&h.invoke(&env, b"{}"), Code::InvalidEnv, "CNI_NETNS");
}

#[test]
fn undecodable_stdin_is_code_6() {
    let h = Harness::new();
    assert_error(
        &h.invoke(&pod_env("ADD"), b"{not json"),
        Code::Decode,
        "not JSON",
    );
    assert_error(
        &h.invoke(&pod_env("ADD"), &[0xff, 0xfe, b'{']),
        Code::Decode,
        "not UTF-8",
    );
    let huge = vec![b' '; (MAX_STDIN + 10) as usize];
    assert_error(
        &h.invoke(&pod_env("ADD"), &huge),
        Code::Decode,
        "larger than",
    );
}

#[test]
fn invalid_config_is_code_7_echoing_the_config_version() {
    let h = Harness::new();
    let mut conf = netconf("0.4.0", true);
    conf["migrate_route"] = json!(5);
    let out = h.command("ADD", &conf);
    assert_error(&out, Code::InvalidConfig, "migrate_route = 5");
    assert_eq!(body(&out)["cniVersion"], "0.4.0");
}

#[test]
fn check_below_0_4_0_is_code_1() {
    let h = Harness::new();
    assert_error(
        &h.command("CHECK", &netconf("0.3.1", true)),
        Code::IncompatibleVersion,
        "0.4.0",
    );
}

#[test]
fn add_without_prev_result_is_code_7() {
    let h = Harness::new();
    assert_error(
        &h.command("ADD", &netconf("1.0.0", false)),
        Code::InvalidConfig,
        "prevResult",
    );
}

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
    let squatter = crate::model::Neighbour {
        key: crate::model::NeighbourKey {
            dev: "eth0".into(),
            addr: "192.168.50.1".parse().unwrap(),
        },
        lladdr: Some("00:00:00:00:00:01".parse().unwrap()),
        protocol: 0,
    };
    state.pod.as_mut().unwrap().insert_neighbour(squatter);
    h.kernel.set_state(state.clone());
    let out = h.command("ADD", &conf);
    assert_error(&out, Code::Blocked, "not touched");
    assert_eq!(h.kernel.state(), state);
}

/// The pod as a runtime that attaches networks in random order leaves it when router runs
/// first: no eth0, none of its routes or sysctls.
fn without_eth0(mut state: ActualState) -> ActualState {
    let pod = state.pod.as_mut().unwrap();
    pod.links.remove("eth0");
    pod.macs.remove("eth0");
    pod.routes.retain(|k, _| k.dev.as_deref() != Some("eth0"));
    pod.sysctls.retain(|k, _| k.iface != "eth0");
    state
}

#[test]
fn add_without_the_overlay_interface_is_code_104_naming_it_and_the_netns_and_changes_nothing() {
    let h = Harness::new();
    let state = without_eth0(h.kernel.state());
    h.kernel.set_state(state.clone());
    let conf = netconf("1.0.0", true);
    let out = h.command("ADD", &conf);
    assert_error(
        &out,
        Code::OverlayUnusable,
        "overlay_interface eth0 is not in the pod",
    );
    let msg = body(&out)["msg"].as_str().unwrap().to_string();
    for part in [
        "/var/run/netns/pod-1",
        "nothing was changed",
        "podman network connect",
    ] {
        assert!(msg.contains(part), "{part} not in {msg}");
    }
    assert_eq!(h.kernel.state(), state);
    assert!(h.records.load("c1", "net1").unwrap().is_none());
}

/// podman names a container's interfaces in random order too: the macvlan network may get
/// eth0, which router would then take for O.
#[test]
fn add_chained_to_the_overlay_interface_itself_is_code_104_and_changes_nothing() {
    let h = Harness::new();
    let before = h.kernel.state();
    let mut conf = netconf("1.0.0", true);
    conf["overlay_interface"] = json!("net1");
    let out = h.command("ADD", &conf);
    assert_error(
        &out,
        Code::OverlayUnusable,
        "overlay_interface net1 is the interface router is chained to",
    );
    assert_eq!(h.kernel.state(), before);
    assert!(h.records.load("c1", "net1").unwrap().is_none());
    assert_eq!(h.command("DEL", &conf).exit_code, 0);
    assert_eq!(h.kernel.state(), before);
}

#[test]
fn del_after_an_add_refused_for_a_missing_overlay_succeeds_and_leaves_unowned_objects() {
    let h = Harness::new();
    let mut state = without_eth0(h.kernel.state());
    // An unowned rule on exactly the key router would own: DEL must not take it.
    let mut lookalike = crate::model::Rule::owned_lookup(
        crate::model::Family::Ipv4,
        1000,
        None,
        Some("10.240.0.0/12".parse().unwrap()),
        100,
    );
    lookalike.protocol = 0;
    state.pod.as_mut().unwrap().insert_rule(lookalike);
    h.kernel.set_state(state.clone());
    let conf = netconf("1.0.0", true);
    assert_error(&h.command("ADD", &conf), Code::OverlayUnusable, "eth0");
    assert_eq!(h.command("DEL", &conf).exit_code, 0);
    assert_eq!(h.kernel.state(), state);
    assert!(h.records.load("c1", "net1").unwrap().is_none());
}

#[test]
fn an_add_once_the_overlay_exists_takes_it_as_p_after_a_refused_one() {
    let h = Harness::new();
    let with_eth0 = h.kernel.state();
    h.kernel.set_state(without_eth0(with_eth0.clone()));
    let conf = netconf("1.0.0", true);
    assert_error(&h.command("ADD", &conf), Code::OverlayUnusable, "eth0");
    h.kernel.set_state(with_eth0);
    assert_eq!(h.command("ADD", &conf).exit_code, 0);
    let record = h.records.load("c1", "net1").unwrap().unwrap();
    let moved = &record.moved[&crate::model::Family::Ipv4];
    assert_eq!(moved.interface, "eth0");
    assert!(!moved.removed_from_main.is_empty());
    assert_eq!(h.command("CHECK", &conf).exit_code, 0);
}

#[test]
fn check_of_an_attachment_whose_overlay_went_away_is_code_104_not_a_repair_target() {
    let h = Harness::new();
    let conf = netconf("1.0.0", true);
    assert_eq!(h.command("ADD", &conf).exit_code, 0);
    let record = h.records.load("c1", "net1").unwrap();
    h.kernel.set_state(without_eth0(h.kernel.state()));
    assert_error(&h.command("CHECK", &conf), Code::OverlayUnusable, "eth0");
    assert_eq!(h.records.load("c1", "net1").unwrap(), record);
}

fn with_ip_conflict(mut conf: Value) -> Value {
    conf["ip_conflict"] = json!({"enabled": true, "interval": "100ms", "retries": 2});
    conf
}

fn net1_addrs() -> Vec<IpAddr> {
    vec![
        "192.168.50.10".parse().unwrap(),
        "fd50::10".parse().unwrap(),
    ]
}

#[test]
fn ip_conflict_probes_every_address_of_c_from_its_current_mac_before_anything_is_applied() {
    let h = Harness::new();
    let before = h.kernel.state();
    let out = h.command("ADD", &with_ip_conflict(netconf("1.0.0", true)));
    assert_eq!(out.exit_code, 0, "{}", out.stdout);
    let detects = h.detects();
    assert_eq!(detects.len(), 1, "{detects:?}");
    let d = &detects[0];
    assert_eq!(d.netns, PathBuf::from("/var/run/netns/pod-1"));
    assert_eq!(d.ifname, "net1");
    // The probes go out before the MAC change: from the MAC net1 has now.
    assert_eq!(d.mac.to_string(), "da:5e:d2:d6:b7:6d");
    assert_eq!(d.addrs, net1_addrs());
    assert_eq!((d.interval, d.retries), (Duration::from_millis(100), 2));
    assert_eq!(d.kernel, before, "something was applied before the probe");
    assert!(!d.record_saved, "the record was written before the probe");
}

#[test]
fn a_conflict_is_code_101_naming_address_and_mac_and_changes_nothing() {
    let h = Harness::new();
    let before = h.kernel.state();
    *h.probe.conflict.lock().unwrap() = Some(Conflict {
        addr: "fd50::10".parse().unwrap(),
        mac: "02:00:00:00:00:0e".parse().unwrap(),
    });
    let out = h.command("ADD", &with_ip_conflict(netconf("1.0.0", true)));
    assert_error(
        &out,
        Code::IpConflict,
        "fd50::10 is in use by 02:00:00:00:00:0e",
    );
    assert_eq!(h.kernel.state(), before);
    assert!(h.records.load("c1", "net1").unwrap().is_none());
}

#[test]
fn without_ip_conflict_nothing_is_probed_and_check_never_probes() {
    let h = Harness::new();
    let conf = netconf("1.0.0", true);
    assert_eq!(h.command("ADD", &conf).exit_code, 0);
    assert!(h.detects().is_empty());
    let conf = with_ip_conflict(conf);
    assert_eq!(h.command("ADD", &conf).exit_code, 0);
    assert_eq!(h.detects().len(), 1);
    assert_eq!(h.command("CHECK", &conf).exit_code, 0);
    assert_eq!(h.detects().len(), 1, "CHECK probed");
}

#[test]
fn an_add_blocked_by_an_unowned_object_is_refused_before_probing() {
    let h = Harness::new();
    let mut state = h.kernel.state();
    let squatter = crate::model::Neighbour {
        key: crate::model::NeighbourKey {
            dev: "eth0".into(),
            addr: "192.168.50.1".parse().unwrap(),
        },
        lladdr: Some("00:00:00:00:00:01".parse().unwrap()),
        protocol: 0,
    };
    state.pod.as_mut().unwrap().insert_neighbour(squatter);
    h.kernel.set_state(state);
    let out = h.command("ADD", &with_ip_conflict(netconf("1.0.0", true)));
    assert_error(&out, Code::Blocked, "not touched");
    assert!(h.detects().is_empty());
}

#[test]
fn a_mac_change_has_the_kernel_announce_c_and_del_restores_the_notify_sysctls() {
    let h = Harness::new();
    let keys = [
        "net.ipv4.conf.net1.arp_notify",
        "net.ipv6.conf.net1.ndisc_notify",
    ]
    .map(|k| k.parse::<crate::model::SysctlKey>().unwrap());
    let mut state = h.kernel.state();
    for key in &keys {
        state.pod.as_mut().unwrap().sysctls.insert(key.clone(), 0);
    }
    h.kernel.set_state(state.clone());
    let conf = netconf("1.0.0", true);
    assert_eq!(h.command("ADD", &conf).exit_code, 0);
    let pod = h.kernel.state().pod.unwrap();
    assert_eq!(pod.macs["net1"], "0a:0b:c0:a8:32:0a".parse().unwrap());
    for key in &keys {
        assert_eq!(pod.sysctls.get(key), Some(&1), "{key:?}");
    }
    assert_eq!(h.command("DEL", &conf).exit_code, 0);
    let pod = h.kernel.state().pod.unwrap();
    for key in &keys {
        assert_eq!(pod.sysctls.get(key), Some(&0), "{key:?} restored");
    }
    let mut no_mac = netconf("1.0.0", true);
    no_mac["mac_prefix"] = json!("");
    let h = Harness::new();
    h.kernel.set_state(state);
    assert_eq!(h.command("ADD", &no_mac).exit_code, 0);
    let pod = h.kernel.state().pod.unwrap();
    for key in &keys {
        assert_eq!(
            pod.sysctls.get(key),
            Some(&0),
            "{key:?} untouched without mac_prefix"
        );
    }
}

fn gc_env() -> Vec<(&'static str, &'static str)> {
    vec![("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")]
}

fn gc_input(valid: Value) -> Value {
    let mut conf = netconf("1.1.0", false);
    conf[VALID_ATTACHMENTS_KEY] = valid;
    conf
}

fn saved_records(h: &Harness) -> Vec<(String, String)> {
    let mut ids: Vec<(String, String)> = h
        .records
        .all()
        .unwrap()
        .into_iter()
        .map(|r| (r.container_id, r.ifname))
        .collect();
    ids.sort();
    ids
}

fn ids(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(c, i)| (c.to_string(), i.to_string()))
        .collect()
}

#[test]
fn gc_collects_unlisted_attachments_and_keeps_what_a_listed_one_wants() {
    let h = Harness::new();
    let before = h.kernel.state();
    assert_eq!(h.command("ADD", &netconf("1.1.0", true)).exit_code, 0);
    let attached = h.kernel.state();
    // A stale attachment whose record wants the very objects c1's does (an address reused).
    let mut twin = h.records.load("c1", "net1").unwrap().unwrap();
    twin.container_id = "c2".into();
    h.records.save(&twin).unwrap();

    let out = h.invoke(
        &gc_env(),
        gc_input(json!([{"containerID": "c1", "ifname": "net1"}]))
            .to_string()
            .as_bytes(),
    );
    assert_eq!(out, Output::success(None), "{}", out.stdout);
    assert_eq!(saved_records(&h), ids(&[("c1", "net1")]));
    assert_eq!(
        h.kernel.state(),
        attached,
        "a valid attachment's object went"
    );

    let out = h.invoke(&gc_env(), gc_input(json!([])).to_string().as_bytes());
    assert_eq!(out.exit_code, 0, "{}", out.stdout);
    assert!(saved_records(&h).is_empty());
    let after = h.kernel.state();
    // GC reaches the host only (no netns is named): the pod keeps what ADD made.
    assert_eq!(after.pod, attached.pod);
    let mut host = after.host.clone();
    host.sysctls = before.host.sysctls.clone();
    assert_eq!(
        host, before.host,
        "owned host objects or the host rule were left"
    );
}

#[test]
fn gc_leaves_other_networks_records_and_entries_without_ifname_keep_the_container() {
    let h = Harness::new();
    assert_eq!(h.command("ADD", &netconf("1.1.0", true)).exit_code, 0);
    let mut other = h.records.load("c1", "net1").unwrap().unwrap();
    other.container_id = "c9".into();
    other.network = Some("another-network".into());
    h.records.save(&other).unwrap();
    let out = h.invoke(
        &gc_env(),
        gc_input(json!([{"containerID": "c1"}]))
            .to_string()
            .as_bytes(),
    );
    assert_eq!(out.exit_code, 0, "{}", out.stdout);
    assert_eq!(saved_records(&h), ids(&[("c1", "net1"), ("c9", "net1")]));
}

#[test]
fn gc_without_a_usable_valid_attachments_list_is_code_7_and_collects_nothing() {
    let h = Harness::new();
    assert_eq!(h.command("ADD", &netconf("1.1.0", true)).exit_code, 0);
    let state = h.kernel.state();
    let missing = netconf("1.1.0", false);
    assert_error(
        &h.invoke(&gc_env(), missing.to_string().as_bytes()),
        Code::InvalidConfig,
        VALID_ATTACHMENTS_KEY,
    );
    for bad in [
        json!("c1"),
        json!({"containerID": "c1"}),
        json!([{"containerID": 5}]),
        json!([{"containerID": "c1", "ifname": ["net1"]}]),
    ] {
        let out = h.invoke(&gc_env(), gc_input(bad.clone()).to_string().as_bytes());
        assert_error(&out, Code::InvalidConfig, VALID_ATTACHMENTS_KEY);
    }
    assert_eq!(saved_records(&h), ids(&[("c1", "net1")]));
    assert_eq!(h.kernel.state(), state);
}

#[test]
fn gc_and_status_need_cni_version_1_1_0() {
    let h = Harness::new();
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let mut conf = gc_input(json!([]));
        conf["cniVersion"] = json!(version);
        let out = h.invoke(&gc_env(), conf.to_string().as_bytes());
        assert_error(&out, Code::IncompatibleVersion, "GC needs cniVersion 1.1.0");
        assert_eq!(body(&out)["cniVersion"], version);
        let out = h.invoke(&[("CNI_COMMAND", "STATUS")], conf.to_string().as_bytes());
        assert_error(
            &out,
            Code::IncompatibleVersion,
            "STATUS needs cniVersion 1.1.0",
        );
    }
}

#[test]
fn status_is_ready_with_no_output_and_skip_call_gc_does_nothing() {
    let h = Harness::new();
    let out = h.invoke(
        &[("CNI_COMMAND", "STATUS")],
        netconf("1.1.0", false).to_string().as_bytes(),
    );
    assert_eq!(out, Output::success(None));
    assert_eq!(h.command("ADD", &netconf("1.1.0", true)).exit_code, 0);
    let mut conf = gc_input(json!([]));
    conf["skip_call"] = json!(true);
    assert_eq!(
        h.invoke(&gc_env(), conf.to_string().as_bytes()),
        Output::success(None)
    );
    assert_eq!(saved_records(&h), ids(&[("c1", "net1")]));
}

/// STATUS over records in a real directory: ready, or code 50 naming data_dir.
fn status_with_data_dir(data_dir: &Path) -> Output {
    let mut conf = netconf("1.1.0", false);
    conf["data_dir"] = json!(data_dir);
    let factory = |config: &Config, _: &Invocation| -> Result<Backends> {
        let kernel = Arc::new(ModelKernel::new(ActualState::default()));
        Ok(Backends {
            snapshots: Box::new(kernel.clone()),
            executor: Box::new(kernel),
            records: Box::new(crate::record::MemRecords::default()),
            host: Box::new(crate::record::FileRecords::confined(
                &config.data_root,
                &config.data_dir,
            )),
            probe: Box::new(crate::conflict::NoConflicts),
        })
    };
    let allowed = std::env::temp_dir().display().to_string();
    let env = |name: &str| match name {
        "CNI_COMMAND" => Some("STATUS".to_string()),
        ALLOWED_DIRS_VAR => Some(allowed.clone()),
        _ => None,
    };
    run(&env, &mut conf.to_string().as_bytes(), &factory)
}

#[test]
fn status_is_code_50_naming_data_dir_when_it_cannot_be_created_or_written() {
    let root = std::env::temp_dir().join(format!("router-status-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let usable = root.join("data");
    assert_eq!(status_with_data_dir(&usable), Output::success(None));
    assert!(usable.is_dir(), "STATUS creates data_dir as ADD would");
    assert_eq!(
        std::fs::read_dir(&usable).unwrap().count(),
        0,
        "the probe file stayed"
    );
    let file = root.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    for unusable in [file.clone(), file.join("data")] {
        let out = status_with_data_dir(&unusable);
        assert_error(&out, Code::NotAvailable, "is not usable");
        assert!(
            out.stdout.contains(&*unusable.to_string_lossy()),
            "{}",
            out.stdout
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn ids_and_names_with_nul_slash_dots_or_too_long_are_code_4() {
    let h = Harness::new();
    let long_id = "a".repeat(crate::record::MAX_CONTAINER_ID_LEN + 1);
    for (var, value) in [
        ("CNI_CONTAINERID", "c\0../x"),
        ("CNI_CONTAINERID", "a/b"),
        ("CNI_CONTAINERID", ".."),
        ("CNI_CONTAINERID", long_id.as_str()),
        ("CNI_IFNAME", "net\0x"),
        ("CNI_IFNAME", ".."),
        ("CNI_IFNAME", "a/b"),
        ("CNI_IFNAME", "net1234567890123"),
        ("CNI_NETNS", "/run/netns/a\0b"),
    ] {
        let mut env = pod_env("ADD");
        env.retain(|(k, _)| *k != var);
        env.push((var, value));
        let out = h.invoke(&env, netconf("1.0.0", true).to_string().as_bytes());
        assert_error(&out, Code::InvalidEnv, var);
        assert!(out.stdout.len() < 1024, "{}", out.stdout);
    }
    assert!(h.records.all().unwrap().is_empty());
}

#[test]
fn add_whose_prev_result_gives_c_no_address_is_code_7() {
    let h = Harness::new();
    let before = h.kernel.state();
    let mut conf = netconf("1.0.0", true);
    conf["prevResult"]["ips"] = json!([]);
    assert_error(
        &h.command("ADD", &conf),
        Code::InvalidConfig,
        "no address of net1",
    );
    let mut conf = netconf("1.0.0", true);
    conf["prevResult"]["interfaces"][0]["name"] = json!("net7");
    assert_error(
        &h.command("ADD", &conf),
        Code::InvalidConfig,
        "no address of net1",
    );
    assert_eq!(h.kernel.state(), before);
}

#[test]
fn stdin_is_read_no_further_than_the_limit() {
    /// An endless stdin that counts what was taken from it.
    struct Endless(u64);
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(b' ');
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
    }
    let mut stdin = Endless(0);
    let err = read_stdin(&mut stdin).unwrap_err();
    assert_eq!(err.code(), Code::Decode);
    assert!(stdin.0 <= MAX_STDIN + 64 * 1024, "read {} bytes", stdin.0);
}

/// What DEL leaves of an ADD: everything as before but the host's shared sysctls (never
/// restored, BEHAVIOUR 4), no owned object, no record.
/// C's default is replaced by P's restored one (C goes with the previous plugin's DEL).
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
fn status_and_gc_answer_a_version_error_before_a_config_error() {
    let h = Harness::new();
    let mut conf = netconf("1.0.0", false);
    conf["migrate_route"] = json!(5);
    conf[VALID_ATTACHMENTS_KEY] = json!([]);
    for env in [vec![("CNI_COMMAND", "STATUS")], gc_env()] {
        let out = h.invoke(&env, conf.to_string().as_bytes());
        assert_error(&out, Code::IncompatibleVersion, "1.1.0");
    }
    let version = h.invoke(&[("CNI_COMMAND", "VERSION")], conf.to_string().as_bytes());
    assert_eq!(version.exit_code, 0);
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

#[test]
fn router_allowed_dirs_allows_more_directories_for_both_keys() {
    let h = Harness::new();
    let mut conf = netconf("1.0.0", true);
    conf["data_dir"] = json!("/srv/router/data");
    conf["log_options"] = json!({"log_file": "/srv/logs/router.log"});
    let out = h.command("ADD", &conf);
    assert_error(&out, Code::InvalidConfig, "/run, /var/run");
    let mut env = pod_env("ADD");
    env.push((ALLOWED_DIRS_VAR, "relative:/srv/router:/srv/logs"));
    let out = h.invoke(&env, conf.to_string().as_bytes());
    assert_eq!(out.exit_code, 0, "{}", out.stdout);
}
