//! netlink: the only module that talks rtnetlink. It reads links, addresses, routes, rules
//! and neighbours of the calling thread's netns into model types, and writes routes, rules,
//! neighbours and MACs from them: one request per object with NLM_F_ACK, many in flight at
//! once (`write_many`), errno mapped to meaning (EEXIST on an add and ESRCH/ENOENT on a
//! delete are "already so"). It must not decide anything: no filtering by ownership, no
//! ordering or rollback, no setns, no sysctls.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::io;
use std::net::IpAddr;
use std::num::NonZeroI32;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::stream::{Stream, StreamExt};
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHopFlags,
    RouteProtocol, RouteScope as NlRouteScope, RouteType, RouteVia,
};
use netlink_packet_route::rule::{
    RuleAction as NlRuleAction, RuleAttribute, RuleFlags, RuleMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{
    ErrorMessage, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use rtnetlink::proto::sys::{protocols::NETLINK_ROUTE, AsyncSocket, SocketAddr, TokioSocket};
use rtnetlink::proto::{ConnectionHandle, NetlinkCodec, NetlinkMessageCodec};

use crate::error::{Error, Result};
use crate::model::{
    Family, Link, LinkPeer, MacAddr, Neighbour, NeighbourKey, Route, RouteKey, RouteKind,
    RouteScope, Rule, RuleAction, RuleKey, IPV6_DEFAULT_METRIC,
};

/// Dumps flagged NLM_F_DUMP_INTR (the object list changed mid-dump) are read again this
/// many times in all before giving up with `Error::TryAgain`.
const DUMP_ATTEMPTS: usize = 5;
/// A request the kernel has not finished answering by then is given up (`TryAgain`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// NUD_PERMANENT: the neighbour state bit of entries configured by hand.
const NUD_PERMANENT: u16 = 0x80;

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
                let mut request = NeighbourMessage::default();
                request.header.family = address_family(family);
                RouteNetlinkMessage::GetNeighbour(request)
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
        let family = Family::of_addr(&dst);
        let mut request = RouteMessage::default();
        request.header.address_family = address_family(family);
        request.header.destination_prefix_length = family.host_prefix_len();
        request
            .attributes
            .push(RouteAttribute::Destination(match dst {
                IpAddr::V4(a) => RouteAddress::Inet(a),
                IpAddr::V6(a) => RouteAddress::Inet6(a),
            }));
        let mut message = NetlinkMessage::from(RouteNetlinkMessage::GetRoute(request));
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

    // ---- writes ----

    /// Sends one write and waits for its ACK.
    pub fn write(&self, write: Write) -> Result<Outcome> {
        self.write_many(vec![write]).pop().unwrap_or_else(|| {
            Err(Error::Kernel {
                object: "netlink write".to_string(),
                reason: "no result for the request".to_string(),
            })
        })
    }

    /// Sends every write before waiting for any ACK (all requests in flight, the kernel
    /// applies them in order), then collects the ACKs in order: one result per write.
    /// A failure does not stop the kernel from applying the writes after it; the caller
    /// decides what to do with those (`execute` undoes them to stop at the first failure).
    pub fn write_many(&self, writes: Vec<Write>) -> Vec<Result<Outcome>> {
        let issued: Vec<_> = writes
            .into_iter()
            .map(|write| {
                let Write { object, request } = write;
                let issued = request.map(
                    |Request {
                         message,
                         flags,
                         already_so,
                     }| {
                        let mut message = NetlinkMessage::from(message);
                        message.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
                        (self.issue(message), already_so)
                    },
                );
                (object, issued)
            })
            .collect();
        self.rt.block_on(async move {
            let mut results = Vec::with_capacity(issued.len());
            // After one request went unanswered for REQUEST_TIMEOUT, the rest are not
            // waited for in turn (each would wait as long): they fail at once.
            let mut stalled = false;
            for (object, issued) in issued {
                let result = match issued {
                    // Nothing to send: the object is already so (its device is gone).
                    None => Ok(Outcome::AlreadySo),
                    Some((Err(failure), _)) => Err(failure.into_error(&object)),
                    Some(_) if stalled => Err(Failure::Timeout.into_error(&object)),
                    Some((Ok(replies), already_so)) => match answer(replies, false).await {
                        Ok(Reply::Complete(_)) => Ok(Outcome::Changed),
                        Ok(Reply::Interrupted) => Err(Error::TryAgain(format!(
                            "{object}: the kernel's answer was lost (netlink overrun)"
                        ))),
                        Err(Failure::Errno(errno)) if already_so.contains(&errno) => {
                            Ok(Outcome::AlreadySo)
                        }
                        Err(failure) => {
                            stalled = failure == Failure::Timeout;
                            Err(failure.into_error(&object))
                        }
                    },
                };
                results.push(result);
            }
            results
        })
    }

    /// `ip route append`: RTM_NEWROUTE with CREATE|APPEND. An IPv4 route joins the others
    /// of its slot as another alias; an IPv6 route through a gateway joins the multipath
    /// route of its slot as a hop. The same route again (EEXIST) is already so.
    pub fn add_route(&self, route: &Route, links: &Links) -> Result<Outcome> {
        self.write(Write::add_route(route, links)?)
    }

    /// Puts `new` in place of `old` in one step: RTM_NEWROUTE with CREATE|REPLACE, then
    /// removes each route of `old` the replace may not have taken; one already gone is
    /// fine. Kernel semantics to know: an IPv4 replace takes the first alias of the slot
    /// (whichever it is); an IPv6 replace of a multipath route takes the whole group. So
    /// every old route is deleted by its own protocol afterwards, except one with new's
    /// key and protocol, which the delete could not tell from `new`.
    pub fn replace_route(&self, new: &Route, old: &[Route], links: &Links) -> Result<Outcome> {
        let replace = Write::replace_route(new, links)?;
        let object = replace.object.clone();
        let mut outcome = self.write(replace)?;
        let new_key = new.clone().normalised().key;
        let removals = old
            .iter()
            .filter(|route| {
                route.protocol != new.protocol || (*route).clone().normalised().key != new_key
            })
            .map(|route| Write::del_route(route, links))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| in_replace(&object, e))?;
        for result in self.write_many(removals) {
            match result.map_err(|e| in_replace(&object, e))? {
                Outcome::Changed => outcome = Outcome::Changed,
                Outcome::AlreadySo => {}
            }
        }
        Ok(outcome)
    }

    /// `ip route del` naming table, destination, tos, metric, device, gateway and protocol:
    /// only that route goes (one hop of an IPv6 multipath route). Gone already is fine.
    pub fn del_route(&self, route: &Route, links: &Links) -> Result<Outcome> {
        self.write(Write::del_route(route, links)?)
    }

    /// `ip rule add` (CREATE|EXCL): the same rule again (EEXIST) is already so.
    pub fn add_rule(&self, rule: &Rule) -> Result<Outcome> {
        self.write(Write::add_rule(rule)?)
    }

    /// `ip rule del` matching every selector, the action, table and protocol.
    pub fn del_rule(&self, rule: &Rule) -> Result<Outcome> {
        self.write(Write::del_rule(rule))
    }

    /// `ip neigh replace ... nud permanent`: also overrides a dynamic entry.
    pub fn replace_neighbour(&self, neighbour: &Neighbour, links: &Links) -> Result<Outcome> {
        self.write(Write::replace_neighbour(neighbour, links)?)
    }

    /// `ip neigh del`; gone already (or its device gone) is fine.
    pub fn del_neighbour(&self, neighbour: &Neighbour, links: &Links) -> Result<Outcome> {
        self.write(Write::del_neighbour(neighbour, links))
    }

    /// `ip link set dev <dev> address <mac>`.
    pub fn set_mac(&self, dev: &str, mac: MacAddr, links: &Links) -> Result<Outcome> {
        self.write(Write::set_mac(dev, mac, links)?)
    }
}

