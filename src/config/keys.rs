//! config::keys: the route-shaping keys (hijack subnets, migrate_route, overlay_interface,
//! tables, priorities, rp_filter, mac_prefix, ip_conflict), their defaults and rejections.
//! Must not judge paths (`allowed`) or log options (`log`).

use std::collections::BTreeSet;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::value::{boolean, get, integer, integer_in, object, optional_string, renest};
use crate::error::{Error, Result};

const MAX_IFNAME_LEN: usize = 15;
const MAX_RULE_PRIORITY: i64 = 32765;
pub(super) const RESERVED_TABLES: [i64; 3] = [253, 254, 255];
const MAX_CONFLICT_INTERVAL: Duration = Duration::from_secs(10);
/// How long ADD waits for the overlay interface to be ready by default: far longer than a
/// default network's plugin takes even on a loaded node, far shorter than a runtime's own
/// timeout for the whole pod start.
pub(super) const DEFAULT_OVERLAY_WAIT: Duration = Duration::from_secs(10);
const MAX_OVERLAY_WAIT: Duration = Duration::from_secs(120);
pub(super) const DEFAULT_HOST_RULE_TABLE: u32 = 500;
pub(super) const DEFAULT_PRIORITY: u32 = 1000;
pub(super) const DEFAULT_OVERLAY_INTERFACE: &str = "eth0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigrateRoute {
    /// -1: by interface name order.
    Auto,
    /// 0
    Never,
    /// 1
    Always,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpFilter {
    pub set_host: bool,
    pub value: u8,
}

