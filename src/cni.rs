//! cni: the CNI protocol (BEHAVIOUR 7): CNI_* variables (and ROUTER_ALLOWED_DIRS), stdin,
//! VERSION, results and error JSON on stdout with the config's cniVersion. The only module
//! that reads CNI_* variables. Logs never go to stdout; no input may panic it. DEL (and GC)
//! never fail on a config they cannot use: they log it and go on from the records.

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use serde_json::{json, Value};

use crate::config::{
    is_valid_ifname, parse_netconf, parse_version, path_error, rolled_out_wins, salvage,
    AllowedDirs, CniVersion, Config, NetConf, PrevView, ALLOWED_DIRS_VAR, SUPPORTED_VERSIONS,
};
use crate::conflict::AddressProbe;
use crate::error::{excerpt, Code, Error, Result};
use crate::execute::Executor;
use crate::logging::{log_phase, log_phase_between, phase};
use crate::model::{AddInputs, MacAddr};
use crate::reconcile::{self, Attachment, ConfigSource, Failure, ValidAttachment, World};
use crate::record::{is_valid_container_id, HostGuard, RecordStore, MAX_CONTAINER_ID_LEN};
use crate::snapshot::SnapshotSource;

/// Stdin beyond this is refused (code 6) without being held in memory.
pub const MAX_STDIN: u64 = 4 << 20;
/// Errors before the config's version is known are reported in this one.
const FALLBACK_VERSION: &str = "1.1.0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    /// CNI 1.1: remove what attachments not in `cni.dev/valid-attachments` left behind.
    Gc,
    /// CNI 1.1: whether ADD can be serviced now.
    Status,
}

impl Command {
    /// As CNI_COMMAND spells it.
    pub fn name(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Gc => "GC",
            Command::Status => "STATUS",
        }
    }

    /// The commands that act on one attachment (CNI_CONTAINERID, CNI_IFNAME).
    fn names_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

/// GC's list of the attachments still in use (CNI 1.1).
pub const VALID_ATTACHMENTS_KEY: &str = "cni.dev/valid-attachments";

/// What the runtime asked for, from the CNI_* variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
}

/// Whether the process was started by a runtime (CNI_COMMAND is set) or as a CLI.
pub fn invoked_as_plugin() -> bool {
    std::env::var_os("CNI_COMMAND").is_some()
}

/// The process environment as the protocol reads it. A value that is not UTF-8 comes back
/// as `<not UTF-8: ...>`, which no variable's validation accepts: read lossily it could
/// pass for another name (an interface `\xff` would become U+FFFD).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| {
        v.into_string()
            .unwrap_or_else(|raw| format!("<not UTF-8: {}>", raw.to_string_lossy()))
    })
}

fn parse_command(value: Option<String>) -> Result<Command> {
    match value.as_deref() {
        Some("ADD") => Ok(Command::Add),
        Some("DEL") => Ok(Command::Del),
        Some("CHECK") => Ok(Command::Check),
        Some("VERSION") => Ok(Command::Version),
        Some("GC") => Ok(Command::Gc),
        Some("STATUS") => Ok(Command::Status),
        Some(other) => Err(Error::InvalidEnv(format!(
            "CNI_COMMAND={:?} is not one of ADD, DEL, CHECK, VERSION, GC, STATUS",
            excerpt(other)
        ))),
        None => Err(Error::InvalidEnv("missing CNI_COMMAND".into())),
    }
}

/// Reads and validates the CNI_* variables a command needs; names every missing one.
pub fn parse_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Invocation> {
    let command = parse_command(env("CNI_COMMAND"))?;
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    let required: &[&str] = match command {
        Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
        Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
        // CNI 1.1: GC and STATUS concern the network, not one container.
        Command::Version | Command::Gc | Command::Status => &[],
    };
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|n| get(n).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(Error::InvalidEnv(format!("missing {}", missing.join(", "))));
    }
    let container_id = get("CNI_CONTAINERID").unwrap_or_default();
    let ifname = get("CNI_IFNAME").unwrap_or_default();
    let netns = get("CNI_NETNS").map(PathBuf::from);
    if command.names_attachment() {
        validate_identity(&container_id, &ifname, netns.as_ref())?;
    }
    Ok(Invocation {
        command,
        container_id,
        netns,
        ifname,
    })
}

