//! Healthchecks: the image's `HEALTHCHECK` or the container's `--health-*` options, run by a
//! task per running container through the exec path; the status (`starting`, `healthy`,
//! `unhealthy`), failing streak and last results live in memory beside the container's live
//! state and in `health.json` in its directory (a restarted daemon resumes them), and every
//! change of status is published as a `health_status` event.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::attach::{StreamEvent, StreamInput};
use crate::containers::ContainerRecord;
use crate::exec::ExecConfig;
use crate::{Engine, EngineError};

/// Docker's defaults when a duration or the retries are 0.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// dockerd's `defaultStartInterval`.
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: i64 = 3;
/// Output kept per probe, as Docker keeps it.
const MAX_OUTPUT: usize = 4096;
/// Results kept in the log.
const MAX_LOG: usize = 5;

pub const STARTING: &str = "starting";
pub const HEALTHY: &str = "healthy";
pub const UNHEALTHY: &str = "unhealthy";

/// Docker's `Config.Healthcheck`; durations in nanoseconds, 0 = inherit or default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `[]` inherit, `["NONE"]` disabled, `["CMD", args...]`, `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub retries: i64,
    /// Between probes while the container is `starting` within its start period (API 1.44);
    /// absent in records written before it existed.
    #[serde(default)]
    pub start_interval: i64,
}

/// One probe's result as inspect shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub failing_streak: u64,
    pub log: Vec<HealthResult>,
}

/// The file in the container's directory that keeps its health across daemon restarts.
const HEALTH_FILE: &str = "health.json";

/// The health as stored, with the start of the run it belongs to: a re-adopted container
/// resumes it, a new start of the container begins again at `starting`.
#[derive(Debug, Serialize, Deserialize)]
struct Persisted {
    started_at: String,
    health: Health,
}

fn load(dir: &Path) -> Option<Persisted> {
    let bytes = std::fs::read(dir.join(HEALTH_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes the file whole or not at all (temp file and rename), so a crash never leaves half.
fn save(dir: &Path, started_at: &str, health: &Health) {
    let p = Persisted { started_at: started_at.to_string(), health: health.clone() };
    let tmp = dir.join(format!("{HEALTH_FILE}.tmp"));
    let written = serde_json::to_vec(&p)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, dir.join(HEALTH_FILE)));
    if let Err(e) = written {
        // The container may have been removed meanwhile; the in-memory state still holds.
        log::debug!("save health in {}: {e}", dir.display());
    }
}

/// The image's healthcheck from its config (`{"Test": [...], "Interval": ns, ...}`).
pub(crate) fn from_image(v: Option<&serde_json::Value>) -> Option<HealthConfig> {
    let v = v?;
    let test: Vec<String> = v.get("Test")?.as_array()?.iter().filter_map(|x| x.as_str().map(str::to_string)).collect();
    let num = |k: &str| v.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
    Some(HealthConfig {
        test,
        interval: num("Interval"),
        timeout: num("Timeout"),
        start_period: num("StartPeriod"),
        retries: num("Retries"),
        start_interval: num("StartInterval"),
    })
}

/// The image config's form, for commit.
pub(crate) fn to_image(h: &HealthConfig) -> serde_json::Value {
    let mut v = serde_json::json!({
        "Test": h.test,
        "Interval": h.interval,
        "Timeout": h.timeout,
        "StartPeriod": h.start_period,
        "Retries": h.retries,
    });
    // Docker leaves it out when unset (`omitempty`), as images made before it have it.
    if h.start_interval != 0 {
        v["StartInterval"] = serde_json::json!(h.start_interval);
    }
    v
}

/// Docker's merge: what the user left empty or 0 comes from the image.
pub(crate) fn merge(user: Option<HealthConfig>, image: Option<HealthConfig>) -> Option<HealthConfig> {
    let Some(mut u) = user else { return image };
    if let Some(i) = image {
        if u.test.is_empty() {
            u.test = i.test;
        }
        if u.interval == 0 {
            u.interval = i.interval;
        }
        if u.timeout == 0 {
            u.timeout = i.timeout;
        }
        if u.start_period == 0 {
            u.start_period = i.start_period;
        }
        if u.retries == 0 {
            u.retries = i.retries;
        }
        if u.start_interval == 0 {
            u.start_interval = i.start_interval;
        }
    }
    if u == HealthConfig::default() {
        return None;
    }
    Some(u)
}

pub(crate) fn validate(h: &HealthConfig) -> Result<(), EngineError> {
    const MS: i64 = 1_000_000;
    for (name, v) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if v != 0 && v < MS {
            return Err(EngineError::Invalid(format!("{name} in the healthcheck cannot be less than 1ms")));
        }
    }
    if h.retries < 0 {
        return Err(EngineError::Invalid("Retries in the healthcheck cannot be negative".to_string()));
    }
    match h.test.first().map(String::as_str) {
        None | Some("NONE") => Ok(()),
        Some("CMD") if h.test.len() > 1 => Ok(()),
        Some("CMD-SHELL") if h.test.len() == 2 => Ok(()),
        _ => Err(EngineError::Invalid(format!(
            "invalid healthcheck test {:?}: use [\"CMD\", args...], [\"CMD-SHELL\", command] or [\"NONE\"]",
            h.test
        ))),
    }
}

