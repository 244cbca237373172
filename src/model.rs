//! The state model: one type for what the kernel holds (ActualState) and what this plugin
//! wants (DesiredState), per netns, keyed by the kernel's own identity and normalised so
//! that "equal" means what the kernel means. It is also the snapshot/fixture JSON format.
//! Pure data plus the in-memory model kernel (`NetnsState::apply`); no I/O here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The protocol number stamped on every route, rule and neighbour router creates, so that
/// ownership is provable from the kernel alone. Not used by iproute2's rt_protos nor by a
/// well-known routing daemon (bird 12, zebra/FRR 11 and 186-198, Calico 80, babel 42).
pub const ROUTER_PROTOCOL: u8 = 176;
/// RTPROT_BOOT: what `ip route add` stamps; used for routes restored without a record.
pub const PROTOCOL_BOOT: u8 = 3;
/// RTPROT_KERNEL: routes the kernel derives from addresses.
pub const PROTOCOL_KERNEL: u8 = 2;
pub const MAIN_TABLE: u32 = 254;
/// The metric the kernel gives an IPv6 route added without one.
pub const IPV6_DEFAULT_METRIC: u32 = 1024;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of_addr(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    pub fn of_net(net: &IpNet) -> Family {
        Family::of_addr(&net.addr())
    }

    /// The prefix covering every address of the family (a default route's destination).
    pub fn any(self) -> IpNet {
        match self {
            Family::Ipv4 => IpNet::V4(ipnet::Ipv4Net::default()),
            Family::Ipv6 => IpNet::V6(ipnet::Ipv6Net::default()),
        }
    }

    pub fn host_prefix_len(self) -> u8 {
        match self {
            Family::Ipv4 => 32,
            Family::Ipv6 => 128,
        }
    }

    pub fn all() -> [Family; 2] {
        [Family::Ipv4, Family::Ipv6]
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        })
    }
}

/// A single address as a host prefix (`/32` or `/128`).
pub fn host_net(addr: IpAddr) -> IpNet {
    IpNet::new(addr, Family::of_addr(&addr).host_prefix_len()).unwrap_or_else(|_| match addr {
        // Unreachable: the prefix length always fits the family; kept total for the type.
        IpAddr::V4(a) => IpNet::V4(a.into()),
        IpAddr::V6(a) => IpNet::V6(a.into()),
    })
}

/// Which network namespace an object lives in.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Pod,
    Host,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Pod => "pod",
            Side::Host => "host",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

#[derive(Debug, thiserror::Error)]
#[error("not a MAC address: {0:?}")]
pub struct BadMac(pub String);

impl FromStr for MacAddr {
    type Err = BadMac;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 6];
        let mut parts = s.split(':');
        for byte in bytes.iter_mut() {
            let part = parts.next().ok_or_else(|| BadMac(s.to_string()))?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BadMac(s.to_string()));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| BadMac(s.to_string()))?;
        }
        if parts.next().is_some() {
            return Err(BadMac(s.to_string()));
        }
        Ok(MacAddr(bytes))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Route scope (rtm_scope). IPv6 routes always read back as `Universe`.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum RouteScope {
    #[default]
    Universe,
    Site,
    Link,
    Host,
    Nowhere,
}

impl RouteScope {
    pub fn to_kernel(self) -> u8 {
        match self {
            RouteScope::Universe => 0,
            RouteScope::Site => 200,
            RouteScope::Link => 253,
            RouteScope::Host => 254,
            RouteScope::Nowhere => 255,
        }
    }

    pub fn from_kernel(v: u8) -> RouteScope {
        match v {
            200 => RouteScope::Site,
            253 => RouteScope::Link,
            254 => RouteScope::Host,
            255 => RouteScope::Nowhere,
            _ => RouteScope::Universe,
        }
    }
}

/// Route type (rtm_type). Only unicast routes are created; others are carried so that a
/// snapshot never mistakes a blackhole for a unicast route with the same key.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    #[default]
    Unicast,
    Local,
    Broadcast,
    Blackhole,
    Unreachable,
    Prohibit,
    Other,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The kernel's identity of a route hop. The nexthop is part of it: with IPAM plugins that
