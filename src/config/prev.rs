//! config::prev: the typed view of prevResult (interfaces, ips) and the chained interface's
//! addresses in it; rejections are code 7. Must not change the JSON, which is passed on
//! verbatim.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use super::value::{get, json_type};
use crate::error::{excerpt, Error, Result};

/// One `prevResult.interfaces` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrevInterface {
    pub name: String,
    pub sandbox: Option<String>,
}

/// One `prevResult.ips` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrevIp {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    pub interface: Option<usize>,
}

/// The typed view of prevResult compile needs; the JSON itself is passed on verbatim.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PrevView {
    pub interfaces: Vec<PrevInterface>,
    pub ips: Vec<PrevIp>,
}

impl PrevView {
    pub fn parse(value: &Value) -> Result<PrevView> {
        let bad = |what: String| Error::InvalidPrevResult(what);
        let obj = value
            .as_object()
            .ok_or_else(|| bad(format!("expected an object, got {}", json_type(value))))?;
        let interfaces = match get(obj, "interfaces") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_prev_interface(i, item))
                .collect::<Result<_>>()?,
            Some(v) => {
                return Err(bad(format!(
                    "interfaces must be a list, got {}",
                    excerpt(&v.to_string())
                )))
            }
        };
        let ips = match get(obj, "ips") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_prev_ip(i, item, interfaces.len()))
                .collect::<Result<_>>()?,
            Some(v) => {
                return Err(bad(format!(
                    "ips must be a list, got {}",
                    excerpt(&v.to_string())
                )))
            }
        };
        Ok(PrevView { interfaces, ips })
    }

    /// The chained interface's addresses, at least one: every step of an ADD routes them,
    /// and a chain that gives the chained interface none is misconfigured (or L2 only,
    /// where router has no place). Code 7.
    pub fn require_addresses_of(&self, ifname: &str) -> Result<Vec<IpNet>> {
        let addrs = self.addresses_of(ifname);
        if addrs.is_empty() {
            return Err(Error::InvalidPrevResult(format!(
                "no address of {} (ips entries whose interface is its sandbox entry, or without an interface index): router routes C's addresses; drop it from an L2-only chain or set skip_call",
                excerpt(ifname)
            )));
        }
        Ok(addrs)
    }

    /// The chained interface's addresses: entries pointing at the sandbox interface named
    /// `ifname`, and entries with no interface index.
    pub fn addresses_of(&self, ifname: &str) -> Vec<IpNet> {
        self.ips
            .iter()
            .filter(|ip| match ip.interface {
                None => true,
                Some(i) => self
                    .interfaces
                    .get(i)
                    .is_some_and(|itf| itf.name == ifname && itf.sandbox.is_some()),
            })
            .map(|ip| ip.address)
            .collect()
    }
}

fn parse_prev_interface(index: usize, item: &Value) -> Result<PrevInterface> {
    let name = item.get("name").and_then(Value::as_str).ok_or_else(|| {
        Error::InvalidPrevResult(format!(
            "interfaces[{index}] has no string \"name\": {}",
            excerpt(&item.to_string())
        ))
    })?;
    let sandbox = match item.get("sandbox") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => {
            return Err(Error::InvalidPrevResult(format!(
                "interfaces[{index}].sandbox must be a string, got {}",
                excerpt(&v.to_string())
            )))
        }
    };
    Ok(PrevInterface {
        name: name.to_string(),
        sandbox,
    })
}

fn parse_prev_ip(index: usize, item: &Value, interface_count: usize) -> Result<PrevIp> {
    let bad = |what: String| Error::InvalidPrevResult(format!("ips[{index}]: {what}"));
    let text = item.get("address").and_then(Value::as_str).ok_or_else(|| {
        bad(format!(
            "no string \"address\": {}",
            excerpt(&item.to_string())
        ))
    })?;
    let address: IpNet = text
        .parse()
        .map_err(|_| bad(format!("address {:?} is not address/prefix", excerpt(text))))?;
    let gateway = match item.get("gateway") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(
            s.parse()
                .map_err(|_| bad(format!("gateway {:?} is not an IP address", excerpt(s))))?,
        ),
        Some(v) => {
            return Err(bad(format!(
                "gateway must be a string, got {}",
                excerpt(&v.to_string())
            )))
        }
    };
    let interface = match item.get("interface") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let i = v
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < interface_count)
                .ok_or_else(|| {
                    bad(format!(
                        "interface index {v} is out of range ({interface_count} interfaces)"
                    ))
                })?;
            Some(i)
        }
    };
    Ok(PrevIp {
        address,
        gateway,
        interface,
    })
}