/// Loose mode (2), set on the host side too.
impl Default for RpFilter {
    fn default() -> Self {
        RpFilter {
            set_host: true,
            value: 2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpConflict {
    pub enabled: bool,
    pub interval: Duration,
    pub retries: u32,
}

/// Off; when enabled without its keys: 3 probes 1s apart.
impl Default for IpConflict {
    fn default() -> Self {
        IpConflict {
            enabled: false,
            interval: Duration::from_secs(1),
            retries: 3,
        }
    }
}

pub(super) fn parse_hijack_subnets(
    obj: &Map<String, Value>,
) -> Result<(Vec<IpNet>, Vec<IpNet>, Vec<IpNet>)> {
    let mut seen = BTreeSet::new();
    let overlay = cidr_list(obj, "overlay_hijack_subnet", &mut seen)?;
    let service = cidr_list(obj, "service_hijack_subnet", &mut seen)?;
    let additional = cidr_list(obj, "additional_hijack_subnet", &mut seen)?.unwrap_or_default();
    let (overlay, service) = match (overlay, service) {
        (None, _) => {
            return Err(Error::config(
                "overlay_hijack_subnet",
                "<missing>",
                "is required (the default CNI's pod subnets)",
            ))
        }
        (_, None) => {
            return Err(Error::config(
                "service_hijack_subnet",
                "<missing>",
                "is required (the cluster's service subnets)",
            ))
        }
        (Some(o), Some(s)) => (o, s),
    };
    if overlay.is_empty() && service.is_empty() {
        return Err(Error::config(
            "overlay_hijack_subnet",
            "[]",
            "may be empty only when service_hijack_subnet is not",
        ));
    }
    Ok((overlay, service, additional))
}

/// A list of CIDRs; `seen` catches a CIDR repeated within or across the hijack lists.
fn cidr_list(
    obj: &Map<String, Value>,
    key: &str,
    seen: &mut BTreeSet<IpNet>,
) -> Result<Option<Vec<IpNet>>> {
    let Some(value) = get(obj, key) else {
        return Ok(None);
    };
    let items = value
        .as_array()
        .ok_or_else(|| Error::config(key, value, "must be a list of CIDR strings"))?;
    let mut nets = Vec::with_capacity(items.len());
    for item in items {
        let net = parse_cidr(key, item)?;
        if !seen.insert(net) {
            return Err(Error::config(key, item, "is listed more than once"));
        }
        nets.push(net);
    }
    Ok(Some(nets))
}

fn parse_cidr(key: &str, item: &Value) -> Result<IpNet> {
    let text = item
        .as_str()
        .ok_or_else(|| Error::config(key, item, "must be a CIDR string"))?;
    let net: IpNet = text
        .parse()
        .map_err(|_| Error::config(key, item, "is not a CIDR (address/prefix)"))?;
    if net.trunc() != net {
        return Err(Error::config(
            key,
            item,
            format!("has host bits set (the network is {})", net.trunc()),
        ));
    }
    Ok(net)
}

pub(super) fn parse_migrate_route(obj: &Map<String, Value>) -> Result<MigrateRoute> {
    match integer(obj, "migrate_route")? {
        None | Some(-1) => Ok(MigrateRoute::Auto),
        Some(0) => Ok(MigrateRoute::Never),
        Some(1) => Ok(MigrateRoute::Always),
        Some(n) => Err(Error::config("migrate_route", n, "must be -1, 0 or 1")),
    }
}

/// A Linux interface name as the kernel accepts it (dev_valid_name).
pub fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
}

pub(super) fn parse_overlay_interface(obj: &Map<String, Value>) -> Result<String> {
    let name = optional_string(obj, "overlay_interface")?
        .unwrap_or_else(|| DEFAULT_OVERLAY_INTERFACE.into());
    if !is_valid_ifname(&name) {
        return Err(Error::config(
            "overlay_interface",
            Value::String(name),
            "is not a valid interface name (1-15 bytes, no '/', ':' or whitespace, not . or ..)",
        ));
    }
    Ok(name)
}

pub(super) fn table(obj: &Map<String, Value>, key: &str) -> Result<Option<u32>> {
    let Some(n) = integer_in(obj, key, 1, i64::from(u32::MAX))? else {
        return Ok(None);
    };
    if RESERVED_TABLES.contains(&n) {
        return Err(Error::config(
            key,
            n,
            "is a reserved table (253 default, 254 main, 255 local)",
        ));
    }
    Ok(u32::try_from(n).ok())
}

pub(super) fn priority(obj: &Map<String, Value>, key: &str) -> Result<u32> {
    let n = integer_in(obj, key, 1, MAX_RULE_PRIORITY)?.unwrap_or(i64::from(DEFAULT_PRIORITY));
    Ok(u32::try_from(n).unwrap_or(DEFAULT_PRIORITY))
}

pub(super) fn parse_rp_filter(obj: &Map<String, Value>) -> Result<RpFilter> {
    let mut rp = RpFilter::default();
    let Some(inner) = object(obj, "rp_filter")? else {
        return Ok(rp);
    };
    rp.set_host = boolean(inner, "set_host", true).map_err(|e| renest(e, "rp_filter"))?;
    if let Some(v) = integer(inner, "value").map_err(|e| renest(e, "rp_filter"))? {
        rp.value = u8::try_from(v)
            .ok()
            .filter(|v| *v <= 2)
            .ok_or_else(|| Error::config("rp_filter.value", v, "must be 0, 1 or 2"))?;
    }
    Ok(rp)
}

pub(super) fn parse_mac_prefix(
    obj: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<Option<[u8; 2]>> {
    let Some(text) = optional_string(obj, "mac_prefix")? else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    let bad = |reason: &str| Error::config("mac_prefix", Value::String(text.clone()), reason);
    let bytes: Vec<&str> = text.split(':').collect();
    let well_formed = bytes.len() == 2
        && bytes
            .iter()
            .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()));
    if !well_formed {
        return Err(bad("must be two hex bytes such as \"0a:1b\""));
    }
    let mut prefix = [0u8; 2];
    for (out, part) in prefix.iter_mut().zip(&bytes) {
        *out = u8::from_str_radix(part, 16).map_err(|_| bad("must be two hex bytes"))?;
    }
    if prefix[0] & 0x01 != 0 {
        return Err(bad(
            "the first byte is multicast (lowest bit set); a MAC must be unicast",
        ));
    }
    if prefix[0] & 0x02 == 0 {
        warnings.push(format!(
            "mac_prefix {text:?} is not locally administered (second-lowest bit of the first byte is 0): MACs may clash with vendor addresses"
        ));
    }
    Ok(Some(prefix))
}

pub(super) fn parse_ip_conflict(obj: &Map<String, Value>) -> Result<IpConflict> {
    let mut conflict = IpConflict::default();
    let Some(inner) = object(obj, "ip_conflict")? else {
        return Ok(conflict);
    };
    conflict.enabled = boolean(inner, "enabled", false).map_err(|e| renest(e, "ip_conflict"))?;
    if !conflict.enabled {
        return Ok(conflict);
    }
    if let Some(text) = optional_string(inner, "interval").map_err(|e| renest(e, "ip_conflict"))? {
        conflict.interval = parse_duration(&text)
            .filter(|d| !d.is_zero() && *d <= MAX_CONFLICT_INTERVAL)
            .ok_or_else(|| {
                Error::config(
                    "ip_conflict.interval",
                    Value::String(text.clone()),
                    "must be a duration above 0 and at most 10s, such as \"1s\" or \"100ms\"",
                )
            })?;
    }
    if let Some(n) = integer_in(inner, "retries", 1, 100).map_err(|e| renest(e, "ip_conflict"))? {
        conflict.retries = u32::try_from(n).unwrap_or(3);
    }
    Ok(conflict)
}

/// `overlay_wait`: how long ADD waits for the overlay interface to be ready (its veth peer
/// in the node netns, its address and routes in place) before failing with code 104.
/// `"0s"` judges once, without waiting.
pub(super) fn parse_overlay_wait(obj: &Map<String, Value>) -> Result<Duration> {
    let Some(text) = optional_string(obj, "overlay_wait")? else {
        return Ok(DEFAULT_OVERLAY_WAIT);
    };
    parse_duration(&text)
        .filter(|d| *d <= MAX_OVERLAY_WAIT)
        .ok_or_else(|| {
            Error::config(
                "overlay_wait",
                Value::String(text.clone()),
                "must be a duration of at most 2m, such as \"10s\" or \"500ms\" (\"0s\": no wait)",
            )
        })
}

/// A Go-style duration: one or more `<number><unit>` with units ns, us, µs, ms, s, m, h.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    Duration::try_from_secs_f64(total).ok()
}