/// The command a probe runs; `None` when the container has no (enabled) healthcheck.
fn probe_command(h: &HealthConfig) -> Option<Vec<String>> {
    match h.test.first().map(String::as_str) {
        Some("CMD") => Some(h.test[1..].to_vec()),
        Some("CMD-SHELL") => Some(vec!["/bin/sh".into(), "-c".into(), h.test[1..].join(" ")]),
        _ => None,
    }
}

fn dur(ns: i64, default: Duration) -> Duration {
    if ns > 0 {
        Duration::from_nanos(ns as u64)
    } else {
        default
    }
}

/// Applies one probe's result; returns the new status when it changed.
fn record(health: &mut Health, result: HealthResult, retries: i64, in_start_period: bool) -> Option<String> {
    let before = health.status.clone();
    if result.exit_code == 0 {
        health.failing_streak = 0;
        health.status = HEALTHY.to_string();
    } else if !in_start_period {
        // Failures while the container is still starting up do not count.
        health.failing_streak += 1;
        let retries = if retries > 0 { retries } else { DEFAULT_RETRIES };
        if health.failing_streak >= retries as u64 {
            health.status = UNHEALTHY.to_string();
        }
    }
    health.log.push(result);
    if health.log.len() > MAX_LOG {
        let extra = health.log.len() - MAX_LOG;
        health.log.drain(..extra);
    }
    (health.status != before).then(|| health.status.clone())
}

fn now() -> String {
    wharf_types::time::rfc3339_nanos(SystemTime::now())
}

impl Engine {
    /// The health of a container with a healthcheck: the running probe loop's, else (a
    /// container stopped before the daemon started) the last one stored.
    pub fn container_health(&self, id: &str) -> Option<Health> {
        let live = crate::sync::lock(&self.inner.live).get(id).cloned();
        let current = live.and_then(|l| crate::sync::lock(&l.health).clone());
        current.or_else(|| load(&self.container_dir(id)).map(|p| p.health))
    }

