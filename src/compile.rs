//! compile: Config x prevResult x facts (derived from ActualState) x record x Mode ->
//! DesiredState, plus the attachment record an ADD writes. BEHAVIOUR sections 2 and 4.
//! Pure: no I/O, no clock, no env; everything it knows comes in as arguments.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{Config, MigrateRoute, PrevView};
use crate::error::{Error, Result};
use crate::model::{
    host_net, ActualState, DesiredNetns, DesiredState, Family, MacAddr, Mode, Moved, Neighbour,
    NeighbourKey, NeighbourSelector, NetnsState, NodeAddressChange, Record, Route, RouteSelector,
    Rule, Scope, SysctlKey, SysctlName, MAIN_TABLE, PROTOCOL_BOOT, PROTOCOL_KERNEL,
    ROUTER_PROTOCOL,
};

/// Host links whose addresses are not the node's own (container and overlay plumbing).
const FOREIGN_LINK_PREFIXES: [&str; 13] = [
    "docker",
    "cbr",
    "dummy",
    "virbr",
    "lxcbr",
    "veth",
    "cali",
    "flannel",
    "kube-ipvs",
    "cni",
    "vx-submariner",
    "cilium",
    "lxc",
];

pub struct CompileInput<'a> {
    pub config: &'a Config,
    pub container_id: &'a str,
    /// C, the chained interface (`CNI_IFNAME`).
    pub ifname: &'a str,
    pub prev: Option<&'a PrevView>,
    pub actual: &'a ActualState,
    /// This attachment's record from an earlier ADD.
    pub record: Option<&'a Record>,
    /// Records of the pod's other attachments: what they want is never removed for this one.
    pub peers: &'a [Record],
    pub mode: Mode,
}

#[derive(Debug, Clone)]
pub struct Compiled {
    pub desired: DesiredState,
    /// What ADD writes before applying (for DEL, the record it compiled from).
    pub record: Record,
    /// C's new MAC, for the result.
    pub new_mac: Option<MacAddr>,
    /// Decisions worth a log line.
    pub notes: Vec<String>,
    /// A degraded setup that still works, worth a warning.
    pub warnings: Vec<String>,
}

/// What compile needs to know about the world, derived from ActualState.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub overlay_exists: bool,
    pub overlay_mac: Option<MacAddr>,
    /// H: O's veth peer in the host netns, with its MAC.
    pub host_peer: Option<String>,
    pub host_peer_mac: Option<MacAddr>,
    pub chained_exists: bool,
    pub chained_mac: Option<MacAddr>,
    /// The node's addresses that the pod must reach through O.
    pub host_addresses: BTreeSet<IpAddr>,
}

impl Facts {
    pub fn derive(
        config: &Config,
        ifname: &str,
        chained_addrs: &[IpNet],
        actual: &ActualState,
    ) -> Facts {
        let overlay = config.overlay_interface.as_str();
        let pod = actual.pod.as_ref();
        let host_peer = pod.and_then(|pod| find_host_peer(pod, &actual.host, overlay));
        Facts {
            overlay_exists: pod.is_some_and(|p| p.links.contains_key(overlay)),
            overlay_mac: pod.and_then(|p| p.macs.get(overlay).copied()),
            host_peer_mac: host_peer
                .as_ref()
                .and_then(|h| actual.host.macs.get(h).copied()),
            host_peer,
            chained_exists: pod.is_some_and(|p| p.links.contains_key(ifname)),
            chained_mac: pod.and_then(|p| p.macs.get(ifname).copied()),
            host_addresses: host_addresses(actual, chained_addrs),
        }
    }
}

/// H is the host link O's IFLA_LINK points at, and that points back at O.
fn find_host_peer(pod: &NetnsState, host: &NetnsState, overlay: &str) -> Option<String> {
    let o = pod.links.get(overlay)?;
    let peer = o.peer.as_ref()?;
    let (name, h) = host.link_by_index(peer.ifindex)?;
    let points_back = h.peer.as_ref().is_some_and(|p| p.ifindex == o.index);
    points_back.then(|| name.clone())
}

