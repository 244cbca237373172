//! model::sysctl tests: keys round-trip as dotted paths; each step owns its sysctls.

use super::*;

#[test]
fn sysctl_key_round_trips_as_dotted_path() {
    let key: SysctlKey = "net.ipv4.conf.eth0.rp_filter".parse().unwrap();
    assert_eq!(key, SysctlKey::new("eth0", SysctlName::RpFilter));
    assert_eq!(key.to_string(), "net.ipv4.conf.eth0.rp_filter");
    assert_eq!(key.proc_path(), "/proc/sys/net/ipv4/conf/eth0/rp_filter");
    let dotted = SysctlKey::new("bond0.100", SysctlName::RpFilter);
    assert_eq!(
        dotted.proc_path(),
        "/proc/sys/net/ipv4/conf/bond0.100/rp_filter"
    );
    assert!("net.ipv6.conf.all.rp_filter".parse::<SysctlKey>().is_err());
}

fn names(keys: impl IntoIterator<Item = SysctlKey>) -> Vec<String> {
    keys.into_iter().map(|k| k.to_string()).collect()
}

#[test]
fn each_step_owns_its_sysctls_and_a_snapshot_reads_all_it_may_set() {
    let v4 = BTreeSet::from([Family::Ipv4]);
    assert_eq!(
        mac_step_sysctls("net1", &v4),
        [(SysctlKey::new("net1", SysctlName::ArpNotify), 1)]
    );
    assert_eq!(
        names(mac_step_keys("net1")),
        [
            "net.ipv4.conf.net1.arp_notify",
            "net.ipv6.conf.net1.ndisc_notify"
        ]
    );
    assert_eq!(
        routing_step_sysctls("eth0", 2, false),
        [(SysctlKey::new("eth0", SysctlName::RpFilter), 2)]
    );
    assert_eq!(
        names(routing_step_keys("all")),
        [
            "net.ipv4.conf.all.rp_filter",
            "net.ipv6.conf.all.disable_ipv6"
        ]
    );
    assert_eq!(
        host_step_key("vethA").to_string(),
        "net.ipv4.conf.vethA.rp_filter"
    );
}
