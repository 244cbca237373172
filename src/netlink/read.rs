//! netlink::read: what one read of a netns asks for (`ReadRequest`) and gives (`Read`): the
//! dumps it needs (`dump`), decoded once all have arrived. It keeps nothing of what it
//! read, and must not decide which objects a caller needs nor filter by ownership.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::rule::RuleMessage;
use netlink_packet_route::RouteNetlinkMessage;

use super::decode::{
    address_from_message, address_link_name, devices_mentioned, link_from_message, link_sysctls,
    neighbour_from_message, routes_from_message, rule_from_message,
};
use super::dump::Dump;
use super::encode::{neighbour_dump_request, route_dump_request};
use super::transport::Failure;
use super::Netlink;
use crate::error::Result;
use crate::model::{Family, Link, MacAddr, Neighbour, Route, Rule, SysctlKey, Tables};

/// Which routes a dump returns, filtered by the kernel (strict dumps): `None` lets any
/// through. The default lets every route through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteFilter {
    /// Only routes through this device (RTA_OIF).
    pub oif: Option<u32>,
    /// Only routes of this protocol (rtm_protocol).
    pub protocol: Option<u8>,
}

/// The links of one netns (name -> facts) and their MAC addresses (name -> MAC).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    pub links: BTreeMap<String, Link>,
    pub macs: BTreeMap<String, MacAddr>,
    /// The managed sysctls of each link as the kernel sent them with it (IFLA_AF_SPEC):
    /// no file under /proc/sys needs reading for them.
    pub sysctls: BTreeMap<SysctlKey, i64>,
}

impl Links {
    pub(super) fn names_by_index(&self) -> HashMap<u32, String> {
        self.links
            .iter()
            .map(|(name, link)| (link.index, name.clone()))
            .collect()
    }
}

/// What one read of a netns asks for. Every dump it needs goes out at once, each on a
/// socket of its own, and is decoded after all have arrived (routes and neighbours name
/// their devices, which the link dump gives).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    /// Links, with their addresses (all scopes) and MACs.
    pub links: bool,
    /// The route tables `routes` reads (both families): a table that does not exist is
    /// empty. Cloned (cache) routes are skipped; a multipath route gives one `Route` per
    /// hop.
    pub tables: Tables,
    /// The routes of `tables` that one of these lets through: one set of dumps per filter
    /// (none: no route is read).
    pub routes: Vec<RouteFilter>,
    /// Every policy rule, both families.
    pub rules: bool,
    /// The permanent neighbours (both families) of each device listed, `None` for all.
    pub neighbours: Vec<Option<u32>>,
}

impl Default for ReadRequest {
    fn default() -> ReadRequest {
        ReadRequest {
            links: false,
            tables: Tables::Only(Default::default()),
            routes: Vec::new(),
            rules: false,
            neighbours: Vec::new(),
        }
    }
}

/// What a read found; what it did not ask for is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Read {
    pub links: Links,
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
    pub neighbours: Vec<Neighbour>,
}

/// Which part of a read one dump answers.
/// An interface address: its link's index, the address (host bits kept) and, for IPv4,
/// its link's name (see [`Netlink::addresses`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub net: IpNet,
    pub link_name: Option<String>,
}

/// What a read does with a route or neighbour through a device its links lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unknown {
    /// The links changed since they were read: `Error::TryAgain`, read again.
    ReadAgain,
    /// Named by its index (`if<N>`): the read does not depend on devices.
    NamedByIndex,
}

#[derive(Clone, Debug)]
enum Part {
    Links,
    Addresses,
    /// Routes of a dump, kept when in `tables` (None: every table).
    Routes {
        tables: Option<Vec<u32>>,
        filter: RouteFilter,
    },
    Rules,
    Neighbours,
}

impl Netlink {
    /// Reads what `reads` asks for (see [`ReadRequest`]).
    pub fn read(&self, reads: &ReadRequest) -> Result<Read> {
        self.read_with(reads, None, Unknown::ReadAgain)
    }

    /// Like [`Netlink::read`], with the links already known: they name the devices of
    /// routes and neighbours and are not read again (`Read::links` stays empty).
    pub fn read_naming(&self, reads: &ReadRequest, links: &Links) -> Result<Read> {
        self.read_with(reads, Some(links), Unknown::ReadAgain)
    }

    /// All links with their kind, peer and addresses (all scopes), and their MACs.
    pub fn links(&self) -> Result<Links> {
        let reads = ReadRequest {
            links: true,
            ..ReadRequest::default()
        };
        Ok(self.read(&reads)?.links)
    }

