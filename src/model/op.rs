//! One kernel change in one netns (`Op`: the netns and the `Change`), its inverse for
//! rollback; its `Display` is the `ip`/`sysctl` command doing it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{MacAddr, Neighbour, Route, Rule, Side, SysctlKey};

/// One kernel change in one netns. Each renders as the equivalent `ip`/`sysctl` command.
/// JSON: the change's keys (`op` naming it) beside `netns`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub netns: Side,
    #[serde(flatten)]
    pub change: Change,
}

/// What an op changes, whatever the netns.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    SetSysctl {
        key: SysctlKey,
        #[serde(default)]
        old: Option<i64>,
        new: i64,
    },
    SetMac {
        dev: String,
        #[serde(default)]
        old: Option<MacAddr>,
        new: MacAddr,
    },
    AddRoute {
        route: Route,
    },
    /// Puts `new` in place of `old` (same slot, or same key with other values) in one step.
    ReplaceRoute {
        old: Vec<Route>,
        new: Route,
    },
    DelRoute {
        route: Route,
    },
    AddRule {
        rule: Rule,
    },
    DelRule {
        rule: Rule,
    },
    AddNeighbour {
        neighbour: Neighbour,
    },
    ReplaceNeighbour {
        old: Neighbour,
        new: Neighbour,
    },
    DelNeighbour {
        neighbour: Neighbour,
    },
}

impl Op {
    pub fn new(netns: Side, change: Change) -> Op {
        Op { netns, change }
    }

    /// The ops that undo this one, for rollback of a failed ADD: in the same netns.
    pub fn inverse(&self) -> Vec<Op> {
        let netns = self.netns;
        self.change
            .inverse()
            .into_iter()
            .map(|change| Op { netns, change })
            .collect()
    }
}

impl Change {
    /// The changes that undo this one.
    pub fn inverse(&self) -> Vec<Change> {
        match self.clone() {
            Change::SetSysctl { key, old, new } => old
                .map(|old| Change::SetSysctl {
                    key,
                    old: Some(new),
                    new: old,
                })
                .into_iter()
                .collect(),
            Change::SetMac { dev, old, new } => old
                .map(|old| Change::SetMac {
                    dev,
                    old: Some(new),
                    new: old,
                })
                .into_iter()
                .collect(),
            Change::AddRoute { route } => vec![Change::DelRoute { route }],
            Change::DelRoute { route } => vec![Change::AddRoute { route }],
            Change::ReplaceRoute { old, new } => {
                let mut undo = vec![Change::DelRoute { route: new }];
                undo.extend(old.into_iter().map(|route| Change::AddRoute { route }));
                undo
            }
            Change::AddRule { rule } => vec![Change::DelRule { rule }],
            Change::DelRule { rule } => vec![Change::AddRule { rule }],
            Change::AddNeighbour { neighbour } => vec![Change::DelNeighbour { neighbour }],
            Change::DelNeighbour { neighbour } => vec![Change::AddNeighbour { neighbour }],
            Change::ReplaceNeighbour { old, new } => {
                vec![Change::ReplaceNeighbour { old: new, new: old }]
            }
        }
    }
}

/// The iproute2/sysctl command doing what the op does, ready to paste into a shell
/// (inside the op's netns).
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.change.fmt(f)
    }
}

/// The command doing the change, in whichever netns.
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let command = match self {
            Change::SetSysctl { key, new, .. } => format!("sysctl -w {key}={new}"),
            Change::SetMac { dev, new, .. } => new.ip_command(dev),
            Change::AddRoute { route } => route.ip_command("add"),
            Change::ReplaceRoute { new, .. } => new.ip_command("replace"),
            Change::DelRoute { route } => route.ip_command("del"),
            Change::AddRule { rule } => rule.ip_command("add"),
            Change::DelRule { rule } => rule.ip_command("del"),
            Change::AddNeighbour { neighbour } => neighbour.ip_replace_command(),
            Change::ReplaceNeighbour { new, .. } => new.ip_replace_command(),
            Change::DelNeighbour { neighbour } => neighbour.ip_del_command(),
        };
        f.write_str(&command)
    }
}

#[cfg(test)]
mod tests;
