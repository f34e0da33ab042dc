//! The scheduler of the policies' jobs, one per serving process (with auth on): twice a
//! second it reads the schedules from the index (the GC schedule, each retention policy's
//! `trigger.settings.cron`), so they persist across restarts and every replica sees the
//! same; for each cron slot that came since its last look it claims the slot in the index
//! and records a run; and it picks up the runs waiting (`Pending`, from a slot or from the
//! API) and runs them on threads of their own. With replicas on PostgreSQL each slot and
//! each run is claimed by one of them (`IamStore::claim_scheduled_run`: a row claim, an
//! upsert that moves a schedule's last slot forward only once), so a scheduled job runs
//! once, not once per replica. A slot that passes while no replica runs is skipped, as in
//! Harbor; a slot whose previous run is still going is skipped too.

use std::sync::Arc;
use std::time::Duration;

use super::cron::Cron;
use super::jobs;
use super::retention::{self, Execution, Policy, PENDING};
use super::system_gc::{self, GcRun};
use crate::meta::{now, Result};
use crate::server::Registry;

const TICK: Duration = Duration::from_millis(500);

/// The first slot of `cron` in `(from, to]`.
fn due_in(cron: &str, from: u64, to: u64) -> Option<u64> {
    match Cron::parse(cron) {
        Ok(c) => c.next_after(from).filter(|&t| t <= to),
        Err(e) => {
            log::warn!("scheduler: {e}");
            None
        }
    }
}

/// A run unfinished after this long is taken for one whose replica died: it no longer
/// holds its schedule's later slots back.
const STALE: u64 = 86400;

/// Whether a run (started at `start`, ended at `end`) still holds its schedule back at `now`.
fn going(end: Option<u64>, start: u64, now: u64) -> bool {
    end.is_none() && now.saturating_sub(start) < STALE
}

/// Runs forever; spawn it on the runtime.
pub async fn run(reg: Arc<Registry>) {
    let mut last = now();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let t = now();
        let r = reg.clone();
        match tokio::task::spawn_blocking(move || tick_once(&r, last, t)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::error!("scheduler: {e}"),
            Err(e) => log::error!("scheduler: {e}"),
        }
        last = last.max(t);
    }
}

fn tick_once(reg: &Arc<Registry>, from: u64, to: u64) -> Result<()> {
    let meta = reg.meta.as_ref();
    if to > from {
        if let Some((_, s)) = system_gc::schedule(meta)? {
            if let Some(due) = due_in(&s.cron, from, to) {
                let busy = jobs::all::<GcRun>(meta, jobs::GC_RUN)?.iter().any(|(_, r)| going(r.end, r.start, to));
                if meta.claim_scheduled_run("gc", due)? && !busy {
                    let id = system_gc::enqueue(meta, jobs::SCHEDULE, s.params.clone(), Some(due))?;
                    log::info!("scheduler: garbage collection {id} for the slot at {due}");
                }
            }
        }
        for (pid, p) in jobs::all::<Policy>(meta, jobs::RETENTION_POLICY)? {
            let Some(due) = p.cron.as_deref().and_then(|c| due_in(c, from, to)) else { continue };
            let busy = jobs::all::<Execution>(meta, jobs::RETENTION_EXECUTION)?
                .iter()
                .any(|(_, e)| e.policy_id == pid && going(e.end, e.start, to));
            if meta.claim_scheduled_run(&format!("retention/{pid}"), due)? && !busy {
                let id = retention::enqueue(meta, pid, jobs::SCHEDULE, false)?;
                log::info!("scheduler: retention execution {id} of policy {pid} for the slot at {due}");
            }
        }
    }
    for (id, run) in jobs::all::<GcRun>(meta, jobs::GC_RUN)? {
        if run.status == PENDING && meta.claim_scheduled_run(&format!("gc-run/{id}"), 1)? {
            let reg = reg.clone();
            std::thread::spawn(move || {
                if let Err(e) = system_gc::execute(&reg, id) {
                    log::error!("garbage collection {id}: {e}");
                }
            });
        }
    }
    for (id, e) in jobs::all::<Execution>(meta, jobs::RETENTION_EXECUTION)? {
        if e.status == PENDING && meta.claim_scheduled_run(&format!("retention-execution/{id}"), 1)? {
            let reg = reg.clone();
            std::thread::spawn(move || {
                if let Err(e) = retention::execute(&reg, id) {
                    log::error!("retention execution {id}: {e}");
                }
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_in_a_window() {
        // Every second: the first second after `from`.
        assert_eq!(due_in("* * * * * *", 100, 101), Some(101));
        assert_eq!(due_in("* * * * * *", 100, 100), None);
        // Hourly: only a window over the hour holds a slot.
        assert_eq!(due_in("0 0 * * * *", 3599, 3600), Some(3600));
        assert_eq!(due_in("0 0 * * * *", 3600, 7199), None);
        assert_eq!(due_in("not a cron", 0, 1 << 40), None);
        assert!(going(None, 100, 200) && !going(Some(150), 100, 200) && !going(None, 100, 100 + STALE));
    }
}