/// add with `append`, IPv4 main holds two defaults differing only by nexthop, and an IPv6
/// multipath default is held here as one entry per hop.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    pub table: u32,
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "is_default")]
    pub tos: u8,
    #[serde(default)]
    pub metric: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// The slot of a route: what the kernel refuses to hold twice without `append`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteSlot {
    pub table: u32,
    pub dst: IpNet,
    pub tos: u8,
    pub metric: u32,
}

impl RouteKey {
    pub fn family(&self) -> Family {
        Family::of_net(&self.dst)
    }

    pub fn slot(&self) -> RouteSlot {
        RouteSlot {
            table: self.table,
            dst: self.dst,
            tos: self.tos,
            metric: self.metric,
        }
    }

    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    #[serde(flatten)]
    pub key: RouteKey,
    #[serde(default, skip_serializing_if = "is_default")]
    pub scope: RouteScope,
    #[serde(default, skip_serializing_if = "is_default")]
    pub kind: RouteKind,
    pub protocol: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefsrc: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub onlink: bool,
}

impl Route {
    /// A unicast route straight out of a device (`<dst> dev <dev> scope link`), normalised.
    pub fn link(table: u32, dst: IpNet, dev: &str, protocol: u8) -> Route {
        Route {
            key: RouteKey {
                table,
                dst,
                tos: 0,
                metric: 0,
                dev: Some(dev.to_string()),
                gateway: None,
            },
            scope: RouteScope::Link,
            kind: RouteKind::Unicast,
            protocol,
            prefsrc: None,
            onlink: false,
        }
        .normalised()
    }

    /// Masks the destination and fills what the kernel fills, so a route built here
    /// compares equal to the same route read back from the kernel.
    pub fn normalised(mut self) -> Route {
        self.key.dst = self.key.dst.trunc();
        if self.key.family() == Family::Ipv6 {
            if self.key.metric == 0 {
                self.key.metric = IPV6_DEFAULT_METRIC;
            }
            self.scope = RouteScope::Universe;
        }
        self
    }

    pub fn is_owned(&self) -> bool {
        self.protocol == ROUTER_PROTOCOL
    }

    /// Equal in everything but ownership: an unowned route that already does the job.
    pub fn same_effect(&self, other: &Route) -> bool {
        self.key == other.key
            && self.scope == other.scope
            && self.kind == other.kind
            && self.prefsrc == other.prefsrc
            && self.onlink == other.onlink
    }
}

/// FR_ACT_TO_TBL is the only rule action router creates; other actions are carried so
/// that they never compare equal to a lookup rule.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    #[default]
    Lookup,
    Goto,
    Nop,
    Blackhole,
    Unreachable,
    Prohibit,
    Other,
}

/// The kernel's identity of a policy rule: everything it matches on plus its action.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleKey {
    pub family: Family,
    pub priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oif: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmask: Option<u32>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub tos: u8,
    #[serde(default, skip_serializing_if = "is_default")]
    pub invert: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub action: RuleAction,
    pub table: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    #[serde(flatten)]
    pub key: RuleKey,
    pub protocol: u8,
}

impl Rule {
    pub fn is_owned(&self) -> bool {
        self.protocol == ROUTER_PROTOCOL
    }

    /// A `lookup` rule owned by router, selectors masked.
    pub fn owned_lookup(
        family: Family,
        priority: u32,
        from: Option<IpNet>,
        to: Option<IpNet>,
        table: u32,
    ) -> Rule {
        Rule {
            key: RuleKey {
                family,
                priority,
                from: from.map(|n| n.trunc()),
                to: to.map(|n| n.trunc()),
                iif: None,
                oif: None,
                fwmark: None,
                fwmask: None,
                tos: 0,
                invert: false,
                action: RuleAction::Lookup,
                table,
            },
            protocol: ROUTER_PROTOCOL,
        }
    }
}

/// A permanent neighbour entry. Only permanent entries are modelled: dynamic ones are the
/// kernel's cache, owned by nobody, and an add with replace overrides them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighbourKey {
    pub dev: String,
    pub addr: IpAddr,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Neighbour {
    #[serde(flatten)]
    pub key: NeighbourKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lladdr: Option<MacAddr>,
    pub protocol: u8,
}

