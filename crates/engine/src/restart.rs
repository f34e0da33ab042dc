//! Restart policies (`--restart no|on-failure[:max]|always|unless-stopped`): the decision after
//! an exit, Docker's back-off between restarts, and the restarts owed at daemon start.
//!
//! The decision and the back-off follow Docker's restart manager: the first wait is 100 ms, each
//! further one doubles up to a minute, and a container that stayed up 10 s starts over at 100 ms.
//! A stop (or a kill with SIGKILL or the stop signal) asked by the user never leads to a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::containers::{ContainerRecord, Status};
use crate::{Engine, EngineError};

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// Running at least this long resets the back-off.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Docker's `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// `no` (or empty), `always`, `unless-stopped`, `on-failure`.
    pub name: String,
    /// For `on-failure` only: 0 = no limit.
    pub maximum_retry_count: i64,
}

impl RestartPolicy {
    /// Parses the CLI's `--restart` value: `no`, `always`, `unless-stopped`, `on-failure[:max]`.
    pub fn parse(s: &str) -> Result<RestartPolicy, EngineError> {
        let (name, max) = match s.split_once(':') {
            Some((n, m)) => {
                let max = m.parse::<i64>().map_err(|_| {
                    EngineError::Invalid(format!(
                        "invalid restart policy format: maximum retry count must be an integer: {m:?}"
                    ))
                })?;
                (n, max)
            }
            None => (s, 0),
        };
        let p = RestartPolicy { name: name.to_string(), maximum_retry_count: max };
        p.validate()?;
        Ok(p)
    }

    /// Checks a policy as Docker does at create and update.
    pub fn validate(&self) -> Result<(), EngineError> {
        match self.name.as_str() {
            "" | "no" | "always" | "unless-stopped" => {
                if self.maximum_retry_count != 0 {
                    return Err(EngineError::Invalid(format!(
                        "invalid restart policy: maximum retry count can only be used with 'on-failure', not '{}'",
                        self.name_or_no()
                    )));
                }
                Ok(())
            }
            "on-failure" => {
                if self.maximum_retry_count < 0 {
                    return Err(EngineError::Invalid(
                        "invalid restart policy: maximum retry count cannot be negative".to_string(),
                    ));
                }
                Ok(())
            }
            other => Err(EngineError::Invalid(format!("invalid restart policy '{other}'"))),
        }
    }

    pub fn name_or_no(&self) -> &str {
        if self.name.is_empty() {
            "no"
        } else {
            &self.name
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self.name.as_str(), "" | "no")
    }

    /// Whether an exit with `exit_code` after `restart_count` policy restarts calls for another.
    pub fn should_restart(&self, exit_code: i32, manually_stopped: bool, restart_count: u64) -> bool {
        if manually_stopped {
            return false;
        }
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                let under_max = self.maximum_retry_count == 0 || (restart_count as i64) < self.maximum_retry_count;
                exit_code != 0 && under_max
            }
            _ => false,
        }
    }

    /// Whether the daemon starts this container when it starts itself and finds it not running.
    pub fn start_with_daemon(&self, manually_stopped: bool) -> bool {
        match self.name.as_str() {
            "always" => true,
            "unless-stopped" => !manually_stopped,
            _ => false,
        }
    }
}

/// The next wait after `previous` (none before the first restart), given how long it ran.
fn next_delay(previous: Option<Duration>, ran_for: Duration) -> Duration {
    let previous = if ran_for >= STABLE_AFTER { None } else { previous };
    match previous {
        None => FIRST_DELAY,
        Some(d) => (d * 2).min(MAX_DELAY),
    }
}

/// Pending restarts and their back-off, in memory.
pub struct Restarts {
    state: Mutex<HashMap<String, Backoff>>,
    /// Set once the daemon's start has reconciled the networks: a restart that the recovery
    /// scheduled waits for it, since the reconcile removes the namespaces of containers that
    /// did not run when it looked (it removed a restarted container's fresh one).
    ready: tokio::sync::watch::Sender<bool>,
}

