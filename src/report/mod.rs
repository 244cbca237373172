//! report: the result of `router check` for people (a line per attachment, then its drifts;
//! colour only when asked) and for programs (JSON, schema `router.check/v1`), and the exit
//! code it means; JUnit XML (`junit`) for CI and the Prometheus text format (`prometheus`)
//! for monitoring render the same value. Pure: no I/O, no env, no clock; operator fills it
//! (timings included), cli prints it.

mod junit;
pub use junit::timestamp as utc_timestamp;
mod prometheus;
mod rollout;
pub use rollout::{AttachmentRollout, RolloutReport, RolloutStatus, ROLLOUT_SCHEMA};

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use crate::model::Op;
use crate::plan::Plan;
use crate::render::{drift_detail, drifts, Drift};

/// The `schema` value of [`CheckReport::json`]; bump it on any incompatible change.
pub const CHECK_SCHEMA: &str = "router.check/v1";

/// Exit codes shared by `plan` and `check`.
pub const EXIT_CLEAN: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_DRIFT: u8 = 2;

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const MAGENTA: &str = "\x1b[35m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// What became of one attachment.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The kernel holds what ADD would make: CHECK passes.
    Clean,
    /// CHECK would fail (or still fails after a repair): `drifts` says how.
    Drift,
    /// Drift was found and `--repair` removed it: CHECK passes now.
    Repaired,
    /// The pod netns no longer exists: nothing to check (the runtime's DEL cleans up).
    Gone,
    /// A cache entry from before the node's last boot, with no record and no netns: the
    /// pod died with the boot and the runtime has yet to collect its entry.
    Stale,
    /// Not router's: the chain has no router, the file is no cache entry, or skip_call.
    Skipped,
    /// The check could not run (bad config, unreadable record, kernel error, failed
    /// repair).
    Error,
}

impl Status {
    /// Every status, in the order reports list them.
    pub const ALL: [Status; 7] = [
        Status::Clean,
        Status::Drift,
        Status::Repaired,
        Status::Gone,
        Status::Stale,
        Status::Skipped,
        Status::Error,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Status::Clean => "clean",
            Status::Drift => "drift",
            Status::Repaired => "repaired",
            Status::Gone => "gone",
            Status::Stale => "stale",
            Status::Skipped => "skipped",
            Status::Error => "error",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Status::Clean | Status::Repaired => GREEN,
            Status::Drift => RED,
            Status::Gone | Status::Stale | Status::Skipped => DIM,
            Status::Error => MAGENTA,
        }
    }
}

/// What `--repair` did for one attachment.
#[derive(Serialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Repair {
    /// The ops applied, as `ip`/`sysctl` commands, in order.
    pub applied: Vec<String>,
    /// The drift left afterwards (empty when the repair worked).
    pub remaining: Vec<Drift>,
}

impl Repair {
    /// A repair that applied `applied`, after which the kernel still needs `left`.
    pub fn of(applied: &[Op], left: &Plan) -> Repair {
        Repair {
            applied: applied.iter().map(ToString::to_string).collect(),
            remaining: drifts(left),
        }
    }
}

/// One attachment's line of the report.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct AttachmentReport {
    pub container_id: String,
    pub ifname: String,
    /// The CNI network (conflist) name, when known.
    pub network: Option<String>,
    /// The pod netns path checked (or found gone).
    pub netns: Option<String>,
    /// The result cache file the attachment came from.
    pub cache_entry: Option<String>,
    pub status: Status,
    /// The drift found (before any repair).
    pub drifts: Vec<Drift>,
    /// Present when `--repair` acted on this attachment.
    pub repair: Option<Repair>,
    /// Why an attachment is gone, skipped or in error.
    pub message: Option<String>,
    /// The CNI error code of an error.
    pub error_code: Option<u32>,
    /// How long checking (and repairing) it took; zero when nothing was checked.
    #[serde(skip)]
    pub duration: Duration,
}

impl AttachmentReport {
    /// CHECK found the kernel short of `plan`: the attachment has drifted, as it says.
    pub fn drifted(&mut self, plan: &Plan) {
        self.status = Status::Drift;
        self.drifts = drifts(plan);
    }

    /// A report for `container_id`/`ifname` with nothing found yet.
    pub fn new(container_id: &str, ifname: &str, status: Status) -> AttachmentReport {
        AttachmentReport {
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
            network: None,
            netns: None,
            cache_entry: None,
            status,
            drifts: Vec::new(),
            repair: None,
            message: None,
            error_code: None,
            duration: Duration::ZERO,
        }
    }

    fn name(&self) -> String {
        if self.container_id.is_empty() {
            self.cache_entry.clone().unwrap_or_default()
        } else {
            format!("{}/{}", self.container_id, self.ifname)
        }
    }

    fn detail(&self) -> String {
        let mut parts = Vec::new();
        if let Some(network) = &self.network {
            parts.push(format!("network {network}"));
        }
        if let Some(netns) = &self.netns {
            parts.push(format!("netns {netns}"));
        }
        match self.status {
            Status::Drift | Status::Repaired => {
                parts.push(plural(self.drifts.len(), "drift", "drifts"))
            }
            _ => {}
        }
        if let Some(repair) = &self.repair {
            parts.push(format!(
                "repair applied {}",
                plural(repair.applied.len(), "op", "ops")
            ));
        }
        parts.extend(self.message.clone());
        parts.join(", ")
    }

