//! The frames of the conflict check, as pure code: RFC 5227 ARP probes and gratuitous ARPs,
//! RFC 4862 DAD neighbour solicitations and unsolicited neighbour advertisements, and the
//! reading of any received frame into "this address is claimed by this MAC". No I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::MacAddr;

pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

const ETH_HEADER: usize = 14;
const ARP_LEN: usize = 28;
const ARP_HTYPE_ETHERNET: u16 = 1;
const ARP_PTYPE_IPV4: u16 = 0x0800;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

const IPV6_HEADER: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
/// RFC 4861 7.1.1: neighbour discovery messages with another hop limit were forwarded by a
/// router and are not from the link; they are sent and accepted only with 255.
const ND_HOP_LIMIT: u8 = 255;
const ICMPV6_NEIGHBOUR_SOLICITATION: u8 = 135;
const ICMPV6_NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// Type, code, checksum, flags/reserved, target.
const ND_FIXED: usize = 24;
const OPTION_SOURCE_LLADDR: u8 = 1;
const OPTION_TARGET_LLADDR: u8 = 2;
const NA_FLAG_OVERRIDE: u8 = 0x20;

pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
const ZERO_MAC: MacAddr = MacAddr([0; 6]);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// "`addr` is in use, or being probed for, by the host with `mac`", read from one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub addr: IpAddr,
    pub mac: MacAddr,
}

/// The probe for `addr` from `mac`: an ARP probe for IPv4, a DAD solicitation for IPv6.
pub fn probe(mac: MacAddr, addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => arp_probe(mac, a),
        IpAddr::V6(a) => dad_solicitation(mac, a),
    }
}

/// The announcement of `addr` at `mac`: a gratuitous ARP for IPv4, an unsolicited neighbour
/// advertisement for IPv6.
pub fn announcement(mac: MacAddr, addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => gratuitous_arp(mac, a),
        IpAddr::V6(a) => unsolicited_advertisement(mac, a),
    }
}

/// The Ethernet type of the frames for `addr`'s family.
pub fn ethertype_of(addr: IpAddr) -> u16 {
    match addr {
        IpAddr::V4(_) => ETHERTYPE_ARP,
        IpAddr::V6(_) => ETHERTYPE_IPV6,
    }
}

/// RFC 5227 2.1.1: an ARP request with sender IP 0.0.0.0 (so that no peer's cache learns
/// an address that may turn out to be someone else's), target hardware zero, broadcast.
pub fn arp_probe(mac: MacAddr, addr: Ipv4Addr) -> Vec<u8> {
    ethernet(
        BROADCAST,
        mac,
        ETHERTYPE_ARP,
        &arp(ARP_REQUEST, mac, Ipv4Addr::UNSPECIFIED, addr),
    )
}

/// RFC 5227 2.3 announcement: an ARP request with sender and target IP both `addr`, as the
/// kernel's arp_notify sends it; peers holding `addr` in their cache take the new MAC.
pub fn gratuitous_arp(mac: MacAddr, addr: Ipv4Addr) -> Vec<u8> {
    ethernet(
        BROADCAST,
        mac,
        ETHERTYPE_ARP,
        &arp(ARP_REQUEST, mac, addr, addr),
    )
}

fn arp(op: u16, sha: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut out = Vec::with_capacity(ARP_LEN);
    out.extend_from_slice(&ARP_HTYPE_ETHERNET.to_be_bytes());
    out.extend_from_slice(&ARP_PTYPE_IPV4.to_be_bytes());
    out.extend_from_slice(&[6, 4]);
    out.extend_from_slice(&op.to_be_bytes());
    out.extend_from_slice(&sha.0);
    out.extend_from_slice(&spa.octets());
    out.extend_from_slice(&ZERO_MAC.0);
    out.extend_from_slice(&tpa.octets());
    out
}

fn ethernet(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ETH_HEADER + payload.len());
    out.extend_from_slice(&dst.0);
    out.extend_from_slice(&src.0);
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// RFC 4291 2.7.1: ff02::1:ff00:0/104 plus the low 24 bits of `addr`.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// RFC 2464 7: 33:33 plus the low 32 bits of the IPv6 multicast group.
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// RFC 4862 5.4.2: a neighbour solicitation from the unspecified address to the target's
/// solicited-node group, without a source link-layer option (RFC 4861 7.1.1 forbids one
/// with an unspecified source). A host holding the target answers to all-nodes.
pub fn dad_solicitation(mac: MacAddr, addr: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(addr);
    let mut icmp = vec![ICMPV6_NEIGHBOUR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&addr.octets());
    ipv6_icmp(
        multicast_mac(group),
        mac,
        Ipv6Addr::UNSPECIFIED,
        group,
        icmp,
    )
}

/// RFC 4861 7.2.6: an unsolicited advertisement to all-nodes, override set (peers replace
/// the cached MAC), solicited clear, with the target link-layer option carrying `mac`.
pub fn unsolicited_advertisement(mac: MacAddr, addr: Ipv6Addr) -> Vec<u8> {
    let mut icmp = vec![
        ICMPV6_NEIGHBOUR_ADVERTISEMENT,
        0,
        0,
        0,
        NA_FLAG_OVERRIDE,
        0,
        0,
        0,
    ];
    icmp.extend_from_slice(&addr.octets());
    icmp.extend_from_slice(&[OPTION_TARGET_LLADDR, 1]);
    icmp.extend_from_slice(&mac.0);
    ipv6_icmp(multicast_mac(ALL_NODES), mac, addr, ALL_NODES, icmp)
}

