//! error: the crate's ground floor: errors, each kind carrying the CNI error code it is
//! reported with. Imports nothing of the crate and does no I/O. A failure about a plan is
//! not here: it is `plan::PlanFailure`, carried beside `Error` by `reconcile::Failure`.

use std::fmt;
use std::io;

/// CNI error codes (spec 1.1 section "Error", plus this plugin's own from 100 on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    IncompatibleVersion = 1,
    UnknownContainer = 3,
    InvalidEnv = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    TryAgain = 11,
    /// STATUS: the plugin cannot service ADD requests (CNI 1.1).
    NotAvailable = 50,
    Drift = 100,
    IpConflict = 101,
    Kernel = 102,
    Blocked = 103,
    /// ADD: `overlay_interface` is not in the pod netns, or is the chained interface
    /// (router ran before the default network made its interface).
    OverlayUnusable = 104,
    /// An operator command (or the agent) runs in another netns than the one the
    /// attachment's ADD saw as the node: acting from there would plan the node's side
    /// against the wrong netns.
    WrongNetns = 105,
    /// `router rollout` refused a change for an attachment: a key that cannot change on a
    /// live pod, or owned objects it would remove without `--prune`. Nothing was changed.
    RolloutRefused = 106,
}

impl Code {
    pub fn number(self) -> u32 {
        self as u32
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("incompatible CNI version: {0}")]
    IncompatibleVersion(String),
    #[error("{0}")]
    InvalidEnv(String),
    #[error("pod network namespace unusable: {0}")]
    UnknownContainer(String),
    /// A file, socket or thread the plugin could not use. `kind` is the `io::ErrorKind` of
    /// the failure (`Other` when it was not an OS error), so callers can tell a missing
    /// file from one they may not open; `reason` is its message.
    #[error("{what}: {reason}")]
    Io {
        what: String,
        kind: io::ErrorKind,
        reason: String,
    },
    #[error("cannot decode {what}: {reason}")]
    Decode { what: String, reason: String },
    /// A config key with a bad value. The message names both.
    #[error("invalid config: {key} = {value}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    #[error("invalid prevResult: {0}")]
    InvalidPrevResult(String),
    #[error("try again later: {0}")]
    TryAgain(String),
    /// STATUS: ADD could not be serviced now; the reason names what is unusable.
    #[error("plugin not available: {0}")]
    NotAvailable(String),
    /// Several failures of one command that went on past each (GC); reported with the code
    /// of the first.
    #[error("{summary}")]
    Partial {
        code: Code,
        summary: String,
        details: String,
    },
    #[error("IP address conflict: {addr} is in use by {mac}")]
    IpConflict { addr: String, mac: String },
    #[error("kernel refused {object}: {reason}")]
    Kernel { object: String, reason: String },
    /// The kernel refused a value because another object holds it (EADDRINUSE).
    #[error("kernel refused {object}: {reason}")]
    InUse { object: String, reason: String },
    /// The overlay interface is not usable in the pod (missing, or the chained interface
    /// itself): every step routes through it, so ADD refuses rather than leave a pod half
    /// configured (hijack rules pointing at an empty table, no host side).
    #[error(
        "overlay_interface {overlay} {problem} (pod netns {netns}): router must run after the \
         default network has created {overlay}; nothing was changed. A runtime that attaches \
         a container's networks in random order (podman with several --network) must attach \
         the default network first, e.g. start the container on it and hot plug this network \
         (podman network connect)"
    )]
    OverlayUnusable {
        overlay: String,
        problem: &'static str,
        netns: String,
    },
    /// The overlay interface is missing or not ready (its veth peer not yet in the node
    /// netns, its address or default route not yet there, or still changing) after waiting
    /// `overlay_wait`: the default network's plugin has not finished. Nothing was changed
    /// (or what was applied was rolled back).
    #[error(
        "overlay_interface {overlay} {missing} (pod netns {netns}; waited {waited_ms} ms): \
         router must run after the default network has set up {overlay}; nothing was \
         changed. A runtime that attaches a container's networks in random order (podman \
         with several --network) must attach the default network first, e.g. start the \
         container on it and hot plug this network (podman network connect); one that runs \
         them in parallel may retry the pod"
    )]
    OverlayNotReady {
        overlay: String,
        missing: String,
        netns: String,
        waited_ms: u64,
    },
    /// The attachment was added from another node netns than the one this runs in.
    #[error(
        "attachment {attachment} was added from node netns {recorded}, but this runs in \
         {current}: run it in the node's netns (a pod with hostNetwork, or nsenter \
         --net=/proc/1/ns/net); nothing was changed"
    )]
    WrongNetns {
        attachment: String,
        recorded: String,
        current: String,
    },
    /// `router rollout`: the new config changes a key whose objects a live pod cannot move
    /// to (its table, its overlay interface, its MAC, where its record lives).
    #[error(
        "{key} cannot change on a live pod ({from} -> {to}): the pod must be recreated to \
         take it; nothing was changed"
    )]
    CannotChangeLive {
        key: &'static str,
        from: String,
        to: String,
    },
}

