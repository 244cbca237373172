//! snapshot::pod: the pod side of a live read, from the calling thread through its handle
//! of the pod netns and the sysctl files the run's visitor opened there: its links,
//! routes, rules, neighbours and the sysctls router manages. Reads only.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;

use super::{read_netns, read_sysctls, state_of, with_retries, Sent, SnapshotRequest};
use crate::error::Result;
use crate::model::{
    mac_step_keys, routing_step_keys, Link, NetnsState, SysctlKey, Tables, ALL_AND_DEFAULT,
};
use crate::netlink::{Netlink, ReadRequest, RouteFilter};
use crate::netns::NetnsVisitor;

/// Begins the pod read: opens, in one visit, the files of the sysctls no link message
/// carries (`all`'s and `default`'s); the handle is opened in a visit of its own on first
/// use. A link's sysctls come with its link message; `execute` writes its IPv4 ones as
/// link requests and opens the file of an IPv6 one only to write it. A `links_only`
/// request reads only links, so it opens no file.
pub(super) fn begin(visitor: &NetnsVisitor, req: &SnapshotRequest) -> Result<()> {
    match req.links_only {
        true => Ok(()),
        false => visitor.hold_sysctl_files(ALL_AND_DEFAULT.into_iter().flat_map(routing_step_keys)),
    }
}

/// The pod's links and MACs only.
pub(super) fn read_links(visitor: &NetnsVisitor) -> Result<NetnsState> {
    let links = with_retries(|| Netlink::in_netns(visitor, Netlink::links))?;
    let mut state = NetnsState {
        links: links.links,
        macs: links.macs,
        ..NetnsState::default()
    };
    let keys = mac_keys(&state.links);
    read_sysctls(&mut state, keys, &links.sysctls, in_pod(visitor))?;
    Ok(state)
}

/// The pod side, `tables` of it; `host` is the host netns (the pod's id for it says which
/// host veth is the overlay interface's peer).
pub(super) fn read_all(visitor: &NetnsVisitor, tables: &Tables, host: &File) -> Result<NetnsState> {
    let (mut state, sent) = with_retries(|| {
        Netlink::in_netns(visitor, |nl| {
            let (mut state, sent) = read_netns(nl, tables)?;
            state.other_netns_id = Some(nl.netns_id(host.as_fd())?);
            Ok((state, sent))
        })
    })?;
    let ifaces = ALL_AND_DEFAULT
        .into_iter()
        .chain(links_but_lo(&state.links));
    let routing = ifaces.flat_map(routing_step_keys);
    let keys: Vec<SysctlKey> = routing.chain(mac_keys(&state.links)).collect();
    read_sysctls(&mut state, keys, &sent, in_pod(visitor))?;
    Ok(state)
}

/// The pod's links and the routes of `tables`, nothing else: no rules, neighbours or
/// sysctls.
pub(super) fn read_routes_and_links(visitor: &NetnsVisitor, tables: &Tables) -> Result<NetnsState> {
    let reads = ReadRequest {
        links: true,
        tables: tables.clone(),
        routes: vec![RouteFilter::default()],
        rules: false,
        neighbours: Vec::new(),
    };
    let read = with_retries(|| Netlink::in_netns(visitor, |nl| nl.read(&reads)))?;
    Ok(state_of(read))
}

/// Reads the files of the sysctls no link message carried: held ones from here, others on
/// the visitor, inside the pod netns (/proc/sys/net shows the netns of the thread that opens
/// the file).
fn in_pod(visitor: &NetnsVisitor) -> impl FnOnce(Vec<SysctlKey>) -> Result<Sent> + '_ {
    move |keys| visitor.read_sysctls(keys)
}

/// The MAC step's sysctls of every link but lo: the MAC step owns them (BEHAVIOUR 2.1), so
/// even a links-only read includes them.
fn mac_keys(links: &BTreeMap<String, Link>) -> Vec<SysctlKey> {
    links_but_lo(links).flat_map(mac_step_keys).collect()
}

fn links_but_lo(links: &BTreeMap<String, Link>) -> impl Iterator<Item = &str> {
    links
        .keys()
        .map(String::as_str)
        .filter(|name| *name != "lo")
}
