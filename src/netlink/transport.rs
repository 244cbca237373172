//! netlink::transport: what a request's answer means (`Reply`, `Failure`, errno mapped to
//! `Error`, timeouts) and the codec that fails loudly on undecodable messages. It must not
//! build requests nor know which object a write is for beyond the name it is given.

use std::fmt::Debug;
use std::io;
use std::num::NonZeroI32;
use std::time::Duration;

use bytes::BytesMut;
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::packet_core::{
    ErrorMessage, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable, NLM_F_DUMP_INTR,
};
use rtnetlink::proto::{NetlinkCodec, NetlinkMessageCodec};

use crate::error::Error;

/// A request the kernel has not answered by then is given up (`TryAgain`): the socket's
/// receive timeout (`socket`).
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The messages answering one request, or the news that the dump must be read again.
#[derive(Debug, PartialEq)]
pub(super) enum Reply {
    Complete(Vec<RouteNetlinkMessage>),
    Interrupted,
}

/// Why a request failed, before it is named and turned into an `Error`.
#[derive(Debug, PartialEq)]
pub(super) enum Failure {
    /// The kernel's answer: a positive errno.
    Errno(i32),
    Timeout,
    /// The socket's receive queue overflowed and the kernel dropped answers (ENOBUFS).
    Lost,
    Other(String),
    Error(Error),
}

impl Failure {
    pub(super) fn into_error(self, object: &str) -> Error {
        match self {
            Failure::Errno(errno) => errno_error(object, errno),
            Failure::Timeout => Error::TryAgain(format!(
                "{object}: no answer from the kernel within {}s",
                REQUEST_TIMEOUT.as_secs()
            )),
            Failure::Lost => Error::TryAgain(format!(
                "{object}: the kernel's answer was lost (netlink overrun)"
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
pub(super) fn errno_error(object: &str, errno: i32) -> Error {
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
pub(super) fn unreachable_errno(errno: i32) -> bool {
    matches!(errno, libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EACCES)
}

/// Reads the answer to one request, message by message from `next` (the socket's
/// messages for this request, in order). A dump ends with NLMSG_DONE, a write's answer with
/// its ACK, a get's with its one message. A dump flagged interrupted anywhere, or whose
/// answers the kernel dropped, is to be read again.
pub(super) fn collect(
    mut next: impl FnMut() -> Result<NetlinkMessage<RouteNetlinkMessage>, Failure>,
    dump: bool,
) -> Result<Reply, Failure> {
    let mut messages = Vec::new();
    let mut interrupted = false;
    loop {
        let message = match next() {
            Ok(message) => message,
            Err(Failure::Lost) => return Ok(Reply::Interrupted),
            Err(failure) => return Err(failure),
        };
        if message.header.flags & NLM_F_DUMP_INTR != 0 {
            interrupted = true;
        }
        match message.payload {
            NetlinkPayload::InnerMessage(inner) => {
                messages.push(inner);
                if !dump {
                    break;
                }
            }
            NetlinkPayload::Done(done) => {
                match done.code {
                    0 => {}
                    code if -code == libc::EINTR => interrupted = true,
                    code => return Err(Failure::Errno(-code)),
                }
                break;
            }
            NetlinkPayload::Error(error) => match error.code {
                Some(code) if -code.get() == libc::EINTR && dump => {
                    interrupted = true;
                    break;
                }
                Some(code) => return Err(Failure::Errno(-code.get())),
                None => break,
            },
            NetlinkPayload::Overrun(_) => interrupted = true,
            _ => {}
        }
    }
    if interrupted {
        return Ok(Reply::Interrupted);
    }
    Ok(Reply::Complete(messages))
}

/// netlink-proto's codec with one change: a message netlink-packet-route cannot parse is
/// not dropped (which would make a dump silently short) but answers its request with
/// EBADMSG, so the read fails loudly.
pub(super) struct LoudCodec;

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

pub(super) fn io_failure(object: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(errno) => errno_error(object, errno),
        None => Error::Kernel {
            object: object.to_string(),
            reason: e.to_string(),
        },
    }
}

pub(super) fn refused(object: &str, reason: String) -> Error {
    Error::Kernel {
        object: object.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests;
