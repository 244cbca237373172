//! netlink::dump: dumps issued together, each on a socket of its own (the kernel runs one
//! dump at a time per socket), awaited together; an interrupted dump (NLM_F_DUMP_INTR) is
//! read again. It must not decode the answers nor know what a caller reads them for.

use futures_util::future::join_all;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{NetlinkMessage, NLM_F_DUMP, NLM_F_REQUEST};
use rtnetlink::proto::sys::SocketAddr;
use rtnetlink::proto::ConnectionHandle;

use super::transport::{answer, Failure, Reply};
use super::Netlink;
use crate::error::{Error, Result};

/// Dumps flagged NLM_F_DUMP_INTR (the object list changed mid-dump) are read again this
/// many times in all before giving up with `Error::TryAgain`.
const DUMP_ATTEMPTS: usize = 5;

/// One dump request, tagged with what it answers (`part`), named for errors.
pub(super) struct Dump<P> {
    pub(super) part: P,
    object: String,
    request: RouteNetlinkMessage,
    /// Errnos that mean "nothing there": an empty answer, not a failure.
    empty_on: &'static [i32],
}

impl<P> Dump<P> {
    pub(super) fn new(part: P, object: String, request: RouteNetlinkMessage) -> Dump<P> {
        Dump {
            part,
            object,
            request,
            empty_on: &[],
        }
    }

    pub(super) fn empty_on(self, errnos: &'static [i32]) -> Dump<P> {
        Dump {
            empty_on: errnos,
            ..self
        }
    }
}

impl Netlink {
    /// Every dump at once, each on its own socket (more dumps than the handle has sockets
    /// go in waves), the answers in the order of `dumps`; the first failure, in that order,
    /// fails them all.
    pub(super) fn dump_all<P>(&self, dumps: &[Dump<P>]) -> Result<Vec<Vec<RouteNetlinkMessage>>> {
        let connections = self.connections(dumps.len())?;
        let mut answers = Vec::with_capacity(dumps.len());
        for wave in dumps.chunks(connections.len()) {
            let pending = wave
                .iter()
                .zip(&connections)
                .map(|(dump, connection)| dump_on(connection, dump));
            answers.extend(self.block_on(join_all(pending)));
        }
        answers.into_iter().collect()
    }
}

/// One dump on one connection, read again while the kernel flags it interrupted.
async fn dump_on<P>(
    connection: &ConnectionHandle<RouteNetlinkMessage>,
    dump: &Dump<P>,
) -> Result<Vec<RouteNetlinkMessage>> {
    let object = dump.object.as_str();
    for _ in 0..DUMP_ATTEMPTS {
        let mut message = NetlinkMessage::from(dump.request.clone());
        message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let replies = connection
            .request(message, SocketAddr::new(0, 0))
            .map_err(|e| Failure::Other(e.to_string()).into_error(object))?;
        match answer(replies, true).await {
            Ok(Reply::Complete(messages)) => return Ok(messages),
            Ok(Reply::Interrupted) => {
                tracing::debug!(object, "netlink dump interrupted, reading again");
            }
            Err(Failure::Errno(errno)) if dump.empty_on.contains(&errno) => return Ok(Vec::new()),
            Err(failure) => return Err(failure.into_error(object)),
        }
    }
    Err(Error::TryAgain(format!(
        "{object}: the dump was interrupted by concurrent changes {DUMP_ATTEMPTS} times"
    )))
}