    /// Starts the healthcheck task of a container that has just started; it ends with the
    /// container's exit (or removal).
    pub(crate) fn start_health(&self, rec: &ContainerRecord) {
        let Some(cfg) = rec.config.healthcheck.clone() else { return };
        let Some(cmd) = probe_command(&cfg) else { return };
        let live = self.live(&rec.id);
        let exits = live.exits();
        let dir = self.container_dir(&rec.id);
        let started_at = rec.state.started_at.clone();
        // A daemon that re-adopts a running container goes on from its stored health.
        let initial = load(&dir).filter(|p| p.started_at == started_at).map(|p| p.health).unwrap_or(Health {
            status: STARTING.to_string(),
            failing_streak: 0,
            log: Vec::new(),
        });
        save(&dir, &started_at, &initial);
        *crate::sync::lock(&live.health) = Some(initial);
        // The start period counts from the container's start, also across a daemon restart.
        let since_start = wharf_types::time::parse_rfc3339(&started_at)
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        let started = Instant::now().checked_sub(since_start).unwrap_or_else(Instant::now);
        let engine = self.clone();
        let id = rec.id.clone();
        tokio::spawn(async move {
            let interval = dur(cfg.interval, DEFAULT_INTERVAL);
            let timeout = dur(cfg.timeout, DEFAULT_TIMEOUT);
            let start_period = Duration::from_nanos(cfg.start_period.max(0) as u64);
            let start_interval = dur(cfg.start_interval, DEFAULT_START_INTERVAL);
            loop {
                // As dockerd: probes come every start interval while the container is still
                // `starting` within its start period, every interval after.
                let starting = started.elapsed() < start_period
                    && crate::sync::lock(&live.health).as_ref().is_some_and(|h| h.status == STARTING);
                tokio::select! {
                    _ = live.wait_exit_after(exits) => return,
                    _ = tokio::time::sleep(if starting { start_interval } else { interval }) => {}
                }
                // A frozen container cannot run a probe; Docker does not count that time either.
                if engine.find_container(&id).is_ok_and(|r| r.state.paused) {
                    continue;
                }
                let result = tokio::select! {
                    _ = live.wait_exit_after(exits) => return,
                    r = engine.probe(&id, cmd.clone(), timeout) => r,
                };
                if live.exits() != exits {
                    return;
                }
                let (changed, snapshot) = {
                    let mut h = crate::sync::lock(&live.health);
                    let health = h.get_or_insert_with(Health::default);
                    (record(health, result, cfg.retries, started.elapsed() < start_period), health.clone())
                };
                let (d, at) = (dir.clone(), started_at.clone());
                let _ = tokio::task::spawn_blocking(move || save(&d, &at, &snapshot)).await;
                if let Some(status) = changed {
                    if let Ok(rec) = engine.find_container(&id) {
                        engine.container_event(&rec, &format!("health_status: {status}"), &[]);
                    }
                }
            }
        });
    }

    /// Runs one probe as a detached-from-the-user exec: output capped, killed at the timeout.
    async fn probe(&self, id: &str, cmd: Vec<String>, timeout: Duration) -> HealthResult {
        let start = now();
        let config = ExecConfig { cmd, attach_stdout: true, attach_stderr: true, ..Default::default() };
        let exec_id = match self.create_exec(id, config) {
            Ok(e) => e,
            Err(e) => return HealthResult { start, end: now(), exit_code: -1, output: e.to_string() },
        };
        let stream = self.start_exec(&exec_id, false, Some(false)).await;
        let result = match stream {
            Ok(Some(mut s)) => {
                let _ = s.input.send(StreamInput::Close).await;
                let mut output = Vec::new();
                let collect = async {
                    while let Some(ev) = s.events.recv().await {
                        match ev {
                            StreamEvent::Output(c) => {
                                let room = MAX_OUTPUT.saturating_sub(output.len());
                                output.extend_from_slice(&c.data[..c.data.len().min(room)]);
                            }
                            StreamEvent::Exit(code) => return code as i64,
                            StreamEvent::Failed { exit_code, .. } => return exit_code as i64,
                            _ => {}
                        }
                    }
                    -1
                };
                match tokio::time::timeout(timeout, collect).await {
                    Ok(code) => HealthResult {
                        start,
                        end: now(),
                        exit_code: code,
                        output: String::from_utf8_lossy(&output).into_owned(),
                    },
                    Err(_) => {
                        self.kill_probe(&exec_id);
                        HealthResult {
                            start,
                            end: now(),
                            exit_code: -1,
                            output: format!("Health check exceeded timeout ({timeout:?})"),
                        }
                    }
                }
            }
            Ok(None) => HealthResult { start, end: now(), exit_code: -1, output: String::new() },
            Err(e) => HealthResult { start, end: now(), exit_code: -1, output: e.to_string() },
        };
        self.forget_exec(&exec_id);
        result
    }

