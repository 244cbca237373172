//! config::version: the CNI versions router speaks, `cniVersion` parsed and its gates
//! (CHECK, GC/STATUS). Must not read any other key: version errors (code 1) come first.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::value::get;
use crate::error::{excerpt, Error, Result};

/// The CNI versions this plugin speaks, oldest first. VERSION answers exactly these.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

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

pub(super) fn parse_cni_version(obj: &Map<String, Value>) -> Result<CniVersion> {
    match get(obj, "cniVersion") {
        None => Err(Error::config("cniVersion", "<missing>", "is required")),
        Some(Value::String(s)) => s.parse(),
        Some(v) => Err(Error::config("cniVersion", v, "must be a string")),
    }
}