/// Waits for the whole answer to one request, within REQUEST_TIMEOUT.
async fn answer<S>(replies: S, dump: bool) -> Result<Reply, Failure>
where
    S: Stream<Item = NetlinkMessage<RouteNetlinkMessage>> + Unpin,
{
    tokio::time::timeout(REQUEST_TIMEOUT, collect(replies, dump))
        .await
        .map_err(|_| Failure::Timeout)?
}

/// A failure removing a replaced route, named by the replace that asked for it.
fn in_replace(object: &str, error: Error) -> Error {
    match error {
        Error::Kernel {
            object: removal,
            reason,
        } => Error::Kernel {
            object: object.to_string(),
            reason: format!("removing the replaced route ({removal}): {reason}"),
        },
        other => other,
    }
}

/// What a write did to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Changed,
    /// Nothing to do: EEXIST on an add, ESRCH/ENOENT on a delete, or a delete of an
    /// object whose device is gone.
    AlreadySo,
}

/// One write request, built from a model object with its device names resolved against
/// the `Links` of the netns it is for, and named by its `ip` command for errors.
#[derive(Debug)]
pub struct Write {
    object: String,
    /// None: nothing to send, the object is already so.
    request: Option<Request>,
}

#[derive(Debug)]
struct Request {
    message: RouteNetlinkMessage,
    /// NLM_F_* flags besides REQUEST and ACK.
    flags: u16,
    /// Errnos that mean the kernel already is as asked.
    already_so: &'static [i32],
}

const GONE: &[i32] = &[libc::ESRCH, libc::ENOENT];
const EXISTS: &[i32] = &[libc::EEXIST];

impl Write {
    /// The `ip` command this write does, as errors name it.
    pub fn object(&self) -> &str {
        &self.object
    }

    fn send(
        object: String,
        message: RouteNetlinkMessage,
        flags: u16,
        already_so: &'static [i32],
    ) -> Write {
        Write {
            object,
            request: Some(Request {
                message,
                flags,
                already_so,
            }),
        }
    }

    /// RTM_NEWROUTE with CREATE|APPEND (see [`Netlink::add_route`]).
    pub fn add_route(route: &Route, links: &Links) -> Result<Write> {
        let object = route.ip_command("add");
        let message = route_message(route, links, RouteWrite::Create, &object)?;
        Ok(Write::send(
            object,
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_APPEND,
            EXISTS,
        ))
    }

    /// RTM_NEWROUTE with CREATE|REPLACE (the first step of [`Netlink::replace_route`]).
    /// EEXIST (IPv4: the same route is in the slot, not as its first alias) is already so.
    pub fn replace_route(route: &Route, links: &Links) -> Result<Write> {
        let object = route.ip_command("replace");
        let message = route_message(route, links, RouteWrite::Create, &object)?;
        Ok(Write::send(
            object,
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_REPLACE,
            EXISTS,
        ))
    }

    /// RTM_DELROUTE (see [`Netlink::del_route`]). A route through a device that is gone
    /// is gone with it: nothing to send.
    pub fn del_route(route: &Route, links: &Links) -> Result<Write> {
        let object = route.ip_command("del");
        if let Some(dev) = &route.key.dev {
            if !links.links.contains_key(dev) {
                return Ok(Write {
                    object,
                    request: None,
                });
            }
        }
        let message = route_message(route, links, RouteWrite::Delete, &object)?;
        Ok(Write::send(
            object,
            RouteNetlinkMessage::DelRoute(message),
            0,
            GONE,
        ))
    }

    /// RTM_NEWRULE with CREATE|EXCL.
    pub fn add_rule(rule: &Rule) -> Result<Write> {
        let object = rule.ip_command("add");
        let action = kernel_rule_action(rule.key.action).ok_or_else(|| {
            refused(
                &object,
                "a rule of an unknown action cannot be created".into(),
            )
        })?;
        let message = rule_message(rule, action);
        Ok(Write::send(
            object,
            RouteNetlinkMessage::NewRule(message),
            NLM_F_CREATE | NLM_F_EXCL,
            EXISTS,
        ))
    }

    /// RTM_DELRULE; a rule of an action the model cannot name matches any action.
    pub fn del_rule(rule: &Rule) -> Write {
        let object = rule.ip_command("del");
        // FR_ACT_UNSPEC in a delete matches any action.
        let action = kernel_rule_action(rule.key.action).unwrap_or(NlRuleAction::Unspec);
        let message = rule_message(rule, action);
        Write::send(object, RouteNetlinkMessage::DelRule(message), 0, GONE)
    }

    /// RTM_NEWNEIGH with CREATE|REPLACE, NUD_PERMANENT.
    pub fn replace_neighbour(neighbour: &Neighbour, links: &Links) -> Result<Write> {
        let object = neighbour.ip_replace_command();
        let ifindex = ifindex(links, &neighbour.key.dev, &object)?;
        let mut message = neighbour_message(neighbour, ifindex);
        message.header.state = NeighbourState::Permanent;
        if let Some(mac) = neighbour.lladdr {
            message
                .attributes
                .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        }
        if neighbour.protocol != 0 {
            message
                .attributes
                .push(NeighbourAttribute::Protocol(RouteProtocol::from(
                    neighbour.protocol,
                )));
        }
        Ok(Write::send(
            object,
            RouteNetlinkMessage::NewNeighbour(message),
            NLM_F_CREATE | NLM_F_REPLACE,
            &[],
        ))
    }

    /// RTM_DELNEIGH with the device and address; a neighbour whose device is gone is gone.
    pub fn del_neighbour(neighbour: &Neighbour, links: &Links) -> Write {
        let object = neighbour.ip_del_command();
        match links.links.get(&neighbour.key.dev) {
            None => Write {
                object,
                request: None,
            },
            Some(link) => Write::send(
                object,
                RouteNetlinkMessage::DelNeighbour(neighbour_message(neighbour, link.index)),
                0,
                GONE,
            ),
        }
    }

