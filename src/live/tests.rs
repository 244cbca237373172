//! The plugin run's records: the held attachment's record read once, kept in step with
//! what the run writes and removes; every other record read from its file each time.

use std::path::PathBuf;

use super::*;
use crate::model::Record;

fn invocation(container_id: &str) -> Invocation {
    Invocation {
        command: Command::Del,
        container_id: container_id.into(),
        netns: None,
        ifname: "net1".into(),
    }
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("router-live-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_held_attachments_record_is_read_once_and_follows_the_runs_writes() {
    let dir = scratch("held");
    let files = Arc::new(FileRecords::new(&dir));
    let record = Record::new("c1", "net1", 100, 500, "eth0");
    files.save(&record).unwrap();
    let held = HeldRecord::new(Arc::clone(&files), true, &invocation("c1"));
    assert_eq!(held.load("c1", "net1").unwrap(), Some(record.clone()));
    // Gone from disk behind the run's back (nothing does that while the lock is held):
    // the run still answers from its one read.
    std::fs::remove_file(dir.join("c1-net1.json")).unwrap();
    assert_eq!(held.load("c1", "net1").unwrap(), Some(record.clone()));
    let written = Record {
        table: 101,
        ..record
    };
    held.save(&written).unwrap();
    assert_eq!(held.load("c1", "net1").unwrap(), Some(written.clone()));
    assert_eq!(files.load("c1", "net1").unwrap(), Some(written));
    held.remove("c1", "net1").unwrap();
    assert_eq!(held.load("c1", "net1").unwrap(), None);
    assert_eq!(files.load("c1", "net1").unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_the_lock_or_for_another_attachment_every_read_goes_to_the_file() {
    let dir = scratch("unheld");
    let files = Arc::new(FileRecords::new(&dir));
    let unheld = HeldRecord::new(Arc::clone(&files), false, &invocation("c1"));
    let held_other = HeldRecord::new(Arc::clone(&files), true, &invocation("c2"));
    for records in [&unheld, &held_other] {
        let record = Record::new("c1", "net1", 100, 500, "eth0");
        files.save(&record).unwrap();
        assert_eq!(records.load("c1", "net1").unwrap(), Some(record));
        files.remove("c1", "net1").unwrap();
        assert_eq!(records.load("c1", "net1").unwrap(), None);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