impl Default for Restarts {
    fn default() -> Restarts {
        Restarts { state: Mutex::default(), ready: tokio::sync::watch::channel(false).0 }
    }
}

struct Backoff {
    delay: Option<Duration>,
    cancel: Arc<Notify>,
}

impl Restarts {
    /// The daemon has started: policy restarts may run.
    pub(crate) fn set_ready(&self) {
        self.ready.send_replace(true);
    }

    async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Forgets the back-off (a start by the user) and wakes a pending restart so it looks again.
    pub fn reset(&self, id: &str) {
        {
            let mut m = crate::sync::lock(&self.state);
            if let Some(b) = m.remove(id) {
                b.cancel.notify_waiters();
            }
        }
    }

    fn schedule(&self, id: &str, ran_for: Duration) -> (Duration, Arc<Notify>) {
        let mut m = crate::sync::lock(&self.state);
        let b = m.entry(id.to_string()).or_insert_with(|| Backoff { delay: None, cancel: Arc::new(Notify::new()) });
        let d = next_delay(b.delay, ran_for);
        b.delay = Some(d);
        (d, b.cancel.clone())
    }
}

impl Engine {
    /// After an exit has been recorded: applies the restart policy. Returns whether a restart
    /// was scheduled (the record then says `restarting`).
    pub(crate) fn after_exit(&self, rec: &ContainerRecord) -> bool {
        let policy = &rec.host_config.restart_policy;
        if rec.host_config.auto_remove
            || !policy.should_restart(rec.state.exit_code, rec.state.manually_stopped, rec.restart_count)
        {
            return false;
        }
        let ran_for = ran_for(&rec.state.started_at, &rec.state.finished_at);
        let (delay, cancel) = self.inner.restarts.schedule(&rec.id, ran_for);
        let marked = self.inner.containers.write(|tx| {
            let Some(mut r) = tx.get(&rec.id) else { return Ok(false) };
            if r.state.running || r.state.manually_stopped {
                return Ok(false);
            }
            r.state.status = Status::Restarting;
            tx.put(&r);
            Ok(true)
        });
        match marked {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                log::error!("container {}: mark restarting: {e}", rec.id);
                return false;
            }
        }
        log::debug!("container {}: restarting in {delay:?} (policy {})", rec.id, policy.name_or_no());
        let engine = self.clone();
        let id = rec.id.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.notified() => {}
            }
            engine.inner.restarts.wait_ready().await;
            match engine.start_for_policy(&id).await {
                Ok(true) => log::info!("container {id}: restarted by its policy"),
                Ok(false) => {}
                Err(e) => log::warn!("container {id}: restart by policy: {e}"),
            }
        });
        true
    }

    /// Records that the user stopped the container (so no policy restarts it) and cancels a
    /// pending restart. Returns whether a restart was pending.
    pub(crate) fn mark_manually_stopped(&self, id: &str) -> Result<bool, EngineError> {
        let was_restarting = self.inner.containers.write(|tx| {
            let Some(mut r) = tx.get(id) else { return Ok(false) };
            r.state.manually_stopped = true;
            let was = r.state.status == Status::Restarting;
            if was {
                r.state.status = Status::Exited;
            }
            tx.put(&r);
            Ok(was)
        })?;
        self.inner.restarts.reset(id);
        Ok(was_restarting)
    }

    /// A restart asked by the policy; `Ok(false)` when it is no longer wanted (the user
    /// stopped, started or removed the container meanwhile).
    async fn start_for_policy(&self, id: &str) -> Result<bool, EngineError> {
        match self.start_inner(id, true).await {
            Err(e) if e.kind() == wharf_types::ErrorKind::NotFound => Ok(false),
            Err(EngineError::NotModified(_)) => Ok(false),
            r => r,
        }
    }

    /// `docker restart`: stops (if running), starts again, and logs a `restart` event.
    pub async fn restart_container(
        &self,
        name: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<(), EngineError> {
        match self.stop_container(name, timeout, signal).await {
            Ok(()) => {}
            Err(EngineError::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        self.start_container(name).await?;
        let rec = self.find_container(name)?;
        self.container_event(&rec, "restart", &[]);
        Ok(())
    }

    /// At daemon start: starts the containers whose policy says so and that are not running,
    /// and those whose policy restart was pending when the daemon stopped.
    pub(crate) fn restart_on_daemon_start(&self) {
        for rec in self.all_containers() {
            let id = rec.id.clone();
            if rec.state.running {
                continue;
            }
            let policy = &rec.host_config.restart_policy;
            let pending = rec.state.status == Status::Restarting;
            if !pending && !policy.start_with_daemon(rec.state.manually_stopped) {
                continue;
            }
            let engine = self.clone();
            tokio::spawn(async move {
                let r = if pending { engine.start_for_policy(&id).await } else { engine.start_inner(&id, false).await };
                if let Err(e) = r {
                    log::warn!("container {id}: start at daemon start (restart policy): {e}");
                }
            });
        }
    }
}

fn ran_for(started: &str, finished: &str) -> Duration {
    let s = wharf_types::time::parse_rfc3339(started);
    let f = wharf_types::time::parse_rfc3339(finished).unwrap_or_else(SystemTime::now);
    s.and_then(|s| f.duration_since(s).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_policies() {
        let cases: &[(&str, Option<(&str, i64)>)] = &[
            ("no", Some(("no", 0))),
            ("always", Some(("always", 0))),
            ("unless-stopped", Some(("unless-stopped", 0))),
            ("on-failure", Some(("on-failure", 0))),
            ("on-failure:3", Some(("on-failure", 3))),
            ("on-failure:-1", None),
            ("on-failure:x", None),
            ("always:2", None),
            ("sometimes", None),
        ];
        for (input, want) in cases {
            let got = RestartPolicy::parse(input).ok().map(|p| (p.name.clone(), p.maximum_retry_count));
            assert_eq!(got, want.map(|(n, m)| (n.to_string(), m)), "{input}");
        }
    }

    #[test]
    fn decisions() {
        let p = |s: &str| RestartPolicy::parse(s).unwrap_or_default();
        // (policy, exit code, manually stopped, restarts so far, restart?)
        let cases: &[(&str, i32, bool, u64, bool)] = &[
            ("no", 1, false, 0, false),
            ("always", 0, false, 5, true),
            ("always", 0, true, 0, false),
            ("unless-stopped", 2, false, 0, true),
            ("unless-stopped", 2, true, 0, false),
            ("on-failure", 0, false, 0, false),
            ("on-failure", 1, false, 100, true),
            ("on-failure:2", 1, false, 1, true),
            ("on-failure:2", 1, false, 2, false),
        ];
        for (policy, code, manual, count, want) in cases {
            assert_eq!(p(policy).should_restart(*code, *manual, *count), *want, "{policy} {code} {manual} {count}");
        }
        assert!(p("always").start_with_daemon(true));
        assert!(!p("unless-stopped").start_with_daemon(true));
        assert!(p("unless-stopped").start_with_daemon(false));
        assert!(!p("on-failure").start_with_daemon(false));
    }

    #[test]
    fn backoff_doubles_and_resets() {
        let short = Duration::from_secs(1);
        let mut d = next_delay(None, short);
        assert_eq!(d, Duration::from_millis(100));
        d = next_delay(Some(d), short);
        assert_eq!(d, Duration::from_millis(200));
        d = next_delay(Some(d), short);
        assert_eq!(d, Duration::from_millis(400));
        assert_eq!(next_delay(Some(Duration::from_secs(50)), short), MAX_DELAY);
        assert_eq!(next_delay(Some(d), Duration::from_secs(10)), Duration::from_millis(100));
    }
}
