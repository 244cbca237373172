//! agent::triggers: which kernel events call for a reconcile, and of which attachments.
//! Pure: an event and what the agent knows of its attachments in, a target out. Must not
//! do I/O or decide how a reconcile is done (the `check --repair` path does).
//!
//! In a pod netns every change but router's own additions counts: the pod holds the
//! attachment's objects and the facts its plan is made from (O's routes, C), and nothing
//! else changes there often. Dynamic neighbours never reach here (the subscription drops
//! them). In the node netns only what a plan reads or writes counts: the rules (the shared
//! `lookup 500` rule), routes in an attachment's host table and permanent neighbours toward
//! its addresses, the node's addresses (each pod's host-address routes), and a link's MAC
//! changing (H's MAC is the pod's permanent neighbour).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use crate::model::MacAddr;
use crate::netlink::subscribe::{Change, Event};

/// Which attachments a node event concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeTarget {
    None,
    /// Those whose host side has an object toward this address (C's).
    Toward(IpAddr),
    /// A node-wide fact changed: every attachment.
    All,
}

/// Whether a pod event calls for a reconcile of the pod's attachments.
pub fn pod_event_matters(event: &Event) -> bool {
    !event.is_own_addition()
}

/// The node's links' MACs as last seen, to tell a MAC change from any other link event.
#[derive(Debug, Default)]
pub struct LinkMacs(HashMap<u32, MacAddr>);

impl LinkMacs {
    pub fn new(known: impl IntoIterator<Item = (u32, MacAddr)>) -> LinkMacs {
        LinkMacs(known.into_iter().collect())
    }

    /// Records a link event; true when it changed the MAC of a link already known.
    fn changed(&mut self, change: Change, index: u32, mac: Option<MacAddr>) -> bool {
        match (change, mac) {
            (Change::Deleted, _) => {
                self.0.remove(&index);
                false
            }
            (Change::New, Some(mac)) => self.0.insert(index, mac).is_some_and(|old| old != mac),
            (Change::New, None) => false,
        }
    }
}

/// Which attachments a node event concerns. `host_tables`: the host tables of the
/// attachments kept (`host_rule_table`).
pub fn node_target(event: &Event, host_tables: &BTreeSet<u32>, macs: &mut LinkMacs) -> NodeTarget {
    if event.is_own_addition() {
        return NodeTarget::None;
    }
    match event {
        Event::Route { table, dst, .. } => match dst {
            Some(dst) if host_tables.contains(table) => NodeTarget::Toward(*dst),
            _ => NodeTarget::None,
        },
        Event::Rule { .. } => NodeTarget::All,
        Event::Neighbour { dst, .. } => dst.map_or(NodeTarget::None, NodeTarget::Toward),
        Event::Link { change, index, mac } => {
            if macs.changed(*change, *index, *mac) {
                NodeTarget::All
            } else {
                NodeTarget::None
            }
        }
        Event::Address { address, .. } if is_link_local(address) => NodeTarget::None,
        Event::Address { .. } => NodeTarget::All,
    }
}

/// Link-local addresses are every veth's own, not node addresses a plan routes to.
fn is_link_local(address: &IpAddr) -> bool {
    match address {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> BTreeSet<u32> {
        BTreeSet::from([500])
    }

    fn route(change: Change, table: u32, owned: bool) -> Event {
        Event::Route {
            change,
            table,
            dst: Some("192.168.50.11".parse().unwrap()),
            owned,
        }
    }

    #[test]
    fn routers_own_additions_wake_nothing_and_its_deletions_wake_the_owner() {
        let mut macs = LinkMacs::default();
        let added = route(Change::New, 500, true);
        assert!(!pod_event_matters(&added));
        assert_eq!(node_target(&added, &tables(), &mut macs), NodeTarget::None);
        let deleted = route(Change::Deleted, 500, true);
        assert!(pod_event_matters(&deleted));
        assert_eq!(
            node_target(&deleted, &tables(), &mut macs),
            NodeTarget::Toward("192.168.50.11".parse().unwrap())
        );
    }

    #[test]
    fn an_unowned_route_put_in_the_host_table_wakes_its_attachment_and_other_tables_nothing() {
        let mut macs = LinkMacs::default();
        assert!(matches!(
            node_target(&route(Change::New, 500, false), &tables(), &mut macs),
            NodeTarget::Toward(_)
        ));
        for change in [Change::New, Change::Deleted] {
            assert_eq!(
                node_target(&route(change, 254, false), &tables(), &mut macs),
                NodeTarget::None
            );
        }
    }

    #[test]
    fn a_rule_deleted_on_the_node_wakes_every_attachment() {
        let mut macs = LinkMacs::default();
        let rule = Event::Rule {
            change: Change::Deleted,
            owned: true,
        };
        assert_eq!(node_target(&rule, &tables(), &mut macs), NodeTarget::All);
    }

    #[test]
    fn node_addresses_wake_every_attachment_but_link_local_ones() {
        let mut macs = LinkMacs::default();
        for (address, expected) in [
            ("192.168.60.1", NodeTarget::All),
            ("fd50::9", NodeTarget::All),
            ("fe80::1", NodeTarget::None),
            ("169.254.1.1", NodeTarget::None),
        ] {
            let event = Event::Address {
                change: Change::New,
                address: address.parse().unwrap(),
            };
            assert_eq!(
                node_target(&event, &tables(), &mut macs),
                expected,
                "{address}"
            );
        }
    }

    #[test]
    fn only_a_known_links_mac_changing_wakes_every_attachment() {
        let mut macs = LinkMacs::new([(7, MacAddr([2, 0, 0, 0, 0, 7]))]);
        let link = |index, last| Event::Link {
            change: Change::New,
            index,
            mac: Some(MacAddr([2, 0, 0, 0, 0, last])),
        };
        // The same MAC again (a flag change): nothing.
        assert_eq!(
            node_target(&link(7, 7), &tables(), &mut macs),
            NodeTarget::None
        );
        // A new link (a pod's veth made): nothing.
        assert_eq!(
            node_target(&link(8, 8), &tables(), &mut macs),
            NodeTarget::None
        );
        assert_eq!(
            node_target(&link(7, 9), &tables(), &mut macs),
            NodeTarget::All
        );
        assert_eq!(
            node_target(&link(8, 1), &tables(), &mut macs),
            NodeTarget::All
        );
    }
}
