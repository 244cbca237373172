//! snapshot::host: the host side of a live read, in the calling thread's netns: what
//! `HostObjects` names, the links an attachment needs (the pod's peers by index, the links
//! holding the node's addresses), the sysctls and preferred sources. Reads only.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsFd;

use ipnet::IpNet;

use super::{
    add_found, read_netns, read_sysctls, state_of, with_retries, HostObjects, Sent, SnapshotRequest,
};
use crate::compile::is_link_local;
use crate::error::Result;
use crate::model::{
    host_step_key, Link, LinkPeer, NetnsState, SysctlKey, Tables, ALL_AND_DEFAULT, ROUTER_PROTOCOL,
};
use crate::netlink::{Address, Links, Netlink, Read, ReadRequest, RouteFilter};
use crate::netns;

/// What the host read gives before the pod's read is in.
#[derive(Default)]
pub(super) struct HostRead {
    state: NetnsState,
    preferred: BTreeMap<IpAddr, IpAddr>,
    /// `ThroughPodPeers` with a pod: the host's addresses (`PodPeersOnly`: none). Its links
    /// (the host veth peer and those holding the node's addresses) and the routes and
    /// neighbours through the host veth peer are read once the pod's links say which host
    /// links are its peers (`through_peers`).
    through_peers_of: Option<Vec<Address>>,
    /// The managed sysctls the host links read came with.
    sent: Sent,
}

/// The host side, in the calling thread's netns; `pod` is the pod netns, when there is one.
pub(super) fn read_host(req: &SnapshotRequest, pod: Option<&File>) -> Result<HostRead> {
    Netlink::on_this_thread(|nl| {
        let tables = req.host_tables_read();
        let pod_id = pod.map(|pod| nl.netns_id(pod.as_fd())).transpose()?;
        let done = |state| HostRead {
            state,
            ..HostRead::default()
        };
        let mut read = match req.host_objects {
            HostObjects::Rules => return Ok(done(rules_only(nl)?)),
            HostObjects::RulesAndOwnedRoutes => {
                return Ok(done(owned_routes_and_rules(nl, &tables)?))
            }
            HostObjects::ThroughPodPeers if pod_id.is_some_and(|id| id >= 0) => HostRead {
                through_peers_of: Some(nl.addresses()?),
                ..done(rules_only(nl)?)
            },
            HostObjects::PodPeersOnly if pod_id.is_some_and(|id| id >= 0) => HostRead {
                through_peers_of: Some(Vec::new()),
                ..done(rules_only(nl)?)
            },
            HostObjects::All | HostObjects::ThroughPodPeers | HostObjects::PodPeersOnly => {
                let (state, sent) = read_netns(nl, &tables)?;
                HostRead {
                    sent,
                    ..done(state)
                }
            }
        };
        read.state.other_netns_id = pod_id;
        // The named links' sysctls come with their link messages; when those are read only
        // once the pod is (`through_peers_of`), so are the sysctls (`complete_host`).
        let named = match read.through_peers_of {
            Some(_) => None,
            None => Some(req.host_sysctl_ifaces.iter().map(String::as_str)),
        };
        let ifaces = ALL_AND_DEFAULT
            .into_iter()
            .chain(named.into_iter().flatten());
        read_sysctls(
            &mut read.state,
            ifaces.map(host_step_key),
            &read.sent,
            netns::read_sysctls_here,
        )?;
        if req.host_objects != HostObjects::PodPeersOnly {
            read.preferred = preferred_src(nl, &req.preferred_src_for)?;
        }
        Ok(read)
    })
}

/// The rules, and the owned routes of `tables` (`HostObjects::RulesAndOwnedRoutes`).
fn owned_routes_and_rules(nl: &Netlink, tables: &Tables) -> Result<NetnsState> {
    let owned = RouteFilter {
        protocol: Some(ROUTER_PROTOCOL),
        ..RouteFilter::default()
    };
    let reads = ReadRequest {
        tables: tables.clone(),
        routes: vec![owned],
        rules: true,
        ..ReadRequest::default()
    };
    // Whether an owned route is left does not depend on its device: no link is read under
    // the lock (a node's every link would cost more than the rest), and the routes name
    // their devices by index.
    let mut state = NetnsState::default();
    add_found(&mut state, nl.read_naming_by_index(&reads)?);
    Ok(state)
}

/// The host links that are the pod's veth peers, each by a single request (their
/// indexes come from the pod's links, so the cost does not grow with the node's other
/// pods' veths), the links holding the node's addresses (named by the address's label, or
/// by a request when it has none), and the routes and permanent neighbours through the
/// peers, filtered by the kernel (`HostObjects::ThroughPodPeers`). Reading every host link
/// instead would make a run on a busy node cost more with each pod the node holds.
fn through_peers(
    nl: &Netlink,
    tables: &Tables,
    pod: &NetnsState,
    pod_id: Option<i32>,
    addresses: &[Address],
) -> Result<(Links, Read)> {
    let mut links = Links::default();
    for (host_index, pod_index) in pod_peers_in_host(pod) {
        let found = nl.link_by_index(host_index)?;
        // Only the veth whose peer is that pod link (an index names another link once
        // the veth is gone).
        let back =
            |p: &LinkPeer| p.ifindex == pod_index && pod_id.is_some_and(|id| p.netnsid == Some(id));
        if found
            .links
            .values()
            .all(|link| link.peer.as_ref().is_some_and(back))
        {
            links.links.extend(found.links);
            links.macs.extend(found.macs);
            links.sysctls.extend(found.sysctls);
        }
    }
    let peers: Vec<u32> = links.links.values().map(|link| link.index).collect();
    add_address_links(nl, &mut links, addresses)?;
    let through = ReadRequest {
        tables: tables.clone(),
        routes: peers
            .iter()
            .map(|&index| RouteFilter {
                oif: Some(index),
                ..RouteFilter::default()
            })
            .collect(),
        neighbours: peers.iter().map(|&index| Some(index)).collect(),
        ..ReadRequest::default()
    };
    let found = nl.read_naming(&through, &links)?;
    Ok((links, found))
}

