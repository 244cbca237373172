//! Unit tests of agent::metrics.

use super::*;

#[test]
fn every_family_is_exported_before_anything_happened_with_lower_case_labels() {
    let text = Metrics::new().encode();
    for sample in [
        "router_agent_attachments{state=\"clean\"} 0",
        "router_agent_attachments{state=\"gone\"} 0",
        "router_agent_repair_failures_total 0",
        "router_agent_subscription_overflows_total{netns=\"pod\"} 0",
        "router_agent_subscriptions{netns=\"node\"} 0",
    ] {
        assert!(text.lines().any(|l| l == sample), "{sample} in\n{text}");
    }
    let names = sample_names();
    for name in [
        "router_agent_repairs_total",
        "router_agent_event_to_repair_seconds_bucket",
        "router_agent_last_resync_timestamp_seconds",
    ] {
        assert!(names.contains(name), "{name} in {names:?}");
    }
}

#[test]
fn readiness_comes_with_the_first_full_resync() {
    let metrics = Metrics::new();
    assert!(!metrics.is_ready());
    metrics.resynced(Duration::from_millis(3));
    assert!(metrics.is_ready());
    assert!(metrics.last_resync.get() > 0);
}
