//! compile::overlay: whether the overlay interface is ready for an ADD, judged from a
//! snapshot alone, and the facts about it that must hold still while ADD runs. Pure: the
//! waiting and re-reading are reconcile's.
//!
//! A runtime may run the default network's plugin and router's chain at the same time
//! (containerd attaching several networks runs them in parallel). Router copies the
//! default network's routes and points the node at the overlay's host veth peer, so it
//! must not act on an overlay that is half made: a partial copy, or a pod the node cannot
//! reach, would be reported as success.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::*;
use crate::model::{Link, RouteKey};

/// The kind the kernel reports for a veth (IFLA_INFO_KIND).
const VETH: &str = "veth";

/// Why the overlay interface is not ready yet, one fact each.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unready {
    /// Not in the pod.
    Missing,
    /// A veth whose peer is not in this netns: still being moved there by the default
    /// network's plugin, or this command runs outside the node's netns.
    PeerNotInNode,
    /// No address beyond link-local ones.
    NoAddress,
    /// Holds an address of this family, but the pod's main table has no default route of
    /// it through an interface other than the chained one: the default network's routes
    /// are still being added.
    NoDefaultRoute(Family),
    /// Ready, but not the same as one read earlier: the default network's plugin is still
    /// at work. What changed, in words.
    Changing(Vec<String>),
}

impl fmt::Display for Unready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unready::Missing => f.write_str("is not in the pod"),
            Unready::PeerNotInNode => f.write_str(
                "is a veth whose peer is not in this (the node's) netns: the default network's \
                 plugin has not moved it here yet, or this runs outside the node's netns",
            ),
            Unready::NoAddress => f.write_str("has no address yet"),
            Unready::NoDefaultRoute(family) => write!(
                f,
                "has an {family} address but the pod's main table has no {family} default route \
                 except through the chained interface"
            ),
            Unready::Changing(changes) => {
                write!(f, "was still changing ({})", changes.join(", "))
            }
        }
    }
}

/// The facts about the overlay an ADD plans from and that must not change under it: its
/// link (index, veth peer) and addresses, and the pod's main-table routes through any
/// interface but the chained one and router's own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverlayFacts {
    pub link: Option<Link>,
    pub routes: BTreeSet<RouteKey>,
}

impl OverlayFacts {
    /// Read from `pod`, leaving out the routes in `ignore` (those the plan itself removes
    /// from main, so that the facts read after applying compare equal).
    pub fn of(
        pod: &NetnsState,
        overlay: &str,
        chained: &str,
        ignore: &BTreeSet<RouteKey>,
    ) -> OverlayFacts {
        let routes = pod
            .routes
            .values()
            .filter(|r| r.key.table == MAIN_TABLE && !r.is_owned())
            .filter(|r| r.key.dev.as_deref() != Some(chained))
            .map(|r| r.key.clone())
            .filter(|k| !ignore.contains(k))
            .collect();
        let link = pod.links.get(overlay).map(|l| {
            let mut link = l.clone();
            link.addresses.sort();
            link
        });
        OverlayFacts { link, routes }
    }

    /// What changed from `self` to `now`, in words, for the error ADD gives when the overlay
    /// never held still.
    pub fn changes_to(&self, now: &OverlayFacts) -> Vec<String> {
        let mut changes = Vec::new();
        if self.link.as_ref().map(|l| (&l.index, &l.peer))
            != now.link.as_ref().map(|l| (&l.index, &l.peer))
        {
            changes.push("the interface or its veth peer".to_string());
        }
        if self.link.as_ref().map(|l| &l.addresses) != now.link.as_ref().map(|l| &l.addresses) {
            changes.push("its addresses".to_string());
        }
        let before: BTreeMap<_, _> = self.routes.iter().map(|k| (k, ())).collect();
        for added in now.routes.iter().filter(|k| !before.contains_key(k)) {
            changes.push(format!("route {} added", route_words(added)));
        }
        for gone in self.routes.iter().filter(|k| !now.routes.contains(k)) {
            changes.push(format!("route {} removed", route_words(gone)));
        }
        changes
    }
}

fn route_words(key: &RouteKey) -> String {
    let via = key.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
    let dev = key
        .dev
        .as_deref()
        .map(|d| format!(" dev {d}"))
        .unwrap_or_default();
    format!("{}{via}{dev}", key.dst)
}

/// Whether the overlay interface is ready for ADD: the reasons it is not, empty when it is.
///
/// Ready means, from the kernel alone: the overlay is in the pod; when it is a veth (and
/// the host side is wanted), its peer is in the node netns (a link of another kind has no
/// host peer by design, and the host side is skipped as documented); it holds an address;
/// and for each family it and the chained interface both use, main holds a default route
/// through another interface than the chained one, from which the previous default
/// interface is found. A record means an earlier ADD already moved that default (main no
/// longer shows it), and `migrate_route: 0` moves nothing: then no default is required.
pub fn overlay_unready(
    config: &Config,
    chained: &str,
    chained_addrs: &[IpNet],
    actual: &ActualState,
    record: Option<&Record>,
) -> Vec<Unready> {
    let overlay = config.overlay_interface.as_str();
    let Some(pod) = actual.pod.as_ref() else {
        return Vec::new();
    };
    let Some(link) = pod.links.get(overlay) else {
        return vec![Unready::Missing];
    };
    let mut unready = Vec::new();
    let is_veth = link.kind.as_deref() == Some(VETH);
    if is_veth && !config.sriov && actual.host_peer(overlay).is_none() {
        unready.push(Unready::PeerNotInNode);
    }
    let families: BTreeSet<Family> = link
        .addresses
        .iter()
        .map(|a| a.addr())
        .filter(|a| !is_link_local(a) && !a.is_loopback())
        .map(|a| Family::of_addr(&a))
        .collect();
    if families.is_empty() {
        unready.push(Unready::NoAddress);
    }
    let needs_default = record.is_none() && config.migrate_route != MigrateRoute::Never;
    if needs_default {
        for family in families.intersection(&families_of(chained_addrs)) {
            let through_other = |r: &Route| r.key.dev.as_deref().is_some_and(|d| d != chained);
            // Main's default, or the owned copy an earlier ADD left in the pod table (its
            // record lost): either names the previous default interface.
            let held = pod.main_defaults(*family).any(through_other)
                || pod.routes.values().any(|r| {
                    r.key.table != MAIN_TABLE
                        && r.is_owned()
                        && r.key.is_default()
                        && r.key.family() == *family
                        && through_other(r)
                });
            if !held {
                unready.push(Unready::NoDefaultRoute(*family));
            }
        }
    }
    unready
}

#[cfg(test)]
mod tests;
