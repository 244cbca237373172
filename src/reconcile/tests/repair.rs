//! `repair` over the in-memory model kernel, from the `add-drifted` fixture (an ADD applied,
//! then a rule, a sysctl, the MAC, a host route and a neighbour tampered with).

use super::super::*;
use crate::config::{parse_netconf, plugin_from_conflist_or_plugin, AllowedDirs};
use crate::error::Code;
use crate::model::{AddInputs, Change, Op, Side, PROTOCOL_BOOT};
use crate::record::MemRecords;
use crate::testkit::ModelKernel;
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/add-drifted");

fn read(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{DIR}/{name}")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub(super) struct Case {
    pub(super) config: Config,
    pub(super) prev: PrevView,
    pub(super) kernel: ModelKernel,
    pub(super) records: MemRecords,
    pub(super) att: Attachment,
    /// What the operator's repair runs with (the fixture's config and prevResult).
    pub(super) inputs: AddInputs,
}

/// The inputs the ADD that wrote the fixture's record ran with.
fn add_inputs() -> AddInputs {
    let mut stdin = plugin_from_conflist_or_plugin(read("config.json")).unwrap();
    stdin["prevResult"] = read("prev-result.json");
    AddInputs::new(Some("/run/netns/from-add".into()), &stdin)
}

pub(super) fn drifted(with_record: bool) -> Case {
    let config = parse_netconf(
        &plugin_from_conflist_or_plugin(read("config.json")).unwrap(),
        &AllowedDirs::default(),
    )
    .unwrap()
    .config;
    let prev = PrevView::parse(&read("prev-result.json")).unwrap();
    let kernel = ModelKernel::new(serde_json::from_value(read("snapshot.json")).unwrap());
    let mut records = Vec::new();
    if with_record {
        let mut record: Record = serde_json::from_value(read("record.json")).unwrap();
        record.container_id = "c1".into();
        record.inputs = Some(add_inputs());
        records.push(record);
    }
    Case {
        config,
        prev,
        kernel,
        records: MemRecords::with(records),
        att: Attachment {
            container_id: "c1".into(),
            ifname: "net1".into(),
            netns: None,
        },
        inputs: AddInputs {
            netns: None,
            ..add_inputs()
        },
    }
}

impl Case {
    fn world(&self) -> World<'_> {
        World {
            snapshots: &self.kernel,
            executor: &self.kernel,
            records: &self.records,
            host: &self.records,
        }
    }

    pub(super) fn pending(&self) -> Plan {
        prepare(
            Mode::Add,
            &self.config,
            &self.att,
            Some(&self.prev),
            &self.kernel,
            &self.records,
        )
        .unwrap()
        .plan
    }

    fn record(&self) -> Option<Record> {
        self.records.load("c1", "net1").unwrap()
    }
}

#[test]
fn repair_applies_the_drift_plan_and_check_passes_afterwards() {
    let case = drifted(true);
    let before = case.record();
    let plan = case.pending();
    assert!(plan.ops.len() >= 5, "{plan:?}");
    let applied = repair(
        &case.config,
        &case.att,
        &case.prev,
        &case.inputs,
        &case.world(),
    )
    .unwrap();
    assert_eq!(applied, plan.ops);
    assert!(case.pending().is_empty());
    check(&case.config, &case.att, &case.prev, &case.world()).unwrap();
    assert_eq!(
        case.record(),
        before,
        "the record is what ADD wrote, unchanged"
    );
}

#[test]
fn repair_fills_the_inputs_of_a_record_written_without_them() {
    let case = drifted(true);
    let mut old = case.record().unwrap();
    old.inputs = None;
    case.records.save(&old).unwrap();
    repair(
        &case.config,
        &case.att,
        &case.prev,
        &case.inputs,
        &case.world(),
    )
    .unwrap();
    let written = case.record().unwrap();
    assert_eq!(written.inputs.as_ref(), Some(&case.inputs));
    assert_eq!(
        Record {
            inputs: None,
            ..written
        },
        old
    );
}

#[test]
fn repair_of_a_clean_attachment_applies_nothing_and_writes_no_record() {
    let case = drifted(false);
    repair(
        &case.config,
        &case.att,
        &case.prev,
        &case.inputs,
        &case.world(),
    )
    .unwrap();
    let records = MemRecords::default();
    let clean = Case {
        records,
        kernel: ModelKernel::new(case.kernel.state()),
        ..case
    };
    assert_eq!(
        repair(
            &clean.config,
            &clean.att,
            &clean.prev,
            &clean.inputs,
            &clean.world()
        )
        .unwrap(),
        Vec::<Op>::new()
    );
    assert_eq!(clean.record(), None);
}

#[test]
fn a_failed_repair_rolls_back_and_restores_the_record() {
    let count = drifted(true).pending().ops.len();
    for fail_at in 0..count {
        let case = drifted(true);
        let (state, record) = (case.kernel.state(), case.record());
        case.kernel.fail_at(Some(fail_at));
        let err = repair(
            &case.config,
            &case.att,
            &case.prev,
            &case.inputs,
            &case.world(),
        )
        .unwrap_err();
        assert_eq!(err.code(), Code::Kernel, "op {fail_at}: {err}");
        assert_eq!(case.kernel.state(), state, "op {fail_at}: rolled back");
        assert_eq!(case.record(), record, "op {fail_at}: record restored");
    }
}

#[test]
fn repair_refuses_when_an_unowned_object_is_in_the_way_and_touches_nothing() {
    let case = drifted(true);
    let missing = case
        .pending()
        .ops
        .into_iter()
        .find_map(|op| match op {
            Op {
                netns: Side::Host,
                change: Change::AddRoute { route },
            } => Some(route),
            _ => None,
        })
        .expect("the fixture misses a host route");
    let mut squatter = missing.clone();
    squatter.protocol = PROTOCOL_BOOT;
    squatter.key.dev = Some("eth9".into());
    assert_eq!(squatter.key.slot(), missing.key.slot());
    let mut state = case.kernel.state();
    state.apply(&[Op::new(Side::Host, Change::AddRoute { route: squatter })]);
    case.kernel.set_state(state.clone());
    let err = repair(
        &case.config,
        &case.att,
        &case.prev,
        &case.inputs,
        &case.world(),
    )
    .unwrap_err();
    assert_eq!(err.code(), Code::Blocked, "{err}");
    assert_eq!(case.kernel.state(), state);
}