    /// RTM_SETLINK with the link's index and IFLA_ADDRESS.
    pub fn set_mac(dev: &str, mac: MacAddr, links: &Links) -> Result<Write> {
        let object = mac.ip_command(dev);
        let mut message = LinkMessage::default();
        message.header.index = ifindex(links, dev, &object)?;
        message
            .attributes
            .push(LinkAttribute::Address(mac.0.to_vec()));
        Ok(Write::send(
            object,
            RouteNetlinkMessage::SetLink(message),
            0,
            &[],
        ))
    }
}

/// The messages answering one request, or the news that the dump must be read again.
#[derive(Debug, PartialEq)]
enum Reply {
    Complete(Vec<RouteNetlinkMessage>),
    Interrupted,
}

/// Why a request failed, before it is named and turned into an `Error`.
#[derive(Debug, PartialEq)]
enum Failure {
    /// The kernel's answer: a positive errno.
    Errno(i32),
    Timeout,
    Other(String),
    Error(Error),
}

impl Failure {
    fn into_error(self, object: &str) -> Error {
        match self {
            Failure::Errno(errno) => errno_error(object, errno),
            Failure::Timeout => Error::TryAgain(format!(
                "{object}: no answer from the kernel within {}s",
                REQUEST_TIMEOUT.as_secs()
            )),
            Failure::Other(reason) => Error::Kernel {
                object: object.to_string(),
                reason,
            },
            Failure::Error(error) => error,
        }
    }
}

/// EBUSY and EAGAIN mean "later"; anything else is the kernel refusing.
fn errno_error(object: &str, errno: i32) -> Error {
    let reason = if errno == libc::EBADMSG {
        // What LoudCodec reports for a message netlink-packet-route cannot parse.
        "a kernel message could not be decoded (EBADMSG)".to_string()
    } else {
        io::Error::from_raw_os_error(errno).to_string()
    };
    match errno {
        libc::EBUSY | libc::EAGAIN => Error::TryAgain(format!("{object}: {reason}")),
        libc::EADDRINUSE => Error::InUse {
            object: object.to_string(),
            reason,
        },
        _ => Error::Kernel {
            object: object.to_string(),
            reason,
        },
    }
}

/// The errnos of `route get` toward an address no route leads to (none, unreachable or
/// prohibit routes).
fn unreachable_errno(errno: i32) -> bool {
    matches!(errno, libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EACCES)
}

/// Reads the answer to one request. A dump must end with NLMSG_DONE: a stream that
/// stops before it (the connection died) is an error, not a short list.
async fn collect<S>(mut replies: S, dump: bool) -> Result<Reply, Failure>
where
    S: Stream<Item = NetlinkMessage<RouteNetlinkMessage>> + Unpin,
{
    let mut messages = Vec::new();
    let mut interrupted = false;
    let mut finished = false;
    while let Some(message) = replies.next().await {
        if message.header.flags & NLM_F_DUMP_INTR != 0 {
            interrupted = true;
        }
        match message.payload {
            NetlinkPayload::InnerMessage(inner) => {
                messages.push(inner);
                if !dump {
                    finished = true;
                }
            }
            NetlinkPayload::Done(done) => {
                match done.code {
                    0 => {}
                    code if -code == libc::EINTR => interrupted = true,
                    code => return Err(Failure::Errno(-code)),
                }
                finished = true;
            }
            NetlinkPayload::Error(error) => match error.code {
                Some(code) if -code.get() == libc::EINTR && dump => {
                    interrupted = true;
                    finished = true;
                }
                Some(code) => return Err(Failure::Errno(-code.get())),
                None => finished = true,
            },
            NetlinkPayload::Overrun(_) => interrupted = true,
            _ => {}
        }
    }
    if interrupted {
        return Ok(Reply::Interrupted);
    }
    if !finished {
        return Err(Failure::Other(if dump {
            "the netlink dump ended without NLMSG_DONE".to_string()
        } else {
            "no answer from the kernel".to_string()
        }));
    }
    Ok(Reply::Complete(messages))
}

/// netlink-proto's codec with one change: a message netlink-packet-route cannot parse is
/// not dropped (which would make a dump silently short) but answers its request with
/// EBADMSG, so the read fails loudly.
struct LoudCodec;

impl NetlinkMessageCodec for LoudCodec {
    fn decode<T>(src: &mut BytesMut) -> io::Result<Option<NetlinkMessage<T>>>
    where
        T: NetlinkDeserializable + Debug,
    {
        if src.is_empty() {
            return Ok(None);
        }
        let (len, header) = match NetlinkBuffer::new_checked(src.as_ref()) {
            Ok(buf) => (
                buf.length() as usize,
                header_of(
                    buf.message_type(),
                    buf.flags(),
                    buf.sequence_number(),
                    buf.port_number(),
                ),
            ),
            // A truncated datagram: nothing to resynchronise on (netlink-proto's choice).
            Err(_) => {
                src.clear();
                return Ok(None);
            }
        };
        let bytes = src.split_to(len);
        match NetlinkMessage::<T>::deserialize(&bytes) {
            Ok(message) => Ok(Some(message)),
            Err(e) => {
                let message_type = header.message_type;
                tracing::error!(error = %e, message_type, "undecodable netlink message");
                let mut error = ErrorMessage::default();
                error.code = NonZeroI32::new(-libc::EBADMSG);
                Ok(Some(NetlinkMessage::new(
                    header,
                    NetlinkPayload::Error(error),
                )))
            }
        }
    }

    fn encode<T>(msg: NetlinkMessage<T>, buf: &mut BytesMut) -> io::Result<()>
    where
        T: NetlinkSerializable + Debug,
    {
        NetlinkCodec::encode(msg, buf)
    }
}

fn header_of(
    message_type: u16,
    flags: u16,
    sequence_number: u32,
    port_number: u32,
) -> NetlinkHeader {
    let mut header = NetlinkHeader::default();
    header.message_type = message_type;
    header.flags = flags;
    header.sequence_number = sequence_number;
    header.port_number = port_number;
    header
}

fn io_failure(object: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(errno) => errno_error(object, errno),
        None => Error::Kernel {
            object: object.to_string(),
            reason: e.to_string(),
        },
    }
}

// ---- requests ----

fn address_family(family: Family) -> AddressFamily {
    match family {
        Family::Ipv4 => AddressFamily::Inet,
        Family::Ipv6 => AddressFamily::Inet6,
    }
}

fn model_family(family: AddressFamily) -> Option<Family> {
    match family {
        AddressFamily::Inet => Some(Family::Ipv4),
        AddressFamily::Inet6 => Some(Family::Ipv6),
        _ => None,
    }
}

/// A strict route dump of one table: the header table stays RT_TABLE_UNSPEC and RTA_TABLE
/// names the table, so tables above 255 work too. Without a table, every table.
fn route_dump_request(family: Family, table: Option<u32>) -> RouteMessage {
    let mut request = RouteMessage::default();
    request.header.address_family = address_family(family);
    request.attributes.extend(table.map(RouteAttribute::Table));
    request
}

// ---- conversions: model -> write request ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RouteWrite {
    Create,
    Delete,
}

