//! config: the plugin's network config (BEHAVIOUR section 1) and the typed view of
//! prevResult, parsed and validated up front. Every rejection is code 7 naming the key and
//! the bad value. Pure: no env, no files, no kernel.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::error::{excerpt, Error, Result};

/// The CNI versions this plugin speaks, oldest first. VERSION answers exactly these.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

const MAX_IFNAME_LEN: usize = 15;
const MAX_RULE_PRIORITY: i64 = 32765;
const RESERVED_TABLES: [i64; 3] = [253, 254, 255];
const MAX_CONFLICT_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_HOST_RULE_TABLE: u32 = 500;
const DEFAULT_PRIORITY: u32 = 1000;
const DEFAULT_OVERLAY_INTERFACE: &str = "eth0";
const DEFAULT_LOG_FILE: &str = "/var/log/meta-plugins/router.log";
const DEFAULT_DATA_DIR: &str = "/run/cni/router";
/// Where `log_options.log_file` may lie without ROUTER_ALLOWED_DIRS.
const LOG_ROOTS: [&str; 1] = ["/var/log"];
/// Where `data_dir` may lie without ROUTER_ALLOWED_DIRS.
const DATA_ROOTS: [&str; 2] = ["/run", "/var/run"];
/// The environment variable naming more allowed directories (read by `cni` and `cli`).
pub const ALLOWED_DIRS_VAR: &str = "ROUTER_ALLOWED_DIRS";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CniVersion(pub u8, pub u8, pub u8);

impl CniVersion {
    /// CHECK exists from 0.4.0 on.
    pub fn supports_check(self) -> bool {
        self >= CniVersion(0, 4, 0)
    }

    /// GC and STATUS exist from 1.1.0 on.
    pub fn supports_gc_and_status(self) -> bool {
        self >= CniVersion(1, 1, 0)
    }
}

impl FromStr for CniVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if !SUPPORTED_VERSIONS.contains(&s) {
            return Err(Error::IncompatibleVersion(format!(
                "cniVersion {:?} is not one of {}",
                excerpt(s),
                SUPPORTED_VERSIONS.join(", ")
            )));
        }
        let mut parts = s.split('.').map(|p| p.parse::<u8>().unwrap_or(0));
        Ok(CniVersion(
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        ))
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpConflict {
    pub enabled: bool,
    pub interval: Duration,
    pub retries: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    pub level: LogLevel,
    pub file: PathBuf,
    /// The allowed directory `file` lies in: below it no component may be a symlink.
    pub root: PathBuf,
    pub max_size_mb: u64,
    pub max_count: u32,
    pub max_age_days: u32,
}

/// The directories a config may name files in: `/var/log` for the log file, `/run` and
/// `/var/run` for data_dir, plus every directory of ROUTER_ALLOWED_DIRS (colon-separated
/// absolute paths) for both. The runtime's environment sets it, which a
/// NetworkAttachmentDefinition cannot; config validation takes it as a value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedDirs {
    extra: Vec<PathBuf>,
    /// Entries of the variable that are no absolute path without `..` (logged, not used).
    pub ignored: Vec<String>,
}

/// A path a config named, inside the allowed directory `root` (normalised: no `.`, no
/// empty component; `..` is refused).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Confined {
    root: PathBuf,
    path: PathBuf,
}

impl AllowedDirs {
    /// The defaults plus `dirs` (absolute paths; others are ignored).
    pub fn with<P: AsRef<Path>>(dirs: impl IntoIterator<Item = P>) -> AllowedDirs {
        let mut allowed = AllowedDirs::default();
        for dir in dirs {
            let dir = dir.as_ref();
            match normalised(dir) {
                Some(dir) if dir.is_absolute() => allowed.extra.push(dir),
                _ => allowed.ignored.push(dir.display().to_string()),
            }
        }
        allowed
    }

    /// From ROUTER_ALLOWED_DIRS's value (unset: the defaults only).
    pub fn from_var(value: Option<&str>) -> AllowedDirs {
        let entries = value
            .unwrap_or_default()
            .split(':')
            .filter(|e| !e.is_empty());
        AllowedDirs::with(entries)
    }

