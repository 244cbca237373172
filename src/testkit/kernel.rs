//! testkit::kernel: `ModelKernel`, the in-memory kernel for tests: a snapshot source and
//! an executor over one `ActualState` (changed by `ActualState::apply`), with a fault
//! injected at the n-th op when asked. Must not be used by production code.

use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::execute::{Answers, Executor, Failed};
use crate::model::{ActualState, Op};
use crate::snapshot::{SnapshotRequest, SnapshotSource};

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
    fn apply(
        &self,
        ops: &[Op],
        _planned_from: &ActualState,
    ) -> std::result::Result<Answers, Failed> {
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
        // The model applies exactly the ops it is given.
        Ok(Answers::AsPlanned)
    }
}
