//! netlink: the only module that talks rtnetlink. It reads links, addresses, routes, rules
//! and neighbours of the calling thread's netns into model types (and will write them).
//! It must not decide anything: no filtering by ownership, no setns, no sysctls.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::io;
use std::net::IpAddr;
use std::num::NonZeroI32;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::stream::{Stream, StreamExt};
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteNextHopFlags, RouteType, RouteVia,
};
use netlink_packet_route::rule::{
    RuleAction as NlRuleAction, RuleAttribute, RuleFlags, RuleMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::packet_core::{
    ErrorMessage, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use rtnetlink::proto::sys::{protocols::NETLINK_ROUTE, AsyncSocket, SocketAddr, TokioSocket};
use rtnetlink::proto::{ConnectionHandle, NetlinkCodec, NetlinkMessageCodec};

use crate::error::{Error, Result};
use crate::model::{
    Family, Link, LinkPeer, MacAddr, Neighbour, NeighbourKey, Route, RouteKey, RouteKind,
    RouteScope, Rule, RuleAction, RuleKey,
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
        let names = links.names_by_index();
        let mut routes = Vec::new();
        for family in Family::all() {
            for &table in tables {
                let object = format!("{family} routes of table {table}");
                let messages = match self.try_dump(&object, || {
                    RouteNetlinkMessage::GetRoute(route_dump_request(family, table))
                }) {
                    Ok(messages) => messages,
                    // Strict dumps of a table that does not exist fail with ENOENT.
                    Err(Failure::Errno(libc::ENOENT)) => Vec::new(),
                    Err(failure) => return Err(failure.into_error(&object)),
                };
                for message in &messages {
                    if let RouteNetlinkMessage::NewRoute(message) = message {
                        for route in routes_from_message(message, &names)? {
                            if route.key.table == table {
                                routes.push(route);
                            }
                        }
                    }
                }
            }
        }
        Ok(routes)
    }

    /// All policy rules of both families.
    pub fn rules(&self) -> Result<Vec<Rule>> {
        let mut rules = Vec::new();
        for family in Family::all() {
            let messages = self.dump(&format!("{family} rules"), || {
                let mut request = RuleMessage::default();
                request.header.family = address_family(family);
                RouteNetlinkMessage::GetRule(request)
            })?;
            for message in &messages {
                if let RouteNetlinkMessage::NewRule(message) = message {
                    rules.extend(rule_from_message(message)?);
                }
            }
        }
        Ok(rules)
    }

    /// The permanent neighbour entries of both families.
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
        let replies = self
            .conn
            .request(message, SocketAddr::new(0, 0))
            .map_err(|e| Failure::Other(e.to_string()))?;
        self.rt
            .block_on(async { tokio::time::timeout(REQUEST_TIMEOUT, collect(replies, dump)).await })
            .map_err(|_| Failure::Timeout)?
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
/// names the table, so tables above 255 work too.
fn route_dump_request(family: Family, table: u32) -> RouteMessage {
    let mut request = RouteMessage::default();
    request.header.address_family = address_family(family);
    request.attributes.push(RouteAttribute::Table(table));
    request
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
