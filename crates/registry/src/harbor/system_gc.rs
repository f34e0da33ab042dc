//! Part 1's online GC ([`crate::gc::collect`]) as Harbor's `system/gc` job: runs started by
//! hand or by the schedule, each recorded (status, parameters, times, its log), and the one
//! schedule (`Hourly`, `Daily`, `Weekly`, `Custom` with a cron; `None` removes it). The grace
//! period and upload age are serve's (`--gc-grace`); a run's parameters choose
//! `delete_untagged` and `dry_run`.

use serde::{Deserialize, Serialize};

use super::jobs;
use crate::gc::GcOptions;
use crate::meta::{now, Metadata, Result};
use crate::server::Registry;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GcParams {
    pub delete_untagged: bool,
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GcRun {
    /// [`jobs::MANUAL`] or [`jobs::SCHEDULE`].
    pub trigger: String,
    pub params: GcParams,
    /// `Pending` until a scheduler picks it up, then Running, Success or Error.
    pub status: String,
    pub start: u64,
    pub end: Option<u64>,
    pub log: String,
    /// The schedule's slot a scheduled run is for.
    #[serde(default)]
    pub slot: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GcSchedule {
    /// Harbor's schedule type: Hourly, Daily, Weekly or Custom.
    pub kind: String,
    pub cron: String,
    pub params: GcParams,
    pub created: u64,
    pub updated: u64,
}

/// The cron Harbor gives each preset.
pub fn preset_cron(kind: &str) -> Option<&'static str> {
    match kind {
        "Hourly" => Some("0 0 * * * *"),
        "Daily" => Some("0 0 0 * * *"),
        "Weekly" => Some("0 0 0 * * 0"),
        _ => None,
    }
}

/// The schedule, if there is one (its record id with it).
pub fn schedule(meta: &dyn Metadata) -> Result<Option<(u64, GcSchedule)>> {
    Ok(jobs::all::<GcSchedule>(meta, jobs::GC_SCHEDULE)?.into_iter().next())
}

/// Replaces the schedule (`None` removes it).
pub fn set_schedule(meta: &dyn Metadata, new: Option<GcSchedule>) -> Result<()> {
    let old = jobs::all::<GcSchedule>(meta, jobs::GC_SCHEDULE)?;
    let keep = usize::from(new.is_some());
    match (old.first(), new) {
        (Some((id, _)), Some(s)) => {
            jobs::update(meta, jobs::GC_SCHEDULE, *id, &s)?;
        }
        (None, Some(s)) => {
            jobs::create(meta, jobs::GC_SCHEDULE, &s)?;
        }
        (_, None) => {}
    }
    // Any other (a second replica's concurrent first schedule) or all, when removed.
    for (id, _) in jobs::all::<GcSchedule>(meta, jobs::GC_SCHEDULE)?.into_iter().skip(keep) {
        meta.delete_job_record(jobs::GC_SCHEDULE, id)?;
    }
    Ok(())
}

/// Records a run, `Pending` for a scheduler to pick up, and forgets finished runs beyond
/// [`jobs::HISTORY`]; its id.
pub fn enqueue(meta: &dyn Metadata, trigger: &str, params: GcParams, slot: Option<u64>) -> Result<u64> {
    let run = GcRun {
        trigger: trigger.into(),
        params,
        status: "Pending".into(),
        start: now(),
        end: None,
        log: String::new(),
        slot,
    };
    let id = jobs::create(meta, jobs::GC_RUN, &run)?;
    let runs = jobs::all::<GcRun>(meta, jobs::GC_RUN)?;
    let excess = runs.len().saturating_sub(jobs::HISTORY);
    for (old, _) in runs.iter().filter(|(_, r)| r.end.is_some()).take(excess) {
        meta.delete_job_record(jobs::GC_RUN, *old)?;
    }
    Ok(id)
}

/// Runs GC run `id` (claimed by the caller) with serve's options and the run's parameters.
pub fn execute(reg: &Registry, id: u64) -> Result<()> {
    let meta = reg.meta.as_ref();
    let Some(mut run) = jobs::get::<GcRun>(meta, jobs::GC_RUN, id)? else {
        return Ok(());
    };
    if run.status != "Pending" {
        return Ok(());
    }
    run.status = jobs::RUNNING.into();
    jobs::update(meta, jobs::GC_RUN, id, &run)?;
    let base = reg.gc_options.clone();
    let opts = GcOptions { dry_run: run.params.dry_run, delete_untagged: run.params.delete_untagged, ..base };
    let slot = run.slot.map(|t| format!(", slot {}", crate::token_endpoint::rfc3339(t))).unwrap_or_default();
    run.log = format!(
        "garbage collection {id} ({}{slot}): delete_untagged={} dry_run={} grace={}s\n",
        run.trigger.to_lowercase(),
        opts.delete_untagged,
        opts.dry_run,
        opts.grace.as_secs()
    );
    match crate::gc::collect(reg, &opts) {
        Ok(report) => {
            run.status = jobs::SUCCESS.into();
            for (repo, d) in &report.manifests {
                run.log.push_str(&format!("manifest {repo}@{d}\n"));
            }
            for d in &report.blobs {
                run.log.push_str(&format!("blob {d}\n"));
            }
            let verb = if opts.dry_run { "would delete" } else { "deleted" };
            run.log.push_str(&format!("{verb} {report}\n"));
            log::info!("gc {id}: {verb} {report}");
        }
        Err(e) => {
            run.status = jobs::ERROR.into();
            run.log.push_str(&format!("error: {e}\n"));
            log::error!("gc {id}: {e}");
        }
    }
    run.end = Some(now());
    jobs::update(meta, jobs::GC_RUN, id, &run)?;
    Ok(())
}
