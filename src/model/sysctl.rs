//! The per-interface sysctls router manages, named by their dotted path.

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

    fn family(self) -> Family {
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
mod tests {
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
}