    /// What the text output prints under the attachment's line: its drifts, then what a
    /// repair applied and what it left.
    fn body_lines(&self, colour: bool) -> Vec<String> {
        let mut lines: Vec<String> = self.drifts.iter().map(|d| drift_line(d, colour)).collect();
        if let Some(repair) = &self.repair {
            lines.extend(repair.applied.iter().map(|c| format!("applied: {c}")));
            lines.extend(
                repair
                    .remaining
                    .iter()
                    .map(|d| format!("still: {}", drift_line(d, colour))),
            );
        }
        lines
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn paint(text: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("{code}{text}{RESET}")
    } else {
        text.to_string()
    }
}

fn drift_line(d: &Drift, colour: bool) -> String {
    paint(&drift_detail(d), YELLOW, colour)
}

/// When and where a `router check` ran, as operator measured it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RunInfo {
    /// When it started, as time since the Unix epoch.
    pub started: Duration,
    /// How long the whole run took.
    pub took: Duration,
    /// The node's hostname, when it could be read.
    pub host: Option<String>,
}

/// Every attachment `router check` looked at, in the order it looked.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CheckReport {
    pub attachments: Vec<AttachmentReport>,
    /// The operator named the attachment (not `--all`): then a gone netns means nothing
    /// was checked, and that is an error (exit 1), not a shrug.
    pub named: bool,
    pub run: RunInfo,
}

impl CheckReport {
    fn count(&self, status: Status) -> usize {
        self.attachments
            .iter()
            .filter(|a| a.status == status)
            .count()
    }

    /// Whether this attachment makes the run an error: it could not be checked, or it is
    /// the one the operator named and it is gone.
    fn is_error(&self, a: &AttachmentReport) -> bool {
        a.status == Status::Error || (self.named && a.status == Status::Gone)
    }

    /// 1 when any check failed to run, else 2 when drift is left, else 0. Gone and skipped
    /// attachments count as neither in a scan (a pod that went away is the runtime's to
    /// clean up); a named attachment that is gone is an error.
    pub fn exit_code(&self) -> u8 {
        if self.attachments.iter().any(|a| self.is_error(a)) {
            EXIT_ERROR
        } else if self.count(Status::Drift) > 0 {
            EXIT_DRIFT
        } else {
            EXIT_CLEAN
        }
    }

    fn summary(&self) -> String {
        let counts: Vec<String> = Status::ALL
            .iter()
            .map(|s| (s, self.count(*s)))
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {}", s.word()))
            .collect();
        let head = plural(self.attachments.len(), "attachment", "attachments");
        if counts.is_empty() {
            head
        } else {
            format!("{head}: {}", counts.join(", "))
        }
    }

    /// For people: per attachment `<status> <container id>/<ifname> (<details>)`, then
    /// one indented line per drift (netns, object, expected, actual) and, after a repair,
    /// per op applied; a summary line last. Skipped entries (every pod's overlay network,
    /// on a real node) are only counted there: the JSON lists them. ANSI colour only when
    /// `colour`.
    pub fn text(&self, colour: bool) -> String {
        let mut out = String::new();
        let shown = self
            .attachments
            .iter()
            .filter(|a| a.status != Status::Skipped);
        for a in shown {
            let status = paint(
                &format!("{:<8}", a.status.word()),
                a.status.colour(),
                colour,
            );
            out.push_str(&format!("{status} {} ({})\n", a.name(), a.detail()));
            for line in a.body_lines(colour) {
                out.push_str(&format!("    {line}\n"));
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// For programs. Stable schema `router.check/v1`:
    ///
    /// ```text
    /// {
    ///   "schema": "router.check/v1",
    ///   "exit_code": 0 | 1 | 2,
    ///   "summary": {"attachments": N, "clean": N, "drift": N, "repaired": N,
    ///               "gone": N, "stale": N, "skipped": N, "error": N},
    ///   "attachments": [{
    ///     "container_id": <string>, "ifname": <string>,
    ///     "network": <string|null>, "netns": <string|null>, "cache_entry": <string|null>,
    ///     "status": "clean"|"drift"|"repaired"|"gone"|"skipped"|"error",
    ///     "drifts": [{"netns": "pod"|"host", "object": <string>,
    ///                 "expected": <string>, "actual": <string>,
    ///                 "cause": <plan::Cause, only when the node changed>}],
    ///     "repair": null | {"applied": [<command>], "remaining": [<drift>]},
    ///     "message": <string|null>,
    ///     "error_code": <CNI error code|null>
    ///   }]
    /// }
    /// ```
    pub fn json(&self) -> Value {
        json!({
            "schema": CHECK_SCHEMA,
            "exit_code": self.exit_code(),
            "summary": {
                "attachments": self.attachments.len(),
                "clean": self.count(Status::Clean),
                "drift": self.count(Status::Drift),
                "repaired": self.count(Status::Repaired),
                "gone": self.count(Status::Gone),
                "stale": self.count(Status::Stale),
                "skipped": self.count(Status::Skipped),
                "error": self.count(Status::Error),
            },
            "attachments": serde_json::to_value(&self.attachments).unwrap_or(Value::Null),
        })
    }
}

#[cfg(test)]
mod tests;