/// A table in a header byte: itself below 256, else RT_TABLE_UNSPEC (RTA_TABLE/FRA_TABLE,
/// always sent too, carries it).
fn header_table(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC)
}

fn kernel_addr(addr: IpAddr) -> RouteAddress {
    match addr {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn kernel_route_type(kind: RouteKind) -> Option<RouteType> {
    match kind {
        RouteKind::Unicast => Some(RouteType::Unicast),
        RouteKind::Local => Some(RouteType::Local),
        RouteKind::Broadcast => Some(RouteType::Broadcast),
        RouteKind::Blackhole => Some(RouteType::BlackHole),
        RouteKind::Unreachable => Some(RouteType::Unreachable),
        RouteKind::Prohibit => Some(RouteType::Prohibit),
        RouteKind::Other => None,
    }
}

fn kernel_rule_action(action: RuleAction) -> Option<NlRuleAction> {
    match action {
        RuleAction::Lookup => Some(NlRuleAction::ToTable),
        RuleAction::Goto => Some(NlRuleAction::Goto),
        RuleAction::Nop => Some(NlRuleAction::Nop),
        RuleAction::Blackhole => Some(NlRuleAction::Blackhole),
        RuleAction::Unreachable => Some(NlRuleAction::Unreachable),
        RuleAction::Prohibit => Some(NlRuleAction::Prohibit),
        RuleAction::Other => None,
    }
}

/// The index of `dev` in this netns; a missing device is an error naming it.
fn ifindex(links: &Links, dev: &str, object: &str) -> Result<u32> {
    links
        .links
        .get(dev)
        .map(|link| link.index)
        .ok_or_else(|| Error::Kernel {
            object: object.to_string(),
            reason: format!("no device {dev:?} in this network namespace"),
        })
}

fn refused(object: &str, reason: String) -> Error {
    Error::Kernel {
        object: object.to_string(),
        reason,
    }
}

/// RTM_NEWROUTE/RTM_DELROUTE for one route (one hop). A delete matches any scope and
/// names the protocol, so the kernel removes only the route of that protocol.
fn route_message(
    route: &Route,
    links: &Links,
    write: RouteWrite,
    object: &str,
) -> Result<RouteMessage> {
    let key = &route.key;
    let family = key.family();
    let dst = key.dst.trunc();
    let mut message = RouteMessage::default();
    let header = &mut message.header;
    header.address_family = address_family(family);
    header.destination_prefix_length = dst.prefix_len();
    header.tos = key.tos;
    header.table = header_table(key.table);
    header.protocol = RouteProtocol::from(route.protocol);
    match write {
        RouteWrite::Create => {
            header.scope = NlRouteScope::from(route.scope.to_kernel());
            header.kind = kernel_route_type(route.kind).ok_or_else(|| {
                refused(
                    object,
                    "a route of an unknown type cannot be created".into(),
                )
            })?;
            if route.onlink {
                header.flags = RouteFlags::Onlink;
            }
        }
        RouteWrite::Delete => {
            // RT_SCOPE_NOWHERE in a delete means any scope (what `ip route del` sends).
            header.scope = NlRouteScope::NoWhere;
            header.kind = kernel_route_type(route.kind).unwrap_or(RouteType::Unspec);
        }
    }
    let attributes = &mut message.attributes;
    attributes.push(RouteAttribute::Table(key.table));
    if dst.prefix_len() > 0 {
        attributes.push(RouteAttribute::Destination(kernel_addr(dst.addr())));
    }
    if let Some(dev) = &key.dev {
        attributes.push(RouteAttribute::Oif(ifindex(links, dev, object)?));
    }
    match key.gateway {
        Some(gateway) if Family::of_addr(&gateway) == family => {
            attributes.push(RouteAttribute::Gateway(kernel_addr(gateway)))
        }
        // An IPv4 route through an IPv6 gateway (RFC 5549).
        Some(IpAddr::V6(gateway)) => attributes.push(RouteAttribute::Via(RouteVia::Inet6(gateway))),
        Some(IpAddr::V4(gateway)) => attributes.push(RouteAttribute::Via(RouteVia::Inet(gateway))),
        None => {}
    }
    // IPv6 reads a missing or 0 metric as 1024, the normalised value: the same either way.
    let metric = match family {
        Family::Ipv6 if key.metric == 0 => IPV6_DEFAULT_METRIC,
        _ => key.metric,
    };
    if metric != 0 {
        attributes.push(RouteAttribute::Priority(metric));
    }
    if write == RouteWrite::Create {
        if let Some(src) = route.prefsrc {
            attributes.push(RouteAttribute::PrefSource(kernel_addr(src)));
        }
    }
    Ok(message)
}

/// RTM_NEWRULE/RTM_DELRULE for one rule: every selector, the action, table and protocol.
fn rule_message(rule: &Rule, action: NlRuleAction) -> RuleMessage {
    let key = &rule.key;
    let mut message = RuleMessage::default();
    let header = &mut message.header;
    header.family = address_family(key.family);
    header.tos = key.tos;
    header.table = header_table(key.table);
    header.action = action;
    if key.invert {
        header.flags = RuleFlags::Invert;
    }
    let attributes = &mut message.attributes;
    attributes.push(RuleAttribute::Priority(key.priority));
    // A /0 selector is "all": the kernel stores and shows it as no selector.
    if let Some(from) = key.from.filter(|n| n.prefix_len() > 0) {
        header.src_len = from.prefix_len();
        attributes.push(RuleAttribute::Source(from.trunc().addr()));
    }
    if let Some(to) = key.to.filter(|n| n.prefix_len() > 0) {
        header.dst_len = to.prefix_len();
        attributes.push(RuleAttribute::Destination(to.trunc().addr()));
    }
    if let Some(iif) = &key.iif {
        attributes.push(RuleAttribute::Iifname(iif.clone()));
    }
    if let Some(oif) = &key.oif {
        attributes.push(RuleAttribute::Oifname(oif.clone()));
    }
    if let Some(mark) = key.fwmark {
        attributes.push(RuleAttribute::FwMark(mark));
    }
    if let Some(mask) = key.fwmask {
        attributes.push(RuleAttribute::FwMask(mask));
    }
    attributes.push(RuleAttribute::Table(key.table));
    attributes.push(RuleAttribute::Protocol(RouteProtocol::from(rule.protocol)));
    message
}

/// The header and NDA_DST of a neighbour request.
fn neighbour_message(neighbour: &Neighbour, ifindex: u32) -> NeighbourMessage {
    let addr = neighbour.key.addr;
    let mut message = NeighbourMessage::default();
    message.header.family = address_family(Family::of_addr(&addr));
    message.header.ifindex = ifindex;
    message
        .attributes
        .push(NeighbourAttribute::Destination(match addr {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    message
}

// ---- conversions: kernel message -> model ----

fn route_addr(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn via_addr(via: &RouteVia) -> Option<IpAddr> {
    match via {
        RouteVia::Inet(a) => Some(IpAddr::V4(*a)),
        RouteVia::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn prefix(object: &str, addr: IpAddr, len: u8) -> Result<IpNet> {
    IpNet::new(addr, len).map_err(|e| Error::Kernel {
        object: object.to_string(),
        reason: format!("bad prefix {addr}/{len}: {e}"),
    })
}

fn route_kind(kind: RouteType) -> RouteKind {
    match kind {
        RouteType::Unicast => RouteKind::Unicast,
        RouteType::Local => RouteKind::Local,
        RouteType::Broadcast => RouteKind::Broadcast,
        RouteType::BlackHole => RouteKind::Blackhole,
        RouteType::Unreachable => RouteKind::Unreachable,
        RouteType::Prohibit => RouteKind::Prohibit,
        _ => RouteKind::Other,
    }
}

fn rule_action(action: NlRuleAction) -> RuleAction {
    match action {
        NlRuleAction::ToTable => RuleAction::Lookup,
        NlRuleAction::Goto => RuleAction::Goto,
        NlRuleAction::Nop => RuleAction::Nop,
        NlRuleAction::Blackhole => RuleAction::Blackhole,
        NlRuleAction::Unreachable => RuleAction::Unreachable,
        NlRuleAction::Prohibit => RuleAction::Prohibit,
        _ => RuleAction::Other,
    }
}

fn mac_of(bytes: &[u8]) -> Option<MacAddr> {
    <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
}

/// The name of an interface a route or neighbour refers to. An index missing from the
/// link dump means links changed between the two dumps: read again.
fn dev_name(names: &HashMap<u32, String>, index: u32, object: &str) -> Result<String> {
    names.get(&index).cloned().ok_or_else(|| {
        Error::TryAgain(format!(
            "{object} refers to ifindex {index}, absent from the link dump (links changed)"
        ))
    })
}

/// A link: its name, facts and MAC (6-byte hardware addresses only). None without a name.
fn link_from_message(message: &LinkMessage) -> Option<(String, Link, Option<MacAddr>)> {
    let index = message.header.index;
    let mut name = None;
    let mut kind = None;
    let mut link = None;
    let mut netnsid = None;
    let mut mac = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::LinkInfo(infos) => {
                kind = infos.iter().find_map(|info| match info {
                    LinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                });
            }
            LinkAttribute::Link(i) => link = Some(*i),
            LinkAttribute::LinkNetNsId(id) => netnsid = Some(*id),
            LinkAttribute::Address(bytes) => mac = mac_of(bytes),
            _ => {}
        }
    }
    // IFLA_LINK equal to the link's own index means "no other link", unless the peer is
    // in another netns (IFLA_LINK_NETNSID set), where indexes are another numbering: a
    // pod's eth0 and its host veth are often both ifindex 2.
    let peer = link
        .filter(|&peer| peer != index || netnsid.is_some())
        .map(|ifindex| LinkPeer { ifindex, netnsid });
    Some((
        name?,
        Link {
            index,
            kind,
            peer,
            addresses: Vec::new(),
        },
        mac,
    ))
}

/// An interface address as (ifindex, address/prefix) with host bits kept. IFA_LOCAL is
/// the address itself where both are given (IFA_ADDRESS is then the peer of a p2p link).
fn address_from_message(message: &AddressMessage) -> Option<(u32, IpNet)> {
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(addr) => Some(*addr),
        _ => None,
    });
    let address = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(addr) => Some(*addr),
        _ => None,
    });
    let addr = local.or(address)?;
    let net = IpNet::new(addr, message.header.prefix_len).ok()?;
    Some((message.header.index, net))
}

/// A route as model routes: none for a cloned (cache) route, one per hop for multipath.
fn routes_from_message(message: &RouteMessage, names: &HashMap<u32, String>) -> Result<Vec<Route>> {
    let header = &message.header;
    if header.flags.contains(RouteFlags::Cloned) {
        return Ok(Vec::new());
    }
    let Some(family) = model_family(header.address_family) else {
        return Ok(Vec::new());
    };
    let mut table = u32::from(header.table);
    let mut dst = None;
    let mut metric = 0;
    let mut oif = None;
    let mut gateway = None;
    let mut prefsrc = None;
    let mut hops = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(addr) => dst = route_addr(addr),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Oif(index) => oif = Some(*index),
            RouteAttribute::Gateway(addr) => gateway = route_addr(addr),
            RouteAttribute::Via(via) => gateway = gateway.or(via_addr(via)),
            RouteAttribute::PrefSource(addr) => prefsrc = route_addr(addr),
            RouteAttribute::MultiPath(h) => hops = Some(h),
            _ => {}
        }
    }
    let object = format!("{family} route in table {table}");
    let dst = match dst {
        Some(addr) => prefix(&object, addr, header.destination_prefix_length)?,
        None => family.any(),
    };
    let route = |dev: Option<String>, gateway: Option<IpAddr>, onlink: bool| Route {
        key: RouteKey {
            table,
            dst,
            tos: header.tos,
            metric,
            dev,
            gateway,
        },
        scope: RouteScope::from_kernel(u8::from(header.scope)),
        kind: route_kind(header.kind),
        protocol: u8::from(header.protocol),
        prefsrc,
        onlink,
    };
    let object = format!("{object} to {dst}");
    match hops {
        Some(hops) => hops
            .iter()
            .map(|hop| {
                let gateway = hop.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(addr) => route_addr(addr),
                    RouteAttribute::Via(via) => via_addr(via),
                    _ => None,
                });
                let dev = match hop.interface_index {
                    0 => None,
                    index => Some(dev_name(names, index, &object)?),
                };
                Ok(route(dev, gateway, hop.flags.contains(RouteNextHopFlags::Onlink)).normalised())
            })
            .collect(),
        None => {
            let dev = oif
                .map(|index| dev_name(names, index, &object))
                .transpose()?;
            Ok(vec![route(
                dev,
                gateway,
                header.flags.contains(RouteFlags::Onlink),
            )
            .normalised()])
        }
    }
}

