//! netlink::subscribe: subscribe-only rtnetlink sockets for `router agent`: a socket bound
//! to the multicast groups of links, addresses, routes, rules and neighbours of both
//! families in the netns it is opened in (opened by a thread inside that netns; the socket
//! stays bound to it), non-blocking, never sent a request; and the decoding of what it
//! receives into `Event`s, the few facts of a change the agent maps to attachments.
//! Must not decide which attachment an event concerns (the agent does), nor send anything.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::route::{RouteAttribute, RouteMessage};
use netlink_packet_route::rule::{RuleAttribute, RuleMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use rtnetlink::packet_core::{NetlinkBuffer, NetlinkMessage, NetlinkPayload};

use super::decode::{address_from_message, route_addr};
use super::transport::io_failure;
use crate::error::Result;
use crate::model::{MacAddr, ROUTER_PROTOCOL};

/// The rtnetlink multicast groups (linux/rtnetlink.h, `enum rtnetlink_groups`) the agent
/// listens to: every kind of object a plan is made from or applies.
const GROUPS: [u32; 8] = [
    1,  // RTNLGRP_LINK
    3,  // RTNLGRP_NEIGH
    5,  // RTNLGRP_IPV4_IFADDR
    7,  // RTNLGRP_IPV4_ROUTE
    8,  // RTNLGRP_IPV4_RULE
    9,  // RTNLGRP_IPV6_IFADDR
    11, // RTNLGRP_IPV6_ROUTE
    19, // RTNLGRP_IPV6_RULE
];

/// NUD_PERMANENT: only permanent neighbours are objects router models; the rest is the
/// kernel's cache, whose churn must not wake the agent (router's own, protocol 176, are
/// permanent too).
const NUD_PERMANENT: u16 = 0x80;

/// A subscribe-only rtnetlink socket, bound to the netns of the thread that opened it.
/// Closing it (dropping) lets that netns go.
#[derive(Debug)]
pub struct Subscription {
    socket: Socket,
}

impl Subscription {
    /// Opens the socket in the calling thread's netns and joins the groups. Its receive
    /// buffer is the kernel's default: a burst it cannot hold is reported as an overflow
    /// (ENOBUFS), which the agent answers with a full read of that netns.
    pub fn open_here() -> Result<Subscription> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| io_failure("netlink subscription", e))?;
        let mask = GROUPS.iter().fold(0u32, |mask, g| mask | (1 << (g - 1)));
        socket
            .bind(&SocketAddr::new(0, mask))
            .map_err(|e| io_failure("netlink subscription", e))?;
        socket
            .set_non_blocking(true)
            .map_err(|e| io_failure("netlink subscription", e))?;
        Ok(Subscription { socket })
    }

    /// One datagram (several messages) into `buf`, without waiting: `WouldBlock` when there
    /// is none, `ENOBUFS` (`is_overflow`) when the kernel dropped messages for this socket.
    pub fn recv(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        buf.clear();
        self.socket.recv(buf, 0)
    }
}

impl AsRawFd for Subscription {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// Whether a receive error means the socket's buffer overflowed (messages were lost).
pub fn is_overflow(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::ENOBUFS)
}

/// Whether an object was added (or changed) or removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    New,
    Deleted,
}

/// One kernel change, reduced to what the agent maps to attachments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Route {
        change: Change,
        table: u32,
        dst: Option<IpAddr>,
        /// Protocol 176: router's own.
        owned: bool,
    },
    Rule {
        change: Change,
        owned: bool,
    },
    /// Permanent neighbours only.
    Neighbour {
        change: Change,
        dst: Option<IpAddr>,
        owned: bool,
    },
    Link {
        change: Change,
        index: u32,
        name: Option<String>,
        mac: Option<MacAddr>,
    },
    Address {
        change: Change,
        /// The link holding it.
        index: u32,
        address: IpAddr,
    },
}

impl Event {
    /// Router's own addition (by the plugin or the agent itself): nothing to repair.
    pub fn is_own_addition(&self) -> bool {
        match self {
            Event::Route { change, owned, .. }
            | Event::Rule { change, owned }
            | Event::Neighbour { change, owned, .. } => *change == Change::New && *owned,
            Event::Link { .. } | Event::Address { .. } => false,
        }
    }
}

