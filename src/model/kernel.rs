//! The in-memory model kernel: what the kernel does with each op (`NetnsState::apply`),
//! and `ModelKernel`, a snapshot source and executor over one `ActualState` with fault
//! injection (the planner's look-ahead, the property tests, offline runs).

use std::sync::Mutex;

use super::{ActualState, Change, NetnsState, Op};
use crate::error::{Error, Result};
use crate::execute::{Executor, Failed};
use crate::snapshot::{SnapshotRequest, SnapshotSource};

impl NetnsState {
    /// The in-memory model kernel: what the kernel does with one op. Used by the planner
    /// (to look ahead), the property tests and the offline executor.
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

/// The in-memory model kernel: a snapshot source and an executor over one ActualState,
/// with an optional injected fault at the n-th op applied.
pub struct ModelKernel {
    state: Mutex<ActualState>,
    fail_at: Mutex<Option<usize>>,
    applied: Mutex<usize>,
}

impl ModelKernel {
    pub fn new(state: ActualState) -> ModelKernel {
        ModelKernel {
            state: Mutex::new(state),
            fail_at: Mutex::new(None),
            applied: Mutex::new(0),
        }
    }

    /// Makes the op with this 0-based count (over the kernel's lifetime) fail.
    pub fn fail_at(&self, n: Option<usize>) {
        if let Ok(mut f) = self.fail_at.lock() {
            *f = n;
        }
        if let Ok(mut a) = self.applied.lock() {
            *a = 0;
        }
    }

    pub fn state(&self) -> ActualState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn set_state(&self, state: ActualState) {
        if let Ok(mut s) = self.state.lock() {
            *s = state;
        }
    }
}

fn poisoned() -> Error {
    Error::TryAgain("model kernel lock poisoned".into())
}

impl SnapshotSource for ModelKernel {
    fn snapshot(&self, _req: &SnapshotRequest) -> Result<ActualState> {
        self.state.lock().map(|s| s.clone()).map_err(|_| poisoned())
    }
}

impl Executor for ModelKernel {
    fn apply(&self, ops: &[Op]) -> std::result::Result<(), Failed> {
        for (index, op) in ops.iter().enumerate() {
            let fail = |error| Failed { index, error };
            let mut applied = self.applied.lock().map_err(|_| fail(poisoned()))?;
            let fail_at = *self.fail_at.lock().map_err(|_| fail(poisoned()))?;
            // A one-shot fault: the rollback that follows must be able to succeed.
            let this = *applied;
            *applied += 1;
            if fail_at == Some(this) {
                return Err(fail(Error::Kernel {
                    object: format!("{op:?}"),
                    reason: "injected fault".into(),
                }));
            }
            self.state
                .lock()
                .map_err(|_| fail(poisoned()))?
                .apply(std::slice::from_ref(op));
        }
        Ok(())
    }

    /// The model applies exactly the ops it is given.
    fn take_surprise(&self) -> bool {
        false
    }
}