    fn roots(&self, defaults: &[&str]) -> Vec<PathBuf> {
        defaults
            .iter()
            .map(PathBuf::from)
            .chain(self.extra.iter().cloned())
            .collect()
    }

    /// `value` of `key` when it lies strictly inside one of the roots (the deepest that
    /// holds it), judged component by component after normalisation.
    fn confine(&self, key: &str, value: &str, defaults: &[&str]) -> Result<Confined> {
        let roots = self.roots(defaults);
        let refuse = |reason: String| Error::config(key, Value::String(value.to_string()), reason);
        if !value.starts_with('/') || value.contains('\0') {
            return Err(refuse("must be an absolute path".into()));
        }
        // Resolving `..` by text would not be what the kernel resolves through a symlink.
        let path = normalised(Path::new(value))
            .ok_or_else(|| refuse("must not contain a .. component".into()))?;
        roots
            .iter()
            .filter(|root| path.starts_with(root) && path != **root)
            .max_by_key(|root| root.components().count())
            .map(|root| Confined {
                root: root.clone(),
                path: path.clone(),
            })
            .ok_or_else(|| {
                let names: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                refuse(format!(
                    "must lie inside one of the allowed directories {} (more can be allowed with {ALLOWED_DIRS_VAR})",
                    names.join(", ")
                ))
            })
    }
}

/// `path` without `.` and empty components; None when it has a `..` one.
fn normalised(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => return None,
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// The validated plugin config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub cni_version: CniVersion,
    pub name: Option<String>,
    pub overlay_hijack_subnet: Vec<IpNet>,
    pub service_hijack_subnet: Vec<IpNet>,
    pub additional_hijack_subnet: Vec<IpNet>,
    pub migrate_route: MigrateRoute,
    pub overlay_interface: String,
    pub host_rule_table: u32,
    pub route_table: Option<u32>,
    pub rule_priority: u32,
    pub host_rule_priority: u32,
    pub skip_call: bool,
    pub sriov: bool,
    pub rp_filter: RpFilter,
    pub mac_prefix: Option<[u8; 2]>,
    pub only_op_mac: bool,
    pub ip_conflict: IpConflict,
    pub log_options: LogOptions,
    pub data_dir: PathBuf,
    /// The allowed directory `data_dir` lies in: below it no component may be a symlink.
    pub data_root: PathBuf,
    /// Accepted but worth an operator's attention (logged).
    pub warnings: Vec<String>,
}

/// A parsed stdin: the config, prevResult kept verbatim for output, and its typed view.
#[derive(Clone, Debug)]
pub struct NetConf {
    pub config: Config,
    pub prev_result: Option<Value>,
}

/// Parses a plugin config object (what a runtime sends on stdin); the paths it names must
/// lie in `allowed`.
pub fn parse_netconf(value: &Value, allowed: &AllowedDirs) -> Result<NetConf> {
    let obj = config_object(value)?;
    let config = parse_config(obj, allowed)?;
    let prev_result = obj.get("prevResult").filter(|v| !v.is_null()).cloned();
    Ok(NetConf {
        config,
        prev_result,
    })
}

/// `router plan --config` takes a plugin object or a whole conflist: from a conflist the
/// `router` entry is used, with the list's `name` and `cniVersion`.
pub fn plugin_from_conflist_or_plugin(value: Value) -> Result<Value> {
    let Some(plugins) = value.get("plugins") else {
        return Ok(value);
    };
    let list = plugins
        .as_array()
        .ok_or_else(|| Error::config("plugins", plugins, "must be a list of plugin objects"))?;
    let mut plugin = list
        .iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("router"))
        .cloned()
        .ok_or_else(|| Error::config("plugins", "[...]", "the conflist has no \"router\" entry"))?;
    if let Some(obj) = plugin.as_object_mut() {
        for key in ["name", "cniVersion"] {
            if let Some(v) = value.get(key) {
                obj.insert(key.to_string(), v.clone());
            }
        }
    }
    Ok(plugin)
}

