//! A fault injected at each op of a real ADD: the executor's rollback leaves pod, host and
//! data_dir exactly as before. The reconciler runs in process, in the test's host netns.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::cni::*;
use router::config::{parse_netconf, PrevView};
use router::conflict::NoConflicts;
use router::error::Error;
use router::execute::{Answers, Executor, Failed, LiveExecutor};
use router::model::{ActualState, AddInputs, Op};
use router::reconcile::{self, Attachment, World};
use router::record::{FileRecords, RecordStore};
use router::snapshot::LiveSnapshot;
use serde_json::json;

/// The live executor, failing the n-th op it is given.
struct FaultAt {
    inner: LiveExecutor,
    fail_at: usize,
    seen: AtomicUsize,
}

impl Executor for FaultAt {
    fn apply(&self, ops: &[Op], planned_from: &ActualState) -> Result<Answers, Failed> {
        let mut answers = Answers::AsPlanned;
        for (index, op) in ops.iter().enumerate() {
            if self.seen.fetch_add(1, Ordering::SeqCst) == self.fail_at {
                let error = Error::Kernel {
                    object: format!("{op:?}"),
                    reason: "injected fault".into(),
                };
                return Err(Failed { index, error });
            }
            let answered = self
                .inner
                .apply(std::slice::from_ref(op), planned_from)
                .map_err(|f| Failed {
                    index,
                    error: f.error,
                })?;
            answers = answers.and(answered);
        }
        Ok(answers)
    }
}

fn state(node: &Node, pod: &Pod) -> String {
    let p = &pod.netns;
    let h = &node.host;
    [
        p.ipx(&["rule"]),
        p.ipx(&["-6", "rule"]),
        // Not the local table: IPv6 DAD adds its routes whenever it finishes.
        p.ipx(&["route", "show", "table", "main"]),
        p.ipx(&["-6", "route", "show", "table", "main"]),
        p.table("-4", "100"),
        p.table("-6", "100"),
        p.ipx(&["neigh", "show", "nud", "permanent"]),
        p.ipx(&["link", "show", "net1"]),
        p.exec(&["sysctl", "-a", "--pattern", "rp_filter|disable_ipv6"]),
        h.ipx(&["rule"]),
        h.ipx(&["-6", "rule"]),
        h.ipx(&["route", "show", "table", "main"]),
        h.ipx(&["-6", "route", "show", "table", "main"]),
        h.table("-4", "500"),
        h.table("-6", "500"),
        h.ipx(&["neigh", "show", "nud", "permanent"]),
        h.exec(&["sysctl", "-a", "--pattern", "rp_filter"]),
    ]
    .join("\n")
}

#[test]
fn a_fault_at_each_op_of_an_add_leaves_pod_host_and_records_as_before() {
    let node = Node::new("fault");
    let pod = Pod::new("fault");
    let mut overlay = overlay_network(&node, 7, &[4, 6]);
    assert!(overlay.add(&node, &pod).ok);
    let mut bare = bare_macvlan_network(&node, "net1", 7, &[4, 6]);
    let macvlan = bare.add(&node, &pod);
    assert!(macvlan.ok, "{}", macvlan.stdout);
    let prev = PrevView::parse(&macvlan.json()).unwrap();
    let mut conf = macvlan_network(&node, "net1", 7, &[4, 6], json!({"mac_prefix": "0a:0b"}))
        .conflist["plugins"][1]
        .clone();
    conf["cniVersion"] = json!("1.0.0");
    let config = parse_netconf(&conf, &test_allowed_dirs()).unwrap().config;
    let att = Attachment {
        container_id: pod.id.clone(),
        ifname: "net1".into(),
        netns: Some(pod.netns.path()),
    };
    conf["prevResult"] = macvlan.json();
    let inputs = AddInputs::new(att.netns.clone(), &conf);
    let before = state(&node, &pod);
    let mut fault = 0;
    loop {
        let (cfg, at, pv, inputs) = (config.clone(), att.clone(), prev.clone(), inputs.clone());
        let outcome = router::netns::run_in_netns(&node.host.path(), move || {
            let executor = FaultAt {
                inner: LiveExecutor::new(at.netns.clone()),
                fail_at: fault,
                seen: AtomicUsize::new(0),
            };
            let records = FileRecords::new(&cfg.data_dir);
            let world = World {
                snapshots: &LiveSnapshot::default(),
                executor: &executor,
                records: &records,
                host: &records,
            };
            let added = reconcile::add(&cfg, &at, &pv, &inputs, &world, &NoConflicts);
            Ok(added.map(|o| o.applied.len()))
        })
        .unwrap();
        match outcome {
            Ok(applied) => {
                assert!(
                    fault >= applied,
                    "ADD succeeded with fault at {fault} of {applied} ops"
                );
                break;
            }
            Err(e) => {
                assert!(
                    e.to_string().contains("injected fault"),
                    "fault {fault}: {e}"
                );
                assert_eq!(
                    state(&node, &pod),
                    before,
                    "fault at op {fault} left changes"
                );
                let records = FileRecords::new(&config.data_dir);
                assert!(records.load(&att.container_id, "net1").unwrap().is_none());
            }
        }
        fault += 1;
    }
    assert!(fault > 20, "the ADD had only {fault} ops");
}
