//! testkit::shared: one test double in several roles. A test hands an `Arc` of the model
//! kernel (or a probe) to the world as its snapshot source and its executor, and keeps a
//! handle to inspect it afterwards. Production code builds each backend once and needs
//! none of this.

use std::sync::Arc;
use std::time::Duration;

use crate::conflict::{AddressProbe, Conflict, Target};
use crate::error::Result;
use crate::execute::{Answers, AppliedAll, Executor, Failed};
use crate::model::{ActualState, Op};
use crate::snapshot::{SnapshotRequest, SnapshotSource};

impl<T: Executor + ?Sized> Executor for Arc<T> {
    fn apply(
        &self,
        ops: &[Op],
        planned_from: &ActualState,
    ) -> std::result::Result<Answers, Failed> {
        (**self).apply(ops, planned_from)
    }

    fn apply_all(&self, ops: &[Op], planned_from: &ActualState) -> AppliedAll {
        (**self).apply_all(ops, planned_from)
    }
}

impl<T: SnapshotSource + ?Sized> SnapshotSource for Arc<T> {
    fn snapshot(&self, req: &SnapshotRequest) -> Result<ActualState> {
        (**self).snapshot(req)
    }
}

impl<T: AddressProbe + ?Sized> AddressProbe for Arc<T> {
    fn detect(
        &self,
        target: &Target<'_>,
        interval: Duration,
        retries: u32,
    ) -> Result<Option<Conflict>> {
        (**self).detect(target, interval, retries)
    }
}
