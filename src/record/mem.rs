//! record::mem: `MemRecords`, records in memory for tests and offline runs; its host lock
//! holds nothing. Must not touch files.

use std::sync::Mutex;

use super::{HostGuard, HostLock, RecordStore};
use crate::error::{Error, Result};
use crate::model::Record;

/// Records in memory, for tests and offline runs.
#[derive(Default)]
pub struct MemRecords {
    records: Mutex<Vec<Record>>,
}

impl MemRecords {
    pub fn with(records: Vec<Record>) -> MemRecords {
        MemRecords {
            records: Mutex::new(records),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Vec<Record>>> {
        self.records
            .lock()
            .map_err(|_| Error::TryAgain("record store lock poisoned".into()))
    }
}

impl RecordStore for MemRecords {
    fn load(&self, container_id: &str, ifname: &str) -> Result<Option<Record>> {
        Ok(self
            .lock()?
            .iter()
            .find(|r| r.container_id == container_id && r.ifname == ifname)
            .cloned())
    }

    fn peers(&self, container_id: &str, ifname: &str) -> Result<Vec<Record>> {
        Ok(self
            .lock()?
            .iter()
            .filter(|r| r.container_id == container_id && r.ifname != ifname)
            .cloned()
            .collect())
    }

    fn save(&self, record: &Record) -> Result<()> {
        let mut records = self.lock()?;
        records.retain(|r| !(r.container_id == record.container_id && r.ifname == record.ifname));
        records.push(record.clone());
        Ok(())
    }

    fn remove(&self, container_id: &str, ifname: &str) -> Result<()> {
        self.lock()?
            .retain(|r| !(r.container_id == container_id && r.ifname == ifname));
        Ok(())
    }

    fn all(&self) -> Result<Vec<Record>> {
        Ok(self.lock()?.clone())
    }
}

impl HostGuard for MemRecords {
    fn lock_host(&self) -> Result<HostLock> {
        Ok(HostLock { _file: None })
    }

    fn check_usable(&self) -> Result<()> {
        Ok(())
    }
}