impl Neighbour {
    pub fn is_owned(&self) -> bool {
        self.protocol == ROUTER_PROTOCOL
    }
}

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

/// The veth peer of a link as the kernel reports it (IFLA_LINK + IFLA_LINK_NETNSID).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LinkPeer {
    pub ifindex: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netnsid: Option<i32>,
}

/// Facts about a link; its MAC, the one reconciled property, lives in `NetnsState::macs`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<LinkPeer>,
    /// Interface addresses with their prefix length (host bits kept).
    #[serde(default)]
    pub addresses: Vec<IpNet>,
}

/// Objects with a kernel identity, stored in maps keyed by it and serialised as lists.
pub trait Keyed {
    type Key: Ord + Clone;
    fn key(&self) -> &Self::Key;
}

impl Keyed for Route {
    type Key = RouteKey;
    fn key(&self) -> &RouteKey {
        &self.key
    }
}

impl Keyed for Rule {
    type Key = RuleKey;
    fn key(&self) -> &RuleKey {
        &self.key
    }
}

impl Keyed for Neighbour {
    type Key = NeighbourKey;
    fn key(&self) -> &NeighbourKey {
        &self.key
    }
}

/// Serde for `BTreeMap<K, V>` whose key is derived from the value: a plain JSON list.
mod keyed_list {
    use super::Keyed;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<V: Keyed + Serialize, S: Serializer>(
        map: &BTreeMap<V::Key, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.values())
    }

    pub fn deserialize<'de, V, D>(d: D) -> Result<BTreeMap<V::Key, V>, D::Error>
    where
        V: Keyed + Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let list = Vec::<V>::deserialize(d)?;
        Ok(list.into_iter().map(|v| (v.key().clone(), v)).collect())
    }
}

/// One netns: links (facts) and the reconciled objects.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NetnsState {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, Link>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub macs: BTreeMap<String, MacAddr>,
    #[serde(
        default,
        with = "keyed_list",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub routes: BTreeMap<RouteKey, Route>,
    #[serde(
        default,
        with = "keyed_list",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub rules: BTreeMap<RuleKey, Rule>,
    #[serde(
        default,
        with = "keyed_list",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub neighbours: BTreeMap<NeighbourKey, Neighbour>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<SysctlKey, i64>,
}

impl NetnsState {
    pub fn insert_route(&mut self, route: Route) {
        let route = route.normalised();
        self.routes.insert(route.key.clone(), route);
    }

    pub fn insert_rule(&mut self, rule: Rule) {
        self.rules.insert(rule.key.clone(), rule);
    }

    pub fn insert_neighbour(&mut self, neighbour: Neighbour) {
        self.neighbours.insert(neighbour.key.clone(), neighbour);
    }

    /// Routes of one slot, in key order. The slot is a prefix of the key order, so this is
    /// a range read, not a scan: the planner asks once per wanted route.
    pub fn routes_in_slot<'a>(&'a self, slot: &'a RouteSlot) -> impl Iterator<Item = &'a Route> {
        let first = RouteKey {
            table: slot.table,
            dst: slot.dst,
            tos: slot.tos,
            metric: slot.metric,
            dev: None,
            gateway: None,
        };
        self.routes
            .range(first..)
            .map(|(_, r)| r)
            .take_while(move |r| r.key.slot() == *slot)
    }

    /// Default routes of a family in the main table, in key order.
    pub fn main_defaults(&self, family: Family) -> impl Iterator<Item = &Route> {
        self.routes.values().filter(move |r| {
            r.key.table == MAIN_TABLE && r.key.is_default() && r.key.family() == family
        })
    }

    pub fn link_by_index(&self, index: u32) -> Option<(&String, &Link)> {
        self.links.iter().find(|(_, l)| l.index == index)
    }

    /// The interface names objects refer to, for the snapshotter's filtered reads.
    pub fn is_empty(&self) -> bool {
        self.macs.is_empty()
            && self.routes.is_empty()
            && self.rules.is_empty()
            && self.neighbours.is_empty()
            && self.sysctls.is_empty()
    }
}

