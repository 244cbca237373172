//! netlink::socket: a handle's one blocking rtnetlink socket, bound to the netns of the
//! thread that opened it. It sends a request under a sequence number of its own and hands
//! back, in order, the messages that answer it. It must not interpret an answer (that is
//! `transport`) nor build requests.
//!
//! Blocking calls rather than an async connection: the kernel does a request's work inside
//! the `sendto` that carries it, so its answer is queued by the time `sendto` returns and a
//! plain `recv` takes it without waiting. An event loop would only add its own calls
//! (readiness polls, wake-ups, a `recv` that finds nothing) around every request.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;

use bytes::BytesMut;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
use nix::sys::time::TimeVal;
use rtnetlink::packet_core::NetlinkMessage;
use rtnetlink::proto::NetlinkMessageCodec;

use super::transport::{io_failure, Failure, LoudCodec, REQUEST_TIMEOUT};
use crate::error::Result;

/// Room for the largest datagram the kernel builds for a dump (it sizes them to the
/// reader's buffer, at most 32 KiB), with margin.
const RECEIVE_BUFFER: usize = 64 * 1024;

/// One strict-checking rtnetlink socket and what it has received but not yet handed out.
pub(super) struct Channel {
    socket: Socket,
    /// The sequence number of the last request sent.
    last_sent: Cell<u32>,
    /// Messages received and decoded, not yet asked for, oldest first.
    received: RefCell<VecDeque<NetlinkMessage<RouteNetlinkMessage>>>,
    buffer: RefCell<BytesMut>,
}

impl Channel {
    /// A socket in the calling thread's netns (a socket stays in the netns it was created
    /// in, whichever thread uses it later).
    pub(super) fn open_here() -> Result<Channel> {
        let socket = Socket::new(NETLINK_ROUTE).map_err(|e| io_failure("netlink socket", e))?;
        // NETLINK_GET_STRICT_CHK: the kernel honours the table filter of route dumps (and
        // rejects malformed requests instead of ignoring their attributes).
        socket
            .set_netlink_get_strict_chk(true)
            .map_err(|e| io_failure("netlink socket (NETLINK_GET_STRICT_CHK)", e))?;
        // A receive that waits this long means the kernel will not answer: the request
        // fails as timed out instead of blocking the run forever.
        let timeout = TimeVal::new(REQUEST_TIMEOUT.as_secs() as _, 0);
        setsockopt(&socket, ReceiveTimeout, &timeout)
            .map_err(|e| io_failure("netlink socket (SO_RCVTIMEO)", io::Error::from(e)))?;
        Ok(Channel {
            socket,
            last_sent: Cell::new(0),
            received: RefCell::new(VecDeque::new()),
            buffer: RefCell::new(BytesMut::new()),
        })
    }

    /// Sends `message` (its flags set by the caller) as a new request; returns the
    /// sequence number its answers carry.
    pub(super) fn send(
        &self,
        mut message: NetlinkMessage<RouteNetlinkMessage>,
    ) -> std::result::Result<u32, Failure> {
        let seq = self.last_sent.get().wrapping_add(1);
        self.last_sent.set(seq);
        message.header.sequence_number = seq;
        message.finalize();
        let mut bytes = vec![0u8; message.buffer_len()];
        message.serialize(&mut bytes);
        loop {
            match self.socket.send_to(&bytes, &SocketAddr::new(0, 0), 0) {
                Ok(sent) if sent == bytes.len() => return Ok(seq),
                Ok(sent) => {
                    return Err(Failure::Other(format!(
                        "sent {sent} of {} bytes",
                        bytes.len()
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(failure_of(e)),
            }
        }
    }

    /// The next message answering request `seq`, waiting for it. What answers an older
    /// request (one given up on, or the rest of a dump read again) is dropped; an answer to
    /// a later request arriving first means this one's was lost (`Failure::Lost`).
    pub(super) fn next(
        &self,
        seq: u32,
    ) -> std::result::Result<NetlinkMessage<RouteNetlinkMessage>, Failure> {
        loop {
            let front = self.received.borrow_mut().pop_front();
            let Some(message) = front else {
                self.receive()?;
                continue;
            };
            let got = message.header.sequence_number;
            if got == seq {
                return Ok(message);
            }
            // Sequence numbers wrap: "later" is a positive distance of less than half.
            if (got.wrapping_sub(seq) as i32) > 0 {
                self.received.borrow_mut().push_front(message);
                return Err(Failure::Lost);
            }
        }
    }

    /// One datagram from the socket, its messages queued.
    fn receive(&self) -> std::result::Result<(), Failure> {
        let mut buffer = self.buffer.borrow_mut();
        buffer.clear();
        buffer.reserve(RECEIVE_BUFFER);
        loop {
            match self.socket.recv(&mut *buffer, 0) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(failure_of(e)),
            }
        }
        let mut received = self.received.borrow_mut();
        while let Some(message) = LoudCodec::decode::<RouteNetlinkMessage>(&mut buffer)
            .map_err(|e| Failure::Other(e.to_string()))?
        {
            received.push_back(message);
        }
        Ok(())
    }
}

/// What a failed send or receive means for the request.
fn failure_of(e: io::Error) -> Failure {
    match e.raw_os_error() {
        // SO_RCVTIMEO ran out.
        Some(libc::EAGAIN) => Failure::Timeout,
        // The socket's receive queue overflowed: the kernel dropped answers.
        Some(libc::ENOBUFS) => Failure::Lost,
        Some(errno) => Failure::Errno(errno),
        None => Failure::Other(e.to_string()),
    }
}
