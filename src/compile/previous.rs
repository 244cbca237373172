//! The previous default interface and its routes (BEHAVIOUR 2.2): whether the migration
//! applies, which routes move, and the previous default interface recovered from the owned
//! copies in the pod table when there is no record.

use super::*;

pub(super) fn migration_applies(mode: MigrateRoute, chained: &str, previous: &str) -> bool {
    match mode {
        MigrateRoute::Never => false,
        MigrateRoute::Always => true,
        MigrateRoute::Auto => name_order(chained) > name_order(previous),
    }
}

/// Routes of the previous default interface that move: all of its main routes but the IPv6
/// link-local kernel route.
pub(super) fn is_moved_kind(route: &Route) -> bool {
    let v6_link_local = matches!(route.key.dst, IpNet::V6(n) if n.prefix_len() == 64
        && (n.addr().segments()[0] & 0xffc0) == 0xfe80);
    !(v6_link_local && route.protocol == PROTOCOL_KERNEL)
}

/// The previous default interface for one family: the interface other than the chained
/// interface holding main's default (lowest metric, then name order); after a move main no
/// longer shows it, so fall back to the owned default copies in the pod table (protocols of
/// the originals are then unknown: restored as `boot`).
pub(super) fn find_previous(
    pod: &NetnsState,
    chained: &str,
    table: u32,
    family: Family,
) -> Option<Moved> {
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

pub(super) fn recover_previous_from_copies(
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
