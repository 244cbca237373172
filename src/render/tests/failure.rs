//! render tests, `failure`: the words of the `PlanFailure`s as the CNI error shows them
//! (message and details), with the codes they carry.

use super::*;
use crate::error::{Code, Error};
use crate::plan::PlanFailure;

#[test]
fn plan_failures_are_worded_as_cni_errors_with_their_codes() {
    let missing = plan(
        vec![add_route(Side::Pod, route("10.240.0.0/12", "net1"))],
        vec![],
    );
    let line = "pod netns: route 10.240.0.0/12 dev net1: expected present, actual missing";
    let drift = PlanFailure::Drift(missing.clone());
    assert_eq!(drift.code(), Code::Drift);
    assert_eq!(
        drift.to_string(),
        "1 drift: route `10.240.0.0/12 dev net1` missing in pod"
    );
    assert_eq!(drift.details().as_deref(), Some(line));

    let blocked = PlanFailure::Blocked(vec![blocked_default(Side::Pod)]);
    assert_eq!(blocked.code(), Code::Blocked);
    assert!(blocked
        .to_string()
        .starts_with("objects router does not own are in the way (not touched): 1 drift: "));
    assert_eq!(blocked.details().map(|d| d.lines().count()), Some(1));

    let not_kept = PlanFailure::NotKept(missing.clone());
    assert_eq!(not_kept.code(), Code::Kernel);
    assert_eq!(
        not_kept.to_string(),
        "kernel refused verification: the kernel does not keep what was applied: 1 drift: route `10.240.0.0/12 dev net1` missing in pod"
    );
    assert_eq!(not_kept.details(), None);

    let errors = vec![Error::TryAgain("busy".into())];
    let left = PlanFailure::Left {
        plan: missing,
        errors,
    };
    assert_eq!(left.code(), Code::Kernel);
    assert_eq!(
        left.to_string(),
        "kernel refused DEL: 1 still pending (1 drift: route `10.240.0.0/12 dev net1` missing in pod); errors: try again later: busy"
    );
}
