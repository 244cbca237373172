//! snapshot tests: a snapshot file held to the tables a request reads.

use super::*;
use crate::model::{Route, ROUTER_PROTOCOL};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A snapshot file of the test's own, removed on drop.
struct File(PathBuf);

impl File {
    fn of(state: &ActualState) -> File {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "router-snapshot-test-{}-{}.json",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, serde_json::to_string(state).unwrap()).unwrap();
        File(path)
    }

    fn read(&self, req: &SnapshotRequest) -> Result<ActualState> {
        FileSnapshot {
            path: self.0.clone(),
        }
        .snapshot(req)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn state(pod_tables: Option<Tables>) -> ActualState {
    let mut pod = NetnsState::default();
    for table in [MAIN_TABLE, 100, 300] {
        pod.insert_route(Route::link(
            table,
            "192.0.2.2/32".parse().unwrap(),
            "eth0",
            ROUTER_PROTOCOL,
        ));
    }
    ActualState {
        pod: Some(pod),
        tables: pod_tables.map(|pod| TablesHeld {
            pod,
            host: Tables::ALL,
        }),
        ..ActualState::default()
    }
}

fn wanting(tables: &[u32]) -> SnapshotRequest {
    SnapshotRequest {
        pod_netns: Some(PathBuf::from("/run/netns/p")),
        pod_tables: tables.iter().copied().collect(),
        host_tables: BTreeSet::from([500]),
        ..SnapshotRequest::default()
    }
}

fn pod_tables_of(state: &ActualState) -> BTreeSet<u32> {
    let pod = state.pod.as_ref().unwrap();
    pod.routes.keys().map(|k| k.table).collect()
}

#[test]
fn a_snapshot_without_a_table_the_plan_needs_is_refused_naming_it() {
    let file = File::of(&state(Some(Tables::Only(BTreeSet::from([MAIN_TABLE])))));
    let error = file.read(&wanting(&[100])).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("the pod netns's route table 100"), "{text}");
    assert!(text.contains("router snapshot --netns PATH"), "{text}");
    assert_eq!(error.code(), crate::error::Code::Io);
}

#[test]
fn a_snapshot_of_every_table_serves_any_request_with_only_the_tables_it_reads() {
    let file = File::of(&state(Some(Tables::ALL)));
    let read = file.read(&wanting(&[100])).unwrap();
    assert_eq!(pod_tables_of(&read), BTreeSet::from([100, MAIN_TABLE]));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file.0).unwrap()).unwrap();
    assert_eq!(
        json["tables"],
        serde_json::json!({"pod": "all", "host": "all"})
    );
}

#[test]
fn a_snapshot_that_states_no_tables_is_read_as_holding_those_asked_for() {
    let file = File::of(&state(None));
    let read = file.read(&wanting(&[100])).unwrap();
    assert_eq!(pod_tables_of(&read), BTreeSet::from([100, MAIN_TABLE]));
    let listed = File::of(&state(Some(Tables::Only(BTreeSet::from([
        MAIN_TABLE, 100,
    ])))));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&listed.0).unwrap()).unwrap();
    assert_eq!(json["tables"]["pod"], serde_json::json!([100, MAIN_TABLE]));
    assert!(listed.read(&wanting(&[100])).is_ok());
}
