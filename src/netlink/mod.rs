//! netlink: the only module that talks rtnetlink. It reads links, addresses, routes, rules
//! and neighbours of the calling thread's netns into model types, and writes routes, rules,
//! neighbours and MACs from them: one request per object with NLM_F_ACK, many in flight at
//! once (`write_many`), errno mapped to meaning (EEXIST on an add and ESRCH/ENOENT on a
//! delete are "already so"). It must not decide anything: no filtering by ownership, no
//! choice of what a replace removes, no ordering or rollback, no setns, no sysctls.
//! Here: the `Netlink` handle (the calling thread's, kept for its life: a runtime and its
//! sockets) and the single requests; `read` (what a read asks for and gives), `dump` (the
//! dumps of a read at once, a socket each), `transport` (answers, failures, codec), `write`
//! (writes), `encode` (model -> messages), `decode` (messages -> model).

mod decode;
mod dump;
mod encode;
mod read;
mod transport;
mod write;

use std::cell::{OnceCell, RefCell};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;

use futures_util::stream::Stream;
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::RouteAttribute;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{NetlinkMessage, NLM_F_REQUEST};
use rtnetlink::proto::sys::{protocols::NETLINK_ROUTE, AsyncSocket, SocketAddr, TokioSocket};
use rtnetlink::proto::ConnectionHandle;

use crate::error::{Error, Result};
use decode::route_addr;
use encode::route_get_request;
pub use read::{Address, Links, Read, Reads, RouteFilter};
use transport::{answer, io_failure, refused, unreachable_errno, Failure, LoudCodec, Reply};
pub use write::{Outcome, Write};

/// A netlink connection bound to the netns of the thread that created it, on its own
/// current-thread tokio runtime: every call blocks the calling thread until the kernel has
/// answered. Its one socket carries the writes, the single requests and the dumps, in
/// order. Each thread has one (`on_this_thread`), kept for its life, with the links its
/// last read found (`known`). Must not be used from inside an async context.
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    connection: ConnectionHandle<RouteNetlinkMessage>,
    /// The links this thread's latest read found: what writes name devices with, and what
    /// later reads of the same run name routes with, without a link dump of their own
    /// (see `links_naming`, `read_naming_any`).
    known: RefCell<Option<Rc<Links>>>,
}

thread_local! {
    /// The calling thread's handle, opened on first use.
    static THIS_THREAD: OnceCell<Netlink> = const { OnceCell::new() };
}

impl Netlink {
    /// Runs `f` with the calling thread's handle, opened in the thread's netns on first use
    /// and kept until the thread ends: a run's reads and writes on one thread share its
    /// sockets. Refused inside an async context (a nested `block_on` would panic).
    pub fn on_this_thread<T>(f: impl FnOnce(&Netlink) -> Result<T>) -> Result<T> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(refused(
                "netlink socket",
                "cannot block on netlink inside an async runtime".to_string(),
            ));
        }
        THIS_THREAD
            .try_with(|cell| {
                let nl = match cell.get() {
                    Some(nl) => nl,
                    None => {
                        let opened = Netlink::open()?;
                        cell.get_or_init(|| opened)
                    }
                };
                f(nl)
            })
            .map_err(|_| refused("netlink socket", "the thread is ending".to_string()))?
    }

    /// A runtime and one strict-checking rtnetlink socket in the calling thread's netns.
    fn open() -> Result<Netlink> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| io_failure("netlink runtime", e))?;
        let connection = connect(&rt)?;
        Ok(Netlink {
            rt,
            connection,
            known: RefCell::new(None),
        })
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.rt.block_on(future)
    }

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
        let replies = self.issue(message)?;
        self.block_on(answer(replies, dump))
    }

    /// Hands one request to the connection; its answer arrives on the returned stream.
    /// Nothing is sent until the runtime runs (`block_on`), then requests go out in the
    /// order they were issued.
    fn issue(
        &self,
        message: NetlinkMessage<RouteNetlinkMessage>,
    ) -> Result<impl Stream<Item = NetlinkMessage<RouteNetlinkMessage>> + Unpin, Failure> {
        self.connection
            .request(message, SocketAddr::new(0, 0))
            .map_err(|e| Failure::Other(e.to_string()))
    }
}

/// A strict-checking rtnetlink socket in the calling thread's netns, its connection
/// running on `rt`.
fn connect(rt: &tokio::runtime::Runtime) -> Result<ConnectionHandle<RouteNetlinkMessage>> {
    // The socket joins the netns of the thread that creates it: this one.
    let (mut connection, handle, _unsolicited) = {
        let _context = rt.enter();
        rtnetlink::proto::new_connection_with_codec::<RouteNetlinkMessage, TokioSocket, LoudCodec>(
            NETLINK_ROUTE,
        )
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
    Ok(handle)
}