pub(crate) fn is_link_local(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn is_node_address(addr: &IpAddr) -> bool {
    !(addr.is_loopback() || addr.is_multicast() || addr.is_unspecified() || is_link_local(addr))
}

fn is_node_link(name: &str) -> bool {
    name != "lo" && !FOREIGN_LINK_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The node's own addresses (BEHAVIOUR 2.3) of the families C uses. A preferred source
/// that sits on a plumbing link is not one: once router's host route to C exists, the
/// kernel picks the host veth's own address toward C.
fn host_addresses(actual: &ActualState, chained_addrs: &[IpNet]) -> BTreeSet<IpAddr> {
    let families = families_of(chained_addrs);
    let on_plumbing: BTreeSet<IpAddr> = actual
        .host
        .links
        .iter()
        .filter(|(name, _)| !is_node_link(name))
        .flat_map(|(_, link)| link.addresses.iter().map(|a| a.addr()))
        .collect();
    let own = actual
        .host
        .links
        .iter()
        .filter(|(name, _)| is_node_link(name))
        .flat_map(|(_, link)| link.addresses.iter().map(|a| a.addr()));
    let preferred = chained_addrs
        .iter()
        .filter_map(|c| actual.host_preferred_src.get(&c.addr()).copied())
        .filter(|a| !on_plumbing.contains(a));
    own.chain(preferred)
        .filter(|a| is_node_address(a) && families.contains(&Family::of_addr(a)))
        .collect()
}

/// The addresses of one family (collected: callers mutate the builder while iterating).
fn of_family(addrs: impl Iterator<Item = IpAddr>, family: Family) -> Vec<IpAddr> {
    addrs.filter(|a| Family::of_addr(a) == family).collect()
}

fn families_of(addrs: &[IpNet]) -> BTreeSet<Family> {
    addrs.iter().map(Family::of_net).collect()
}

/// C's new MAC: the prefix, then the first IPv4 address's 4 bytes, else the last 4 bytes of
/// the first IPv6 address. Leading zero bytes are kept.
pub fn derive_mac(prefix: [u8; 2], chained_addrs: &[IpNet]) -> Option<MacAddr> {
    let tail: [u8; 4] = match mac_source(chained_addrs)? {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    Some(MacAddr([
        prefix[0], prefix[1], tail[0], tail[1], tail[2], tail[3],
    ]))
}

/// The address C's MAC is derived from: the first IPv4 address, else the first IPv6 one.
pub fn mac_source(chained_addrs: &[IpNet]) -> Option<IpAddr> {
    let first = |family| chained_addrs.iter().find(|a| Family::of_net(a) == family);
    first(Family::Ipv4)
        .or_else(|| first(Family::Ipv6))
        .map(IpNet::addr)
}

/// Interface name order of BEHAVIOUR 2.2: the name without its trailing number, then the
/// number, so eth0 < net1 < net2 < net10.
pub fn name_order(name: &str) -> (&str, Option<u128>) {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    (stem, name[stem.len()..].parse().ok())
}

fn migration_applies(mode: MigrateRoute, chained: &str, previous: &str) -> bool {
    match mode {
        MigrateRoute::Never => false,
        MigrateRoute::Always => true,
        MigrateRoute::Auto => name_order(chained) > name_order(previous),
    }
}

/// Routes of P that move: all of its main routes but the IPv6 link-local kernel route.
fn is_moved_kind(route: &Route) -> bool {
    let v6_link_local = matches!(route.key.dst, IpNet::V6(n) if n.prefix_len() == 64
        && (n.addr().segments()[0] & 0xffc0) == 0xfe80);
    !(v6_link_local && route.protocol == PROTOCOL_KERNEL)
}

/// P for one family: the non-C interface holding main's default (lowest metric, then name
/// order); after a move main no longer shows it, so fall back to the owned default copies
/// in T (protocols of the originals are then unknown: restored as `boot`).
fn find_previous(pod: &NetnsState, chained: &str, table: u32, family: Family) -> Option<Moved> {
    let holder = pod
        .main_defaults(family)
        .filter_map(|r| {
            r.key
                .dev
                .as_deref()
                .map(|d| (r.key.metric, name_order(d), d))
        })
        .filter(|(_, _, d)| *d != chained)
        .min();
    if let Some((_, _, p)) = holder {
        let routes = pod
            .routes
            .values()
            .filter(|r| {
                r.key.table == MAIN_TABLE
                    && r.key.family() == family
                    && r.key.dev.as_deref() == Some(p)
                    && is_moved_kind(r)
            })
            .cloned()
            .collect();
        return Some(Moved {
            interface: p.to_string(),
            routes,
            removed_from_main: Vec::new(),
        });
    }
    recover_previous_from_copies(pod, chained, table, family)
}

fn recover_previous_from_copies(
    pod: &NetnsState,
    chained: &str,
    table: u32,
    family: Family,
) -> Option<Moved> {
    let in_t = |r: &&Route| r.key.table == table && r.is_owned() && r.key.family() == family;
    let p = pod
        .routes
        .values()
        .filter(in_t)
        .filter(|r| r.key.is_default())
        .filter_map(|r| r.key.dev.as_deref())
        .filter(|d| *d != chained)
        .min_by_key(|d| name_order(d))?;
    let routes: Vec<Route> = pod
        .routes
        .values()
        .filter(in_t)
        .filter(|r| r.key.dev.as_deref() == Some(p))
        .map(|r| {
            let mut original = r.clone();
            original.key.table = MAIN_TABLE;
            original.protocol = PROTOCOL_BOOT;
            original
        })
        .collect();
    let removed = routes
        .iter()
        .filter(|r| r.key.is_default())
        .cloned()
        .collect();
    Some(Moved {
        interface: p.to_string(),
        routes,
        removed_from_main: removed,
    })
}

fn owned_route(table: u32, dst: IpNet, dev: &str) -> Route {
    Route::link(table, dst, dev, ROUTER_PROTOCOL)
}

fn copy_into(route: &Route, table: u32) -> Route {
    let mut copy = route.clone();
    copy.key.table = table;
    copy.protocol = ROUTER_PROTOCOL;
    copy.normalised()
}

fn owned_neighbour(dev: &str, addr: IpAddr, lladdr: Option<MacAddr>) -> Neighbour {
    Neighbour {
        key: NeighbourKey {
            dev: dev.to_string(),
            addr,
        },
        lladdr,
        protocol: ROUTER_PROTOCOL,
    }
}

fn host_rule(config: &Config, family: Family, table: u32) -> Rule {
    Rule::owned_lookup(family, config.host_rule_priority, None, None, table)
}

/// Who an attachment's scope is computed for.
struct ScopeOf<'a> {
    table: u32,
    overlay: &'a str,
    host_table: u32,
    host_peer: Option<&'a str>,
    /// C's addresses: the host side of a pod is shared by its attachments through H.
    chained_addrs: BTreeSet<IpAddr>,
    /// Another router attachment without a record lives in the pod: the host-address routes
    /// and neighbours through O may be its too.
    pod_shared: bool,
}

/// The owned objects that belong to one attachment: its table T and rules, the
/// host-address routes and neighbours through O (unless shared), and on the host its
/// routes and neighbours through H for C's addresses.
fn attachment_scope(of: &ScopeOf<'_>) -> (Scope, Scope) {
    let mut pod = Scope {
        routes: vec![RouteSelector {
            table: of.table,
            dev: None,
            dst_in: BTreeSet::new(),
        }],
        rule_tables: BTreeSet::from([of.table]),
        neighbours: Vec::new(),
    };
    if !of.pod_shared {
        pod.routes.push(RouteSelector {
            table: MAIN_TABLE,
            dev: Some(of.overlay.to_string()),
            dst_in: BTreeSet::new(),
        });
        pod.neighbours.push(NeighbourSelector {
            dev: of.overlay.to_string(),
            addr_in: BTreeSet::new(),
        });
    }
    let host = match of.host_peer {
        Some(h) if !of.chained_addrs.is_empty() => Scope {
            routes: vec![RouteSelector {
                table: of.host_table,
                dev: Some(h.to_string()),
                dst_in: of.chained_addrs.iter().map(|a| host_net(*a)).collect(),
            }],
            rule_tables: BTreeSet::new(),
            neighbours: vec![NeighbourSelector {
                dev: h.to_string(),
                addr_in: of.chained_addrs.clone(),
            }],
        },
        _ => Scope::default(),
    };
    (pod, host)
}

/// Whether another router attachment lives in the pod without a record to say what it
/// wants: the kernel shows owned rules of a table no peer record names. Then the objects
/// attachments share in the pod are left alone; with records, `keep` protects them.
fn unrecorded_attachments(pod: Option<&NetnsState>, table: u32, peers: &[Record]) -> bool {
    pod.is_some_and(|p| {
        p.rules.values().any(|r| {
            r.is_owned()
                && r.key.table != table
                && !peers.iter().any(|peer| peer.table == r.key.table)
        })
    })
}

/// What the pod's other attachments want, per netns.
fn peers_keep(peers: &[Record]) -> (NetnsState, NetnsState) {
    let mut pod = NetnsState::default();
    let mut host = NetnsState::default();
    for peer in peers {
        merge_into(&mut pod, &peer.pod);
        merge_into(&mut host, &peer.host);
    }
    (pod, host)
}

fn merge_into(into: &mut NetnsState, from: &NetnsState) {
    into.routes.extend(from.routes.clone());
    into.rules.extend(from.rules.clone());
    into.neighbours.extend(from.neighbours.clone());
    into.sysctls.extend(from.sysctls.clone());
    into.macs.extend(from.macs.clone());
}

pub fn compile(input: &CompileInput<'_>) -> Result<Compiled> {
    if input.config.skip_call {
        return Ok(skipped(input));
    }
    match input.mode {
        Mode::Add => compile_add(input),
        Mode::Del => compile_del(input),
    }
}

/// skip_call: want nothing, own nothing, touch nothing.
fn skipped(input: &CompileInput<'_>) -> Compiled {
    let config = input.config;
    Compiled {
        desired: DesiredState::default(),
        record: Record::new(
            input.container_id,
            input.ifname,
            config.table_for(input.ifname).unwrap_or_default(),
            config.host_rule_table,
            &config.overlay_interface,
        ),
        new_mac: None,
        notes: vec!["skip_call: nothing to do".into()],
        warnings: Vec::new(),
    }
}

/// Accumulates the desired state of one ADD.
struct AddBuilder<'a> {
    input: &'a CompileInput<'a>,
    pod_actual: &'a NetnsState,
    facts: Facts,
    table: u32,
    chained_addrs: Vec<IpNet>,
    pod: DesiredNetns,
    host: DesiredNetns,
    record: Record,
    notes: Vec<String>,
    warnings: Vec<String>,
}

fn compile_add(input: &CompileInput<'_>) -> Result<Compiled> {
    let config = input.config;
    let prev = input
        .prev
        .ok_or_else(|| Error::InvalidPrevResult("prevResult is required".into()))?;
    let pod_actual = input
        .actual
        .pod
        .as_ref()
        .ok_or_else(|| Error::UnknownContainer("the pod network namespace is gone".into()))?;
    let table = input
        .record
        .map_or_else(|| config.table_for(input.ifname), |r| Ok(r.table))?;
    let chained_addrs = prev.require_addresses_of(input.ifname)?;
    let facts = Facts::derive(config, input.ifname, &chained_addrs, input.actual);
    let new_mac = match config.mac_prefix {
        None => None,
        Some(prefix) => Some(derive_mac(prefix, &chained_addrs).ok_or_else(|| {
            Error::InvalidPrevResult(format!(
                "mac_prefix is set but {} has no address in prevResult",
                input.ifname
            ))
        })?),
    };
    let record = Record {
        host_peer: facts.host_peer.clone(),
        network: config.name.clone(),
        ..Record::new(
            input.container_id,
            input.ifname,
            table,
            config.host_rule_table,
            &config.overlay_interface,
        )
    };
    let mut b = AddBuilder {
        input,
        pod_actual,
        facts,
        table,
        chained_addrs,
        pod: DesiredNetns::default(),
        host: DesiredNetns::default(),
        record,
        notes: Vec::new(),
        warnings: Vec::new(),
    };
    b.mac(new_mac);
    if !config.only_op_mac {
        b.sysctls();
        for family in families_of(&b.chained_addrs) {
            b.family(family);
        }
        b.skip_note_for_unused_families();
        b.scope();
        b.node_address_change();
    }
    Ok(b.finish(new_mac))
}

impl AddBuilder<'_> {
    fn config(&self) -> &Config {
        self.input.config
    }

    fn ifname(&self) -> &str {
        self.input.ifname
    }

    fn overlay(&self) -> &str {
        &self.input.config.overlay_interface
    }

    fn mac(&mut self, new_mac: Option<MacAddr>) {
        let Some(mac) = new_mac else { return };
        if !self.facts.chained_exists {
            self.notes
                .push(format!("{} is not in the pod: MAC not set", self.ifname()));
            return;
        }
        self.pod.present.macs.insert(self.ifname().to_string(), mac);
        self.record.original_mac = self
            .input
            .record
            .and_then(|r| r.original_mac)
            .or(self.facts.chained_mac);
        // BEHAVIOUR 2.1: the kernel announces C's addresses from the new MAC itself when
        // these are set before the MAC changes (sysctls go first in a plan); restored on DEL.
        let families = families_of(&self.chained_addrs);
        let ifname = self.ifname().to_string();
        for (family, name) in [
            (Family::Ipv4, SysctlName::ArpNotify),
            (Family::Ipv6, SysctlName::NdiscNotify),
        ] {
            if families.contains(&family) {
                self.pod_sysctl(SysctlKey::new(&ifname, name), 1);
            }
        }
    }

    /// The interfaces of the pod a per-interface sysctl is set on: all, default, O, C.
    fn pod_sysctl_ifaces(&self) -> Vec<String> {
        let mut ifaces = vec!["all".to_string(), "default".to_string()];
        if self.facts.overlay_exists {
            ifaces.push(self.overlay().to_string());
        }
        if self.facts.chained_exists {
            ifaces.push(self.ifname().to_string());
        }
        ifaces
    }

    fn sysctls(&mut self) {
        let rp = self.config().rp_filter;
        let ifaces = self.pod_sysctl_ifaces();
        let uses_v6 = families_of(&self.chained_addrs).contains(&Family::Ipv6);
        for iface in &ifaces {
            self.pod_sysctl(
                SysctlKey::new(iface, SysctlName::RpFilter),
                i64::from(rp.value),
            );
            if uses_v6 {
                self.pod_sysctl(SysctlKey::new(iface, SysctlName::DisableIpv6), 0);
            }
        }
        if rp.set_host {
            let host_ifaces = ["all", "default"]
                .into_iter()
                .map(str::to_string)
                .chain(self.facts.host_peer.clone());
            for iface in host_ifaces {
                self.host.present.sysctls.insert(
                    SysctlKey::new(&iface, SysctlName::RpFilter),
                    i64::from(rp.value),
                );
            }
        }
    }

    /// A pod sysctl, remembering the value it replaces (the first ADD's, on a repeat).
    fn pod_sysctl(&mut self, key: SysctlKey, value: i64) {
        let original = self
            .input
            .record
            .and_then(|r| r.original_sysctls.get(&key).copied())
            .or_else(|| self.pod_actual.sysctls.get(&key).copied());
        if let Some(original) = original {
            self.record.original_sysctls.insert(key.clone(), original);
        }
        self.pod.present.sysctls.insert(key, value);
    }

    fn family(&mut self, family: Family) {
        // P is fixed by the first ADD, "no P" included: a default another interface (net2)
        // adds to main later does not make it P for this attachment.
        let moved = match self.input.record {
            Some(r) => r.moved.get(&family).cloned(),
            None => find_previous(self.pod_actual, self.ifname(), self.table, family),
        };
        let previous = moved.as_ref().map(|m| m.interface.clone());
        if let Some(moved) = moved {
            self.migrate(family, moved);
        }
        self.hijack_rules(family, previous.as_deref());
        self.host_address_routes(family);
        self.host_side(family);
    }

    /// BEHAVIOUR 2.2. P's routes are copied into T whether or not the migration applies,
    /// so that the hijack rules always find a route through O (see ARCHITECTURE.md).
    fn migrate(&mut self, family: Family, mut moved: Moved) {
        let table = self.table;
        for route in &moved.routes {
            self.pod.present.insert_route(copy_into(route, table));
        }
        let p = moved.interface.clone();
        let applies = migration_applies(self.config().migrate_route, self.ifname(), &p);
        if applies {
            self.rules_for_previous_addresses(family, &p);
            if self.input.record.is_none() {
                moved.removed_from_main = self.defaults_to_remove(family, &moved);
            }
            self.pod
                .absent_routes
                .extend(moved.removed_from_main.iter().map(|r| r.key.clone()));
        } else {
            moved.removed_from_main.clear();
            self.notes.push(format!(
                "{family}: default route of {p} stays in main (migrate_route {:?}, {} vs {p})",
                self.config().migrate_route,
                self.ifname()
            ));
        }
        self.record.moved.insert(family, moved);
    }

    /// P's default hops leave main only while another default remains there, so the pod
    /// never loses its default route.
    fn defaults_to_remove(&mut self, family: Family, moved: &Moved) -> Vec<Route> {
        let p = moved.interface.as_str();
        let other_default = self
            .pod_actual
            .main_defaults(family)
            .any(|r| r.key.dev.as_deref() != Some(p));
        if !other_default {
            self.notes.push(format!(
                "{family}: main has no default besides {p}'s: it is copied into table {} but not removed",
                self.table
            ));
            return Vec::new();
        }
        moved
            .routes
            .iter()
            .filter(|r| r.key.is_default())
            .cloned()
            .collect()
    }

    fn previous_addresses(&self, family: Family, p: &str) -> Vec<IpNet> {
        self.pod_actual
            .links
            .get(p)
            .map(|l| {
                l.addresses
                    .iter()
                    .filter(|a| Family::of_net(a) == family && !is_link_local(&a.addr()))
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn rules_for_previous_addresses(&mut self, family: Family, p: &str) {
        let priority = self.config().rule_priority;
        for addr in self.previous_addresses(family, p) {
            let from = host_net(addr.addr());
            self.pod.present.insert_rule(Rule::owned_lookup(
                family,
                priority,
                Some(from),
                None,
                self.table,
            ));
        }
    }

    /// BEHAVIOUR 2.3: `to <cidr> lookup T` for the hijack CIDRs when P is O (or there is no
    /// P); for a later interface, P's own subnets plus the additional CIDRs.
    fn hijack_rules(&mut self, family: Family, previous: Option<&str>) {
        let config = self.config();
        let cidrs: Vec<IpNet> = match previous {
            Some(p) if p != self.overlay() => self
                .previous_addresses(family, p)
                .iter()
                .map(IpNet::trunc)
                .chain(config.additional_hijack_subnet.iter().copied())
                .collect(),
            _ => config.hijack_subnets().copied().collect(),
        };
        let priority = config.rule_priority;
        for cidr in cidrs.into_iter().filter(|c| Family::of_net(c) == family) {
            self.pod.present.insert_rule(Rule::owned_lookup(
                family,
                priority,
                None,
                Some(cidr),
                self.table,
            ));
        }
    }

    fn host_peer_usable(&self) -> Option<String> {
        if self.config().sriov || !self.facts.overlay_exists {
            return None;
        }
        self.facts.host_peer.clone()
    }

    fn host_address_routes(&mut self, family: Family) {
        if self.host_peer_usable().is_none() {
            return;
        }
        let overlay = self.overlay().to_string();
        let lladdr = self.facts.host_peer_mac;
        for addr in of_family(self.facts.host_addresses.iter().copied(), family) {
            for table in [MAIN_TABLE, self.table] {
                self.pod
                    .present
                    .insert_route(owned_route(table, host_net(addr), &overlay));
            }
            if lladdr.is_some() {
                self.pod
                    .present
                    .insert_neighbour(owned_neighbour(&overlay, addr, lladdr));
            }
        }
    }

    /// The node addresses gained and lost since the record was written: what a drift of
    /// the host-address routes and neighbours is due to. Nothing without a record (a first
    /// ADD has no "since").
    fn node_address_change(&mut self) {
        let (Some(record), Some(_)) = (self.input.record, self.host_peer_usable()) else {
            return;
        };
        let then = recorded_node_addresses(record);
        let now = &self.facts.host_addresses;
        self.pod.node_addresses = NodeAddressChange {
            via: self.overlay().to_string(),
            added: now.difference(&then).copied().collect(),
            removed: then.difference(now).copied().collect(),
        };
    }

    fn host_side(&mut self, family: Family) {
        let Some(h) = self.host_peer_usable() else {
            return;
        };
        let config = self.config();
        let host_table = config.host_rule_table;
        let rule = host_rule(config, family, host_table);
        self.host.present.insert_rule(rule);
        let overlay_mac = self.facts.overlay_mac;
        for addr in of_family(self.chained_addrs.iter().map(IpNet::addr), family) {
            self.host
                .present
                .insert_route(owned_route(host_table, host_net(addr), &h));
            if overlay_mac.is_some() {
                self.host
                    .present
                    .insert_neighbour(owned_neighbour(&h, addr, overlay_mac));
            }
        }
    }

    fn skip_note_for_unused_families(&mut self) {
        let families = families_of(&self.chained_addrs);
        let unused: Vec<String> = self
            .config()
            .hijack_subnets()
            .filter(|c| !families.contains(&Family::of_net(c)))
            .map(ToString::to_string)
            .collect();
        if !unused.is_empty() {
            self.notes.push(format!(
                "{} has no address of their family: skipped {}",
                self.ifname(),
                unused.join(", ")
            ));
        }
        if self.facts.host_peer.is_none() && !self.config().sriov {
            // O itself is there (reconcile refuses an ADD without it): say so, since the
            // missing peer and a missing O call for different fixes.
            self.warnings.push(format!(
                "{} is in the pod but has no veth peer in the host netns (not a veth, or its \
                 peer is in another netns): host-side steps skipped",
                self.overlay()
            ));
        }
    }

    fn scope(&mut self) {
        let config = self.config();
        let (pod_scope, host_scope) = attachment_scope(&ScopeOf {
            table: self.table,
            overlay: &config.overlay_interface,
            host_table: config.host_rule_table,
            host_peer: self.facts.host_peer.as_deref(),
            chained_addrs: self.chained_addrs.iter().map(IpNet::addr).collect(),
            pod_shared: unrecorded_attachments(Some(self.pod_actual), self.table, self.input.peers),
        });
        let (pod_keep, host_keep) = peers_keep(self.input.peers);
        self.pod.scope = pod_scope;
        self.host.scope = host_scope;
        self.pod.keep = pod_keep;
        self.host.keep = host_keep;
    }

    fn finish(mut self, new_mac: Option<MacAddr>) -> Compiled {
        self.record.pod = self.pod.present.clone();
        self.record.host = self.host.present.clone();
        Compiled {
            desired: DesiredState {
                pod: self.pod,
                host: self.host,
            },
            record: self.record,
            new_mac,
            notes: self.notes,
            warnings: self.warnings,
        }
    }
}

/// The node addresses an earlier ADD routed through O: its host-address routes in main and
/// its neighbours on O (main holds no other route of router's on O after an ADD).
fn recorded_node_addresses(record: &Record) -> BTreeSet<IpAddr> {
    let overlay = Some(record.overlay_interface.as_str());
    let routes = record.pod.routes.values().filter(|r| {
        r.key.table == MAIN_TABLE
            && r.key.dev.as_deref() == overlay
            && r.key.dst == host_net(r.key.dst.addr())
    });
    let neighbours = record
        .pod
        .neighbours
        .keys()
        .filter(|k| k.dev == record.overlay_interface);
    routes
        .map(|r| r.key.dst.addr())
        .chain(neighbours.map(|k| k.addr))
        .collect()
}

/// BEHAVIOUR 4: remove exactly this attachment's owned objects (scope), restore what ADD
/// moved or changed, keep what the pod's other attachments want.
fn compile_del(input: &CompileInput<'_>) -> Result<Compiled> {
    let config = input.config;
    let record = match input.record {
        Some(r) => r.clone(),
        None => record_without_file(input)?,
    };
    let mut notes = Vec::new();
    let (pod_keep, host_keep) = peers_keep(input.peers);
    let host_peer = input
        .actual
        .pod
        .as_ref()
        .and_then(|pod| find_host_peer(pod, &input.actual.host, &record.overlay_interface))
        .or_else(|| record.host_peer.clone());
    let pod_actual = input.actual.pod.as_ref();
    let pod_shared = unrecorded_attachments(pod_actual, record.table, input.peers);
    let (pod_scope, host_scope) = attachment_scope(&ScopeOf {
        table: record.table,
        overlay: &record.overlay_interface,
        host_table: record.host_rule_table,
        host_peer: host_peer.as_deref(),
        chained_addrs: chained_addresses_for_del(input, &record),
        pod_shared,
    });
    let mut pod = DesiredNetns {
        scope: pod_scope,
        keep: pod_keep,
        ..DesiredNetns::default()
    };
    match pod_actual {
        Some(pod_actual) => restore_pod(&record, pod_actual, pod_shared, &mut pod, &mut notes),
        None => notes.push("the pod netns is gone: only the host side is cleaned".into()),
    }
    let host = DesiredNetns {
        scope: host_scope,
        keep: host_keep,
        release_when_unused: Family::all()
            .into_iter()
            .map(|f| host_rule(config, f, record.host_rule_table).key)
            .collect(),
        ..DesiredNetns::default()
    };
    Ok(Compiled {
        desired: DesiredState { pod, host },
        record,
        new_mac: None,
        notes,
        warnings: Vec::new(),
    })
}

/// Without a record (a failed ADD, or a runtime that lost it), DEL works from config and
/// what the kernel shows: the owned copies in T tell which routes moved.
fn record_without_file(input: &CompileInput<'_>) -> Result<Record> {
    let config = input.config;
    let table = config.table_for(input.ifname)?;
    let moved = input
        .actual
        .pod
        .as_ref()
        .map(|pod| {
            Family::all()
                .into_iter()
                .filter_map(|f| {
                    recover_previous_from_copies(pod, input.ifname, table, f).map(|m| (f, m))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Record {
        moved,
        ..Record::new(
            input.container_id,
            input.ifname,
            table,
            config.host_rule_table,
            &config.overlay_interface,
        )
    })
}

/// C's addresses at DEL: prevResult's, the record's host routes', and what C still holds.
fn chained_addresses_for_del(input: &CompileInput<'_>, record: &Record) -> BTreeSet<IpAddr> {
    let from_prev = input
        .prev
        .map(|p| p.addresses_of(input.ifname))
        .unwrap_or_default();
    let from_record = record.host.routes.keys().map(|k| k.dst.addr());
    let from_pod = input
        .actual
        .pod
        .as_ref()
        .and_then(|p| p.links.get(input.ifname))
        .map(|l| l.addresses.clone())
        .unwrap_or_default();
    from_prev
        .iter()
        .chain(&from_pod)
        .map(IpNet::addr)
        .chain(from_record)
        .filter(|a| !is_link_local(a))
        .collect()
}

/// Puts back what ADD replaced in the pod. With another attachment still in the pod, the
/// sysctls it shares (all, default, O) stay as they are: only C's own are restored.
fn restore_pod(
    record: &Record,
    pod_actual: &NetnsState,
    pod_shared: bool,
    pod: &mut DesiredNetns,
    notes: &mut Vec<String>,
) {
    if let Some(mac) = record.original_mac {
        if pod_actual.links.contains_key(&record.ifname) {
            pod.present.macs.insert(record.ifname.clone(), mac);
        }
    }
    for (key, value) in &record.original_sysctls {
        let iface_exists = key.iface == "all"
            || key.iface == "default"
            || pod_actual.links.contains_key(&key.iface);
        // A value another attachment of the pod wants wins over the one this ADD replaced
        // (leaving this ADD's value would make that attachment drift); without its record,
        // a shared sysctl is left as it is.
        let shared = key.iface != record.ifname;
        let value = match pod.keep.sysctls.get(key) {
            Some(wanted) => Some(wanted),
            None if pod_shared && shared => None,
            None => Some(value),
        };
        if let (true, Some(value)) = (iface_exists, value) {
            pod.present.sysctls.insert(key.clone(), *value);
        }
    }
    for moved in record.moved.values() {
        if !pod_actual.links.contains_key(&moved.interface) {
            notes.push(format!(
                "{} is gone: its default route is not restored",
                moved.interface
            ));
            continue;
        }
        for route in &moved.removed_from_main {
            let route = route.clone().normalised();
            if !pod_actual.routes.contains_key(&route.key) {
                // It replaces C's default hops in its slot, and only those: a default of
                // another interface (net1's, when net2 goes) stays.
                let slot = route.key.slot();
                for hop in pod_actual.routes_in_slot(&slot) {
                    let of_c = hop.key.dev.as_deref() == Some(record.ifname.as_str());
                    if of_c && !pod.absent_routes.contains(&hop.key) {
                        pod.absent_routes.push(hop.key.clone());
                    }
                }
                pod.takeover.insert(route.key.clone());
                pod.present.insert_route(route);
            }
        }
    }
}

#[cfg(test)]
mod tests;
