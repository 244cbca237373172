//! Unit tests of report::rollout.

use super::*;

fn report(statuses: &[RolloutStatus]) -> RolloutReport {
    RolloutReport {
        network: "macvlan-net1".into(),
        dry_run: false,
        prune: false,
        attachments: statuses
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut a = AttachmentRollout::new(&format!("c{i}"), "net1", *s);
                if matches!(s, RolloutStatus::Refused | RolloutStatus::Failed) {
                    a.reasons.push(format!("why <{i}>"));
                }
                a
            })
            .collect(),
        run: RunInfo {
            started: Duration::from_secs(86_400),
            took: Duration::from_millis(1500),
            host: Some("node-1".into()),
        },
    }
}

#[test]
fn a_failure_or_an_attachment_not_reached_exits_1_a_refusal_2_else_0() {
    use RolloutStatus::*;
    assert_eq!(
        report(&[RolledOut, Unchanged, Gone, Planned]).exit_code(),
        0
    );
    assert_eq!(report(&[RolledOut, Refused]).exit_code(), 2);
    assert_eq!(report(&[Refused, Failed]).exit_code(), 1);
    assert_eq!(report(&[RolledOut, NotReached]).exit_code(), 1);
    assert_eq!(report(&[]).exit_code(), 0);
}

#[test]
fn every_status_shows_in_text_json_and_junit_with_its_reasons() {
    let r = report(&RolloutStatus::ALL);
    let text = r.text();
    for s in RolloutStatus::ALL {
        assert!(text.contains(s.word()), "{s:?} in {text}");
    }
    assert!(text.contains("why <3>"), "{text}");
    let json = r.json();
    assert_eq!(json["schema"], ROLLOUT_SCHEMA);
    assert_eq!(json["summary"]["not_reached"], 1);
    assert_eq!(json["attachments"][4]["status"], "failed");
    assert_eq!(json["attachments"][4]["reasons"][0], "why <4>");
    let junit = r.junit();
    assert!(
        junit.contains("failures=\"1\" errors=\"2\" skipped=\"1\""),
        "{junit}"
    );
    assert!(junit.contains("message=\"why &lt;3&gt;\""), "{junit}");
    assert!(
        junit.contains("timestamp=\"1970-01-02T00:00:00\""),
        "{junit}"
    );
}