/// (host ifindex, pod ifindex) of each pod link whose veth peer is in the host netns.
fn pod_peers_in_host(pod: &NetnsState) -> Vec<(u32, u32)> {
    let Some(host_id) = pod.other_netns_id.filter(|id| *id >= 0) else {
        return Vec::new();
    };
    pod.links
        .values()
        .filter_map(|link| {
            let peer = link.peer.as_ref()?;
            (peer.netnsid == Some(host_id)).then_some((peer.ifindex, link.index))
        })
        .collect()
}

/// Gives each link in `links` its addresses, and adds every other link that holds an
/// address beyond link-local ones (the node's addresses and those on plumbing links are
/// facts compile needs), named by an IPv4 address's label or else read by its index.
fn add_address_links(nl: &Netlink, links: &mut Links, addresses: &[Address]) -> Result<()> {
    let mut by_index: BTreeMap<u32, Vec<&Address>> = BTreeMap::new();
    for address in addresses {
        by_index.entry(address.index).or_default().push(address);
    }
    for (index, held) in by_index {
        let nets: Vec<IpNet> = held.iter().map(|a| a.net).collect();
        if let Some(link) = links.links.values_mut().find(|link| link.index == index) {
            link.addresses = nets;
            continue;
        }
        if nets.iter().all(|net| is_link_local(&net.addr())) {
            continue;
        }
        let labelled = held.iter().find_map(|a| a.link_name.clone());
        let found = match labelled {
            Some(name) => BTreeMap::from([(
                name,
                Link {
                    index,
                    kind: None,
                    peer: None,
                    addresses: Vec::new(),
                },
            )]),
            None => nl.link_by_index(index)?.links,
        };
        for (name, link) in found {
            let addresses = nets.clone();
            links.links.insert(name, Link { addresses, ..link });
        }
    }
    Ok(())
}

/// A netns state holding only the rules.
fn rules_only(nl: &Netlink) -> Result<NetnsState> {
    let reads = ReadRequest {
        rules: true,
        ..ReadRequest::default()
    };
    Ok(state_of(nl.read(&reads)?))
}

/// The host's preferred source toward each address (`ip route get`), where it has one.
pub(super) fn preferred_src(nl: &Netlink, addrs: &[IpAddr]) -> Result<BTreeMap<IpAddr, IpAddr>> {
    let mut preferred = BTreeMap::new();
    for &addr in addrs {
        if let Some(src) = nl.preferred_src(addr)? {
            preferred.insert(addr, src);
        }
    }
    Ok(preferred)
}

/// The addresses of the pod's links that the host could route to (the chained interface's
/// among them).
pub(super) fn pod_addresses(pod: &NetnsState) -> Vec<IpAddr> {
    pod.links
        .values()
        .flat_map(|link| link.addresses.iter().map(|a| a.addr()))
        .filter(|a| !a.is_loopback() && !is_link_local(a))
        .collect()
}

/// The rp_filter of every host veth whose peer is in the pod (the host veth peer among
/// them): its name is known only once both sides are read. `sent`: what the host's links
/// came with.
pub(super) fn read_host_peer_sysctls(
    pod: &NetnsState,
    host: &mut NetnsState,
    sent: &Sent,
) -> Result<()> {
    let peers: Vec<SysctlKey> = pod
        .links
        .keys()
        .filter_map(|name| {
            let (peer_name, _) = pod.veth_peer_in(name, host)?;
            Some(host_step_key(peer_name))
        })
        .filter(|key| !host.sysctls.contains_key(key))
        .collect();
    read_sysctls(host, peers, sent, netns::read_sysctls_here)
}

/// The host read, completed once the pod is read: for `ThroughPodPeers`, the host links
/// that are the pod's peers and what goes through them (`through_peers`); without the pod
/// (gone since its netns was opened), everything. Returns the host state, the preferred
/// sources and the sysctls its links came with.
pub(super) fn complete_host(
    req: &SnapshotRequest,
    read: HostRead,
    pod: Option<&NetnsState>,
) -> Result<(NetnsState, BTreeMap<IpAddr, IpAddr>, Sent)> {
    let HostRead {
        state: mut host,
        preferred,
        through_peers_of,
        mut sent,
    } = read;
    let Some(addresses) = through_peers_of else {
        return Ok((host, preferred, sent));
    };
    let tables = req.host_tables_read();
    match pod {
        Some(pod) => {
            let pod_id = host.other_netns_id;
            let (links, found) = with_retries(|| {
                Netlink::on_this_thread(|nl| through_peers(nl, &tables, pod, pod_id, &addresses))
            })?;
            host.links = links.links;
            host.macs = links.macs;
            sent = links.sysctls;
            add_found(&mut host, found);
        }
        // Nothing is known to go through a pod that is gone.
        None => {
            let (all, all_sent) =
                with_retries(|| Netlink::on_this_thread(|nl| read_netns(nl, &tables)))?;
            sent = all_sent;
            host = NetnsState {
                sysctls: host.sysctls,
                other_netns_id: host.other_netns_id,
                ..all
            };
        }
    }
    let named = req
        .host_sysctl_ifaces
        .iter()
        .map(|iface| host_step_key(iface))
        .filter(|key| !host.sysctls.contains_key(key))
        .collect::<Vec<_>>();
    read_sysctls(&mut host, named, &sent, netns::read_sysctls_here)?;
    Ok((host, preferred, sent))
}