/// What a snapshot of the world holds: the pod netns (absent when it is gone) and the host.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ActualState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<NetnsState>,
    #[serde(default)]
    pub host: NetnsState,
    /// The host's preferred source address toward each address of C (`ip route get`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_preferred_src: BTreeMap<IpAddr, IpAddr>,
    /// The route tables this state holds, per netns. None in snapshot files written before
    /// snapshots said so: such a file is taken to hold every table a plan asks for (the
    /// fixtures are written that way; see `snapshot::FileSnapshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<TablesHeld>,
}

/// Which route tables a snapshot read in each netns: a table it did not read is unknown,
/// not empty.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TablesHeld {
    pub pod: Tables,
    pub host: Tables,
}

/// Every table of a netns (`"all"`), or these (a list of table ids).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum Tables {
    All(AllTables),
    Only(BTreeSet<u32>),
}

/// The word `"all"` in the snapshot JSON.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AllTables {
    All,
}

impl Tables {
    pub const ALL: Tables = Tables::All(AllTables::All);

    pub fn holds(&self, table: u32) -> bool {
        match self {
            Tables::All(_) => true,
            Tables::Only(tables) => tables.contains(&table),
        }
    }
}

impl ActualState {
    pub fn side(&self, side: Side) -> Option<&NetnsState> {
        match side {
            Side::Pod => self.pod.as_ref(),
            Side::Host => Some(&self.host),
        }
    }

    pub fn side_mut(&mut self, side: Side) -> Option<&mut NetnsState> {
        match side {
            Side::Pod => self.pod.as_mut(),
            Side::Host => Some(&mut self.host),
        }
    }
}

/// Owned objects matching these selectors belong to one attachment: any of them that the
/// desired state does not hold is removed (or, for CHECK, reported).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSelector>,
    /// Owned rules looking up one of these tables.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub rule_tables: BTreeSet<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbours: Vec<NeighbourSelector>,
}

/// Owned routes of a table, optionally only through one device and to some destinations
/// (empty: any destination).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RouteSelector {
    pub table: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub dst_in: BTreeSet<IpNet>,
}

/// Owned neighbours on a device, optionally only for some addresses (empty: any).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NeighbourSelector {
    pub dev: String,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub addr_in: BTreeSet<IpAddr>,
}

impl Scope {
    pub fn holds_route(&self, route: &Route) -> bool {
        route.is_owned()
            && self.routes.iter().any(|s| {
                s.table == route.key.table
                    && (s.dev.is_none() || s.dev == route.key.dev)
                    && (s.dst_in.is_empty() || s.dst_in.contains(&route.key.dst))
            })
    }

    pub fn holds_rule(&self, rule: &Rule) -> bool {
        rule.is_owned() && self.rule_tables.contains(&rule.key.table)
    }

    pub fn holds_neighbour(&self, neighbour: &Neighbour) -> bool {
        neighbour.is_owned()
            && self.neighbours.iter().any(|s| {
                s.dev == neighbour.key.dev
                    && (s.addr_in.is_empty() || s.addr_in.contains(&neighbour.key.addr))
            })
    }
}

/// What one netns should look like for one attachment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredNetns {
    /// Objects that must exist with exactly these values.
    #[serde(default)]
    pub present: NetnsState,
    /// Exact routes that must not exist: the documented moves (P's default out of main on
    /// ADD; C's default hops that P's restored default replaces on DEL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent_routes: Vec<RouteKey>,
    /// Present routes allowed into a slot held by unowned routes: the restore of P's default
    /// into main, replacing in one step the slot's routes listed in `absent_routes` (C's)
    /// and stale owned ones, and going next to any other (another interface's default).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub takeover: BTreeSet<RouteKey>,
    #[serde(default)]
    pub scope: Scope,
    /// Objects other attachments of the same pod want: never removed for this one.
    #[serde(default, skip_serializing_if = "NetnsState::is_empty")]
    pub keep: NetnsState,
    /// Shared rules removed only when no owned route is left in the table they look up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release_when_unused: Vec<RuleKey>,
    /// How the node's addresses changed since the record was written: why a host-address
    /// route or neighbour is drift (BEHAVIOUR 2.3).
    #[serde(default, skip_serializing_if = "NodeAddressChange::is_empty")]
    pub node_addresses: NodeAddressChange,
}

