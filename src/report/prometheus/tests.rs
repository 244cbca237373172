//! report::prometheus tests: the text format, its counts and escaping.
use super::*;
use crate::report::tests::reports::every_status;
use crate::report::Repair;

#[test]
fn every_status_is_counted_and_each_checked_attachment_has_its_drift_per_side() {
    assert_eq!(
        every_status().prometheus(),
        r#"# HELP router_attachments Attachments the last router check looked at, by status.
# TYPE router_attachments gauge
router_attachments{status="clean"} 1
router_attachments{status="drift"} 1
router_attachments{status="repaired"} 1
router_attachments{status="gone"} 1
router_attachments{status="stale"} 0
router_attachments{status="skipped"} 1
router_attachments{status="error"} 1
# HELP router_attachment_drifts Objects not as ADD would make them, left after the last router check (and any repair), per checked attachment and netns.
# TYPE router_attachment_drifts gauge
router_attachment_drifts{container_id="c1",ifname="net1",network="macvlan-net1",netns="pod"} 0
router_attachment_drifts{container_id="c1",ifname="net1",network="macvlan-net1",netns="host"} 0
router_attachment_drifts{container_id="c2",ifname="net1",network="macvlan-net1",netns="pod"} 1
router_attachment_drifts{container_id="c2",ifname="net1",network="macvlan-net1",netns="host"} 1
router_attachment_drifts{container_id="c3",ifname="net1",network="macvlan-net1",netns="pod"} 0
router_attachment_drifts{container_id="c3",ifname="net1",network="macvlan-net1",netns="host"} 0
# HELP router_repair_ops_applied Ops router check --repair applied in the last run.
# TYPE router_repair_ops_applied gauge
router_repair_ops_applied 1
# HELP router_check_exit_code Exit code of the last router check: 0 clean, 2 drift, 1 a check could not run.
# TYPE router_check_exit_code gauge
router_check_exit_code 1
# HELP router_check_duration_seconds How long the last router check took.
# TYPE router_check_duration_seconds gauge
router_check_duration_seconds 0.25
# HELP router_check_timestamp_seconds When the last router check finished, in seconds since the Unix epoch.
# TYPE router_check_timestamp_seconds gauge
router_check_timestamp_seconds 1764581000.25
"#
    );
}

#[test]
fn an_empty_report_has_every_family_with_zero_counts() {
    let text = CheckReport::default().prometheus();
    for status in Status::ALL {
        assert!(
            text.contains(&format!(
                "router_attachments{{status=\"{}\"}} 0\n",
                status.word()
            )),
            "{text}"
        );
    }
    assert!(
        text.contains("# TYPE router_attachment_drifts gauge\n# HELP router_repair_ops_applied")
    );
    assert!(text.contains("\nrouter_repair_ops_applied 0\n"));
    assert!(text.contains("\nrouter_check_exit_code 0\n"));
    assert!(
        text.ends_with("router_check_timestamp_seconds 0\n"),
        "{text}"
    );
}

#[test]
fn label_values_escape_backslash_quote_and_line_feed() {
    let mut report = every_status();
    let a = &mut report.attachments[0];
    a.container_id = "a\\b\"c\nd".into();
    a.network = None;
    assert!(report.prometheus().contains(
            "router_attachment_drifts{container_id=\"a\\\\b\\\"c\\nd\",ifname=\"net1\",network=\"\",netns=\"pod\"} 0\n"
        ));
    assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
}

#[test]
fn the_drift_left_after_a_repair_is_what_it_could_not_fix() {
    let mut report = every_status();
    let drifted = &mut report.attachments[1];
    let remaining = vec![drifted.drifts[1].clone()];
    drifted.repair = Some(Repair {
        applied: vec!["ip rule add ...".into(), "ip route add ...".into()],
        remaining,
    });
    let text = report.prometheus();
    assert!(text.contains(
        "container_id=\"c2\",ifname=\"net1\",network=\"macvlan-net1\",netns=\"pod\"} 0\n"
    ));
    assert!(text.contains(
        "container_id=\"c2\",ifname=\"net1\",network=\"macvlan-net1\",netns=\"host\"} 1\n"
    ));
    assert!(text.contains("\nrouter_repair_ops_applied 3\n"));
}
