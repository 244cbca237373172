//! conflict: IP conflict detection before an ADD applies anything (BEHAVIOUR 5), on raw
//! sockets opened on a thread inside the pod netns (the chained interface's new MAC is
//! announced by the kernel,
//! 2.1). It only sends and listens: it changes no kernel state and
//! decides nothing about routes; `reconcile` decides when it runs.

pub mod packet;
pub mod socket;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::compile::mac_source;
use crate::error::{Error, Result};
use crate::model::{Change, MacAddr, Op};
use crate::netns::{self, NetnsVisitor};
use socket::PacketSocket;

/// Another host holds (or is probing for) one of the chained interface's addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub addr: IpAddr,
    pub mac: MacAddr,
}

impl From<Conflict> for Error {
    fn from(c: Conflict) -> Error {
        Error::IpConflict {
            addr: c.addr.to_string(),
            mac: c.mac.to_string(),
        }
    }
}

/// A failed op of an ADD in the words of what went wrong: a derived MAC (`mac_prefix`,
/// BEHAVIOUR 2.1) refused as in use means another interface on the same master has it, and
/// since the MAC comes from the chained interface's address, another live pod holds that
/// address there too. Any other failure is returned as it is.
pub fn explain_failure(op: Option<&Op>, error: Error, chained_addrs: &[IpNet]) -> Error {
    let (Some(Change::SetMac { dev, new, .. }), Error::InUse { object, reason }) =
        (op.map(|op| &op.change), &error)
    else {
        return error;
    };
    let source = match mac_source(chained_addrs) {
        Some(addr) => format!(
            "mac_prefix derives it from {addr}, so another pod holds {addr} on the same master"
        ),
        None => "mac_prefix derived it from an address another pod holds too".to_string(),
    };
    Error::Kernel {
        object: object.clone(),
        reason: format!(
            "the derived MAC {new} for {dev} is taken by another interface on the same master \
             ({reason}): {source}; two pods cannot share an address there"
        ),
    }
}

/// The chained interface on its segment: the pod netns, the interface, the MAC its frames
/// carry, its addresses.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub pod_netns: &'a Path,
    pub ifname: &'a str,
    pub mac: MacAddr,
    pub addrs: &'a [IpAddr],
}

/// How the reconciler reaches the chained interface's L2 segment.
pub trait AddressProbe {
    /// Probes every address of the target at once from its MAC: `retries` rounds
    /// `interval` apart, listening until `interval` after the last. The first frame showing
    /// another MAC holding an address is the conflict; silence is none.
    fn detect(
        &self,
        target: &Target<'_>,
        interval: Duration,
        retries: u32,
    ) -> Result<Option<Conflict>>;
}

/// The live probe: AF_PACKET sockets on the chained interface, in the pod netns, sent and
/// read in a visit by the run's visitor (`in_pod`, the one the snapshot and executor use)
/// when it is for the target's netns, else on a thread of the probe's own.
#[derive(Clone, Debug, Default)]
pub struct RawSocketProbe {
    pod: Option<Arc<NetnsVisitor>>,
}

impl RawSocketProbe {
    pub fn in_pod(pod: Option<Arc<NetnsVisitor>>) -> RawSocketProbe {
        RawSocketProbe { pod }
    }
}

/// A segment where nobody else is: no conflict. For tests and
/// for runs that must not touch a network.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoConflicts;

impl AddressProbe for NoConflicts {
    fn detect(&self, _: &Target<'_>, _: Duration, _: u32) -> Result<Option<Conflict>> {
        Ok(None)
    }
}

impl AddressProbe for RawSocketProbe {
    fn detect(
        &self,
        target: &Target<'_>,
        interval: Duration,
        retries: u32,
    ) -> Result<Option<Conflict>> {
        if target.addrs.is_empty() {
            return Ok(None);
        }
        let (ifname, addrs, mac) = (target.ifname.to_string(), target.addrs.to_vec(), target.mac);
        let schedule = Schedule::new(interval, retries);
        let probe = move || detect_here(&ifname, mac, &addrs, schedule);
        match self.pod.as_ref().filter(|w| w.path() == target.pod_netns) {
            Some(visitor) => visitor.visit(probe),
            None => netns::run_in_netns(target.pod_netns, probe),
        }
    }
}

/// When the rounds of probes go out: the first at once, each next one `interval` after the
/// previous was sent (so a late thread never sends two rounds back to back), and the end
/// `interval` after the last, so a reply to the last probe is waited for as long as a
/// reply to the first. Pure: it is given the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    interval: Duration,
    retries: u32,
    sent: u32,
    last_sent: Duration,
}

/// What the probing loop does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send one probe per address now.
    Send,
    /// Listen this long.
    Wait(Duration),
    /// Silence until the end: no conflict.
    Done,
}

impl Schedule {
    pub fn new(interval: Duration, retries: u32) -> Schedule {
        Schedule {
            interval,
            retries,
            sent: 0,
            last_sent: Duration::ZERO,
        }
    }