fn validate_identity(container_id: &str, ifname: &str, netns: Option<&PathBuf>) -> Result<()> {
    if !is_valid_container_id(container_id) {
        return Err(Error::InvalidEnv(format!(
            "CNI_CONTAINERID={:?} is not a valid container id (1-{MAX_CONTAINER_ID_LEN} of alphanumerics, '-', '_', '.', starting with an alphanumeric)",
            excerpt(container_id)
        )));
    }
    if !is_valid_ifname(ifname) {
        return Err(Error::InvalidEnv(format!(
            "CNI_IFNAME={:?} is not a valid interface name (1-15 bytes, no '/', ':', NUL or whitespace, not . or ..)",
            excerpt(ifname)
        )));
    }
    if let Some(path) = netns {
        if !path.is_absolute() || path.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(Error::InvalidEnv(format!(
                "CNI_NETNS={:?} is not an absolute path",
                excerpt(&path.display().to_string())
            )));
        }
    }
    Ok(())
}

/// Reads at most MAX_STDIN bytes; more is an error, not an allocation.
pub fn read_stdin(stdin: &mut dyn Read) -> Result<Vec<u8>> {
    // Reserved, not touched: only the pages read into count, and a full read never grows
    // the buffer (growing would copy it into one twice as large).
    let mut bytes = Vec::with_capacity(MAX_STDIN as usize + 1);
    stdin
        .take(MAX_STDIN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Decode {
            what: "stdin".into(),
            reason: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_STDIN {
        return Err(Error::Decode {
            what: "stdin".into(),
            reason: format!("larger than {MAX_STDIN} bytes"),
        });
    }
    Ok(bytes)
}

fn decode(bytes: &[u8]) -> Result<Value> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Decode {
        what: "stdin".into(),
        reason: format!("not UTF-8: {e}"),
    })?;
    serde_json::from_str(text).map_err(|e| Error::Decode {
        what: "stdin".into(),
        reason: format!("not JSON: {e}"),
    })
}

/// The version to echo: the input's own when it is one we speak.
fn version_hint(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| FALLBACK_VERSION.to_string())
}

/// What the process prints and exits with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub exit_code: i32,
}

impl Output {
    fn success(value: Option<Value>) -> Output {
        Output {
            stdout: value.map(|v| format!("{v}\n")).unwrap_or_default(),
            exit_code: 0,
        }
    }

    pub fn error(err: &Failure, version: &str) -> Output {
        let mut body = json!({
            "cniVersion": version,
            "code": err.code().number(),
            "msg": err.to_string(),
        });
        if let Some(details) = err.details() {
            body["details"] = Value::String(details);
        }
        Output {
            stdout: format!("{body}\n"),
            exit_code: 1,
        }
    }
}

/// The live or test world for one invocation, built once the config is known.
pub struct Backends {
    pub snapshots: Box<dyn SnapshotSource>,
    pub executor: Box<dyn Executor>,
    pub records: Box<dyn RecordStore>,
    pub host: Box<dyn HostGuard>,
    /// The chained interface's L2 segment: conflict probes.
    pub probe: Box<dyn AddressProbe>,
    /// The attachment's lock, shared with `router agent`, held while the backends live
    /// (the whole run): the agent repairs nothing of an attachment while its ADD, CHECK
    /// or DEL runs. None where no agent can be (tests) or for GC and STATUS.
    pub attachment_lock: Option<crate::record::AttachmentLock>,
}

pub type BackendFactory<'a> = &'a dyn Fn(&Config, &Invocation) -> Result<Backends>;