/// The node addresses (BEHAVIOUR 2.3) gained and lost since the attachment's record was
/// written, and the interface (O) their routes and neighbours go through.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeAddressChange {
    pub via: String,
    pub added: BTreeSet<IpAddr>,
    pub removed: BTreeSet<IpAddr>,
}

impl NodeAddressChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub pod: DesiredNetns,
    pub host: DesiredNetns,
}

impl DesiredState {
    pub fn side(&self, side: Side) -> &DesiredNetns {
        match side {
            Side::Pod => &self.pod,
            Side::Host => &self.host,
        }
    }
}

/// P and the routes that moved from main for one family, fixed by the first ADD: after the
/// move, main no longer shows P's default, so later runs compile from this.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    pub interface: String,
    /// P's main-table routes as they were, copied into table T.
    pub routes: Vec<Route>,
    /// The subset ADD removed from main (P's default hops); DEL puts them back.
    #[serde(default)]
    pub removed_from_main: Vec<Route>,
}

/// The attachment record (BEHAVIOUR 6): what one ADD owns and what it replaced, so that
/// CHECK and DEL compile from facts the kernel no longer shows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub version: u32,
    pub container_id: String,
    pub ifname: String,
    /// The network (the config's `name`) the attachment belongs to: GC collects only the
    /// records of the network it was called for, since data_dir may be shared by several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    pub table: u32,
    pub host_rule_table: u32,
    pub overlay_interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_peer: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub moved: BTreeMap<Family, Moved>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_mac: Option<MacAddr>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub original_sysctls: BTreeMap<SysctlKey, i64>,
    /// The owned objects ADD wants present, per netns.
    #[serde(default)]
    pub pod: NetnsState,
    #[serde(default)]
    pub host: NetnsState,
    /// What the ADD ran with; absent in records written before router kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<AddInputs>,
}

/// What an ADD ran with, so that `router check --all` can check the attachment when the
/// runtime's result cache has no entry for it, or one without the netns (libcni before
/// 1.2 writes none). The plugin config is kept without its prevResult (stored once, as
/// `prev_result`): a few hundred bytes for a typical pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AddInputs {
    /// CNI_NETNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    /// The plugin config from stdin, `prevResult` left out.
    pub config: serde_json::Value,
    /// The prevResult of that ADD.
    pub prev_result: serde_json::Value,
}

impl AddInputs {
    /// From what a runtime gave ADD: CNI_NETNS and stdin (`prevResult` moved out of it).
    pub fn new(netns: Option<PathBuf>, stdin: &serde_json::Value) -> AddInputs {
        let mut config = stdin.clone();
        let prev_result = config
            .as_object_mut()
            .and_then(|obj| obj.remove("prevResult"))
            .unwrap_or(serde_json::Value::Null);
        AddInputs {
            netns,
            config,
            prev_result,
        }
    }
}

impl Record {
    pub const VERSION: u32 = 1;

    /// A record that owns nothing yet.
    pub fn new(
        container_id: &str,
        ifname: &str,
        table: u32,
        host_rule_table: u32,
        overlay_interface: &str,
    ) -> Record {
        Record {
            version: Record::VERSION,
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
            network: None,
            table,
            host_rule_table,
            overlay_interface: overlay_interface.to_string(),
            host_peer: None,
            moved: BTreeMap::new(),
            original_mac: None,
            original_sysctls: BTreeMap::new(),
            pod: NetnsState::default(),
            host: NetnsState::default(),
            inputs: None,
        }
    }
}

/// ADD makes an attachment; DEL removes it. CHECK compiles as ADD.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Add,
    Del,
}

