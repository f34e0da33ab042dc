//! The records of the policies' jobs, typed over [`super::store::IamStore`]'s job records:
//! which kinds there are, their statuses and triggers as Harbor names them, and the bound
//! on the history kept.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::meta::{MetaError, Metadata, Result};

/// A project's retention policy ([`super::retention::Policy`]).
pub const RETENTION_POLICY: &str = "retention_policy";
/// One run of a retention policy ([`super::retention::Execution`]).
pub const RETENTION_EXECUTION: &str = "retention_execution";
/// One repository of a run ([`super::retention::Task`]).
pub const RETENTION_TASK: &str = "retention_task";
/// One garbage collection started from the API or the schedule ([`super::system_gc::GcRun`]).
pub const GC_RUN: &str = "gc_run";
/// The GC schedule, one record at most ([`super::system_gc::GcSchedule`]).
pub const GC_SCHEDULE: &str = "gc_schedule";

/// Runs kept per retention policy, and GC runs kept: older ones (finished) are forgotten
/// when a new one starts, so the history never grows without bound.
pub const HISTORY: usize = 50;

/// Harbor's execution and task statuses.
pub const RUNNING: &str = "Running";
pub const SUCCESS: &str = "Success";
pub const ERROR: &str = "Error";
pub const STOPPED: &str = "Stopped";

/// Harbor's triggers.
pub const MANUAL: &str = "MANUAL";
pub const SCHEDULE: &str = "SCHEDULE";

fn decode<T: DeserializeOwned>(kind: &str, id: u64, doc: &[u8]) -> Result<T> {
    serde_json::from_slice(doc).map_err(|e| MetaError::Decode { key: format!("{kind} {id}"), message: e.to_string() })
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| MetaError::Db(format!("encode record: {e}")))
}

pub fn create<T: Serialize>(meta: &dyn Metadata, kind: &str, v: &T) -> Result<u64> {
    meta.create_job_record(kind, &encode(v)?)
}

pub fn get<T: DeserializeOwned>(meta: &dyn Metadata, kind: &str, id: u64) -> Result<Option<T>> {
    meta.job_record(kind, id)?.map(|d| decode(kind, id, &d)).transpose()
}

pub fn all<T: DeserializeOwned>(meta: &dyn Metadata, kind: &str) -> Result<Vec<(u64, T)>> {
    meta.job_records(kind)?.into_iter().map(|(id, d)| Ok((id, decode(kind, id, &d)?))).collect()
}

pub fn update<T: Serialize>(meta: &dyn Metadata, kind: &str, id: u64, v: &T) -> Result<bool> {
    meta.update_job_record(kind, id, &encode(v)?)
}