/// One plugin invocation, start to end. Never panics on input; every failure is a CNI
/// error on stdout.
pub fn run(
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    backends: BackendFactory<'_>,
) -> Output {
    let started = Instant::now();
    let bytes = match read_stdin(stdin) {
        Ok(b) => b,
        Err(e) => return Output::error(&e.into(), FALLBACK_VERSION),
    };
    let hint = version_hint(&bytes);
    let invocation = match parse_env(env) {
        Ok(inv) => inv,
        Err(e) => return Output::error(&e.into(), &hint),
    };
    if invocation.command == Command::Version {
        return Output::success(Some(json!({
            "cniVersion": hint,
            "supportedVersions": SUPPORTED_VERSIONS,
        })));
    }
    let mut version = hint;
    let allowed = AllowedDirs::from_var(env(ALLOWED_DIRS_VAR).as_deref());
    let outcome = run_command(
        &invocation,
        &bytes,
        &allowed,
        &mut version,
        backends,
        started,
    );
    let (command, container, ifname) = (
        invocation.command,
        &invocation.container_id,
        &invocation.ifname,
    );
    match outcome {
        Ok(result) => {
            tracing::info!(?command, container, ifname, "done");
            Output::success(result)
        }
        Err(e) => {
            tracing::warn!(?command, container, ifname, code = e.code().number(), error = %e, "failed");
            Output::error(&e, &version)
        }
    }
}

/// What stdin asks of the command beyond the config, parsed before anything is touched.
enum Request {
    Add {
        prev_json: Value,
        prev: PrevView,
    },
    Check {
        prev: PrevView,
    },
    /// DEL parses prevResult once logging is up: an unusable one is logged and ignored.
    Del,
    Gc {
        valid: Vec<ValidAttachment>,
    },
    Status,
}

impl Request {
    fn parse(inv: &Invocation, input: &Value, netconf: &NetConf) -> Result<Request> {
        let ifname = inv.ifname.as_str();
        let prev_json = netconf.prev_result.as_ref();
        Ok(match inv.command {
            Command::Add => {
                let prev_json = prev_json.ok_or_else(|| {
                    Error::InvalidPrevResult(
                        "prevResult is required: router is a chained plugin".into(),
                    )
                })?;
                let prev = PrevView::parse(prev_json)?;
                prev.require_addresses_of(ifname)?;
                Request::Add {
                    prev,
                    prev_json: prev_json.clone(),
                }
            }
            Command::Check => {
                let prev_json = prev_json
                    .ok_or_else(|| Error::InvalidPrevResult("CHECK needs prevResult".into()))?;
                Request::Check {
                    prev: PrevView::parse(prev_json)?,
                }
            }
            Command::Del => Request::Del,
            Command::Gc => Request::Gc {
                valid: parse_valid_attachments(input)?,
            },
            // VERSION is answered by `run` before any config is read.
            Command::Status | Command::Version => Request::Status,
        })
    }
}

/// `cni.dev/valid-attachments`: a list of `{"containerID", "ifname"}`. Required: without it
/// every attachment would look stale.
pub fn parse_valid_attachments(input: &Value) -> Result<Vec<ValidAttachment>> {
    let key = VALID_ATTACHMENTS_KEY;
    let value = input.get(key).filter(|v| !v.is_null()).ok_or_else(|| {
        Error::config(
            key,
            "<missing>",
            "GC needs the list of attachments still in use",
        )
    })?;
    let items = value.as_array().ok_or_else(|| {
        Error::config(
            key,
            value,
            "must be a list of {\"containerID\", \"ifname\"} objects",
        )
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = |name: &str| format!("{key}[{i}].{name}");
            let container_id = item
                .get("containerID")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::config(&field("containerID"), item, "must be a string"))?;
            let ifname = match item.get("ifname") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(v) => return Err(Error::config(&field("ifname"), v, "must be a string")),
            };
            Ok(ValidAttachment {
                container_id: container_id.to_string(),
                ifname,
            })
        })
        .collect()
}

/// The protocol's version gates: CHECK exists from 0.4.0 on, GC and STATUS from 1.1.0.
fn check_version_gate(command: Command, version: CniVersion) -> Result<()> {
    let needs = match command {
        Command::Check if !version.supports_check() => "0.4.0",
        Command::Gc | Command::Status if !version.supports_gc_and_status() => "1.1.0",
        _ => return Ok(()),
    };
    Err(Error::IncompatibleVersion(format!(
        "{} needs cniVersion {needs} or later, the config says {version}",
        command.name()
    )))
}

