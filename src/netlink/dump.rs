//! netlink::dump: the dumps of one read, one after another on the handle's socket; an
//! interrupted dump (NLM_F_DUMP_INTR) is read again. It must not decode the answers nor
//! know what a caller reads them for.

use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{NetlinkMessage, NLM_F_DUMP, NLM_F_REQUEST};

use super::transport::{Failure, Reply};
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
    /// Every dump, in turn, the answers in the order of `dumps`; the first failure stops
    /// the read. In turn on one socket rather than at once on a socket each: the kernel
    /// does a dump's work in the syscalls of the thread that asks and reads it, so dumps
    /// on one thread overlap nothing, and each extra socket only adds its setup and its
    /// receive buffer (ARCHITECTURE, "Visits to the pod").
    pub(super) fn dump_all<P>(&self, dumps: &[Dump<P>]) -> Result<Vec<Vec<RouteNetlinkMessage>>> {
        dumps.iter().map(|dump| self.dump_on(dump)).collect()
    }

    /// One dump on the handle's socket, read again while the kernel flags it interrupted.
    fn dump_on<P>(&self, dump: &Dump<P>) -> Result<Vec<RouteNetlinkMessage>> {
        let object = dump.object.as_str();
        for _ in 0..DUMP_ATTEMPTS {
            let mut message = NetlinkMessage::from(dump.request.clone());
            message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
            match self.exchange(message, true) {
                Ok(Reply::Complete(messages)) => return Ok(messages),
                Ok(Reply::Interrupted) => {
                    tracing::debug!(object, "netlink dump interrupted, reading again");
                }
                Err(Failure::Errno(errno)) if dump.empty_on.contains(&errno) => {
                    return Ok(Vec::new())
                }
                Err(failure) => return Err(failure.into_error(object)),
            }
        }
        Err(Error::TryAgain(format!(
            "{object}: the dump was interrupted by concurrent changes {DUMP_ATTEMPTS} times"
        )))
    }
}
