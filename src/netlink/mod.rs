//! netlink: the only module that talks rtnetlink. It reads links, addresses, routes, rules
//! and neighbours of a netns (the calling thread's own, or the one a `NetnsVisitor` visits)
//! into model types, and writes routes, rules, neighbours and MACs from them: one request
//! per object with NLM_F_ACK, many in flight at once (`write_many`), errno mapped to
//! meaning (EEXIST on an add and ESRCH/ENOENT on a delete are "already so"). It must not
//! decide anything: no filtering by ownership, no choice of what a replace removes, no
//! ordering or rollback, no setns, no sysctls.
//! Here: the calling thread's `Netlink` handles (one per netns it talks to: a blocking
//! socket bound to that netns, opened there) and the single requests; `read` (what a read
//! asks for and gives), `dump` (the dumps of a read in turn on the handle's socket),
//! `socket` (requests sent, their answers read back), `transport` (answers, failures,
//! codec), `write` (writes), `encode` (model -> messages),
//! `decode` (messages -> model), `subscribe` (the agent's subscribe-only sockets and the
//! events they carry).

mod decode;
mod dump;
mod encode;
mod read;
mod socket;
pub mod subscribe;
mod transport;
mod write;

use std::cell::RefCell;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;

use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::RouteAttribute;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{NetlinkMessage, NLM_F_REQUEST};

use crate::error::{Error, Result};
use crate::netns::{self, NetnsId, NetnsVisitor};
use decode::route_addr;
use encode::route_get_request;
pub use read::{Address, Links, Read, ReadRequest, RouteFilter};
use socket::Channel;
use transport::{collect, refused, unreachable_errno, Failure, Reply};
pub use write::{Outcome, Write};

/// A netlink socket bound to the netns it was opened in: every call blocks the calling
/// thread until the kernel has answered. The one socket carries the writes, the single
/// requests and the dumps, in order. A thread keeps one per netns it talks to
/// (`on_this_thread`, `in_netns`). Holds no state of what it read: whoever writes names the
/// links its devices are in. Must not be used from inside an async context (it would block
/// the event loop's thread).
pub struct Netlink {
    channel: Channel,
}

/// A socket opened in some netns, not yet a thread's handle: what a visit to a netns brings
/// back (`Opened::here`) so that the thread, back in its own netns, can talk to the one it
/// visited (a socket stays bound to the netns it was created in).
pub struct Opened {
    channel: Channel,
}

impl Opened {
    /// One strict-checking rtnetlink socket in the calling thread's netns.
    pub fn here() -> Result<Opened> {
        Ok(Opened {
            channel: Channel::open_here()?,
        })
    }
}

/// Which netns a handle talks to: the thread's own (None), or another by its nsfs inode.
type HandleKey = Option<NetnsId>;

/// Handles of other netns a thread keeps at once. A run talks to one pod; an operator
/// command walks pods one after another, so older ones are closed, not hoarded.
const OTHER_NETNS_HANDLES: usize = 2;

thread_local! {
    /// The calling thread's handles, each opened on first use, in the order opened.
    static HANDLES: RefCell<Vec<(HandleKey, Rc<Netlink>)>> = const { RefCell::new(Vec::new()) };
}

impl Netlink {
    /// Runs `f` with the calling thread's handle of its own netns, opened on first use and
    /// kept until the thread ends. Refused inside an async context (a nested `block_on`
    /// would panic) and inside a visit to another netns: the handle opened there would be
    /// that netns's, kept as the thread's own.
    pub fn on_this_thread<T>(f: impl FnOnce(&Netlink) -> Result<T>) -> Result<T> {
        if netns::visiting() {
            return Err(refused(
                "netlink socket",
                "the thread is visiting another netns".to_string(),
            ));
        }
        let nl = handle(None, || Opened::here().map(Netlink::from))?;
        f(&nl)
    }

    /// Runs `f`, on the calling thread, with its handle of the netns `visitor` visits (the
    /// one its path names now): opened in a visit on first use, then used from the
    /// thread's own netns, so the thread talks to that netns without staying in it.
    pub fn in_netns<T>(visitor: &NetnsVisitor, f: impl FnOnce(&Netlink) -> Result<T>) -> Result<T> {
        let netns = visitor.netns()?;
        let nl = handle(Some(netns), || {
            visitor.visit(Opened::here).map(Netlink::from)
        })?;
        f(&nl)
    }
}

/// Closes the calling thread's handles of other netns. A socket keeps its netns alive (and
/// with it a pod's macvlan or VF): a long-lived thread that walks pods (`router agent`'s
/// repairs) calls this after each one, so that it holds nothing in a pod between repairs.
pub fn close_other_netns_handles() {
    let _ = HANDLES.try_with(|h| h.borrow_mut().retain(|(key, _)| key.is_none()));
}

fn thread_ending() -> Error {
    refused("netlink socket", "the thread is ending".to_string())
}

impl From<Opened> for Netlink {
    fn from(opened: Opened) -> Netlink {
        Netlink {
            channel: opened.channel,
        }
    }
}

/// The calling thread's handle for `key`, opened by `open` when it has none. Refused
/// inside an async context (a blocking wait there would stall the event loop). Another netns's handle
/// beyond the last `OTHER_NETNS_HANDLES` is closed.
fn handle(key: HandleKey, open: impl FnOnce() -> Result<Netlink>) -> Result<Rc<Netlink>> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(refused(
            "netlink socket",
            "cannot block on netlink inside an async runtime".to_string(),
        ));
    }
    let found = HANDLES
        .try_with(|h| {
            h.borrow()
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, nl)| Rc::clone(nl))
        })
        .map_err(|_| thread_ending())?;
    if let Some(nl) = found {
        return Ok(nl);
    }
    let nl = Rc::new(open()?);
    HANDLES
        .try_with(|h| {
            let mut handles = h.borrow_mut();
            handles.push((key, Rc::clone(&nl)));
            let others = handles.iter().filter(|(k, _)| k.is_some()).count();
            if others > OTHER_NETNS_HANDLES {
                if let Some(oldest) = handles.iter().position(|(k, _)| k.is_some()) {
                    handles.remove(oldest);
                }
            }
        })
        .map_err(|_| thread_ending())?;
    Ok(nl)
}

impl Netlink {
    /// The source address the kernel picks toward `dst` (`ip route get`); None when
    /// `dst` is unreachable or the answer names no source.
    pub fn preferred_src(&self, dst: IpAddr) -> Result<Option<IpAddr>> {
        let object = format!("route get {dst}");
        let request = RouteNetlinkMessage::GetRoute(route_get_request(dst));
        let messages = match self.get(request, &object) {
            Ok(messages) => messages,
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
        let messages = self
            .get(RouteNetlinkMessage::GetNsId(request), object)
            .map_err(|failure| failure.into_error(object))?;
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

    /// The answer to one request that is not a dump (`object` names it in errors).
    fn get(
        &self,
        request: RouteNetlinkMessage,
        object: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, Failure> {
        let mut message = NetlinkMessage::from(request);
        message.header.flags = NLM_F_REQUEST;
        match self.exchange(message, false)? {
            Reply::Complete(messages) => Ok(messages),
            Reply::Interrupted => Err(Failure::Error(Error::TryAgain(format!(
                "{object}: interrupted"
            )))),
        }
    }

    fn exchange(
        &self,
        message: NetlinkMessage<RouteNetlinkMessage>,
        dump: bool,
    ) -> Result<Reply, Failure> {
        let seq = self.channel.send(message)?;
        collect(|| self.channel.next(seq), dump)
    }
}