/// A policy rule; None for a family other than IPv4/IPv6.
fn rule_from_message(message: &RuleMessage) -> Result<Option<Rule>> {
    let header = &message.header;
    let Some(family) = model_family(header.family) else {
        return Ok(None);
    };
    let object = format!("{family} rule");
    let mut key = RuleKey {
        family,
        priority: 0,
        from: None,
        to: None,
        iif: None,
        oif: None,
        fwmark: None,
        fwmask: None,
        tos: header.tos,
        invert: header.flags.contains(RuleFlags::Invert),
        action: rule_action(header.action),
        table: u32::from(header.table),
    };
    let mut protocol = 0;
    for attribute in &message.attributes {
        match attribute {
            RuleAttribute::Priority(p) => key.priority = *p,
            RuleAttribute::Source(addr) => key.from = Some(prefix(&object, *addr, header.src_len)?),
            RuleAttribute::Destination(addr) => {
                key.to = Some(prefix(&object, *addr, header.dst_len)?)
            }
            RuleAttribute::Iifname(name) => key.iif = Some(name.clone()),
            RuleAttribute::Oifname(name) => key.oif = Some(name.clone()),
            RuleAttribute::FwMark(mark) => key.fwmark = Some(*mark),
            RuleAttribute::FwMask(mask) => key.fwmask = Some(*mask),
            RuleAttribute::Table(table) => key.table = *table,
            RuleAttribute::Protocol(p) => protocol = u8::from(*p),
            _ => {}
        }
    }
    Ok(Some(Rule { key, protocol }))
}

