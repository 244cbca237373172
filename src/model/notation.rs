//! The pieces of iproute2's notation that several objects share (prefixes, tables,
//! protocols, tos), so that each object's `Display` reads as `ip` prints it.

use std::fmt::Display;

use ipnet::IpNet;

use super::MAIN_TABLE;

/// `ip` prints host prefixes as bare addresses; doing the same keeps output familiar.
pub(crate) fn net_text(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

pub(crate) fn dst_text(net: &IpNet) -> String {
    if net.prefix_len() == 0 {
        "default".to_string()
    } else {
        net_text(net)
    }
}

/// Numeric except the names iproute2 ships in rt_protos, so a paste parses everywhere.
pub(crate) fn proto_text(protocol: u8) -> String {
    match protocol {
        2 => "kernel".to_string(),
        3 => "boot".to_string(),
        4 => "static".to_string(),
        n => n.to_string(),
    }
}

pub(crate) fn table_name(table: u32) -> String {
    match table {
        253 => "default".to_string(),
        MAIN_TABLE => "main".to_string(),
        255 => "local".to_string(),
        n => n.to_string(),
    }
}

/// iproute2 parses `tos` as hex, so it must be written as hex to mean the same value.
pub(crate) fn tos_text(tos: u8) -> String {
    format!("{tos:#04x}")
}

pub(crate) fn push_opt<T: Display>(words: &mut Vec<String>, name: &str, value: Option<T>) {
    if let Some(value) = value {
        words.push(format!("{name} {value}"));
    }
}

/// `ip` or `ip -6`: commands say the family with a flag.
pub(crate) fn ip_word(ipv6: bool) -> &'static str {
    if ipv6 {
        "ip -6"
    } else {
        "ip"
    }
}
