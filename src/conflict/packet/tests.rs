//! Byte-level fixtures. The frames marked "kernel" were captured with an AF_PACKET socket
//! on a veth pair between two throwaway netns (Linux 6.18): what the kernel itself sends
//! (arp_notify, ndisc_notify, DAD with enhanced_dad off) and how it answers our probes.

use super::*;

const C_MAC: MacAddr = MacAddr([0x02, 0x50, 0, 0, 0, 0x02]);
const NEW_MAC: MacAddr = MacAddr([0x0a, 0x0b, 0xc0, 0xa8, 0x32, 0x0b]);
const EXT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0e]);

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Our RFC 5227 probe for 192.168.50.11 from the chained interface's MAC (the kernel sends
/// none to capture).
const ARP_PROBE: &str = "ffffffffffff 025000000002 0806
    0001 0800 06 04 0001 025000000002 00000000 000000000000 c0a8320b";
/// Kernel: ext's answer to that probe: a reply from 192.168.50.11 to the chained
/// interface's MAC, target 0.0.0.0.
const ARP_REPLY_TO_PROBE: &str = "025000000002 02000000000e 0806
    0001 0800 06 04 0002 02000000000e c0a8320b 025000000002 00000000";
/// Kernel: arp_notify's gratuitous ARP after the MAC changed to 0a:0b:c0:a8:32:0b.
const KERNEL_GARP: &str = "ffffffffffff 0a0bc0a8320b 0806
    0001 0800 06 04 0001 0a0bc0a8320b c0a8320b 000000000000 c0a8320b";
/// Kernel: DAD solicitation for fd50::11 from the chained interface's MAC, enhanced_dad off
/// (no nonce).
const KERNEL_DAD_NS: &str = "3333ff000011 025000000002 86dd
    60000000 0018 3a ff 00000000000000000000000000000000 ff0200000000000000000001ff000011
    87 00 7d35 00000000 fd500000000000000000000000000011";
/// Kernel: ext's answer to that solicitation: an advertisement to all-nodes, override set.
const KERNEL_NA_REPLY: &str = "333300000001 02000000000e 86dd
    60000000 0020 3a ff fd500000000000000000000000000011 ff020000000000000000000000000001
    88 00 59ce 20000000 fd500000000000000000000000000011 0201 02000000000e";
/// Kernel: ndisc_notify's unsolicited advertisement of fd50::11 after the MAC change.
const KERNEL_UNSOLICITED_NA: &str = "333300000001 0a0bc0a8320b 86dd
    60000000 0020 3a ff fd500000000000000000000000000011 ff020000000000000000000000000001
    88 00 5f1d 20000000 fd500000000000000000000000000011 0201 0a0bc0a8320b";
/// Kernel: a DAD solicitation for fd50::12 with enhanced_dad's nonce option (type 14).
const KERNEL_DAD_NS_WITH_NONCE: &str = "3333ff000012 0a0bc0a8320b 86dd
    60000000 0020 3a ff 00000000000000000000000000000000 ff0200000000000000000001ff000012
    87 00 ae83 00000000 fd500000000000000000000000000012 0e01757a84dfc64c";

#[test]
fn the_arp_probe_is_rfc_5227s() {
    assert_eq!(arp_probe(C_MAC, v4("192.168.50.11")), hex(ARP_PROBE));
    assert_eq!(
        probe(C_MAC, "192.168.50.11".parse().unwrap()),
        hex(ARP_PROBE)
    );
}

#[test]
fn the_gratuitous_arp_is_the_kernels() {
    assert_eq!(
        gratuitous_arp(NEW_MAC, v4("192.168.50.11")),
        hex(KERNEL_GARP)
    );
    assert_eq!(
        announcement(NEW_MAC, "192.168.50.11".parse().unwrap()),
        hex(KERNEL_GARP)
    );
}

#[test]
fn the_dad_solicitation_is_the_kernels_byte_for_byte() {
    assert_eq!(dad_solicitation(C_MAC, v6("fd50::11")), hex(KERNEL_DAD_NS));
    assert_eq!(
        probe(C_MAC, "fd50::11".parse().unwrap()),
        hex(KERNEL_DAD_NS)
    );
}

#[test]
fn the_unsolicited_advertisement_is_the_kernels_byte_for_byte() {
    assert_eq!(
        unsolicited_advertisement(NEW_MAC, v6("fd50::11")),
        hex(KERNEL_UNSOLICITED_NA)
    );
    assert_eq!(
        announcement(NEW_MAC, "fd50::11".parse().unwrap()),
        hex(KERNEL_UNSOLICITED_NA)
    );
}

#[test]
fn solicited_node_group_and_its_mac_keep_the_low_bits() {
    let group = solicited_node(v6("2001:db8::1:2a3b:4c5d"));
    assert_eq!(group, v6("ff02::1:ff3b:4c5d"));
    assert_eq!(multicast_mac(group).to_string(), "33:33:ff:3b:4c:5d");
    assert_eq!(
        multicast_mac(v6("ff02::1")).to_string(),
        "33:33:00:00:00:01"
    );
}