/// A neighbour entry; None unless it is a permanent IPv4/IPv6 entry.
fn neighbour_from_message(
    message: &NeighbourMessage,
    names: &HashMap<u32, String>,
) -> Result<Option<Neighbour>> {
    let header = &message.header;
    if u16::from(header.state) & NUD_PERMANENT == 0 {
        return Ok(None);
    }
    let mut addr = None;
    let mut lladdr = None;
    let mut protocol = 0;
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                addr = Some(IpAddr::V4(*a))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                addr = Some(IpAddr::V6(*a))
            }
            NeighbourAttribute::LinkLayerAddress(bytes) => lladdr = mac_of(bytes),
            NeighbourAttribute::Protocol(p) => protocol = u8::from(*p),
            _ => {}
        }
    }
    let Some(addr) = addr else {
        return Ok(None);
    };
    let dev = dev_name(names, header.ifindex, &format!("neighbour {addr}"))?;
    Ok(Some(Neighbour {
        key: NeighbourKey { dev, addr },
        lladdr,
        protocol,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::InfoKind;
    use netlink_packet_route::neighbour::NeighbourState;
    use netlink_packet_route::route::{RouteNextHop, RouteProtocol, RouteScope as NlScope};
    use netlink_packet_route::rule::RuleHeader;
    use rtnetlink::packet_core::DoneMessage;

    fn names() -> HashMap<u32, String> {
        HashMap::from([(2, "eth0".to_string()), (3, "net1".to_string())])
    }

    fn v4(s: &str) -> RouteAddress {
        RouteAddress::Inet(s.parse().unwrap())
    }

    fn v6(s: &str) -> RouteAddress {
        RouteAddress::Inet6(s.parse().unwrap())
    }

    fn hop(index: u32, gateway: RouteAddress, flags: RouteNextHopFlags) -> RouteNextHop {
        let mut hop = RouteNextHop::default();
        hop.interface_index = index;
        hop.flags = flags;
        hop.attributes.push(RouteAttribute::Gateway(gateway));
        hop
    }

    #[test]
    fn a_plain_route_reads_every_field() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = 12;
        m.header.table = 100;
        m.header.protocol = RouteProtocol::Other(176);
        m.header.scope = NlScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.header.flags = RouteFlags::Onlink;
        m.attributes = vec![
            RouteAttribute::Table(100),
            RouteAttribute::Destination(v4("10.240.0.0")),
            RouteAttribute::Priority(5),
            RouteAttribute::Oif(2),
            RouteAttribute::Gateway(v4("10.244.1.1")),
            RouteAttribute::PrefSource(v4("10.244.1.2")),
        ];
        let routes = routes_from_message(&m, &names()).unwrap();
        assert_eq!(
            routes,
            vec![Route {
                key: RouteKey {
                    table: 100,
                    dst: "10.240.0.0/12".parse().unwrap(),
                    tos: 0,
                    metric: 5,
                    dev: Some("eth0".into()),
                    gateway: Some("10.244.1.1".parse().unwrap()),
                },
                scope: RouteScope::Universe,
                kind: RouteKind::Unicast,
                protocol: 176,
                prefsrc: Some("10.244.1.2".parse().unwrap()),
                onlink: true,
            }]
        );
    }

    #[test]
    fn a_route_without_destination_is_the_family_default_and_table_falls_back_to_header() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.table = 254;
        m.header.kind = RouteType::BlackHole;
        let routes = routes_from_message(&m, &names()).unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].key.table, 254);
        assert_eq!(routes[0].key.dst, Family::Ipv4.any());
        assert_eq!(routes[0].key.dev, None);
        assert_eq!(routes[0].kind, RouteKind::Blackhole);
    }

    #[test]
    fn a_multipath_route_is_one_route_per_hop() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet6;
        m.header.protocol = RouteProtocol::Boot;
        m.attributes = vec![
            RouteAttribute::Table(254),
            RouteAttribute::Priority(1024),
            RouteAttribute::MultiPath(vec![
                hop(2, v6("fd00:10:244:1::1"), RouteNextHopFlags::empty()),
                hop(3, v6("fd00:50::254"), RouteNextHopFlags::Onlink),
            ]),
        ];
        let routes = routes_from_message(&m, &names()).unwrap();
        let hops: Vec<_> = routes
            .iter()
            .map(|r| {
                (
                    r.key.dev.as_deref(),
                    r.key.gateway.map(|g| g.to_string()),
                    r.onlink,
                )
            })
            .collect();
        assert_eq!(
            hops,
            vec![
                (Some("eth0"), Some("fd00:10:244:1::1".to_string()), false),
                (Some("net1"), Some("fd00:50::254".to_string()), true),
            ]
        );
        assert!(routes
            .iter()
            .all(|r| r.key.metric == 1024 && r.protocol == 3));
        assert!(routes.iter().all(|r| r.key.dst == Family::Ipv6.any()));
    }

    #[test]
    fn cloned_routes_are_skipped_and_unknown_devices_ask_to_read_again() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.flags = RouteFlags::Cloned;
        assert!(routes_from_message(&m, &names()).unwrap().is_empty());
        m.header.flags = RouteFlags::empty();
        m.attributes.push(RouteAttribute::Oif(42));
        let err = routes_from_message(&m, &names()).unwrap_err();
        assert!(matches!(err, Error::TryAgain(_)), "{err:?}");
    }

    #[test]
    fn an_ipv4_route_via_an_ipv6_gateway_keeps_it() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.attributes = vec![
            RouteAttribute::Oif(2),
            RouteAttribute::Via(RouteVia::Inet6("fe80::1".parse().unwrap())),
        ];
        let routes = routes_from_message(&m, &names()).unwrap();
        assert_eq!(routes[0].key.gateway, Some("fe80::1".parse().unwrap()));
    }

    #[test]
    fn a_rule_reads_selectors_action_table_and_protocol() {
        let mut m = RuleMessage::default();
        m.header = RuleHeader::default();
        m.header.family = AddressFamily::Inet;
        m.header.dst_len = 12;
        m.header.action = NlRuleAction::ToTable;
        m.header.flags = RuleFlags::Invert;
        m.attributes = vec![
            RuleAttribute::Priority(1000),
            RuleAttribute::Destination("10.240.0.0".parse().unwrap()),
            RuleAttribute::Table(100),
            RuleAttribute::Iifname("eth0".into()),
            RuleAttribute::FwMark(0x10),
            RuleAttribute::FwMask(0xffff_ffff),
            RuleAttribute::Protocol(RouteProtocol::Other(176)),
        ];
        let rule = rule_from_message(&m).unwrap().unwrap();
        let mut expected = Rule::owned_lookup(
            Family::Ipv4,
            1000,
            None,
            Some("10.240.0.0/12".parse().unwrap()),
            100,
        );
        expected.key.iif = Some("eth0".into());
        expected.key.fwmark = Some(0x10);
        expected.key.fwmask = Some(0xffff_ffff);
        expected.key.invert = true;
        assert_eq!(rule, expected);
    }

    #[test]
    fn neighbours_other_than_permanent_are_skipped() {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.ifindex = 2;
        m.header.state = NeighbourState::Reachable;
        m.attributes = vec![
            NeighbourAttribute::Destination(NeighbourAddress::Inet("10.244.1.1".parse().unwrap())),
            NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 1, 1]),
            NeighbourAttribute::Protocol(RouteProtocol::Other(176)),
        ];
        assert_eq!(neighbour_from_message(&m, &names()).unwrap(), None);
        m.header.state = NeighbourState::Permanent;
        assert_eq!(
            neighbour_from_message(&m, &names()).unwrap(),
            Some(Neighbour {
                key: NeighbourKey {
                    dev: "eth0".into(),
                    addr: "10.244.1.1".parse().unwrap()
                },
                lladdr: Some(MacAddr([2, 0, 0, 0, 1, 1])),
                protocol: 176,
            })
        );
    }

    #[test]
    fn a_link_reads_kind_peer_and_six_byte_macs_only() {
        let mut m = LinkMessage::default();
        m.header.index = 2;
        m.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
            LinkAttribute::Link(7),
            LinkAttribute::LinkNetNsId(0),
            LinkAttribute::Address(vec![0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02]),
        ];
        let (name, link, mac) = link_from_message(&m).unwrap();
        assert_eq!(name, "eth0");
        assert_eq!(link.kind.as_deref(), Some("veth"));
        assert_eq!(
            link.peer,
            Some(LinkPeer {
                ifindex: 7,
                netnsid: Some(0)
            })
        );
        assert_eq!(mac, Some(MacAddr([0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02])));

        // The same index in another netns is a peer.
        m.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Link(2),
            LinkAttribute::LinkNetNsId(0),
        ];
        let (_, link, _) = link_from_message(&m).unwrap();
        assert_eq!(
            link.peer,
            Some(LinkPeer {
                ifindex: 2,
                netnsid: Some(0)
            })
        );

        // IFLA_LINK naming the link itself is no peer; a 20-byte (InfiniBand) address no MAC.
        m.attributes = vec![
            LinkAttribute::IfName("ib0".into()),
            LinkAttribute::Link(2),
            LinkAttribute::Address(vec![0; 20]),
        ];
        let (_, link, mac) = link_from_message(&m).unwrap();
        assert_eq!(link.peer, None);
        assert_eq!(mac, None);
    }

    #[test]
    fn addresses_keep_host_bits_and_prefer_ifa_local() {
        let mut m = AddressMessage::default();
        m.header.index = 2;
        m.header.prefix_len = 24;
        m.attributes = vec![
            AddressAttribute::Address("10.0.0.9".parse().unwrap()),
            AddressAttribute::Local("10.244.1.2".parse().unwrap()),
        ];
        assert_eq!(
            address_from_message(&m),
            Some((2, "10.244.1.2/24".parse().unwrap()))
        );
    }

    fn message(
        flags: u16,
        payload: NetlinkPayload<RouteNetlinkMessage>,
    ) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut message = NetlinkMessage::new(NetlinkHeader::default(), payload);
        message.header.flags = flags;
        message
    }

    fn route_payload() -> NetlinkPayload<RouteNetlinkMessage> {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(RouteMessage::default()))
    }

    fn done(code: i32) -> NetlinkPayload<RouteNetlinkMessage> {
        let mut done = DoneMessage::default();
        done.code = code;
        NetlinkPayload::Done(done)
    }

    fn collect_now(
        messages: Vec<NetlinkMessage<RouteNetlinkMessage>>,
        dump: bool,
    ) -> Result<Reply, Failure> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(collect(futures_util::stream::iter(messages), dump))
    }

    #[test]
    fn a_complete_dump_needs_done() {
        let reply = collect_now(vec![message(2, route_payload()), message(2, done(0))], true);
        assert!(
            matches!(reply, Ok(Reply::Complete(ref m)) if m.len() == 1),
            "{reply:?}"
        );
        let reply = collect_now(vec![message(2, route_payload())], true);
        assert!(matches!(reply, Err(Failure::Other(_))), "{reply:?}");
    }

    #[test]
    fn dump_intr_on_any_message_reads_again() {
        let reply = collect_now(
            vec![
                message(2 | NLM_F_DUMP_INTR, route_payload()),
                message(2, done(0)),
            ],
            true,
        );
        assert_eq!(reply, Ok(Reply::Interrupted));
        let reply = collect_now(
            vec![
                message(2, route_payload()),
                message(2 | NLM_F_DUMP_INTR, done(0)),
            ],
            true,
        );
        assert_eq!(reply, Ok(Reply::Interrupted));
    }

    #[test]
    fn errors_in_done_and_error_messages_carry_the_errno() {
        let reply = collect_now(vec![message(2, done(-libc::ENOENT))], true);
        assert_eq!(reply, Err(Failure::Errno(libc::ENOENT)));
        let mut error = ErrorMessage::default();
        error.code = NonZeroI32::new(-libc::EBUSY);
        let reply = collect_now(vec![message(0, NetlinkPayload::Error(error))], false);
        assert_eq!(reply, Err(Failure::Errno(libc::EBUSY)));
    }

    #[test]
    fn errno_maps_busy_and_again_to_try_again() {
        assert!(matches!(errno_error("x", libc::EBUSY), Error::TryAgain(_)));
        assert!(matches!(errno_error("x", libc::EAGAIN), Error::TryAgain(_)));
        let err = errno_error("ipv4 routes of table 7", libc::EPERM);
        let Error::Kernel { object, reason } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(object, "ipv4 routes of table 7");
        assert!(reason.contains("not permitted"), "{reason}");
    }

    fn links() -> Links {
        let link = |index| Link {
            index,
            kind: None,
            peer: None,
            addresses: Vec::new(),
        };
        Links {
            links: BTreeMap::from([("eth0".to_string(), link(2)), ("net1".to_string(), link(3))]),
            macs: BTreeMap::new(),
        }
    }

    fn model_route(table: u32, dst: &str, dev: &str, gateway: Option<&str>) -> Route {
        Route {
            key: RouteKey {
                table,
                dst: dst.parse().unwrap(),
                tos: 0,
                metric: 0,
                dev: Some(dev.to_string()),
                gateway: gateway.map(|g| g.parse().unwrap()),
            },
            scope: RouteScope::Universe,
            kind: RouteKind::Unicast,
            protocol: 176,
            prefsrc: None,
            onlink: false,
        }
    }

    fn request_of(write: Write) -> Request {
        write.request.expect("a request to send")
    }

    #[test]
    fn a_route_add_sends_every_field_and_reads_back_as_itself() {
        let mut route = model_route(500, "10.240.0.0/12", "net1", Some("192.168.50.254"));
        route.prefsrc = Some("192.168.50.2".parse().unwrap());
        route.onlink = true;
        route.key.metric = 7;
        let write = Write::add_route(&route, &links()).unwrap();
        assert_eq!(write.object(), route.ip_command("add"));
        let request = request_of(write);
        assert_eq!(request.flags, NLM_F_CREATE | NLM_F_APPEND);
        assert_eq!(request.already_so, &[libc::EEXIST]);
        let RouteNetlinkMessage::NewRoute(message) = request.message else {
            panic!("{:?}", request.message)
        };
        // Table 500 does not fit the header byte: RT_TABLE_UNSPEC there, RTA_TABLE says it.
        assert_eq!(message.header.table, 0);
        assert_eq!(message.header.protocol, RouteProtocol::Other(176));
        assert_eq!(message.header.kind, RouteType::Unicast);
        assert!(message.header.flags.contains(RouteFlags::Onlink));
        assert!(message.attributes.contains(&RouteAttribute::Oif(3)));
        let read = routes_from_message(&message, &links().names_by_index()).unwrap();
        assert_eq!(read, vec![route]);
    }

    #[test]
    fn a_default_route_has_no_destination_and_ipv4_metric_zero_is_left_out() {
        let route = model_route(254, "0.0.0.0/0", "eth0", Some("10.244.1.1"));
        let RouteNetlinkMessage::NewRoute(message) =
            request_of(Write::add_route(&route, &links()).unwrap()).message
        else {
            panic!()
        };
        assert_eq!(message.header.table, 254);
        assert!(!message.attributes.iter().any(|a| matches!(
            a,
            RouteAttribute::Destination(_) | RouteAttribute::Priority(_)
        )));
        // IPv6 spells its default metric out, so a delete matches only that metric.
        let route = model_route(254, "::/0", "eth0", Some("fd00::1"));
        let RouteNetlinkMessage::DelRoute(message) =
            request_of(Write::del_route(&route, &links()).unwrap()).message
        else {
            panic!()
        };
        assert!(message
            .attributes
            .contains(&RouteAttribute::Priority(IPV6_DEFAULT_METRIC)));
    }

    #[test]
    fn a_route_delete_names_the_protocol_and_matches_any_scope() {
        let mut route = model_route(100, "10.244.1.1/32", "eth0", None);
        route.scope = RouteScope::Link;
        route.prefsrc = Some("10.244.1.2".parse().unwrap());
        let request = request_of(Write::del_route(&route, &links()).unwrap());
        assert_eq!(request.already_so, &[libc::ESRCH, libc::ENOENT]);
        let RouteNetlinkMessage::DelRoute(message) = request.message else {
            panic!()
        };
        assert_eq!(message.header.scope, NlRouteScope::NoWhere);
        assert_eq!(message.header.protocol, RouteProtocol::Other(176));
        assert!(!message
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::PrefSource(_))));
    }

    #[test]
    fn a_missing_device_fails_an_add_and_is_gone_for_a_delete() {
        let route = model_route(100, "10.9.0.0/16", "nope0", None);
        let err = Write::add_route(&route, &links()).unwrap_err();
        let Error::Kernel { object, reason } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(object, &route.ip_command("add"));
        assert!(reason.contains("nope0"), "{reason}");
        assert!(Write::del_route(&route, &links())
            .unwrap()
            .request
            .is_none());
        let neighbour = Neighbour {
            key: NeighbourKey {
                dev: "nope0".into(),
                addr: "10.9.9.9".parse().unwrap(),
            },
            lladdr: None,
            protocol: 176,
        };
        assert!(Write::del_neighbour(&neighbour, &links()).request.is_none());
        assert!(Write::replace_neighbour(&neighbour, &links()).is_err());
    }

    #[test]
    fn a_rule_add_reads_back_as_itself_with_all_as_no_selector() {
        let mut rule = Rule::owned_lookup(
            Family::Ipv4,
            1000,
            Some("0.0.0.0/0".parse().unwrap()),
            Some("10.240.0.0/12".parse().unwrap()),
            500,
        );
        rule.key.oif = Some("net1".into());
        rule.key.invert = true;
        let request = request_of(Write::add_rule(&rule).unwrap());
        assert_eq!(request.flags, NLM_F_CREATE | NLM_F_EXCL);
        let RouteNetlinkMessage::NewRule(message) = request.message else {
            panic!()
        };
        assert_eq!(message.header.table, 0);
        assert!(!message
            .attributes
            .iter()
            .any(|a| matches!(a, RuleAttribute::Source(_))));
        let mut expected = rule.clone();
        expected.key.from = None;
        assert_eq!(rule_from_message(&message).unwrap(), Some(expected));

        rule.key.action = RuleAction::Other;
        assert!(Write::add_rule(&rule).is_err());
        let RouteNetlinkMessage::DelRule(message) = request_of(Write::del_rule(&rule)).message
        else {
            panic!()
        };
        assert_eq!(message.header.action, NlRuleAction::Unspec);
    }

    #[test]
    fn a_neighbour_replace_is_permanent_with_its_mac_and_protocol() {
        let neighbour = Neighbour {
            key: NeighbourKey {
                dev: "eth0".into(),
                addr: "fd00::1".parse().unwrap(),
            },
            lladdr: Some(MacAddr([2, 0, 0, 0, 1, 1])),
            protocol: 176,
        };
        let request = request_of(Write::replace_neighbour(&neighbour, &links()).unwrap());
        assert_eq!(request.flags, NLM_F_CREATE | NLM_F_REPLACE);
        let RouteNetlinkMessage::NewNeighbour(message) = request.message else {
            panic!()
        };
        assert_eq!(message.header.ifindex, 2);
        assert_eq!(
            neighbour_from_message(&message, &links().names_by_index()).unwrap(),
            Some(neighbour)
        );
    }

    #[test]
    fn the_codec_turns_an_undecodable_message_into_an_error_for_its_request() {
        // RTM_NEWLINK (16) with a 2-byte payload: too short for ifinfomsg.
        let mut bytes = BytesMut::new();
        let len: u32 = 16 + 4;
        bytes.extend_from_slice(&len.to_ne_bytes());
        bytes.extend_from_slice(&16u16.to_ne_bytes());
        bytes.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
        bytes.extend_from_slice(&77u32.to_ne_bytes());
        bytes.extend_from_slice(&4242u32.to_ne_bytes());
        bytes.extend_from_slice(&[1, 2, 0, 0]);
        let message = LoudCodec::decode::<RouteNetlinkMessage>(&mut bytes)
            .unwrap()
            .unwrap();
        assert_eq!(message.header.sequence_number, 77);
        assert_eq!(message.header.port_number, 4242);
        match message.payload {
            NetlinkPayload::Error(e) => assert_eq!(e.raw_code(), -libc::EBADMSG),
            other => panic!("{other:?}"),
        }
        assert!(bytes.is_empty());
    }
}