fn config_object(value: &Value) -> Result<&Map<String, Value>> {
    value.as_object().ok_or_else(|| Error::Decode {
        what: "network config".into(),
        reason: format!("expected a JSON object, got {}", json_type(value)),
    })
}

/// The config's `cniVersion` alone, so that version errors (code 1) are answered before
/// the errors of other keys.
pub fn parse_version(value: &Value) -> Result<CniVersion> {
    parse_cni_version(config_object(value)?)
}

/// What DEL and GC can still use of a config that is not valid (BEHAVIOUR: DEL never fails
/// on input it cannot use): `name`, `cniVersion`, `host_rule_priority`, `log_options` and
/// `data_dir` when each is valid on its own, defaults for the rest. It wants nothing
/// (no hijack subnets): DEL and GC then act only on what the records prove.
pub fn salvage(value: &Value, allowed: &AllowedDirs) -> Config {
    let empty = Map::new();
    let obj = value.as_object().unwrap_or(&empty);
    let (data_dir, data_root) = parse_data_dir(obj, allowed).unwrap_or_else(|_| default_data_dir());
    Config {
        cni_version: parse_cni_version(obj).unwrap_or(CniVersion(1, 1, 0)),
        name: optional_string(obj, "name").ok().flatten(),
        overlay_hijack_subnet: Vec::new(),
        service_hijack_subnet: Vec::new(),
        additional_hijack_subnet: Vec::new(),
        migrate_route: MigrateRoute::Auto,
        overlay_interface: DEFAULT_OVERLAY_INTERFACE.into(),
        host_rule_table: DEFAULT_HOST_RULE_TABLE,
        route_table: None,
        rule_priority: DEFAULT_PRIORITY,
        host_rule_priority: priority(obj, "host_rule_priority").unwrap_or(DEFAULT_PRIORITY),
        skip_call: false,
        sriov: false,
        rp_filter: RpFilter {
            set_host: true,
            value: 2,
        },
        mac_prefix: None,
        only_op_mac: false,
        ip_conflict: IpConflict {
            enabled: false,
            interval: Duration::from_secs(1),
            retries: 3,
        },
        log_options: parse_log_options(obj, allowed).unwrap_or_else(|_| default_log_options()),
        data_dir,
        data_root,
        warnings: Vec::new(),
    }
}

/// The default data_dir and the allowed directory it lies in.
pub fn default_data_dir() -> (PathBuf, PathBuf) {
    (
        PathBuf::from(DEFAULT_DATA_DIR),
        PathBuf::from(DATA_ROOTS[0]),
    )
}

/// The first path key of the config (`data_dir`, `log_options.log_file`) that names a file
/// outside the allowed directories, or is no valid path: GC refuses these (code 7) even
/// when it goes on past other invalid keys.
pub fn path_error(value: &Value, allowed: &AllowedDirs) -> Option<Error> {
    let obj = value.as_object()?;
    if let Err(e) = parse_data_dir(obj, allowed) {
        return Some(e);
    }
    let inner = object(obj, "log_options").ok().flatten()?;
    parse_log_file(inner, allowed).err()
}