/// stdin as a config: the version and its gate first (code 1 before any other key's error),
/// then every key.
fn parse_input(
    inv: &Invocation,
    input: &Result<Value>,
    allowed: &AllowedDirs,
    version: &mut String,
) -> Result<NetConf> {
    let input = input.as_ref().map_err(Clone::clone)?;
    let cni_version = parse_version(input)?;
    *version = cni_version.to_string();
    check_version_gate(inv.command, cni_version)?;
    parse_netconf(input, allowed)
}

/// The config to act with, and why the one given could not be used. DEL goes on past any
/// error of stdin (a DEL that fails forever blocks the pod's teardown), GC past invalid
/// keys but not past a path outside the allowed directories; both then act only on what the
/// records prove (`salvage`). Every other command fails.
fn config_for(
    inv: &Invocation,
    input: &Result<Value>,
    allowed: &AllowedDirs,
    version: &mut String,
) -> Result<(NetConf, Option<Error>)> {
    let error = match parse_input(inv, input, allowed, version) {
        Ok(netconf) => return Ok((netconf, None)),
        Err(e) => e,
    };
    let value = input.as_ref().unwrap_or(&Value::Null);
    match inv.command {
        Command::Del => {}
        Command::Gc if error.code() == Code::InvalidConfig => {
            if let Some(refused) = path_error(value, allowed) {
                return Err(refused);
            }
        }
        _ => return Err(error),
    }
    let netconf = NetConf {
        config: salvage(value, allowed),
        prev_result: None,
    };
    Ok((netconf, Some(error)))
}

fn run_command(
    inv: &Invocation,
    bytes: &[u8],
    allowed: &AllowedDirs,
    version: &mut String,
    backends: BackendFactory<'_>,
    started: Instant,
) -> Result<Option<Value>, Failure> {
    let input = decode(bytes);
    let (netconf, unusable) = config_for(inv, &input, allowed, version)?;
    let input = input.unwrap_or(Value::Null);
    let config = &netconf.config;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if config.skip_call {
        return Ok(skip_call_result(
            inv.command,
            netconf.prev_result.as_ref(),
            config.cni_version,
        ));
    }
    let request = Request::parse(inv, &input, &netconf)?;
    let att = Attachment {
        container_id: inv.container_id.clone(),
        ifname: inv.ifname.clone(),
        netns: inv.netns.clone(),
    };
    let parsed = Instant::now();
    let backends = backends(config, inv)?;
    // Logged once the log is open: from the start of the run to a parsed config, then the
    // log and the backends set up (the pod's visitor made, data_dir reached).
    log_phase_between("config", started, parsed);
    log_phase("set-up", parsed);
    for ignored in &allowed.ignored {
        tracing::warn!("{ALLOWED_DIRS_VAR}: {ignored:?} is no absolute path without `..`: ignored");
    }
    if let Some(e) = &unusable {
        tracing::warn!(
            command = inv.command.name(),
            error = %e,
            "the config is not usable: going on from the attachment records and the owned objects the kernel shows"
        );
    }
    let source = match unusable {
        None => ConfigSource::Given,
        Some(_) => ConfigSource::Salvaged,
    };
    let world = World {
        snapshots: backends.snapshots.as_ref(),
        executor: backends.executor.as_ref(),
        records: backends.records.as_ref(),
        host: backends.host.as_ref(),
    };
    let rolled = phase("records", || {
        rolled_out_config(inv, config, world.records, allowed)
    })?;
    let config = rolled.as_ref().unwrap_or(config);
    let outcome = (|| match request {
        Request::Add { prev_json, prev } => {
            let inputs = AddInputs::new(att.netns.clone(), &input);
            let probe = backends.probe.as_ref();
            let outcome = reconcile::add(config, &att, &prev, &inputs, &world, probe)?;
            for note in &outcome.notes {
                tracing::info!("{note}");
            }
            for warning in &outcome.warnings {
                tracing::warn!("{warning}");
            }
            Ok(Some(phase("result", || {
                result_with_mac(&prev_json, &inv.ifname, outcome.new_mac, config.cni_version)
            })))
        }
        Request::Check { prev } => {
            reconcile::check(config, &att, &prev, &world)?;
            Ok(None)
        }
        Request::Del => {
            let prev = netconf.prev_result.as_ref().and_then(|p| {
                PrevView::parse(p)
                    .inspect_err(|e| tracing::warn!("DEL ignores an unusable prevResult: {e}"))
                    .ok()
            });
            reconcile::del(config, source, &att, prev.as_ref(), &world)?;
            Ok(None)
        }
        Request::Gc { valid } => {
            let outcome = reconcile::gc(config, source, &valid, &world)?;
            tracing::info!(
                collected = ?outcome.collected,
                ops = outcome.applied.len(),
                valid = valid.len(),
                "GC"
            );
            Ok(None)
        }
        Request::Status => {
            reconcile::status(world.host)?;
            Ok(None)
        }
    })();
    // The run's backends go before its result is written: the pod's visitor, the netlink
    // sockets, the sysctl files, and the attachment lock, released last so that an agent
    // waiting for it finds the run's work done.
    phase("release", || drop(backends));
    outcome
}

