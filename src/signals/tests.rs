//! signals tests: blocking and allowing the termination signals.

use super::*;

/// On a thread of its own: the mask is per thread, and test threads are shared.
#[test]
fn blocking_then_allowing_then_blocking_again() {
    std::thread::spawn(|| {
        assert!(!termination_blocked());
        block_termination().unwrap();
        assert!(termination_blocked());
        let inherited = std::thread::spawn(termination_blocked).join().unwrap();
        assert!(inherited, "a thread started later inherits the mask");
        {
            let _allowed = allow_termination();
            assert!(!termination_blocked());
        }
        assert!(termination_blocked());
    })
    .join()
    .unwrap();
}

#[test]
fn allowing_when_nothing_is_blocked_changes_nothing() {
    std::thread::spawn(|| {
        {
            let _allowed = allow_termination();
            assert!(!termination_blocked());
        }
        assert!(!termination_blocked());
    })
    .join()
    .unwrap();
}
