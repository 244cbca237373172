//! AF_PACKET raw sockets bound to one interface of the calling thread's netns, closed when
//! dropped (the fd is an OwnedFd: every return path, error or panic, closes it). Frames go
//! out and come in whole, Ethernet header included; nothing here knows what they mean.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::net::if_::if_nametoindex;
use nix::poll::{ppoll, PollFd, PollFlags};
use nix::sys::socket::{
    bind, recvfrom, send, socket, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType,
    SockaddrLike,
};
use nix::sys::time::TimeSpec;

/// One raw socket receiving the frames of one Ethernet type on one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a socket for `ethertype` frames on `ifindex` of the calling thread's netns.
    pub fn open(ifindex: u32, ethertype: u16) -> io::Result<PacketSocket> {
        // Protocol 0 receives nothing until bind sets the type and the interface, so no frame
        // of another interface is queued in between.
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        let socket = PacketSocket { fd };
        socket.bind(ifindex, ethertype)?;
        Ok(socket)
    }

    fn bind(&self, ifindex: u32, ethertype: u16) -> io::Result<()> {
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
        let raw = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: ethertype.to_be(),
            sll_ifindex: ifindex,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `raw` is a whole, initialised sockaddr_ll and `len` is its size; nix has no
        // safe constructor for a LinkAddr.
        let addr = unsafe { LinkAddr::from_raw(std::ptr::addr_of!(raw).cast(), Some(len)) }
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a sockaddr_ll"))?;
        bind(self.fd.as_raw_fd(), &addr)?;
        Ok(())
    }

    /// Sends one whole frame out of the bound interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            match send(self.fd.as_raw_fd(), frame, MsgFlags::empty()) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next frame that came in (frames this host sent are skipped), truncated to
    /// `buf`; None when none is queued (the socket is non-blocking).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            let (len, from) = match recvfrom::<LinkAddr>(self.fd.as_raw_fd(), buf) {
                Ok(received) => received,
                Err(nix::errno::Errno::EAGAIN) => return Ok(None),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            // A packet socket also sees what this interface sends: our own probes.
            if from.is_some_and(|from| from.pkttype() == libc::PACKET_OUTGOING) {
                continue;
            }
            // len is the frame's length, at most buf.len() (recvfrom truncates).
            return Ok(Some(len.min(buf.len())));
        }
    }
}

/// Waits until one of `sockets` has something to read (or an error to report), or until
/// `timeout`. Returns which ones are ready; all false on timeout or a signal.
pub fn wait_readable(sockets: &[&PacketSocket], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut fds: Vec<PollFd<'_>> = sockets
        .iter()
        .map(|s| PollFd::new(s.fd.as_fd(), PollFlags::POLLIN))
        .collect();
    // ppoll takes a timespec: no rounding to milliseconds, so no early wake-up to spin on.
    match ppoll(&mut fds, Some(TimeSpec::from_duration(timeout)), None) {
        Ok(_) => Ok(fds
            .iter()
            .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
            .collect()),
        Err(nix::errno::Errno::EINTR) => Ok(vec![false; fds.len()]),
        Err(e) => Err(e.into()),
    }
}

/// The index of interface `name` in the calling thread's netns (the lookup goes through a
/// socket, and a socket belongs to the netns of the thread that makes it).
pub fn ifindex(name: &str) -> io::Result<u32> {
    Ok(if_nametoindex(name)?)
}