/// The events in one datagram; messages of no interest (dynamic neighbours, other kinds)
/// and undecodable ones are left out.
pub fn decode_events(datagram: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    let mut rest = datagram;
    while let Ok(buf) = NetlinkBuffer::new_checked(rest) {
        let len = (buf.length() as usize).max(16);
        let aligned = (len + 3) & !3;
        if let Ok(message) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len]) {
            if let NetlinkPayload::InnerMessage(inner) = message.payload {
                events.extend(event_of(&inner));
            }
        }
        if aligned >= rest.len() {
            break;
        }
        rest = &rest[aligned..];
    }
    events
}

fn event_of(message: &RouteNetlinkMessage) -> Option<Event> {
    use RouteNetlinkMessage as M;
    match message {
        M::NewRoute(m) => Some(route_event(m, Change::New)),
        M::DelRoute(m) => Some(route_event(m, Change::Deleted)),
        M::NewRule(m) => Some(rule_event(m, Change::New)),
        M::DelRule(m) => Some(rule_event(m, Change::Deleted)),
        M::NewNeighbour(m) => neighbour_event(m, Change::New),
        M::DelNeighbour(m) => neighbour_event(m, Change::Deleted),
        M::NewLink(m) => Some(link_event(m, Change::New)),
        M::DelLink(m) => Some(link_event(m, Change::Deleted)),
        M::NewAddress(m) => address_event(m, Change::New),
        M::DelAddress(m) => address_event(m, Change::Deleted),
        _ => None,
    }
}

fn route_event(message: &RouteMessage, change: Change) -> Event {
    let mut table = u32::from(message.header.table);
    let mut dst = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(addr) => dst = route_addr(addr),
            _ => {}
        }
    }
    Event::Route {
        change,
        table,
        dst,
        owned: u8::from(message.header.protocol) == ROUTER_PROTOCOL,
    }
}

fn rule_event(message: &RuleMessage, change: Change) -> Event {
    let owned = message
        .attributes
        .iter()
        .any(|a| matches!(a, RuleAttribute::Protocol(p) if u8::from(*p) == ROUTER_PROTOCOL));
    Event::Rule { change, owned }
}

fn neighbour_event(message: &NeighbourMessage, change: Change) -> Option<Event> {
    let permanent = u16::from(message.header.state) & NUD_PERMANENT != 0;
    let mut dst = None;
    let mut owned = false;
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                dst = Some(IpAddr::V4(*a))
            }
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                dst = Some(IpAddr::V6(*a))
            }
            NeighbourAttribute::Protocol(p) => owned = u8::from(*p) == ROUTER_PROTOCOL,
            _ => {}
        }
    }
    // A deleted entry is announced in state FAILED, whatever it was: router's own are
    // known by their protocol.
    (permanent || owned).then_some(Event::Neighbour { change, dst, owned })
}

fn link_event(message: &LinkMessage, change: Change) -> Event {
    let mut mac = None;
    let mut name = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::Address(bytes) => {
                mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr)
            }
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            _ => {}
        }
    }
    Event::Link {
        change,
        index: message.header.index,
        name,
        mac,
    }
}

fn address_event(message: &AddressMessage, change: Change) -> Option<Event> {
    let (index, net) = address_from_message(message)?;
    Some(Event::Address {
        change,
        index,
        address: net.addr(),
    })
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::New => "added",
            Change::Deleted => "deleted",
        })
    }
}

/// The words of an event in the agent's log lines.
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whose = |owned: bool| if owned { "router's " } else { "" };
        match self {
            Event::Route {
                change,
                table,
                dst,
                owned,
            } => {
                write!(f, "{}route", whose(*owned))?;
                if let Some(dst) = dst {
                    write!(f, " to {dst}")?;
                }
                write!(f, " in table {table} {change}")
            }
            Event::Rule { change, owned } => write!(f, "{}rule {change}", whose(*owned)),
            Event::Neighbour { change, dst, owned } => {
                write!(f, "{}permanent neighbour", whose(*owned))?;
                if let Some(dst) = dst {
                    write!(f, " {dst}")?;
                }
                write!(f, " {change}")
            }
            Event::Link {
                change, index, mac, ..
            } => match (change, mac) {
                (Change::New, Some(mac)) => write!(f, "link {index} now has MAC {mac}"),
                _ => write!(f, "link {index} {change}"),
            },
            Event::Address {
                change, address, ..
            } => write!(f, "address {address} {change}"),
        }
    }
}