/// One kernel change. Each renders as the equivalent `ip`/`sysctl` command.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    SetSysctl {
        netns: Side,
        key: SysctlKey,
        #[serde(default)]
        old: Option<i64>,
        new: i64,
    },
    SetMac {
        netns: Side,
        dev: String,
        #[serde(default)]
        old: Option<MacAddr>,
        new: MacAddr,
    },
    AddRoute {
        netns: Side,
        route: Route,
    },
    /// Puts `new` in place of `old` (same slot, or same key with other values) in one step.
    ReplaceRoute {
        netns: Side,
        old: Vec<Route>,
        new: Route,
    },
    DelRoute {
        netns: Side,
        route: Route,
    },
    AddRule {
        netns: Side,
        rule: Rule,
    },
    DelRule {
        netns: Side,
        rule: Rule,
    },
    AddNeighbour {
        netns: Side,
        neighbour: Neighbour,
    },
    ReplaceNeighbour {
        netns: Side,
        old: Neighbour,
        new: Neighbour,
    },
    DelNeighbour {
        netns: Side,
        neighbour: Neighbour,
    },
}

impl Op {
    pub fn side(&self) -> Side {
        match self {
            Op::SetSysctl { netns, .. }
            | Op::SetMac { netns, .. }
            | Op::AddRoute { netns, .. }
            | Op::ReplaceRoute { netns, .. }
            | Op::DelRoute { netns, .. }
            | Op::AddRule { netns, .. }
            | Op::DelRule { netns, .. }
            | Op::AddNeighbour { netns, .. }
            | Op::ReplaceNeighbour { netns, .. }
            | Op::DelNeighbour { netns, .. } => *netns,
        }
    }

    /// The op that undoes this one, for rollback of a failed ADD.
    pub fn inverse(&self) -> Vec<Op> {
        let netns = self.side();
        match self.clone() {
            Op::SetSysctl { key, old, new, .. } => old
                .map(|old| Op::SetSysctl {
                    netns,
                    key,
                    old: Some(new),
                    new: old,
                })
                .into_iter()
                .collect(),
            Op::SetMac { dev, old, new, .. } => old
                .map(|old| Op::SetMac {
                    netns,
                    dev,
                    old: Some(new),
                    new: old,
                })
                .into_iter()
                .collect(),
            Op::AddRoute { route, .. } => vec![Op::DelRoute { netns, route }],
            Op::DelRoute { route, .. } => vec![Op::AddRoute { netns, route }],
            Op::ReplaceRoute { old, new, .. } => {
                let mut undo = vec![Op::DelRoute { netns, route: new }];
                undo.extend(old.into_iter().map(|route| Op::AddRoute { netns, route }));
                undo
            }
            Op::AddRule { rule, .. } => vec![Op::DelRule { netns, rule }],
            Op::DelRule { rule, .. } => vec![Op::AddRule { netns, rule }],
            Op::AddNeighbour { neighbour, .. } => vec![Op::DelNeighbour { netns, neighbour }],
            Op::DelNeighbour { neighbour, .. } => vec![Op::AddNeighbour { netns, neighbour }],
            Op::ReplaceNeighbour { old, new, .. } => vec![Op::ReplaceNeighbour {
                netns,
                old: new,
                new: old,
            }],
        }
    }
}

impl NetnsState {
    /// The in-memory model kernel: what the kernel does with one op. Used by the planner
    /// (to look ahead), the property tests and the offline executor.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::SetSysctl { key, new, .. } => {
                self.sysctls.insert(key.clone(), *new);
            }
            Op::SetMac { dev, new, .. } => {
                self.macs.insert(dev.clone(), *new);
            }
            Op::AddRoute { route, .. } => self.insert_route(route.clone()),
            Op::ReplaceRoute { old, new, .. } => {
                for route in old {
                    self.routes.remove(&route.key);
                }
                self.insert_route(new.clone());
            }
            Op::DelRoute { route, .. } => {
                self.routes.remove(&route.key);
            }
            Op::AddRule { rule, .. } => self.insert_rule(rule.clone()),
            Op::DelRule { rule, .. } => {
                self.rules.remove(&rule.key);
            }
            Op::AddNeighbour { neighbour, .. } => self.insert_neighbour(neighbour.clone()),
            Op::ReplaceNeighbour { new, .. } => self.insert_neighbour(new.clone()),
            Op::DelNeighbour { neighbour, .. } => {
                self.neighbours.remove(&neighbour.key);
            }
        }
    }
}

