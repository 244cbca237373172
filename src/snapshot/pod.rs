//! snapshot::pod: the pod side of a live read, on the thread inside the pod netns: its
//! links, routes, rules, neighbours and the sysctls router manages. Reads only.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;

use super::{read_netns, read_sysctls};
use crate::error::Result;
use crate::model::{
    mac_step_keys, routing_step_keys, Link, NetnsState, SysctlKey, Tables, ALL_AND_DEFAULT,
};
use crate::netlink::Netlink;

/// The pod's links and MACs only; runs on the thread inside the pod netns.
pub(super) fn read_pod_links() -> Result<NetnsState> {
    let links = Netlink::on_this_thread(Netlink::links)?;
    let mut state = NetnsState {
        links: links.links,
        macs: links.macs,
        ..NetnsState::default()
    };
    let keys = mac_keys(&state.links);
    read_sysctls(&mut state, keys, &links.sysctls)?;
    Ok(state)
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

/// The pod side; runs on the thread inside the pod netns. `host` is the host netns.
pub(super) fn read_pod(tables: &Tables, host: &File) -> Result<NetnsState> {
    let (mut state, sent) = Netlink::on_this_thread(|nl| {
        let (mut state, sent) = read_netns(nl, tables)?;
        state.other_netns_id = Some(nl.netns_id(host.as_fd())?);
        Ok((state, sent))
    })?;
    let ifaces = ALL_AND_DEFAULT
        .into_iter()
        .chain(links_but_lo(&state.links));
    let routing = ifaces.flat_map(routing_step_keys);
    let keys: Vec<SysctlKey> = routing.chain(mac_keys(&state.links)).collect();
    read_sysctls(&mut state, keys, &sent)?;
    Ok(state)
}