fn parse_config(obj: &Map<String, Value>, allowed: &AllowedDirs) -> Result<Config> {
    let cni_version = parse_cni_version(obj)?;
    let name = optional_string(obj, "name")?;
    let mut warnings = Vec::new();
    let (overlay, service, additional) = parse_hijack_subnets(obj)?;
    let host_rule_table = table(obj, "host_rule_table")?.unwrap_or(DEFAULT_HOST_RULE_TABLE);
    let route_table = table(obj, "route_table")?;
    if route_table == Some(host_rule_table) {
        return Err(Error::config(
            "route_table",
            host_rule_table,
            "must differ from host_rule_table",
        ));
    }
    let mac_prefix = parse_mac_prefix(obj, &mut warnings)?;
    let only_op_mac = boolean(obj, "only_op_mac", false)?;
    let (data_dir, data_root) = parse_data_dir(obj, allowed)?;
    if only_op_mac && mac_prefix.is_none() {
        return Err(Error::config(
            "only_op_mac",
            true,
            "needs mac_prefix to be set",
        ));
    }
    Ok(Config {
        cni_version,
        name,
        overlay_hijack_subnet: overlay,
        service_hijack_subnet: service,
        additional_hijack_subnet: additional,
        migrate_route: parse_migrate_route(obj)?,
        overlay_interface: parse_overlay_interface(obj)?,
        host_rule_table,
        route_table,
        rule_priority: priority(obj, "rule_priority")?,
        host_rule_priority: priority(obj, "host_rule_priority")?,
        skip_call: boolean(obj, "skip_call", false)?,
        sriov: boolean(obj, "sriov", false)?,
        rp_filter: parse_rp_filter(obj)?,
        mac_prefix,
        only_op_mac,
        ip_conflict: parse_ip_conflict(obj)?,
        log_options: parse_log_options(obj, allowed)?,
        data_dir,
        data_root,
        warnings,
    })
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The value of `key`, treating JSON null as absent (runtimes emit nulls for unset keys).
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn parse_cni_version(obj: &Map<String, Value>) -> Result<CniVersion> {
    match get(obj, "cniVersion") {
        None => Err(Error::config("cniVersion", "<missing>", "is required")),
        Some(Value::String(s)) => s.parse(),
        Some(v) => Err(Error::config("cniVersion", v, "must be a string")),
    }
}

fn optional_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(Error::config(key, v, "must be a string")),
    }
}

fn boolean(obj: &Map<String, Value>, key: &str, default: bool) -> Result<bool> {
    match get(obj, key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(Error::config(key, v, "must be true or false")),
    }
}

fn integer(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
    match get(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| Error::config(key, v, "must be an integer")),
    }
}

fn integer_in(obj: &Map<String, Value>, key: &str, lo: i64, hi: i64) -> Result<Option<i64>> {
    let value = integer(obj, key)?;
    match value {
        Some(n) if n < lo || n > hi => Err(Error::config(
            key,
            n,
            format!("must be between {lo} and {hi}"),
        )),
        _ => Ok(value),
    }
}

fn object<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a Map<String, Value>>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(v) => Err(Error::config(key, v, "must be an object")),
    }
}

/// Names a nested key as `outer.inner` in errors.
fn nested(outer: &str, inner: &str) -> String {
    format!("{outer}.{inner}")
}