impl Error {
    pub fn code(&self) -> Code {
        match self {
            Error::IncompatibleVersion(_) => Code::IncompatibleVersion,
            Error::InvalidEnv(_) => Code::InvalidEnv,
            Error::UnknownContainer(_) => Code::UnknownContainer,
            Error::Io { .. } => Code::Io,
            Error::Decode { .. } => Code::Decode,
            Error::InvalidConfig { .. } | Error::InvalidPrevResult(_) => Code::InvalidConfig,
            Error::TryAgain(_) => Code::TryAgain,
            Error::NotAvailable(_) => Code::NotAvailable,
            Error::Partial { code, .. } => *code,
            Error::IpConflict { .. } => Code::IpConflict,
            Error::Kernel { .. } | Error::InUse { .. } => Code::Kernel,
            Error::OverlayUnusable { .. } | Error::OverlayNotReady { .. } => Code::OverlayUnusable,
            Error::WrongNetns { .. } => Code::WrongNetns,
            Error::CannotChangeLive { .. } => Code::RolloutRefused,
        }
    }

    /// The CNI error's `details`: the long form, when there is more than the message.
    pub fn details(&self) -> Option<String> {
        match self {
            Error::Partial { details, .. } => Some(details.clone()),
            _ => None,
        }
    }

    /// A config error naming the key and its bad value as JSON shows it.
    /// The value is cut to an excerpt: a hostile config may hold megabytes where a CIDR
    /// belongs, and the error goes back to the runtime and into its logs.
    pub fn config(key: &str, value: impl fmt::Display, reason: impl Into<String>) -> Error {
        Error::InvalidConfig {
            key: key.to_string(),
            value: excerpt(&value.to_string()),
            reason: reason.into(),
        }
    }

    /// An I/O failure: what was being done, and the OS error with its kind.
    pub fn io(what: impl Into<String>, err: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            kind: err.kind(),
            reason: err.to_string(),
        }
    }

    /// An I/O failure that is no OS error (a file too large, a table the source lacks).
    pub fn io_other(what: impl Into<String>, reason: impl fmt::Display) -> Error {
        Error::Io {
            what: what.into(),
            kind: io::ErrorKind::Other,
            reason: reason.to_string(),
        }
    }

    /// The kind of an I/O failure; None for every other error.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// Input echoed in a message is cut after this many bytes.
const EXCERPT_BYTES: usize = 120;

/// `text` as it may appear in an error message: whole when short, else its first
/// EXCERPT_BYTES (cut on a character boundary) and how long it was.
pub fn excerpt(text: &str) -> String {
    if text.len() <= EXCERPT_BYTES {
        return text.to_string();
    }
    let mut end = EXCERPT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