    /// The next step at `elapsed` since the start; a `Send` counts as sent at `elapsed`.
    pub fn step(&mut self, elapsed: Duration) -> Step {
        let due = if self.sent == 0 {
            Duration::ZERO
        } else {
            self.last_sent + self.interval
        };
        if elapsed < due {
            return Step::Wait(due - elapsed);
        }
        if self.sent >= self.retries {
            return Step::Done;
        }
        self.sent += 1;
        self.last_sent = elapsed;
        Step::Send
    }
}

/// Frames longer than this are truncated on receipt: every frame we read fits in far less.
const FRAME_BUFFER: usize = 2048;

/// One socket per Ethernet type in use (ARP for IPv4, IPv6 for ND), on the chained
/// interface.
struct Sockets {
    ifname: String,
    open: Vec<(u16, PacketSocket)>,
}

impl Sockets {
    fn open(ifname: &str, addrs: &[IpAddr]) -> Result<Sockets> {
        let index = socket::ifindex(ifname).map_err(|e| Error::Kernel {
            object: format!("link {ifname} in the pod netns"),
            reason: e.to_string(),
        })?;
        let mut types: Vec<u16> = addrs.iter().map(|a| packet::ethertype_of(*a)).collect();
        types.sort_unstable();
        types.dedup();
        let mut open = Vec::with_capacity(types.len());
        for ethertype in types {
            let sock = PacketSocket::open(index, ethertype)
                .map_err(|e| socket_error(ifname, "open a raw socket", e))?;
            open.push((ethertype, sock));
        }
        Ok(Sockets {
            ifname: ifname.to_string(),
            open,
        })
    }

    fn send(&self, frame: &[u8], addr: IpAddr) -> Result<()> {
        let ethertype = packet::ethertype_of(addr);
        let Some((_, sock)) = self.open.iter().find(|(t, _)| *t == ethertype) else {
            return Err(socket_error(
                &self.ifname,
                "send",
                std::io::Error::other("no socket for the address family"),
            ));
        };
        sock.send(frame)
            .map_err(|e| socket_error(&self.ifname, &format!("send a frame for {addr}"), e))
    }

    fn all(&self) -> Vec<&PacketSocket> {
        self.open.iter().map(|(_, s)| s).collect()
    }
}

fn socket_error(ifname: &str, what: &str, e: std::io::Error) -> Error {
    Error::Kernel {
        object: format!("{what} on {ifname} in the pod netns"),
        reason: e.to_string(),
    }
}

/// The probing loop, on a thread already inside the pod netns. The sockets close when this
/// returns, whichever way.
fn detect_here(
    ifname: &str,
    mac: MacAddr,
    addrs: &[IpAddr],
    mut schedule: Schedule,
) -> Result<Option<Conflict>> {
    let sockets = Sockets::open(ifname, addrs)?;
    let probes: Vec<(IpAddr, Vec<u8>)> =
        addrs.iter().map(|a| (*a, packet::probe(mac, *a))).collect();
    let mut buf = vec![0u8; FRAME_BUFFER];
    let start = Instant::now();
    loop {
        match schedule.step(start.elapsed()) {
            Step::Send => {
                for (addr, frame) in &probes {
                    sockets.send(frame, *addr)?;
                }
            }
            Step::Wait(timeout) => {
                if let Some(conflict) = listen(&sockets, timeout, mac, addrs, &mut buf)? {
                    return Ok(Some(conflict));
                }
            }
            Step::Done => return Ok(None),
        }
    }
}

/// Waits up to `timeout` for frames and reads every one queued; the first that shows
/// another MAC holding one of `addrs` is the conflict.
fn listen(
    sockets: &Sockets,
    timeout: Duration,
    mac: MacAddr,
    addrs: &[IpAddr],
    buf: &mut [u8],
) -> Result<Option<Conflict>> {
    let all = sockets.all();
    let ready = socket::wait_readable(&all, timeout)
        .map_err(|e| socket_error(&sockets.ifname, "wait for replies", e))?;
    for (sock, _) in all.iter().zip(ready).filter(|(_, r)| *r) {
        while let Some(len) = sock
            .recv(buf)
            .map_err(|e| socket_error(&sockets.ifname, "receive", e))?
        {
            if let Some(conflict) = conflict_in(&buf[..len], mac, addrs) {
                return Ok(Some(conflict));
            }
        }
    }
    Ok(None)
}

/// A frame is a conflict when it claims one of `addrs` for a MAC that is not the chained
/// interface's.
pub fn conflict_in(frame: &[u8], own: MacAddr, addrs: &[IpAddr]) -> Option<Conflict> {
    packet::claim(frame)
        .filter(|c| c.mac != own && addrs.contains(&c.addr))
        .map(|c| Conflict {
            addr: c.addr,
            mac: c.mac,
        })
}

#[cfg(test)]
mod tests;