impl ActualState {
    /// Applies ops to the model; ops for a pod netns that is gone change nothing.
    pub fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            if let Some(ns) = self.side_mut(op.side()) {
                ns.apply(op);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints_with_leading_zeros() {
        let mac: MacAddr = "0a:0b:00:00:01:01".parse().unwrap();
        assert_eq!(mac.0, [0x0a, 0x0b, 0, 0, 1, 1]);
        assert_eq!(mac.to_string(), "0a:0b:00:00:01:01");
    }

    #[test]
    fn mac_rejects_short_long_and_signed_parts() {
        for bad in [
            "0a:0b",
            "0a:0b:0c:0d:0e:0f:10",
            "-1:0b:0c:0d:0e:0f",
            "0a:0b:0c:0d:0e:g0",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_record_written_before_inputs_were_kept_still_reads() {
        let old = r#"{"version":1,"container_id":"c1","ifname":"net1","table":100,
            "host_rule_table":500,"overlay_interface":"eth0","pod":{},"host":{}}"#;
        let record: Record = serde_json::from_str(old).unwrap();
        assert_eq!(record, Record::new("c1", "net1", 100, 500, "eth0"));
        let written = serde_json::to_value(&record).unwrap();
        assert!(written.get("inputs").is_none(), "{written}");
    }

    #[test]
    fn add_inputs_keep_the_config_without_prev_result_and_the_prev_result_once() {
        let prev = serde_json::json!({"cniVersion": "1.0.0", "ips": [{"address": "192.0.2.2/24"}]});
        let stdin = serde_json::json!({"cniVersion": "1.0.0", "name": "n", "type": "router",
                                       "prevResult": prev});
        let inputs = AddInputs::new(Some(PathBuf::from("/run/netns/p")), &stdin);
        assert_eq!(
            inputs.config,
            serde_json::json!({"cniVersion": "1.0.0", "name": "n", "type": "router"})
        );
        assert_eq!(inputs.prev_result, prev);
        let record = Record {
            inputs: Some(inputs.clone()),
            ..Record::new("c1", "net1", 100, 500, "eth0")
        };
        let back: Record = serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
        assert_eq!(back.inputs, Some(inputs));
    }

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

    #[test]
    fn ipv6_routes_normalise_metric_and_scope_like_the_kernel() {
        let route = Route::link(
            100,
            "fd00::1:2/64".parse().unwrap(),
            "eth0",
            ROUTER_PROTOCOL,
        );
        assert_eq!(route.key.dst.to_string(), "fd00::/64");
        assert_eq!(route.key.metric, IPV6_DEFAULT_METRIC);
        assert_eq!(route.scope, RouteScope::Universe);
    }

    #[test]
    fn netns_state_serialises_objects_as_lists_and_reads_them_back() {
        let mut ns = NetnsState::default();
        ns.insert_rule(Rule::owned_lookup(
            Family::Ipv4,
            1000,
            None,
            Some("10.240.0.0/12".parse().unwrap()),
            100,
        ));
        ns.sysctls
            .insert(SysctlKey::new("all", SysctlName::RpFilter), 0);
        let json = serde_json::to_value(&ns).unwrap();
        assert!(json["rules"].is_array());
        assert_eq!(json["sysctls"]["net.ipv4.conf.all.rp_filter"], 0);
        let back: NetnsState = serde_json::from_value(json).unwrap();
        assert_eq!(back, ns);
    }

    #[test]
    fn inverse_of_replace_restores_the_replaced_routes() {
        let mut ns = NetnsState::default();
        let old = Route {
            key: RouteKey {
                table: MAIN_TABLE,
                dst: Family::Ipv4.any(),
                tos: 0,
                metric: 0,
                dev: Some("net1".into()),
                gateway: Some("192.168.50.254".parse().unwrap()),
            },
            scope: RouteScope::Universe,
            kind: RouteKind::Unicast,
            protocol: PROTOCOL_BOOT,
            prefsrc: None,
            onlink: false,
        };
        let mut new = old.clone();
        new.key.dev = Some("eth0".into());
        ns.insert_route(old.clone());
        let before = ns.clone();
        let op = Op::ReplaceRoute {
            netns: Side::Pod,
            old: vec![old],
            new,
        };
        ns.apply(&op);
        assert_ne!(ns, before);
        for undo in op.inverse() {
            ns.apply(&undo);
        }
        assert_eq!(ns, before);
    }
}
