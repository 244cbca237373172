//! report::rollout: `router rollout`'s result per attachment as text, JSON
//! (`router.rollout/v1`) and JUnit, and its exit code. Pure: must not do I/O or read a
//! clock (rollout fills it, cli prints it).

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::junit::{attribute, element, seconds, timestamp};
use super::{RunInfo, EXIT_CLEAN, EXIT_DRIFT, EXIT_ERROR};
use crate::model::Op;
use crate::plan::Plan;
use crate::render::{plan_json, render_text, NetnsLabels};

/// The `schema` value of [`RolloutReport::json`]; bump it on any incompatible change.
pub const ROLLOUT_SCHEMA: &str = "router.rollout/v1";

/// What became of one attachment in a rollout.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    /// The new config was applied and recorded: the attachment now is what it says.
    RolledOut,
    /// The attachment already was what the new config says, and its record says so.
    Unchanged,
    /// `--dry-run`: what would be applied (the plan); nothing was touched.
    Planned,
    /// Not applied, by policy: a key that cannot change on a live pod, or owned objects
    /// that would be removed without `--prune`. Nothing was touched.
    Refused,
    /// Applying failed (and was rolled back), or the attachment could not be planned.
    Failed,
    /// The pod went away (its netns or its record) before the rollout reached it.
    Gone,
    /// The rollout stopped at an earlier failure before reaching it.
    NotReached,
}

impl RolloutStatus {
    pub const ALL: [RolloutStatus; 7] = [
        RolloutStatus::RolledOut,
        RolloutStatus::Unchanged,
        RolloutStatus::Planned,
        RolloutStatus::Refused,
        RolloutStatus::Failed,
        RolloutStatus::Gone,
        RolloutStatus::NotReached,
    ];

    pub fn word(self) -> &'static str {
        match self {
            RolloutStatus::RolledOut => "rolled out",
            RolloutStatus::Unchanged => "unchanged",
            RolloutStatus::Planned => "planned",
            RolloutStatus::Refused => "refused",
            RolloutStatus::Failed => "failed",
            RolloutStatus::Gone => "gone",
            RolloutStatus::NotReached => "not reached",
        }
    }
}

/// One attachment's part of a rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentRollout {
    pub container_id: String,
    pub ifname: String,
    pub network: Option<String>,
    pub netns: Option<String>,
    pub status: RolloutStatus,
    /// Why it was refused, failed or is gone: one line per reason.
    pub reasons: Vec<String>,
    /// The CNI error code of a refusal or failure.
    pub error_code: Option<u32>,
    /// What was planned (`--dry-run`, a refusal) against the live pod and node.
    pub plan: Option<Plan>,
    /// The ops applied (rolled out).
    pub applied: Vec<Op>,
    /// How the pod and host netns are labelled in the plan.
    pub labels: NetnsLabels,
    pub duration: Duration,
}

impl AttachmentRollout {
    pub fn new(container_id: &str, ifname: &str, status: RolloutStatus) -> AttachmentRollout {
        AttachmentRollout {
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
            network: None,
            netns: None,
            status,
            reasons: Vec::new(),
            error_code: None,
            plan: None,
            applied: Vec::new(),
            labels: NetnsLabels {
                pod: String::new(),
                host: String::new(),
            },
            duration: Duration::ZERO,
        }
    }

    fn name(&self) -> String {
        format!("{}/{}", self.container_id, self.ifname)
    }
}

/// Every attachment of the network a rollout selected, in the order it went through them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutReport {
    pub network: String,
    pub dry_run: bool,
    pub prune: bool,
    pub attachments: Vec<AttachmentRollout>,
    pub run: RunInfo,
}

impl RolloutReport {
    pub fn count(&self, status: RolloutStatus) -> usize {
        self.attachments
            .iter()
            .filter(|a| a.status == status)
            .count()
    }

    /// 1 when an attachment failed or was not reached, else 2 when one was refused, else 0
    /// (everything rolled out, unchanged, planned or gone).
    pub fn exit_code(&self) -> u8 {
        let any = |s: RolloutStatus| self.count(s) > 0;
        if any(RolloutStatus::Failed) || any(RolloutStatus::NotReached) {
            EXIT_ERROR
        } else if any(RolloutStatus::Refused) {
            EXIT_DRIFT
        } else {
            EXIT_CLEAN
        }
    }