fn parse_hijack_subnets(obj: &Map<String, Value>) -> Result<(Vec<IpNet>, Vec<IpNet>, Vec<IpNet>)> {
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

fn parse_migrate_route(obj: &Map<String, Value>) -> Result<MigrateRoute> {
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

fn parse_overlay_interface(obj: &Map<String, Value>) -> Result<String> {
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

fn table(obj: &Map<String, Value>, key: &str) -> Result<Option<u32>> {
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

fn priority(obj: &Map<String, Value>, key: &str) -> Result<u32> {
    let n = integer_in(obj, key, 1, MAX_RULE_PRIORITY)?.unwrap_or(i64::from(DEFAULT_PRIORITY));
    Ok(u32::try_from(n).unwrap_or(DEFAULT_PRIORITY))
}

fn parse_rp_filter(obj: &Map<String, Value>) -> Result<RpFilter> {
    let mut rp = RpFilter {
        set_host: true,
        value: 2,
    };
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

/// Prefixes the key of a config error raised on a nested object.
fn renest(err: Error, outer: &str) -> Error {
    match err {
        Error::InvalidConfig { key, value, reason } => Error::InvalidConfig {
            key: nested(outer, &key),
            value,
            reason,
        },
        other => other,
    }
}

fn parse_mac_prefix(
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

fn parse_ip_conflict(obj: &Map<String, Value>) -> Result<IpConflict> {
    let mut conflict = IpConflict {
        enabled: false,
        interval: Duration::from_secs(1),
        retries: 3,
    };
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

fn default_log_options() -> LogOptions {
    LogOptions {
        level: LogLevel::Info,
        file: PathBuf::from(DEFAULT_LOG_FILE),
        root: PathBuf::from(LOG_ROOTS[0]),
        max_size_mb: 100,
        max_count: 5,
        max_age_days: 5,
    }
}

fn parse_log_options(obj: &Map<String, Value>, allowed: &AllowedDirs) -> Result<LogOptions> {
    let mut options = default_log_options();
    let Some(inner) = object(obj, "log_options")? else {
        return Ok(options);
    };
    let nest = |e| renest(e, "log_options");
    if let Some(level) = optional_string(inner, "log_level").map_err(nest)? {
        options.level = parse_log_level(&level)?;
    }
    if let Some(file) = parse_log_file(inner, allowed)? {
        options.file = file.path;
        options.root = file.root;
    }
    if let Some(n) = integer_in(inner, "log_max_size", 1, 1 << 20).map_err(nest)? {
        options.max_size_mb = u64::try_from(n).unwrap_or(100);
    }
    if let Some(n) = integer_in(inner, "log_max_count", 1, 1000).map_err(nest)? {
        options.max_count = u32::try_from(n).unwrap_or(5);
    }
    if let Some(n) = integer_in(inner, "log_max_age", 1, 3650).map_err(nest)? {
        options.max_age_days = u32::try_from(n).unwrap_or(5);
    }
    Ok(options)
}

/// `log_file`: a file inside an allowed directory (by default /var/log).
fn parse_log_file(inner: &Map<String, Value>, allowed: &AllowedDirs) -> Result<Option<Confined>> {
    let key = "log_options.log_file";
    let Some(file) = optional_string(inner, "log_file").map_err(|e| renest(e, "log_options"))?
    else {
        return Ok(None);
    };
    if file.is_empty() || file.contains('\0') || file.ends_with('/') {
        return Err(Error::config(
            key,
            Value::String(file),
            "must be a file path",
        ));
    }
    allowed.confine(key, &file, &LOG_ROOTS).map(Some)
}

fn parse_log_level(text: &str) -> Result<LogLevel> {
    match text.to_ascii_lowercase().as_str() {
        "trace" => Ok(LogLevel::Trace),
        "debug" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "error" => Ok(LogLevel::Error),
        _ => Err(Error::config(
            "log_options.log_level",
            Value::String(text.to_string()),
            "must be one of trace, debug, info, warn, error",
        )),
    }
}

/// data_dir and the allowed directory it lies in (by default /run or /var/run). Records
/// are written under it as root: it names a directory inside that one, never a walk out.
fn parse_data_dir(obj: &Map<String, Value>, allowed: &AllowedDirs) -> Result<(PathBuf, PathBuf)> {
    let dir = optional_string(obj, "data_dir")?.unwrap_or_else(|| DEFAULT_DATA_DIR.into());
    let confined = allowed.confine("data_dir", &dir, &DATA_ROOTS)?;
    Ok((confined.path, confined.root))
}

impl Config {
    /// Table T for the chained interface: `route_table`, else 100 + N - 1 for a name
    /// ending in the number N.
    pub fn table_for(&self, ifname: &str) -> Result<u32> {
        if let Some(t) = self.route_table {
            return Ok(t);
        }
        let digits = ifname.len() - ifname.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let derived = ifname[ifname.len() - digits..]
            .parse::<u64>()
            .ok()
            .filter(|_| digits > 0)
            .map(|n| n + 99)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| !RESERVED_TABLES.contains(&i64::from(*t)) && *t != self.host_rule_table);
        derived.ok_or_else(|| {
            Error::config(
                "route_table",
                "<unset>",
                format!(
                    "cannot derive a table from interface name {ifname:?} (it must end in a number N giving table 100+N-1, not reserved and not host_rule_table); set route_table"
                ),
            )
        })
    }

    /// Every hijack CIDR, in config order.
    pub fn hijack_subnets(&self) -> impl Iterator<Item = &IpNet> {
        self.overlay_hijack_subnet
            .iter()
            .chain(&self.service_hijack_subnet)
            .chain(&self.additional_hijack_subnet)
    }
}

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

    /// C's addresses, at least one: every step of an ADD routes them, and a chain that gives
    /// C none is misconfigured (or L2 only, where router has no place). Code 7.
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

    /// C's addresses: entries pointing at the sandbox interface named `ifname`, and
    /// entries with no interface index.
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

#[cfg(test)]
mod tests;
