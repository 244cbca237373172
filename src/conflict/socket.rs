//! AF_PACKET raw sockets bound to one interface of the calling thread's netns, closed when
//! dropped (the fd is an OwnedFd: every return path, error or panic, closes it). Frames go
//! out and come in whole, Ethernet header included; nothing here knows what they mean.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

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
        // SAFETY: socket(2) takes no pointers; the fd it returns is owned right below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd nothing else owns.
        let socket = PacketSocket {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        };
        socket.bind(ifindex, ethertype)?;
        Ok(socket)
    }

    fn bind(&self, ifindex: u32, ethertype: u16) -> io::Result<()> {
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
        // SAFETY: sockaddr_ll is plain old data; all zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ethertype.to_be();
        addr.sll_ifindex = ifindex;
        // SAFETY: addr is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                std::ptr::addr_of!(addr).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends one whole frame out of the bound interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            // SAFETY: the pointer and length describe `frame`, which outlives the call.
            let rc = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast::<libc::c_void>(),
                    frame.len(),
                    0,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// The next frame that came in (frames this host sent are skipped), truncated to
    /// `buf`; None when none is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: sockaddr_ll is plain old data; recvfrom fills at most `len` of it.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf and from are valid for the lengths given and outlive the call.
            let rc = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    std::ptr::addr_of_mut!(from).cast::<libc::sockaddr>(),
                    &mut len,
                )
            };
            if rc < 0 {
                let err = io::Error::last_os_error();
                match err.kind() {
                    io::ErrorKind::WouldBlock => return Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(err),
                }
            }
            // A packet socket also sees what this interface sends: our own probes.
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            // rc is the frame's length, at most buf.len() (recvfrom truncates).
            return Ok(Some((rc as usize).min(buf.len())));
        }
    }
}

/// Waits until one of `sockets` has something to read (or an error to report), or until
/// `timeout`. Returns which ones are ready; all false on timeout or a signal.
pub fn wait_readable(sockets: &[&PacketSocket], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // ppoll takes a timespec: no rounding to milliseconds, so no early wake-up to spin on.
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: fds is a valid array of fds.len() pollfds; ts outlives the call; no sigmask.
    let rc = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(err);
    }
    Ok(fds.iter().map(|p| p.revents != 0).collect())
}

/// The index of interface `name` in the calling thread's netns (the lookup goes through a
/// socket, and a socket belongs to the netns of the thread that makes it).
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c_name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: c_name is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}
