//! The per-interface sysctls router manages, named by their dotted path, and the one
//! definition of which of them each step owns (compile sets them, snapshot reads them).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Family;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SysctlName {
    RpFilter,
    DisableIpv6,
    /// The kernel's gratuitous ARP when the link's MAC changes (BEHAVIOUR 2.1).
    ArpNotify,
    /// The kernel's unsolicited neighbour advertisements when the link's MAC changes.
    NdiscNotify,
}

impl SysctlName {
    fn as_str(self) -> &'static str {
        match self {
            SysctlName::RpFilter => "rp_filter",
            SysctlName::DisableIpv6 => "disable_ipv6",
            SysctlName::ArpNotify => "arp_notify",
            SysctlName::NdiscNotify => "ndisc_notify",
        }
    }

    pub fn family(self) -> Family {
        match self {
            SysctlName::RpFilter => Family::Ipv4,
            SysctlName::DisableIpv6 | SysctlName::NdiscNotify => Family::Ipv6,
            SysctlName::ArpNotify => Family::Ipv4,
        }
    }
}

/// `net.<ipv4|ipv6>.conf.<iface>.<name>`; serialised as that dotted path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SysctlKey {
    pub iface: String,
    pub name: SysctlName,
}

impl SysctlKey {
    pub fn new(iface: &str, name: SysctlName) -> SysctlKey {
        SysctlKey {
            iface: iface.to_string(),
            name,
        }
    }

    /// The file under /proc/sys that holds the value.
    /// Built from the parts: an interface name may itself hold a dot (`bond0.100`).
    pub fn proc_path(&self) -> String {
        format!(
            "/proc/sys/net/{}/conf/{}/{}",
            self.name.family(),
            self.iface,
            self.name.as_str()
        )
    }
}

impl fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "net.{}.conf.{}.{}",
            self.name.family(),
            self.iface,
            self.name.as_str()
        )
    }
}

/// The `conf` entries beside the interfaces: `all`, and `default` (what new interfaces
/// get).
pub const ALL_AND_DEFAULT: [&str; 2] = ["all", "default"];

/// The MAC step's sysctls on the chained interface and their values (BEHAVIOUR 2.1):
/// `arp_notify` and `ndisc_notify` 1 for each family the chained interface has an address
/// of, so that the kernel announces the chained interface's addresses from the new MAC
/// itself.
pub fn mac_step_sysctls(iface: &str, families: &BTreeSet<Family>) -> Vec<(SysctlKey, i64)> {
    [SysctlName::ArpNotify, SysctlName::NdiscNotify]
        .into_iter()
        .filter(|name| families.contains(&name.family()))
        .map(|name| (SysctlKey::new(iface, name), 1))
        .collect()
}

/// The routing step's sysctls on a pod interface (all, default, the overlay interface, the
/// chained interface) and their values: `rp_filter` the config's, and `disable_ipv6` 0 when
/// the attachment uses IPv6.
pub fn routing_step_sysctls(iface: &str, rp_filter: i64, ipv6: bool) -> Vec<(SysctlKey, i64)> {
    let mut sysctls = vec![(SysctlKey::new(iface, SysctlName::RpFilter), rp_filter)];
    if ipv6 {
        sysctls.push((SysctlKey::new(iface, SysctlName::DisableIpv6), 0));
    }
    sysctls
}

/// The host step's sysctl on a host interface (all, default, the host veth peer) and its
/// value: `rp_filter` the config's (when `rp_filter.set_host`).
pub fn host_step_sysctl(iface: &str, rp_filter: i64) -> (SysctlKey, i64) {
    (SysctlKey::new(iface, SysctlName::RpFilter), rp_filter)
}

/// Every sysctl the MAC step may set on an interface: what a snapshot reads for each link.
pub fn mac_step_keys(iface: &str) -> impl Iterator<Item = SysctlKey> {
    let families = BTreeSet::from([Family::Ipv4, Family::Ipv6]);
    mac_step_sysctls(iface, &families)
        .into_iter()
        .map(|(key, _)| key)
}

/// Every sysctl the routing step may set on a pod interface: what a snapshot reads.
pub fn routing_step_keys(iface: &str) -> impl Iterator<Item = SysctlKey> {
    routing_step_sysctls(iface, 0, true)
        .into_iter()
        .map(|(key, _)| key)
}

/// The sysctl the host step may set on a host interface: what a snapshot reads.
pub fn host_step_key(iface: &str) -> SysctlKey {
    host_step_sysctl(iface, 0).0
}

#[derive(Debug, thiserror::Error)]
#[error("not a sysctl router manages: {0:?}")]
pub struct BadSysctl(pub String);

impl FromStr for SysctlKey {
    type Err = BadSysctl;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadSysctl(s.to_string());
        let rest = s.strip_prefix("net.").ok_or_else(bad)?;
        let (family, rest) = rest.split_once(".conf.").ok_or_else(bad)?;
        let (iface, name) = rest.rsplit_once('.').ok_or_else(bad)?;
        let name = match (family, name) {
            ("ipv4", "rp_filter") => SysctlName::RpFilter,
            ("ipv6", "disable_ipv6") => SysctlName::DisableIpv6,
            ("ipv4", "arp_notify") => SysctlName::ArpNotify,
            ("ipv6", "ndisc_notify") => SysctlName::NdiscNotify,
            _ => return Err(bad()),
        };
        if iface.is_empty() || iface.contains('/') {
            return Err(bad());
        }
        Ok(SysctlKey::new(iface, name))
    }
}

impl Serialize for SysctlKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SysctlKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