    /// Like [`Netlink::read`] without `links` and without reading any: every device is
    /// named by its index as iproute2 names it (`if<N>`). For a read whose answer does not
    /// depend on devices (whether an owned route is left in a table), where reading every
    /// link of a node with many pods would cost more than the rest (`Read::links` stays
    /// empty).
    pub fn read_naming_by_index(&self, reads: &ReadRequest) -> Result<Read> {
        let reads = ReadRequest {
            links: false,
            ..reads.clone()
        };
        self.read_with(&reads, Some(&Links::default()), Unknown::NamedByIndex)
    }

    /// Every interface address, with the name of its link where the kernel gives it
    /// (IPv4 labels): one dump, far cheaper per link than a link dump.
    pub fn addresses(&self) -> Result<Vec<Address>> {
        let answers = self.dump_all(&[address_dump()])?;
        Ok(answers
            .iter()
            .flatten()
            .filter_map(|message| match message {
                RouteNetlinkMessage::NewAddress(message) => {
                    let (index, net) = address_from_message(message)?;
                    let link_name = address_link_name(message);
                    Some(Address {
                        index,
                        net,
                        link_name,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// The link with ifindex `index` (name, kind, peer, MAC, sysctls; no addresses), by a
    /// single request; no link when there is none.
    pub fn link_by_index(&self, index: u32) -> Result<Links> {
        let object = format!("link with ifindex {index}");
        let mut request = LinkMessage::default();
        request.header.index = index;
        let messages = match self.get(RouteNetlinkMessage::GetLink(request), &object) {
            Ok(messages) => messages,
            Err(Failure::Errno(libc::ENODEV)) => return Ok(Links::default()),
            Err(failure) => return Err(failure.into_error(&object)),
        };
        Ok(links_from(&messages, &[]))
    }

    /// The links (kind, peer, MAC) without their addresses, read now: enough to name
    /// devices, one dump instead of two.
    pub fn link_names(&self) -> Result<Links> {
        let dump = link_dump();
        let answers = self.dump_all(std::slice::from_ref(&dump))?;
        let links = answers.first().map_or(&[][..], Vec::as_slice);
        Ok(links_from(links, &[]))
    }

    fn read_with(
        &self,
        reads: &ReadRequest,
        known: Option<&Links>,
        unknown: Unknown,
    ) -> Result<Read> {
        let dumps = dumps_of(reads, known.is_none());
        let answers = self.dump_all(&dumps)?;
        let mut read = Read::default();
        let mut links: &[RouteNetlinkMessage] = &[];
        let mut addresses: &[RouteNetlinkMessage] = &[];
        for (dump, messages) in dumps.iter().zip(&answers) {
            match dump.part {
                Part::Links => links = messages.as_slice(),
                Part::Addresses => addresses = messages.as_slice(),
                _ => {}
            }
        }
        if known.is_none() && reads.links {
            read.links = links_from(links, addresses);
        }
        let mut names = known.unwrap_or(&read.links).names_by_index();
        if unknown == Unknown::NamedByIndex {
            for index in answers.iter().flatten().flat_map(devices_mentioned) {
                names.entry(index).or_insert_with(|| format!("if{index}"));
            }
        }
        for (dump, messages) in dumps.iter().zip(&answers) {
            match &dump.part {
                Part::Links | Part::Addresses => {}
                Part::Routes { tables, filter } => {
                    read.routes
                        .extend(routes_from(messages, &names, tables.as_deref(), filter)?);
                }
                Part::Rules => {
                    for message in messages {
                        if let RouteNetlinkMessage::NewRule(message) = message {
                            read.rules.extend(rule_from_message(message)?);
                        }
                    }
                }
                Part::Neighbours => {
                    for message in messages {
                        if let RouteNetlinkMessage::NewNeighbour(message) = message {
                            read.neighbours
                                .extend(neighbour_from_message(message, &names)?);
                        }
                    }
                }
            }
        }
        Ok(read)
    }
}

/// The dumps a read needs, in the order their answers are decoded.
fn dumps_of(reads: &ReadRequest, links: bool) -> Vec<Dump<Part>> {
    let mut dumps = Vec::new();
    if reads.links && links {
        dumps.push(link_dump());
        dumps.push(address_dump());
    }
    for filter in &reads.routes {
        for family in Family::all() {
            for (table, keep) in route_dumps(&reads.tables, filter) {
                let object = match table {
                    Some(table) => format!("{family} routes of table {table}"),
                    None => format!("{family} routes of every table"),
                };
                let request = route_dump_request(family, table, filter);
                let part = Part::Routes {
                    tables: keep,
                    filter: *filter,
                };
                // Strict dumps of a table that does not exist fail with ENOENT; one
                // filtered by a device that is gone, with ENODEV: no route is there.
                dumps.push(
                    Dump::new(part, object, RouteNetlinkMessage::GetRoute(request))
                        .empty_on(&[libc::ENOENT, libc::ENODEV]),
                );
            }
        }
    }
    // One dump for both families (AF_UNSPEC walks every family with rules; the
    // multicast-routing ones are skipped when converted). Routes stay one dump per family:
    // a table missing in one family would end an AF_UNSPEC dump for both.
    if reads.rules {
        dumps.push(Dump::new(
            Part::Rules,
            "rules".into(),
            RouteNetlinkMessage::GetRule(RuleMessage::default()),
        ));
    }
    // One dump per family: an AF_UNSPEC dump would also walk the bridge FDB.
    for &ifindex in &reads.neighbours {
        for family in Family::all() {
            let request = neighbour_dump_request(family, ifindex);
            let dump = Dump::new(
                Part::Neighbours,
                format!("{family} neighbours"),
                RouteNetlinkMessage::GetNeighbour(request),
            );
            // Filtered by a device that is gone: no neighbour is there.
            dumps.push(match ifindex {
                Some(_) => dump.empty_on(&[libc::ENODEV]),
                None => dump,
            });
        }
    }
    dumps
}

/// The route dumps of one family for `tables`: the table each asks the kernel for (None:
/// every table) and the tables whose routes are kept. Several tables without a device
/// filter (a pod's main and the pod table) are one dump of every table, kept to those: a
/// netns's tables beyond them hold a few local routes, cheaper to decode than a dump each
/// is to ask for. Through a device (a host veth), each table is its own dump, filtered by
/// the kernel: the host's tables can hold every pod's routes.
fn route_dumps(tables: &Tables, filter: &RouteFilter) -> Vec<(Option<u32>, Option<Vec<u32>>)> {
    match tables {
        Tables::All(_) => vec![(None, None)],
        Tables::Only(only) if only.len() > 1 && filter.oif.is_none() => {
            vec![(None, Some(only.iter().copied().collect()))]
        }
        Tables::Only(only) => only.iter().map(|&t| (Some(t), Some(vec![t]))).collect(),
    }
}

fn address_dump() -> Dump<Part> {
    Dump::new(
        Part::Addresses,
        "addresses".into(),
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
    )
}

fn link_dump() -> Dump<Part> {
    Dump::new(
        Part::Links,
        "links".into(),
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
    )
}

/// The links of a link dump, with the addresses of an address dump taken after it.
fn links_from(links: &[RouteNetlinkMessage], addresses: &[RouteNetlinkMessage]) -> Links {
    let mut out = Links::default();
    let mut by_index = HashMap::new();
    for message in links {
        if let RouteNetlinkMessage::NewLink(message) = message {
            if let Some((name, link, mac)) = link_from_message(message) {
                if let Some(mac) = mac {
                    out.macs.insert(name.clone(), mac);
                }
                out.sysctls.extend(link_sysctls(message, &name));
                by_index.insert(link.index, name.clone());
                out.links.insert(name, link);
            }
        }
    }
    for message in addresses {
        if let RouteNetlinkMessage::NewAddress(message) = message {
            let Some((index, net)) = address_from_message(message) else {
                continue;
            };
            // An address of a link the link dump did not see: not in this snapshot.
            let Some(link) = by_index.get(&index).and_then(|n| out.links.get_mut(n)) else {
                continue;
            };
            link.addresses.push(net);
        }
    }
    out
}

/// The routes of one route dump (one family's routes of one table, or of all tables).
fn routes_from(
    messages: &[RouteNetlinkMessage],
    names: &HashMap<u32, String>,
    tables: Option<&[u32]>,
    filter: &RouteFilter,
) -> Result<Vec<Route>> {
    // The kernel lets a multipath route through when any hop uses the device: only the
    // hops that do are kept.
    let through = filter.oif.map(|index| names.get(&index).cloned());
    let mut routes = Vec::new();
    for message in messages {
        if let RouteNetlinkMessage::NewRoute(message) = message {
            let kept = routes_from_message(message, names)?
                .into_iter()
                .filter(|route| tables.is_none_or(|t| t.contains(&route.key.table)))
                .filter(|route| through.as_ref().is_none_or(|dev| route.key.dev == *dev));
            routes.extend(kept);
        }
    }
    Ok(routes)
}

#[cfg(test)]
mod tests;
