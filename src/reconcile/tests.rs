//! reconcile's tests. Here: verification from the kernel's answers (the state is read
//! again after an apply only when the executor was surprised, and that re-read repairs
//! what the kernel did not keep); `repair`: `router check --repair`.

mod repair;
mod rollout;

use std::cell::Cell;

use super::*;
use crate::error::Result;
use crate::execute::{Answers, Failed};
use crate::model::Op;
use crate::testkit::ModelKernel;
use repair::drifted;

/// The model kernel, counting the snapshots taken (of the attachment, and of the host alone:
/// the shared rule's read under the host lock), and an executor that loses the first
/// op it is given once (the kernel "surprised" it) when `lose_first` is set.
struct Counting<'a> {
    kernel: &'a ModelKernel,
    snapshots: Cell<usize>,
    host_reads: Cell<usize>,
    lose_first: Cell<bool>,
}

impl<'a> Counting<'a> {
    fn new(kernel: &'a ModelKernel, lose_first: bool) -> Counting<'a> {
        Counting {
            kernel,
            snapshots: Cell::new(0),
            host_reads: Cell::new(0),
            lose_first: Cell::new(lose_first),
        }
    }
}

impl SnapshotSource for Counting<'_> {
    fn snapshot(&self, req: &SnapshotRequest) -> Result<ActualState> {
        // The shared rule's read asks for rules and routes only (no rp_filter).
        let count = match req.host_sysctl_ifaces.is_empty() {
            false => &self.snapshots,
            true => &self.host_reads,
        };
        count.set(count.get() + 1);
        self.kernel.snapshot(req)
    }
}

impl Executor for Counting<'_> {
    fn apply(
        &self,
        ops: &[Op],
        planned_from: &ActualState,
    ) -> std::result::Result<Answers, Failed> {
        if self.lose_first.replace(false) {
            // The model applies the rest as planned; losing the first is the surprise.
            let _as_planned = self.kernel.apply(&ops[1..], planned_from)?;
            return Ok(Answers::Surprising);
        }
        self.kernel.apply(ops, planned_from)
    }
}

fn repair_through(counting: &Counting<'_>, case: &repair::Case) -> Vec<Op> {
    let world = World {
        snapshots: counting,
        executor: counting,
        records: &case.records,
        host: &case.records,
    };
    repair(&case.config, &case.att, &case.prev, &case.inputs, &world).unwrap()
}

#[test]
fn acked_ops_are_their_own_verification_no_state_is_read_again() {
    let case = drifted(true);
    let counting = Counting::new(&case.kernel, false);
    let applied = repair_through(&counting, &case);
    assert!(!applied.is_empty());
    assert_eq!(counting.snapshots.get(), 1, "one read, to plan");
    assert_eq!(
        counting.host_reads.get(),
        1,
        "the shared rule, under the lock"
    );
    assert!(case.pending().is_empty());
}

#[test]
fn a_surprised_executor_reads_again_and_applies_what_the_kernel_did_not_keep() {
    let case = drifted(true);
    let planned = case.pending().ops;
    let counting = Counting::new(&case.kernel, true);
    let applied = repair_through(&counting, &case);
    assert!(counting.snapshots.get() >= 2, "verified by a re-read");
    assert_eq!(
        applied.len(),
        planned.len() + 1,
        "the lost op applied again"
    );
    assert_eq!(applied.last(), planned.first());
    assert!(case.pending().is_empty());
}

#[test]
fn a_del_whose_removals_are_all_acked_reads_nothing_again() {
    let case = drifted(true);
    let counting = Counting::new(&case.kernel, false);
    let world = World {
        snapshots: &counting,
        executor: &counting,
        records: &case.records,
        host: &case.records,
    };
    del(
        &case.config,
        ConfigSource::Given,
        &case.att,
        Some(&case.prev),
        &world,
    )
    .unwrap();
    assert_eq!(counting.snapshots.get(), 1);
    assert_eq!(
        counting.host_reads.get(),
        1,
        "the shared rule, under the lock"
    );
    let after = prepare(
        Mode::Del,
        &case.config,
        &case.att,
        Some(&case.prev),
        &case.kernel,
        &case.records,
    )
    .unwrap();
    assert!(after.plan.ops.is_empty(), "{:?}", after.plan.ops);
}
