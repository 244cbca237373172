//! cni tests, IP conflict detection through a scripted probe: what is probed and when,
//! code 101, the kernel's announcement after a MAC change and DEL's restore.

use super::*;

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
    let squatter = crate::testkit::build::neighbour("eth0", "192.168.50.1", "00:00:00:00:00:01", 0);
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