#[test]
fn the_checksum_of_a_captured_message_is_recomputed_and_verifies_to_zero() {
    let frame = hex(KERNEL_NA_REPLY);
    let icmp = &frame[ETH_HEADER + IPV6_HEADER..];
    let (src, dst) = (v6("fd50::11"), v6("ff02::1"));
    let mut zeroed = icmp.to_vec();
    zeroed[2..4].copy_from_slice(&[0, 0]);
    assert_eq!(icmpv6_checksum(src, dst, &zeroed), 0x59ce);
    // A message that carries its own checksum sums to all ones: the complement is zero.
    assert_eq!(icmpv6_checksum(src, dst, icmp), 0);
}

#[test]
fn the_kernels_answers_to_our_probes_claim_the_address_for_exts_mac() {
    let arp = Claim {
        addr: "192.168.50.11".parse().unwrap(),
        mac: EXT_MAC,
    };
    assert_eq!(claim(&hex(ARP_REPLY_TO_PROBE)), Some(arp));
    let nd = Claim {
        addr: "fd50::11".parse().unwrap(),
        mac: EXT_MAC,
    };
    assert_eq!(claim(&hex(KERNEL_NA_REPLY)), Some(nd));
}

#[test]
fn probes_and_announcements_claim_the_address_for_their_sender() {
    let ours = |addr: &str, mac| {
        Some(Claim {
            addr: addr.parse().unwrap(),
            mac,
        })
    };
    // Another host's probe (RFC 5227 simultaneous probe, RFC 4862 5.4.3) is a claim.
    assert_eq!(claim(&hex(ARP_PROBE)), ours("192.168.50.11", C_MAC));
    assert_eq!(claim(&hex(KERNEL_DAD_NS)), ours("fd50::11", C_MAC));
    assert_eq!(
        claim(&hex(KERNEL_DAD_NS_WITH_NONCE)),
        ours("fd50::12", NEW_MAC)
    );
    assert_eq!(claim(&hex(KERNEL_GARP)), ours("192.168.50.11", NEW_MAC));
    assert_eq!(
        claim(&hex(KERNEL_UNSOLICITED_NA)),
        ours("fd50::11", NEW_MAC)
    );
}

#[test]
fn an_advertisement_without_the_option_is_claimed_by_the_ethernet_source() {
    let mut frame = hex(KERNEL_NA_REPLY);
    frame.truncate(frame.len() - 8);
    assert_eq!(claim(&frame).map(|c| c.mac), Some(EXT_MAC));
}

#[test]
fn a_solicitation_from_an_address_claims_it_for_its_source_lladdr() {
    // fe80::1 asking for fd50::11, with source link-layer option 02:00:00:00:00:0e.
    let mut icmp = vec![ICMPV6_NEIGHBOUR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&v6("fd50::11").octets());
    icmp.extend_from_slice(&[OPTION_SOURCE_LLADDR, 1]);
    icmp.extend_from_slice(&EXT_MAC.0);
    let frame = ipv6_icmp(
        multicast_mac(solicited_node(v6("fd50::11"))),
        EXT_MAC,
        v6("fd50::99"),
        solicited_node(v6("fd50::11")),
        icmp,
    );
    assert_eq!(
        claim(&frame),
        Some(Claim {
            addr: "fd50::99".parse().unwrap(),
            mac: EXT_MAC
        })
    );
}

#[test]
fn malformed_or_unrelated_frames_claim_nothing() {
    let mut forwarded = hex(KERNEL_NA_REPLY);
    forwarded[ETH_HEADER + 7] = 64; // hop limit below 255: not from the link
    let mut zero_option = hex(KERNEL_NA_REPLY);
    let n = zero_option.len();
    zero_option[n - 7] = 0; // option length 0
    let mut ipv4_in_arp = hex(ARP_REPLY_TO_PROBE);
    ipv4_in_arp[ETH_HEADER + 2] = 0x86; // protocol type not IPv4
    let mut echo = hex(KERNEL_NA_REPLY);
    echo[ETH_HEADER + IPV6_HEADER] = 128; // an echo request
    let mut zero_sender = hex(ARP_REPLY_TO_PROBE);
    zero_sender[ETH_HEADER + 8..ETH_HEADER + 14].copy_from_slice(&[0; 6]);
    let mut arp_probe_reply = hex(ARP_REPLY_TO_PROBE);
    arp_probe_reply[ETH_HEADER + 14..ETH_HEADER + 18].copy_from_slice(&[0; 4]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("runt", hex(ARP_PROBE)[..30].to_vec()),
        ("truncated NA", hex(KERNEL_NA_REPLY)[..60].to_vec()),
        ("forwarded", forwarded),
        ("ipv4 over arp type", ipv4_in_arp),
        ("echo", echo),
        ("zero sender mac", zero_sender),
        ("reply from 0.0.0.0", arp_probe_reply),
        ("ipv4 ethertype", {
            let mut f = hex(ARP_PROBE);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f
        }),
    ];
    for (what, frame) in cases {
        assert_eq!(claim(&frame), None, "{what}");
    }
    // A malformed option is not trusted: the Ethernet source is the claimer.
    assert_eq!(claim(&zero_option).map(|c| c.mac), Some(EXT_MAC));
}