    /// Kills a probe that ran past its timeout, through a pidfd so a recycled pid is safe.
    fn kill_probe(&self, exec_id: &str) {
        let Ok(rec) = self.inspect_exec(exec_id) else { return };
        if !rec.running || rec.pid <= 0 {
            return;
        }
        let Ok(fd) = crate::monitor::pidfd_open(rec.pid) else { return };
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal with a pidfd we own, no siginfo, no flags.
        let _ = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, fd.as_raw_fd(), libc::SIGKILL, std::ptr::null::<u8>(), 0)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(test: &[&str], interval: i64, retries: i64) -> HealthConfig {
        HealthConfig { test: test.iter().map(|s| s.to_string()).collect(), interval, retries, ..Default::default() }
    }

    #[test]
    fn merge_table() {
        let image = Some(hc(&["CMD-SHELL", "true"], 5, 2));
        let cases: Vec<(Option<HealthConfig>, Option<HealthConfig>)> = vec![
            (None, image.clone()),
            (Some(hc(&[], 7, 0)), Some(hc(&["CMD-SHELL", "true"], 7, 2))),
            (Some(hc(&["NONE"], 0, 0)), Some(hc(&["NONE"], 5, 2))),
            (Some(hc(&["CMD", "x"], 0, 9)), Some(hc(&["CMD", "x"], 5, 9))),
        ];
        for (user, want) in cases {
            assert_eq!(merge(user.clone(), image.clone()), want, "{user:?}");
        }
        assert_eq!(merge(Some(HealthConfig::default()), None), None);
        let h = hc(&["CMD", "true"], 5, 2);
        assert_eq!(from_image(Some(&to_image(&h))), Some(h));
    }

    #[test]
    fn validation_and_commands() {
        assert!(validate(&hc(&["CMD"], 0, 0)).is_err());
        assert!(validate(&hc(&["CMD-SHELL", "a", "b"], 0, 0)).is_err());
        assert!(validate(&hc(&["BOGUS"], 0, 0)).is_err());
        assert!(validate(&hc(&["CMD", "true"], 10, 0)).is_err());
        assert!(validate(&hc(&["CMD", "true"], 1_000_000_000, 0)).is_ok());
        assert_eq!(probe_command(&hc(&["CMD-SHELL", "exit 1"], 0, 0)).unwrap(), ["/bin/sh", "-c", "exit 1"]);
        assert_eq!(probe_command(&hc(&["CMD", "true", "x"], 0, 0)).unwrap(), ["true", "x"]);
        assert_eq!(probe_command(&hc(&["NONE"], 0, 0)), None);
    }

    fn result(code: i64) -> HealthResult {
        HealthResult { start: String::new(), end: String::new(), exit_code: code, output: String::new() }
    }

    #[test]
    fn persisted_health_round_trips() {
        let dir = std::env::temp_dir().join(format!("wharf-health-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let mut h = Health { status: STARTING.into(), ..Default::default() };
        record(&mut h, result(1), 1, false);
        save(&dir, "2026-11-23T10:00:00.000000000Z", &h);
        let back = load(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let back = back.unwrap_or_else(|| panic!("nothing stored"));
        assert_eq!(back.started_at, "2026-11-23T10:00:00.000000000Z");
        assert_eq!(back.health, h);
        assert_eq!(back.health.status, UNHEALTHY);
        assert!(load(&dir).is_none());
    }

    #[test]
    fn status_transitions() {
        let mut h = Health { status: STARTING.into(), ..Default::default() };
        assert_eq!(record(&mut h, result(1), 2, true), None);
        assert_eq!(h.failing_streak, 0);
        assert_eq!(record(&mut h, result(0), 2, true).as_deref(), Some(HEALTHY));
        assert_eq!(record(&mut h, result(1), 2, false), None);
        assert_eq!(h.failing_streak, 1);
        assert_eq!(record(&mut h, result(1), 2, false).as_deref(), Some(UNHEALTHY));
        assert_eq!(record(&mut h, result(1), 2, false), None);
        assert_eq!(record(&mut h, result(0), 2, false).as_deref(), Some(HEALTHY));
        assert_eq!(h.failing_streak, 0);
        for _ in 0..10 {
            record(&mut h, result(0), 2, false);
        }
        assert_eq!(h.log.len(), MAX_LOG);
    }
}
