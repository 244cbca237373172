//! netlink::read tests: which dumps a read needs.

use super::*;
use std::collections::BTreeSet;

fn only(tables: &[u32]) -> Tables {
    Tables::Only(tables.iter().copied().collect::<BTreeSet<_>>())
}

#[test]
fn several_tables_without_a_device_are_one_dump_of_every_table_kept_to_them() {
    let dumps = route_dumps(&only(&[254, 100]), &RouteFilter::default());
    assert_eq!(dumps, [(None, Some(vec![100, 254]))]);
}

#[test]
fn through_a_device_or_for_one_table_each_table_is_its_own_dump() {
    let through = RouteFilter {
        oif: Some(7),
        protocol: None,
    };
    let dumps = route_dumps(&only(&[500, 254]), &through);
    assert_eq!(
        dumps,
        [(Some(254), Some(vec![254])), (Some(500), Some(vec![500]))]
    );
    let dumps = route_dumps(&only(&[500]), &RouteFilter::default());
    assert_eq!(dumps, [(Some(500), Some(vec![500]))]);
    assert_eq!(route_dumps(&Tables::ALL, &through), [(None, None)]);
}
