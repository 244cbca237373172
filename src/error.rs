//! Errors, each kind carrying the CNI error code it is reported with. Every failure the
//! plugin can meet ends here; nothing else decides codes. No I/O.

use std::fmt;

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
    Drift = 100,
    IpConflict = 101,
    Kernel = 102,
    Blocked = 103,
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
    #[error("{what}: {reason}")]
    Io { what: String, reason: String },
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
    #[error("{summary}")]
    Drift { summary: String, details: String },
    #[error("IP address conflict: {addr} is in use by {mac}")]
    IpConflict { addr: String, mac: String },
    #[error("kernel refused {object}: {reason}")]
    Kernel { object: String, reason: String },
    #[error("{summary}")]
    Blocked { summary: String, details: String },
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
            Error::Drift { .. } => Code::Drift,
            Error::IpConflict { .. } => Code::IpConflict,
            Error::Kernel { .. } => Code::Kernel,
            Error::Blocked { .. } => Code::Blocked,
        }
    }

    /// The CNI error's `details`: the long form, when there is more than the message.
    pub fn details(&self) -> Option<&str> {
        match self {
            Error::Drift { details, .. } | Error::Blocked { details, .. } => Some(details),
            _ => None,
        }
    }

    /// A config error naming the key and its bad value as JSON shows it.
    pub fn config(key: &str, value: impl fmt::Display, reason: impl Into<String>) -> Error {
        Error::InvalidConfig {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub fn io(what: impl Into<String>, err: impl fmt::Display) -> Error {
        Error::Io {
            what: what.into(),
            reason: err.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
