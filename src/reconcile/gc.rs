//! reconcile::gc: CNI 1.1 GC (which records are stale, each collected through DEL with the
//! host side only) and STATUS. Must never plan a pod op.

use super::del::remove;
use super::{Attachment, ConfigSource, Failure, Reach, World};
use crate::config::Config;
use crate::error::{Code, Error, Result};
use crate::model::{Op, Record};
use crate::record::HostGuard;

/// One entry of GC's `cni.dev/valid-attachments` (CNI 1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidAttachment {
    pub container_id: String,
    /// None when the entry names no interface: then every attachment of the container is
    /// kept (the safe reading of an incomplete entry).
    pub ifname: Option<String>,
}

impl ValidAttachment {
    fn covers(&self, record: &Record) -> bool {
        self.container_id == record.container_id
            && self.ifname.as_ref().is_none_or(|i| *i == record.ifname)
    }
}

/// What a GC did: the attachments it collected and the ops it applied for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcOutcome {
    pub collected: Vec<(String, String)>,
    pub applied: Vec<Op>,
}

/// CNI 1.1 GC: every attachment of this network (`config.name`) with a record in data_dir
/// that `valid` does not list is removed as a DEL with the pod netns gone would remove it:
/// its owned host routes and neighbours toward the chained interface, the shared host rule
/// when no owned route is left (decided under the host lock, one attachment at a time),
/// then its record. The pod side is not reached (GC names no netns; the spec lets a plugin
/// assume it is gone). What a valid attachment's record wants, or any other record's, is
/// kept. Goes on past failures and reports them all at the end. A salvaged config without a
/// network name proves no record this network's: nothing is collected.
pub fn gc(
    config: &Config,
    source: ConfigSource,
    valid: &[ValidAttachment],
    world: &World<'_>,
) -> Result<GcOutcome, Failure> {
    if source == ConfigSource::Salvaged && config.name.is_none() {
        tracing::warn!("GC: no usable network name: no record is proven this network's");
        return Ok(GcOutcome::default());
    }
    let stale: Vec<Record> = world
        .records
        .all()?
        .into_iter()
        .filter(|r| r.network == config.name && !valid.iter().any(|v| v.covers(r)))
        .collect();
    let mut outcome = GcOutcome::default();
    let mut failures = Vec::new();
    for record in &stale {
        // Held while it is collected, so that `router agent` does not repair it meanwhile
        // (it re-reads the record under the lock, and finds none afterwards).
        let held = world
            .host
            .hold_attachment(&record.container_id, &record.ifname);
        let collected = held
            .map_err(Failure::from)
            .and_then(|_lock| collect(config, record, world));
        match collected {
            Ok(applied) => {
                outcome
                    .collected
                    .push((record.container_id.clone(), record.ifname.clone()));
                outcome.applied.extend(applied);
            }
            Err(e) => failures.push((record, e)),
        }
    }
    match failures.first() {
        None => Ok(outcome),
        Some((_, first)) => Err(Failure::Error(Error::Partial {
            code: first.code(),
            summary: format!(
                "GC could not collect {} of {} stale attachments; first: {first}",
                failures.len(),
                stale.len()
            ),
            details: failures
                .iter()
                .map(|(r, e)| format!("{}/{}: {e}", r.container_id, r.ifname))
                .collect::<Vec<_>>()
                .join("\n"),
        })),
    }
}

/// One stale attachment, through DEL with no pod netns, reaching its host side only:
/// every other record in data_dir counts as a peer whose objects are kept.
fn collect(config: &Config, record: &Record, world: &World<'_>) -> Result<Vec<Op>, Failure> {
    let att = Attachment {
        container_id: record.container_id.clone(),
        ifname: record.ifname.clone(),
        netns: None,
    };
    remove(config, &att, None, world, Reach::HostSideOnly)
}

/// CNI 1.1 STATUS: ready when ADD could write its record and take the host lock now.
pub fn status(host: &dyn HostGuard) -> Result<()> {
    host.check_usable().map_err(|e| match e.code() {
        Code::NotAvailable => e,
        _ => Error::NotAvailable(e.to_string()),
    })
}