/// The config `router rollout` left in the attachment's record, which ADD, CHECK and DEL of
/// that attachment act on instead of stdin's (the runtime's cache still holds the ADD-time
/// one: docs/decisions/rollout-config-wins.md). None when there is none. DEL goes on with
/// stdin's past a record or a rolled-out config it cannot read (logged).
fn rolled_out_config(
    inv: &Invocation,
    given: &Config,
    records: &dyn RecordStore,
    allowed: &AllowedDirs,
) -> Result<Option<Config>> {
    if !inv.command.names_attachment() {
        return Ok(None);
    }
    let found = records
        .load(&inv.container_id, &inv.ifname)
        .map(|record| record.and_then(|r| r.rolled_out))
        .and_then(|rolled| match rolled {
            Some(value) => rolled_out_wins(given.clone(), Some(&value), allowed).map(Some),
            None => Ok(None),
        });
    match found {
        Ok(Some(config)) => {
            tracing::info!("acting on the config rolled out to this attachment, not stdin's");
            Ok(Some(config))
        }
        Ok(None) => Ok(None),
        Err(e) if inv.command == Command::Del => {
            tracing::warn!(error = %e, "DEL goes on with stdin's config");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// skip_call: pass prevResult through untouched (or an empty result of the config's
/// version); CHECK and DEL have nothing to say.
fn skip_call_result(command: Command, prev: Option<&Value>, version: CniVersion) -> Option<Value> {
    if command != Command::Add {
        return None;
    }
    let mut result = prev
        .cloned()
        .unwrap_or_else(|| json!({ "interfaces": [], "ips": [], "dns": {} }));
    if let Some(obj) = result.as_object_mut() {
        obj.insert("cniVersion".into(), Value::String(version.to_string()));
    }
    Some(result)
}

/// The result: prevResult unchanged but for the config's cniVersion and the chained
/// interface's new MAC in its sandbox `interfaces` entry (otherwise the previous plugin's
/// CHECK fails).
pub fn result_with_mac(
    prev: &Value,
    ifname: &str,
    mac: Option<MacAddr>,
    version: CniVersion,
) -> Value {
    let mut result = prev.clone();
    let Some(obj) = result.as_object_mut() else {
        return result;
    };
    obj.insert("cniVersion".into(), Value::String(version.to_string()));
    if let (Some(mac), Some(Value::Array(interfaces))) = (mac, obj.get_mut("interfaces")) {
        for itf in interfaces
            .iter_mut()
            .filter(|i| is_sandbox_entry(i, ifname))
        {
            itf["mac"] = Value::String(mac.to_string());
        }
    }
    result
}

fn is_sandbox_entry(itf: &Value, ifname: &str) -> bool {
    itf.get("name").and_then(Value::as_str) == Some(ifname)
        && itf
            .get("sandbox")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
}

#[cfg(test)]
mod tests;
