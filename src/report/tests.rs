//! report's tests; `reports`: the reports every renderer's golden tests share.

pub(super) mod reports;

use super::*;
use crate::model::{Family, Side};
use crate::render::{DriftState, ObjectKind};

fn drift() -> Drift {
    Drift {
        object: "rule to 10.96.0.0/12 lookup 100 pref 1000".into(),
        ..Drift::new(
            Side::Pod,
            (
                ObjectKind::Rule(Family::Ipv4),
                "to 10.96.0.0/12 lookup 100 pref 1000".into(),
            ),
            DriftState::Missing,
            "present",
            "missing",
        )
    }
}

fn report() -> CheckReport {
    let mut clean = AttachmentReport::new("c1", "net1", Status::Clean);
    clean.network = Some("macvlan-net1".into());
    clean.netns = Some("/run/netns/p1".into());
    clean.cache_entry = Some("/var/lib/cni/results/macvlan-net1-c1-net1".into());
    let mut drifted = AttachmentReport::new("c2", "net1", Status::Drift);
    drifted.drifts = vec![drift()];
    let mut gone = AttachmentReport::new("c3", "net1", Status::Gone);
    gone.netns = Some("/run/netns/p3".into());
    gone.message = Some("the pod netns is gone".into());
    let mut skipped = AttachmentReport::new("c1", "eth0", Status::Skipped);
    skipped.message = Some("no router in the chain".into());
    CheckReport {
        attachments: vec![clean, drifted, gone, skipped],
        ..CheckReport::default()
    }
}

/// The schema, pinned field by field: changing any of this is a new schema version.
#[test]
fn the_json_schema_is_router_check_v1() {
    let doc = report().json();
    assert_eq!(
        doc,
        json!({
            "schema": "router.check/v1",
            "exit_code": 2,
            "summary": {"attachments": 4, "clean": 1, "drift": 1, "repaired": 0,
                        "gone": 1, "stale": 0, "skipped": 1, "error": 0},
            "attachments": [
                {"container_id": "c1", "ifname": "net1", "network": "macvlan-net1",
                 "netns": "/run/netns/p1",
                 "cache_entry": "/var/lib/cni/results/macvlan-net1-c1-net1",
                 "status": "clean", "drifts": [], "repair": null, "message": null,
                 "error_code": null},
                {"container_id": "c2", "ifname": "net1", "network": null, "netns": null,
                 "cache_entry": null, "status": "drift",
                 "drifts": [{"netns": "pod",
                             "object": "rule to 10.96.0.0/12 lookup 100 pref 1000",
                             "expected": "present", "actual": "missing"}],
                 "repair": null, "message": null, "error_code": null},
                {"container_id": "c3", "ifname": "net1", "network": null,
                 "netns": "/run/netns/p3", "cache_entry": null, "status": "gone",
                 "drifts": [], "repair": null, "message": "the pod netns is gone",
                 "error_code": null},
                {"container_id": "c1", "ifname": "eth0", "network": null, "netns": null,
                 "cache_entry": null, "status": "skipped", "drifts": [], "repair": null,
                 "message": "no router in the chain", "error_code": null}
            ]
        })
    );
}

#[test]
fn text_has_a_line_per_attachment_then_its_drifts_and_a_summary_counting_skipped() {
    let text = report().text(false);
    assert_eq!(
            text,
            "clean    c1/net1 (network macvlan-net1, netns /run/netns/p1)\n\
             drift    c2/net1 (1 drift)\n    \
             pod netns: rule to 10.96.0.0/12 lookup 100 pref 1000: expected present, actual missing\n\
             gone     c3/net1 (netns /run/netns/p3, the pod netns is gone)\n\
             4 attachments: 1 clean, 1 drift, 1 gone, 1 skipped\n"
        );
    assert!(!text.contains('\x1b'));
    assert!(report().text(true).contains("\x1b[31mdrift"));
}

#[test]
fn exit_code_is_error_over_drift_over_clean_and_ignores_gone_and_skipped() {
    let mut r = report();
    assert_eq!(r.exit_code(), EXIT_DRIFT);
    r.attachments[1].status = Status::Repaired;
    assert_eq!(r.exit_code(), EXIT_CLEAN);
    r.attachments[0].status = Status::Error;
    assert_eq!(r.exit_code(), EXIT_ERROR);
    assert_eq!(CheckReport::default().exit_code(), EXIT_CLEAN);
    let named_gone = CheckReport {
        attachments: vec![AttachmentReport::new("c3", "net1", Status::Gone)],
        named: true,
        ..CheckReport::default()
    };
    assert_eq!(named_gone.exit_code(), EXIT_ERROR);
}
