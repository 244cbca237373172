//! model::apply: what the kernel does with each op, in memory (`NetnsState::apply`,
//! `ActualState::apply`): the planner's look-ahead and the state `router plan` shows after
//! its ops. Must not do I/O; the test kernel built on it lives in `testkit`.

use super::{ActualState, Change, NetnsState, Op};

impl NetnsState {
    /// What the kernel does with one op, in memory. Used by the planner (to look ahead),
    /// `router plan` and the test kit's kernel.
    pub fn apply(&mut self, op: &Op) {
        match &op.change {
            Change::SetSysctl { key, new, .. } => {
                self.sysctls.insert(key.clone(), *new);
            }
            Change::SetMac { dev, new, .. } => {
                self.macs.insert(dev.clone(), *new);
            }
            Change::AddRoute { route } => self.insert_route(route.clone()),
            Change::ReplaceRoute { old, new } => {
                for route in old {
                    self.routes.remove(&route.key);
                }
                self.insert_route(new.clone());
            }
            Change::DelRoute { route } => {
                self.routes.remove(&route.key);
            }
            Change::AddRule { rule } => self.insert_rule(rule.clone()),
            Change::DelRule { rule } => {
                self.rules.remove(&rule.key);
            }
            Change::AddNeighbour { neighbour } => self.insert_neighbour(neighbour.clone()),
            Change::ReplaceNeighbour { new, .. } => self.insert_neighbour(new.clone()),
            Change::DelNeighbour { neighbour } => {
                self.neighbours.remove(&neighbour.key);
            }
        }
    }
}

impl ActualState {
    /// Applies ops to the model; ops for a pod netns that is gone change nothing.
    pub fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            if let Some(ns) = self.side_mut(op.netns) {
                ns.apply(op);
            }
        }
    }
}
