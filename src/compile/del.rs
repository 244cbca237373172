//! DEL (BEHAVIOUR 4): exactly this attachment's owned objects go, what ADD moved or changed
//! comes back, what the pod's other attachments want stays.

use super::*;
use crate::model::RuleKey;

/// BEHAVIOUR 4: remove exactly this attachment's owned objects (scope), restore what ADD
/// moved or changed, keep what the pod's other attachments want.
pub(super) fn compile_del(input: &CompileInput<'_>) -> Result<Compiled> {
    let config = input.config;
    let record = match input.record {
        Some(r) => r.clone(),
        None => record_without_file(input)?,
    };
    let mut notes = Vec::new();
    let (pod_keep, host_keep) = peers_keep(input.peers);
    let host_peer = input
        .actual
        .host_peer(&record.overlay_interface)
        .map(str::to_string)
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
        ownership: Ownership {
            scope: pod_scope,
            keep: pod_keep,
            ..Ownership::default()
        },
        ..DesiredNetns::default()
    };
    match pod_actual {
        Some(pod_actual) => restore_pod(&record, pod_actual, pod_shared, &mut pod, &mut notes),
        None => notes.push("the pod netns is gone: only the host side is cleaned".into()),
    }
    let host = DesiredNetns {
        ownership: Ownership {
            scope: host_scope,
            keep: host_keep,
            release_when_unused: releasable_host_rules(config, &record),
            ..Ownership::default()
        },
        ..DesiredNetns::default()
    };
    Ok(Compiled {
        desired: DesiredState { pod, host },
        record,
        owns_desired: false,
        new_mac: None,
        notes,
        warnings: Vec::new(),
    })
}

/// The shared host rule of each family that DEL may release: the one ADD recorded (the
/// config's `host_rule_priority` may have been edited since, and the rule ADD made is the
/// one on the node), else the config's.
fn releasable_host_rules(config: &Config, record: &Record) -> Vec<RuleKey> {
    Family::all()
        .into_iter()
        .map(|family| {
            let wanted = host_rule(config, family, record.host_rule_table).key;
            let same_but_priority = |key: &&RuleKey| {
                RuleKey {
                    priority: wanted.priority,
                    ..(*key).clone()
                } == wanted
            };
            record
                .host
                .rules
                .keys()
                .find(same_but_priority)
                .cloned()
                .unwrap_or(wanted)
        })
        .collect()
}

/// Without a record (a failed ADD, or a runtime that lost it), DEL works from config and
/// what the kernel shows: the owned copies in the pod table tell which routes moved.
pub(super) fn record_without_file(input: &CompileInput<'_>) -> Result<Record> {
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

/// The chained interface's addresses at DEL: prevResult's, the record's host routes', and
/// what the chained interface still holds.
pub(super) fn chained_addresses_for_del(
    input: &CompileInput<'_>,
    record: &Record,
) -> BTreeSet<IpAddr> {
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
/// sysctls it shares (all, default, the overlay interface) stay as they are: only the
/// chained interface's own are restored.
pub(super) fn restore_pod(
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
        let iface_exists = ALL_AND_DEFAULT.contains(&key.iface.as_str())
            || pod_actual.links.contains_key(&key.iface);
        // A value another attachment of the pod wants wins over the one this ADD replaced
        // (leaving this ADD's value would make that attachment drift); without its record,
        // a shared sysctl is left as it is.
        let shared = key.iface != record.ifname;
        let value = match pod.ownership.keep.sysctls.get(key) {
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
                // It replaces the chained interface's default hops in its slot, and only
                // those: a default of another interface (net1's, when net2 goes) stays.
                let slot = route.key.slot();
                for hop in pod_actual.routes_in_slot(&slot) {
                    let of_c = hop.key.dev.as_deref() == Some(record.ifname.as_str());
                    if of_c && !pod.ownership.must_be_absent(&hop.key) {
                        pod.ownership.absent_routes.push(hop.key.clone());
                    }
                }
                pod.ownership.takeover.insert(route.key.clone());
                pod.present.insert_route(route);
            }
        }
    }
}
