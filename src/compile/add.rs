//! ADD (and CHECK, which compiles as ADD): the desired state and the record it writes
//! (BEHAVIOUR 2).

use super::*;

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

pub(super) fn compile_add(input: &CompileInput<'_>) -> Result<Compiled> {
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
        node_netns: input
            .actual
            .host_netns
            .or(input.record.and_then(|r| r.node_netns)),
        node_addresses: Some(facts.host_addresses.clone()),
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
        // BEHAVIOUR 2.1: set before the MAC changes (sysctls go first in a plan); restored
        // on DEL.
        let families = families_of(&self.chained_addrs);
        for (key, value) in mac_step_sysctls(self.input.ifname, &families) {
            self.pod_sysctl(key, value);
        }
    }

    /// The interfaces of the pod a per-interface sysctl is set on: all, default, the
    /// overlay interface, the chained interface.
    fn pod_sysctl_ifaces(&self) -> Vec<String> {
        let mut ifaces: Vec<String> = ALL_AND_DEFAULT.map(String::from).into();
        if self.facts.overlay_exists {
            ifaces.push(self.overlay().to_string());
        }
        if self.facts.chained_exists {
            ifaces.push(self.ifname().to_string());
        }
        ifaces
    }

    fn sysctls(&mut self) {
        let rp = i64::from(self.config().rp_filter.value);
        let uses_v6 = families_of(&self.chained_addrs).contains(&Family::Ipv6);
        for iface in self.pod_sysctl_ifaces() {
            for (key, value) in routing_step_sysctls(&iface, rp, uses_v6) {
                self.pod_sysctl(key, value);
            }
        }
        if self.config().rp_filter.set_host {
            let host_ifaces = ALL_AND_DEFAULT
                .into_iter()
                .chain(self.facts.host_peer.as_deref());
            let sysctls: Vec<_> = host_ifaces.map(|i| host_step_sysctl(i, rp)).collect();
            self.host.present.sysctls.extend(sysctls);
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
        // The previous default interface is fixed by the first ADD, "no previous default
        // interface" included: a default another interface (net2) adds to main later does
        // not make it the previous default interface for this attachment.
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

    /// BEHAVIOUR 2.2. The previous default interface's routes are copied into the pod table
    /// whether or not the migration applies, so that the hijack rules always find a route
    /// through the overlay interface (see ARCHITECTURE.md).
    fn migrate(&mut self, family: Family, mut moved: Moved) {
        let table = self.table;
        self.pod
            .present
            .insert_routes(moved.routes.iter().map(|route| copy_into(route, table)));
        let p = moved.interface.clone();
        let applies = migration_applies(self.config().migrate_route, self.ifname(), &p);
        if applies {
            self.rules_for_previous_addresses(family, &p);
            if self.input.record.is_none() {
                moved.removed_from_main = self.defaults_to_remove(family, &moved);
            }
            self.pod
                .ownership
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

    /// The previous default route's hops leave main only while another default remains
    /// there, so the pod never loses its default route.
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

    /// BEHAVIOUR 2.3: `to <cidr> lookup <pod table>` for the hijack CIDRs when the previous
    /// default interface is the overlay interface (or there is no previous default
    /// interface); for a later interface, the previous default interface's own subnets plus
    /// the additional CIDRs.
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
    /// ADD has no "since"), nor when the record cannot say which addresses its ADD saw: a
    /// route that is missing is then only missing, not "added since".
    fn node_address_change(&mut self) {
        let (Some(record), Some(_)) = (self.input.record, self.host_peer_usable()) else {
            return;
        };
        let Some(then) = node_addresses_seen(record) else {
            return;
        };
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
            // The overlay interface itself is there (reconcile refuses an ADD without it):
            // say so, since the missing peer and a missing overlay interface call for
            // different fixes.
            self.warnings.push(format!(
                "{} is in the pod but has no veth peer in the host netns (it is no veth, so \
                 the node has no link into the pod through it): host-side steps skipped",
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
        self.pod.ownership.scope = pod_scope;
        self.host.ownership.scope = host_scope;
        self.pod.ownership.keep = pod_keep;
        self.host.ownership.keep = host_keep;
    }

    fn finish(self, new_mac: Option<MacAddr>) -> Compiled {
        Compiled {
            desired: DesiredState {
                pod: self.pod,
                host: self.host,
            },
            record: self.record,
            owns_desired: true,
            new_mac,
            notes: self.notes,
            warnings: self.warnings,
        }
    }
}

/// The node addresses the ADD that wrote `record` saw: kept in the record, or, in records
/// written before it was kept, those it routed through the overlay interface, which says
/// what it saw only when that ADD had a host veth peer (without one it routed none).
fn node_addresses_seen(record: &Record) -> Option<BTreeSet<IpAddr>> {
    match (&record.node_addresses, &record.host_peer) {
        (Some(seen), _) => Some(seen.clone()),
        (None, Some(_)) => Some(recorded_node_addresses(record)),
        (None, None) => None,
    }
}

/// The node addresses an earlier ADD routed through the overlay interface: its host-address
/// routes in main and its neighbours on the overlay interface (main holds no other route of
/// router's on the overlay interface after an ADD).
pub(super) fn recorded_node_addresses(record: &Record) -> BTreeSet<IpAddr> {
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
