//! One kernel change (`Op`), its inverse for rollback; its `Display` is the `ip`/`sysctl`
//! command doing it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{MacAddr, Neighbour, Route, Rule, Side, SysctlKey};

/// One kernel change. Each renders as the equivalent `ip`/`sysctl` command.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    SetSysctl {
        netns: Side,
        key: SysctlKey,
        #[serde(default)]
        old: Option<i64>,
        new: i64,
    },
    SetMac {
        netns: Side,
        dev: String,
        #[serde(default)]
        old: Option<MacAddr>,
        new: MacAddr,
    },
    AddRoute {
        netns: Side,
        route: Route,
    },
    /// Puts `new` in place of `old` (same slot, or same key with other values) in one step.
    ReplaceRoute {
        netns: Side,
        old: Vec<Route>,
        new: Route,
    },
    DelRoute {
        netns: Side,
        route: Route,
    },
    AddRule {
        netns: Side,
        rule: Rule,
    },
    DelRule {
        netns: Side,
        rule: Rule,
    },
    AddNeighbour {
        netns: Side,
        neighbour: Neighbour,
    },
    ReplaceNeighbour {
        netns: Side,
        old: Neighbour,
        new: Neighbour,
    },
    DelNeighbour {
        netns: Side,
        neighbour: Neighbour,
    },
}

impl Op {
    pub fn side(&self) -> Side {
        match self {
            Op::SetSysctl { netns, .. }
            | Op::SetMac { netns, .. }
            | Op::AddRoute { netns, .. }
            | Op::ReplaceRoute { netns, .. }
            | Op::DelRoute { netns, .. }
            | Op::AddRule { netns, .. }
            | Op::DelRule { netns, .. }
            | Op::AddNeighbour { netns, .. }
            | Op::ReplaceNeighbour { netns, .. }
            | Op::DelNeighbour { netns, .. } => *netns,
        }
    }

    /// The op that undoes this one, for rollback of a failed ADD.
    pub fn inverse(&self) -> Vec<Op> {
        let netns = self.side();
        match self.clone() {
            Op::SetSysctl { key, old, new, .. } => old
                .map(|old| Op::SetSysctl {
                    netns,
                    key,
                    old: Some(new),
                    new: old,
                })
                .into_iter()
                .collect(),
            Op::SetMac { dev, old, new, .. } => old
                .map(|old| Op::SetMac {
                    netns,
                    dev,
                    old: Some(new),
                    new: old,
                })
                .into_iter()
                .collect(),
            Op::AddRoute { route, .. } => vec![Op::DelRoute { netns, route }],
            Op::DelRoute { route, .. } => vec![Op::AddRoute { netns, route }],
            Op::ReplaceRoute { old, new, .. } => {
                let mut undo = vec![Op::DelRoute { netns, route: new }];
                undo.extend(old.into_iter().map(|route| Op::AddRoute { netns, route }));
                undo
            }
            Op::AddRule { rule, .. } => vec![Op::DelRule { netns, rule }],
            Op::DelRule { rule, .. } => vec![Op::AddRule { netns, rule }],
            Op::AddNeighbour { neighbour, .. } => vec![Op::DelNeighbour { netns, neighbour }],
            Op::DelNeighbour { neighbour, .. } => vec![Op::AddNeighbour { netns, neighbour }],
            Op::ReplaceNeighbour { old, new, .. } => vec![Op::ReplaceNeighbour {
                netns,
                old: new,
                new: old,
            }],
        }
    }
}

/// The iproute2/sysctl command doing what the op does, ready to paste into a shell
/// (inside the op's netns).
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let command = match self {
            Op::SetSysctl { key, new, .. } => format!("sysctl -w {key}={new}"),
            Op::SetMac { dev, new, .. } => new.ip_command(dev),
            Op::AddRoute { route, .. } => route.ip_command("add"),
            Op::ReplaceRoute { new, .. } => new.ip_command("replace"),
            Op::DelRoute { route, .. } => route.ip_command("del"),
            Op::AddRule { rule, .. } => rule.ip_command("add"),
            Op::DelRule { rule, .. } => rule.ip_command("del"),
            Op::AddNeighbour { neighbour, .. } => neighbour.ip_replace_command(),
            Op::ReplaceNeighbour { new, .. } => new.ip_replace_command(),
            Op::DelNeighbour { neighbour, .. } => neighbour.ip_del_command(),
        };
        f.write_str(&command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    #[test]
    fn inverse_of_replace_restores_the_replaced_routes() {
        let mut ns = NetnsState::default();
        let old = Route {
            key: RouteKey {
                table: MAIN_TABLE,
                dst: Family::Ipv4.any(),
                tos: 0,
                metric: 0,
                dev: Some("net1".into()),
                gateway: Some("192.168.50.254".parse().unwrap()),
            },
            scope: RouteScope::Universe,
            kind: RouteKind::Unicast,
            protocol: PROTOCOL_BOOT,
            prefsrc: None,
            onlink: false,
        };
        let mut new = old.clone();
        new.key.dev = Some("eth0".into());
        ns.insert_route(old.clone());
        let before = ns.clone();
        let op = Op::ReplaceRoute {
            netns: Side::Pod,
            old: vec![old],
            new,
        };
        ns.apply(&op);
        assert_ne!(ns, before);
        for undo in op.inverse() {
            ns.apply(&undo);
        }
        assert_eq!(ns, before);
    }
}