/// An Ethernet frame with an IPv6 header (hop limit 255) around an ICMPv6 message whose
/// checksum field (bytes 2..4) is filled in here.
fn ipv6_icmp(
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    mut icmp: Vec<u8>,
) -> Vec<u8> {
    let checksum = icmpv6_checksum(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    let mut ip = Vec::with_capacity(IPV6_HEADER + icmp.len());
    ip.extend_from_slice(&[0x60, 0, 0, 0]);
    // ND messages are a few dozen bytes: the length always fits.
    ip.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    ip.extend_from_slice(&[NEXT_HEADER_ICMPV6, ND_HOP_LIMIT]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(&icmp);
    ethernet(dst_mac, src_mac, ETHERTYPE_IPV6, &ip)
}

/// RFC 4443 2.3: the one's complement sum over the pseudo-header (source, destination,
/// upper-layer length, next header) and the message, whose checksum field reads as zero.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |b| u64::from(*b));
            sum += hi | lo;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What a received Ethernet frame says about who holds an address, if anything: an ARP
/// reply or request from a sender address, another host's ARP probe, a neighbour
/// advertisement, another host's DAD solicitation, or a solicitation from an address.
pub fn claim(frame: &[u8]) -> Option<Claim> {
    let src_mac = mac_at(frame, 6)?;
    let payload = frame.get(ETH_HEADER..)?;
    let claim = match u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) {
        ETHERTYPE_ARP => arp_claim(payload),
        ETHERTYPE_IPV6 => nd_claim(src_mac, payload),
        _ => None,
    }?;
    // A zero or group MAC is no host's: a malformed frame, not a holder to report.
    (claim.mac != ZERO_MAC && claim.mac.0[0] & 1 == 0).then_some(claim)
}

fn arp_claim(arp: &[u8]) -> Option<Claim> {
    if arp.len() < ARP_LEN
        || be16(arp, 0)? != ARP_HTYPE_ETHERNET
        || be16(arp, 2)? != ARP_PTYPE_IPV4
        || arp[4] != 6
        || arp[5] != 4
    {
        return None;
    }
    let op = be16(arp, 6)?;
    let sha = mac_at(arp, 8)?;
    let spa = ipv4_at(arp, 14)?;
    let tpa = ipv4_at(arp, 24)?;
    match op {
        // A reply, an announcement or an ordinary request: the sender uses spa.
        ARP_REQUEST | ARP_REPLY if !spa.is_unspecified() => Some(Claim {
            addr: IpAddr::V4(spa),
            mac: sha,
        }),
        // RFC 5227 2.1.1: another host probing for tpa at the same time is a conflict too.
        ARP_REQUEST => Some(Claim {
            addr: IpAddr::V4(tpa),
            mac: sha,
        }),
        _ => None,
    }
}

fn nd_claim(src_mac: MacAddr, ip: &[u8]) -> Option<Claim> {
    if ip.len() < IPV6_HEADER + ND_FIXED
        || ip[0] >> 4 != 6
        || ip[6] != NEXT_HEADER_ICMPV6
        || ip[7] != ND_HOP_LIMIT
    {
        return None;
    }
    let src = ipv6_at(ip, 8)?;
    let icmp = ip.get(IPV6_HEADER..)?;
    if icmp[1] != 0 {
        return None;
    }
    let target = ipv6_at(icmp, 8)?;
    let options = icmp.get(ND_FIXED..)?;
    match icmp[0] {
        ICMPV6_NEIGHBOUR_ADVERTISEMENT => Some(Claim {
            addr: IpAddr::V6(target),
            mac: lladdr_option(options, OPTION_TARGET_LLADDR).unwrap_or(src_mac),
        }),
        // RFC 4862 5.4.3: another host's DAD probe for the target.
        ICMPV6_NEIGHBOUR_SOLICITATION if src.is_unspecified() => Some(Claim {
            addr: IpAddr::V6(target),
            mac: src_mac,
        }),
        ICMPV6_NEIGHBOUR_SOLICITATION => Some(Claim {
            addr: IpAddr::V6(src),
            mac: lladdr_option(options, OPTION_SOURCE_LLADDR).unwrap_or(src_mac),
        }),
        _ => None,
    }
}

/// The MAC of the first option of `kind` (RFC 4861 4.6.1); None when absent or malformed.
fn lladdr_option(mut options: &[u8], kind: u8) -> Option<MacAddr> {
    while options.len() >= 2 {
        let len = usize::from(options[1]) * 8;
        // A zero length would loop forever; RFC 4861 says to drop such a message.
        if len == 0 || len > options.len() {
            return None;
        }
        if options[0] == kind {
            return mac_at(options, 2);
        }
        options = &options[len..];
    }
    None
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn mac_at(bytes: &[u8], at: usize) -> Option<MacAddr> {
    Some(MacAddr(bytes.get(at..at + 6)?.try_into().ok()?))
}

fn ipv4_at(bytes: &[u8], at: usize) -> Option<Ipv4Addr> {
    let octets: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(octets))
}

fn ipv6_at(bytes: &[u8], at: usize) -> Option<Ipv6Addr> {
    let octets: [u8; 16] = bytes.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(octets))
}

#[cfg(test)]
mod tests;
