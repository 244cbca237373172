//! netlink: the only module that talks rtnetlink. It reads links, addresses, routes, rules
//! and neighbours of the calling thread's netns into model types, and writes routes, rules,
//! neighbours and MACs from them: one request per object with NLM_F_ACK, many in flight at
//! once (`write_many`), errno mapped to meaning (EEXIST on an add and ESRCH/ENOENT on a
//! delete are "already so"). It must not decide anything: no filtering by ownership, no
//! choice of what a replace removes, no ordering or rollback, no setns, no sysctls.
//! Here: the `Netlink` handle (socket, runtime) and the reads; `transport` (answers,
//! failures, codec), `write` (writes), `encode` (model -> messages), `decode` (messages ->
//! model).

mod decode;
mod encode;
mod transport;
mod write;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use futures_util::stream::Stream;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::RouteAttribute;
use netlink_packet_route::rule::RuleMessage;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{NetlinkMessage, NLM_F_DUMP, NLM_F_REQUEST};
use rtnetlink::proto::sys::{protocols::NETLINK_ROUTE, AsyncSocket, SocketAddr, TokioSocket};
use rtnetlink::proto::ConnectionHandle;

use crate::error::{Error, Result};
use crate::model::{Family, Link, MacAddr, Neighbour, Route, Rule};
use decode::{
    address_from_message, link_from_message, neighbour_from_message, route_addr,
    routes_from_message, rule_from_message,
};
use encode::{neighbour_dump_request, route_dump_request, route_get_request};
use transport::{answer, io_failure, refused, unreachable_errno, Failure, LoudCodec, Reply};
pub use write::{Outcome, Write};

/// Dumps flagged NLM_F_DUMP_INTR (the object list changed mid-dump) are read again this
/// many times in all before giving up with `Error::TryAgain`.
const DUMP_ATTEMPTS: usize = 5;

/// A netlink connection bound to the netns of the thread that created it, with its own
/// current-thread tokio runtime: every call blocks the calling thread until the kernel has
/// answered. Must not be used from inside an async context (construction refuses it).
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    conn: ConnectionHandle<RouteNetlinkMessage>,
}

/// The links of one netns (name -> facts) and their MAC addresses (name -> MAC).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    pub links: BTreeMap<String, Link>,
    pub macs: BTreeMap<String, MacAddr>,
}

impl Links {
    fn names_by_index(&self) -> HashMap<u32, String> {
        self.links
            .iter()
            .map(|(name, link)| (link.index, name.clone()))
            .collect()
    }
}