    fn summary(&self) -> String {
        let counts: Vec<String> = RolloutStatus::ALL
            .iter()
            .filter(|s| self.count(**s) > 0)
            .map(|s| format!("{} {}", self.count(*s), s.word()))
            .collect();
        let dry = if self.dry_run { " (dry run)" } else { "" };
        match counts.is_empty() {
            true => format!("network {}: no attachment on this node{dry}", self.network),
            false => format!(
                "network {}: {} attachments: {}{dry}",
                self.network,
                self.attachments.len(),
                counts.join(", ")
            ),
        }
    }

    /// For people: a line per attachment, then its plan (a dry run, a refusal) or applied
    /// ops, indented, and its reasons; a summary last.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for a in &self.attachments {
            let mut facts = Vec::new();
            if let Some(netns) = &a.netns {
                facts.push(format!("netns {netns}"));
            }
            if !a.applied.is_empty() {
                facts.push(format!("{} ops applied", a.applied.len()));
            }
            let facts = match facts.is_empty() {
                true => String::new(),
                false => format!(" ({})", facts.join(", ")),
            };
            out.push_str(&format!("{:<12} {}{facts}\n", a.status.word(), a.name()));
            for reason in &a.reasons {
                out.push_str(&format!("    {reason}\n"));
            }
            let shown = match a.status {
                RolloutStatus::Planned | RolloutStatus::Refused => a.plan.as_ref(),
                _ => None,
            };
            if let Some(plan) = shown {
                for line in render_text(plan, &a.labels, false).lines() {
                    out.push_str(&format!("    {line}\n"));
                }
            }
            for op in &a.applied {
                out.push_str(&format!("    {} netns: {op}\n", op.netns));
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// For programs (`--output json`): schema `router.rollout/v1`; each attachment's plan as
    /// `router plan --output json` prints it.
    pub fn json(&self) -> Value {
        let attachments: Vec<Value> = self
            .attachments
            .iter()
            .map(|a| {
                json!({
                    "container_id": a.container_id,
                    "ifname": a.ifname,
                    "network": a.network,
                    "netns": a.netns,
                    "status": a.status,
                    "reasons": a.reasons,
                    "error_code": a.error_code,
                    "plan": a.plan.as_ref().map(|p| plan_json(p, &a.labels)),
                    "applied": a.applied.iter().map(|op| json!({
                        "netns": op.netns.to_string(),
                        "command": op.to_string(),
                    })).collect::<Vec<_>>(),
                    "duration_ms": a.duration.as_millis() as u64,
                })
            })
            .collect();
        let summary: serde_json::Map<String, Value> = RolloutStatus::ALL
            .iter()
            .map(|s| {
                let key = serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                (key, json!(self.count(*s)))
            })
            .collect();
        json!({
            "schema": ROLLOUT_SCHEMA,
            "network": self.network,
            "dry_run": self.dry_run,
            "prune": self.prune,
            "exit_code": self.exit_code(),
            "summary": summary,
            "attachments": attachments,
            "started": timestamp(self.run.started),
            "took_ms": self.run.took.as_millis() as u64,
            "host": self.run.host,
        })
    }

    /// For CI: a testcase per attachment; refused is a failure, failed and not reached are
    /// errors, gone is skipped.
    pub fn junit(&self) -> String {
        let failures = self.count(RolloutStatus::Refused);
        let errors = self.count(RolloutStatus::Failed) + self.count(RolloutStatus::NotReached);
        let skipped = self.count(RolloutStatus::Gone);
        let name = format!("router rollout {}", self.network);
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!(
            "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{}\">\n",
            attribute(&name),
            self.attachments.len(),
            seconds(self.run.took)
        ));
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{}\" timestamp=\"{}\" hostname=\"{}\">\n",
            attribute(&name),
            self.attachments.len(),
            seconds(self.run.took),
            timestamp(self.run.started),
            attribute(self.run.host.as_deref().unwrap_or("unknown")),
        ));
        for a in &self.attachments {
            let open = format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
                attribute(a.network.as_deref().unwrap_or(&self.network)),
                attribute(&a.name()),
                seconds(a.duration)
            );
            let message = a.reasons.first().cloned().unwrap_or_default();
            let body = a.reasons.join("\n");
            let child = match a.status {
                RolloutStatus::Refused => element("failure", "refused", &message, &body),
                RolloutStatus::Failed => element("error", "failed", &message, &body),
                RolloutStatus::NotReached => element("error", "not reached", &message, &body),
                RolloutStatus::Gone => format!("<skipped message=\"{}\"/>", attribute(&message)),
                _ => {
                    out.push_str(&format!("{open}/>\n"));
                    continue;
                }
            };
            out.push_str(&format!("{open}>\n      {child}\n    </testcase>\n"));
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }
}

#[cfg(test)]
mod tests;
