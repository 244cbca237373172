//! Reports the renderers' golden tests share: one attachment in every status, with
//! timings, a repair, and a message full of characters each format must escape.

use std::time::Duration;

use crate::model::Family;
use crate::model::Side;
use crate::render::{Drift, DriftState, ObjectKind};
use crate::report::{AttachmentReport, CheckReport, Repair, RunInfo, Status};

fn drift(netns: Side, kind: ObjectKind, name: &str, expected: &str, actual: &str) -> Drift {
    let state = if actual == "missing" {
        DriftState::Missing
    } else {
        DriftState::Differs
    };
    Drift::new(netns, (kind, name.into()), state, expected, actual)
}

fn attachment(id: &str, status: Status, millis: u64) -> AttachmentReport {
    let mut a = AttachmentReport::new(id, "net1", status);
    a.network = Some("macvlan-net1".into());
    a.netns = Some(format!("/run/netns/p{}", &id[1..]));
    a.duration = Duration::from_millis(millis);
    a
}

/// clean, drift (a pod and a host drift), repaired, gone, skipped (no entry), error.
pub(crate) fn every_status() -> CheckReport {
    let clean = attachment("c1", Status::Clean, 12);
    let mut drifted = attachment("c2", Status::Drift, 34);
    drifted.drifts = vec![
        drift(
            Side::Pod,
            ObjectKind::Rule(Family::Ipv4),
            "from all to 10.96.0.0/12 lookup 100 pref 1000",
            "present",
            "missing",
        ),
        drift(
            Side::Host,
            ObjectKind::Route(Family::Ipv4),
            "192.168.50.12 dev veth1 table 500 scope link",
            "present",
            "missing",
        ),
    ];
    let mut repaired = attachment("c3", Status::Repaired, 56);
    repaired.drifts = vec![drift(
        Side::Pod,
        ObjectKind::Sysctl,
        "net.ipv4.conf.net1.rp_filter",
        "0",
        "1",
    )];
    repaired.repair = Some(Repair {
        applied: vec!["sysctl -w net.ipv4.conf.net1.rp_filter=0".into()],
        remaining: Vec::new(),
    });
    let mut gone = attachment("c4", Status::Gone, 1);
    gone.message = Some("the pod netns is gone".into());
    let mut skipped = AttachmentReport::new("", "", Status::Skipped);
    skipped.cache_entry = Some("/var/lib/cni/results/legacy-c9-eth0".into());
    skipped.message = Some("not a readable cniCacheV1 entry".into());
    let mut error = AttachmentReport::new("c\"5<", "net1", Status::Error);
    error.network = Some("a&b".into());
    error.message = Some("invalid <config> & \"more\"\nsecond line".into());
    error.error_code = Some(7);
    // Words no object has, for the escaping: a report prints `object` as it is.
    error.drifts = vec![Drift {
        object: "drift <b>".into(),
        ..drift(Side::Pod, ObjectKind::Mac, "<b>", "&", "\u{1b}")
    }];
    error.duration = Duration::from_millis(2);
    CheckReport {
        attachments: vec![clean, drifted, repaired, gone, skipped, error],
        named: false,
        run: RunInfo {
            started: Duration::from_millis(1_764_581_000_000),
            took: Duration::from_millis(250),
            host: Some("node-1".into()),
        },
    }
}

/// `router check --container-id c4 --ifname net1` on a pod that is gone.
pub(crate) fn named_gone() -> CheckReport {
    let mut gone = AttachmentReport::new("c4", "net1", Status::Gone);
    gone.message = Some("the pod netns is gone".into());
    CheckReport {
        attachments: vec![gone],
        named: true,
        run: RunInfo::default(),
    }
}