impl Netlink {
    /// Opens a strict-checking rtnetlink socket in the calling thread's netns.
    pub fn new() -> Result<Netlink> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::Kernel {
                object: "netlink socket".to_string(),
                reason: "cannot block on netlink inside an async runtime".to_string(),
            });
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| io_failure("netlink runtime", e))?;
        // The socket joins the netns of the thread that creates it: this one.
        let (mut connection, conn, _unsolicited) = {
            let _context = rt.enter();
            rtnetlink::proto::new_connection_with_codec::<
                RouteNetlinkMessage,
                TokioSocket,
                LoudCodec,
            >(NETLINK_ROUTE)
            .map_err(|e| io_failure("netlink socket", e))?
        };
        // NETLINK_GET_STRICT_CHK: the kernel honours the table filter of route dumps
        // (and rejects malformed requests instead of ignoring their attributes).
        connection
            .socket_mut()
            .socket_mut()
            .set_netlink_get_strict_chk(true)
            .map_err(|e| io_failure("netlink socket (NETLINK_GET_STRICT_CHK)", e))?;
        // NLMSG_DONE carries the dump's error code and, with DUMP_INTR, its consistency.
        connection.set_forward_done(true);
        // Success ACKs of NLM_F_ACK requests (the writes) end their reply like DONE does.
        connection.set_forward_ack(true);
        rt.spawn(connection);
        Ok(Netlink { rt, conn })
    }

    /// All links with their kind, peer and addresses (all scopes), and their MACs.
    pub fn links(&self) -> Result<Links> {
        let links = self.dump("links", || {
            RouteNetlinkMessage::GetLink(LinkMessage::default())
        })?;
        let addresses = self.dump("addresses", || {
            RouteNetlinkMessage::GetAddress(AddressMessage::default())
        })?;
        let mut out = Links::default();
        let mut by_index = HashMap::new();
        for message in &links {
            if let RouteNetlinkMessage::NewLink(message) = message {
                if let Some((name, link, mac)) = link_from_message(message) {
                    if let Some(mac) = mac {
                        out.macs.insert(name.clone(), mac);
                    }
                    by_index.insert(link.index, name.clone());
                    out.links.insert(name, link);
                }
            }
        }
        for message in &addresses {
            if let RouteNetlinkMessage::NewAddress(message) = message {
                let Some((index, net)) = address_from_message(message) else {
                    continue;
                };
                // An address of a link created after the link dump: not in this snapshot.
                let Some(link) = by_index.get(&index).and_then(|n| out.links.get_mut(n)) else {
                    continue;
                };
                link.addresses.push(net);
            }
        }
        Ok(out)
    }

    /// The routes of these tables, both families; a table that does not exist is empty.
    /// Cloned (cache) routes are skipped; a multipath route gives one `Route` per hop.
    pub fn routes(&self, tables: &BTreeSet<u32>, links: &Links) -> Result<Vec<Route>> {
        let mut routes = Vec::new();
        for family in Family::all() {
            for &table in tables {
                routes.extend(self.route_dump(family, Some(table), links)?);
            }
        }
        Ok(routes)
    }

    /// The routes of every table (`ip route show table all`), both families.
    pub fn every_route(&self, links: &Links) -> Result<Vec<Route>> {
        let mut routes = Vec::new();
        for family in Family::all() {
            routes.extend(self.route_dump(family, None, links)?);
        }
        Ok(routes)
    }

    /// One family's routes of one table, or of all tables.
    fn route_dump(&self, family: Family, table: Option<u32>, links: &Links) -> Result<Vec<Route>> {
        let names = links.names_by_index();
        let object = match table {
            Some(table) => format!("{family} routes of table {table}"),
            None => format!("{family} routes of every table"),
        };
        let messages = match self.try_dump(&object, || {
            RouteNetlinkMessage::GetRoute(route_dump_request(family, table))
        }) {
            Ok(messages) => messages,
            // Strict dumps of a table that does not exist fail with ENOENT.
            Err(Failure::Errno(libc::ENOENT)) => Vec::new(),
            Err(failure) => return Err(failure.into_error(&object)),
        };
        let mut routes = Vec::new();
        for message in &messages {
            if let RouteNetlinkMessage::NewRoute(message) = message {
                let of_table = routes_from_message(message, &names)?
                    .into_iter()
                    .filter(|route| table.is_none_or(|t| route.key.table == t));
                routes.extend(of_table);
            }
        }
        Ok(routes)
    }

    /// All policy rules of both families, in one dump (AF_UNSPEC walks every family with
    /// rules; the multicast-routing ones are skipped when converted). Routes stay one dump
    /// per family: a table missing in one family would end an AF_UNSPEC dump for both.
    pub fn rules(&self) -> Result<Vec<Rule>> {
        let messages = self.dump("rules", || {
            RouteNetlinkMessage::GetRule(RuleMessage::default())
        })?;
        let mut rules = Vec::new();
        for message in &messages {
            if let RouteNetlinkMessage::NewRule(message) = message {
                rules.extend(rule_from_message(message)?);
            }
        }
        Ok(rules)
    }

    /// The permanent neighbour entries of both families. One dump per family: an AF_UNSPEC
    /// dump would also walk the bridge FDB.
    pub fn neighbours(&self, links: &Links) -> Result<Vec<Neighbour>> {
        let names = links.names_by_index();
        let mut neighbours = Vec::new();
        for family in Family::all() {
            let messages = self.dump(&format!("{family} neighbours"), || {
                RouteNetlinkMessage::GetNeighbour(neighbour_dump_request(family))
            })?;
            for message in &messages {
                if let RouteNetlinkMessage::NewNeighbour(message) = message {
                    neighbours.extend(neighbour_from_message(message, &names)?);
                }
            }
        }
        Ok(neighbours)
    }

    /// The source address the kernel picks toward `dst` (`ip route get`); None when
    /// `dst` is unreachable or the answer names no source.
    pub fn preferred_src(&self, dst: IpAddr) -> Result<Option<IpAddr>> {
        let object = format!("route get {dst}");
        let mut message =
            NetlinkMessage::from(RouteNetlinkMessage::GetRoute(route_get_request(dst)));
        message.header.flags = NLM_F_REQUEST;
        let messages = match self.exchange(message, false) {
            Ok(Reply::Complete(messages)) => messages,
            Ok(Reply::Interrupted) => {
                return Err(Error::TryAgain(format!("{object}: interrupted")))
            }
            Err(Failure::Errno(errno)) if unreachable_errno(errno) => return Ok(None),
            Err(failure) => return Err(failure.into_error(&object)),
        };
        Ok(messages.iter().find_map(|message| match message {
            RouteNetlinkMessage::NewRoute(route) => route.attributes.iter().find_map(|a| match a {
                RouteAttribute::PrefSource(addr) => route_addr(addr),
                _ => None,
            }),
            _ => None,
        }))
    }

    /// The id this netns gives to the netns `netns` refers to (RTM_GETNSID): the
    /// IFLA_LINK_NETNSID of a link here whose peer is there. Negative when it has none.
    pub fn netns_id(&self, netns: BorrowedFd<'_>) -> Result<i32> {
        let object = "netns id";
        let fd = u32::try_from(netns.as_raw_fd()).map_err(|_| refused(object, "bad fd".into()))?;
        let mut request = NsidMessage::default();
        request.attributes.push(NsidAttribute::Fd(fd));
        let mut message = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(request));
        message.header.flags = NLM_F_REQUEST;
        let messages = match self.exchange(message, false) {
            Ok(Reply::Complete(messages)) => messages,
            Ok(Reply::Interrupted) => {
                return Err(Error::TryAgain(format!("{object}: interrupted")))
            }
            Err(failure) => return Err(failure.into_error(object)),
        };
        messages
            .iter()
            .find_map(|message| match message {
                RouteNetlinkMessage::NewNsId(nsid) => {
                    nsid.attributes.iter().find_map(|a| match a {
                        NsidAttribute::Id(id) => Some(*id),
                        _ => None,
                    })
                }
                _ => None,
            })
            .ok_or_else(|| refused(object, "the kernel's answer has no NETNSA_NSID".into()))
    }

    fn dump(
        &self,
        object: &str,
        request: impl Fn() -> RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.try_dump(object, request)
            .map_err(|failure| failure.into_error(object))
    }

    /// A dump, read again while the kernel flags it interrupted.
    fn try_dump(
        &self,
        object: &str,
        request: impl Fn() -> RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        for _ in 0..DUMP_ATTEMPTS {
            let mut message = NetlinkMessage::from(request());
            message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
            match self.exchange(message, true)? {
                Reply::Complete(messages) => return Ok(messages),
                Reply::Interrupted => {
                    tracing::debug!(object, "netlink dump interrupted, reading again");
                }
            }
        }
        Err(Failure::Error(Error::TryAgain(format!(
            "{object}: the dump was interrupted by concurrent changes {DUMP_ATTEMPTS} times"
        ))))
    }

    fn exchange(
        &self,
        message: NetlinkMessage<RouteNetlinkMessage>,
        dump: bool,
    ) -> Result<Reply, Failure> {
        let replies = self.issue(message)?;
        self.rt.block_on(answer(replies, dump))
    }

    /// Hands one request to the connection; its answer arrives on the returned stream.
    /// Nothing is sent until the runtime runs (`block_on`), then requests go out in the
    /// order they were issued.
    fn issue(
        &self,
        message: NetlinkMessage<RouteNetlinkMessage>,
    ) -> Result<impl Stream<Item = NetlinkMessage<RouteNetlinkMessage>> + Unpin, Failure> {
        self.conn
            .request(message, SocketAddr::new(0, 0))
            .map_err(|e| Failure::Other(e.to_string()))
    }
}
