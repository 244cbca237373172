//! The scope of one attachment (which owned objects are its own) and what the pod's other
//! attachments want kept.

use super::*;

/// Who an attachment's scope is computed for.
pub(super) struct ScopeOf<'a> {
    pub(super) table: u32,
    pub(super) overlay: &'a str,
    pub(super) host_table: u32,
    pub(super) host_peer: Option<&'a str>,
    /// The chained interface's addresses: the host side of a pod is shared by its
    /// attachments through the host veth peer.
    pub(super) chained_addrs: BTreeSet<IpAddr>,
    /// Another router attachment without a record lives in the pod: the host-address routes
    /// and neighbours through the overlay interface may be its too.
    pub(super) pod_shared: bool,
}

/// The owned objects that belong to one attachment: its pod table and rules, the
/// host-address routes and neighbours through the overlay interface (unless shared), and on
/// the host its routes and neighbours through the host veth peer for the chained
/// interface's addresses.
pub(super) fn attachment_scope(of: &ScopeOf<'_>) -> (Scope, Scope) {
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
pub(super) fn unrecorded_attachments(
    pod: Option<&NetnsState>,
    table: u32,
    peers: &[Record],
) -> bool {
    pod.is_some_and(|p| {
        p.rules.values().any(|r| {
            r.is_owned()
                && r.key.table != table
                && !peers.iter().any(|peer| peer.table == r.key.table)
        })
    })
}

/// What the pod's other attachments want, per netns.
pub(super) fn peers_keep(peers: &[Record]) -> (NetnsState, NetnsState) {
    let mut pod = NetnsState::default();
    let mut host = NetnsState::default();
    for peer in peers {
        merge_into(&mut pod, &peer.pod);
        merge_into(&mut host, &peer.host);
    }
    (pod, host)
}

pub(super) fn merge_into(into: &mut NetnsState, from: &NetnsState) {
    into.routes.extend(from.routes.clone());
    into.rules.extend(from.rules.clone());
    into.neighbours.extend(from.neighbours.clone());
    into.sysctls.extend(from.sysctls.clone());
    into.macs.extend(from.macs.clone());
}
