//! AppArmor, where the host has it: which profile a container runs under, and wharf's default
//! profile, loaded into the kernel with `apparmor_parser` the first time a container needs it.
//!
//! As dockerd: on a host without AppArmor nothing is applied and `apparmor=` options are
//! accepted and ignored; on a host with it, a container runs under [`DEFAULT_PROFILE`] unless
//! it names another (`--security-opt apparmor=NAME`, already loaded by the administrator) or
//! `unconfined`, and a privileged container runs unconfined unless it names one.

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::error::EngineError;

/// wharf's default profile, dockerd's `docker-default` in spirit: everything a container
/// normally does, without mounts, writes to the host's /proc and /sys knobs, or raw access to
/// kernel memory and firmware.
pub const DEFAULT_PROFILE: &str = "wharf-default";

/// The name a Docker user knows the default by; it means wharf's own here.
const DOCKER_DEFAULT: &str = "docker-default";

pub const UNCONFINED: &str = "unconfined";

const SECURITYFS: &str = "/sys/kernel/security/apparmor";

/// Whether containers get AppArmor profiles on this host: the kernel has AppArmor enabled and
/// its securityfs is there to load and list profiles (the checks runc and containerd make).
pub fn host_supports() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| wharf_runtime::apparmor::enabled() && Path::new(SECURITYFS).is_dir())
}

/// The profile a container's processes run under, from its `apparmor=` option and
/// `--privileged`; `None` on a host without AppArmor.
pub fn profile_for(explicit: Option<&str>, privileged: bool) -> Option<String> {
    host_supports().then(|| choose(explicit, privileged))
}

/// [`profile_for`] on a host with AppArmor.
fn choose(explicit: Option<&str>, privileged: bool) -> String {
    match explicit.filter(|p| !p.is_empty()) {
        Some(DOCKER_DEFAULT) => DEFAULT_PROFILE.to_string(),
        Some(p) => p.to_string(),
        None if privileged => UNCONFINED.to_string(),
        None => DEFAULT_PROFILE.to_string(),
    }
}

/// Makes sure `profile` can be applied before a container is started with it: the default is
/// loaded if the kernel does not have it yet; any other must have been loaded already. An
/// unknown name is refused here with its name, not by the runtime after the clone.
pub fn prepare(profile: &str) -> Result<(), EngineError> {
    if profile == UNCONFINED {
        return Ok(());
    }
    if profile == DEFAULT_PROFILE {
        return ensure_default_loaded();
    }
    if !loaded(profile)? {
        return Err(EngineError::Invalid(format!(
            "apparmor profile {profile:?} is not loaded on this host (load it with apparmor_parser, or use --security-opt apparmor=unconfined)"
        )));
    }
    Ok(())
}

/// Whether the kernel has a profile of this name (any mode).
fn loaded(profile: &str) -> Result<bool, EngineError> {
    let list = std::fs::read_to_string(Path::new(SECURITYFS).join("profiles"))
        .map_err(|e| EngineError::io("read the loaded apparmor profiles", e))?;
    Ok(list.lines().any(|l| profile_name(l) == profile))
}

/// `wharf-default (enforce)` → `wharf-default`.
fn profile_name(line: &str) -> &str {
    match line.rsplit_once(" (") {
        Some((name, _)) => name,
        None => line,
    }
}

/// Loads (or replaces) the default profile once per daemon, so that a profile left by an
/// older wharfd is brought up to date.
fn ensure_default_loaded() -> Result<(), EngineError> {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = crate::sync::lock(&DONE);
    if *done {
        return Ok(());
    }
    load_profile(&default_profile_text())?;
    *done = true;
    Ok(())
}

fn load_profile(text: &str) -> Result<(), EngineError> {
    let dir = tempdir()?;
    let path = dir.join(DEFAULT_PROFILE);
    let result = std::fs::write(&path, text)
        .map_err(|e| EngineError::io("write the apparmor profile", e))
        .and_then(|()| {
            // -K: no cache (the cache is apparmor's, keyed by file names wharf does not own);
            // -r: replace a loaded profile of the same name.
            let out = Command::new("apparmor_parser").arg("-Kr").arg(&path).output().map_err(|e| {
                EngineError::Internal(format!(
                    "AppArmor is enabled on this host but the {DEFAULT_PROFILE} profile could not be loaded: run apparmor_parser: {e} (install the apparmor package)"
                ))
            })?;
            if !out.status.success() {
                return Err(EngineError::Internal(format!(
                    "AppArmor is enabled on this host but the {DEFAULT_PROFILE} profile could not be loaded: apparmor_parser: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            Ok(())
        });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempdir() -> Result<std::path::PathBuf, EngineError> {
    let dir = std::env::temp_dir().join(format!("wharf-apparmor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(format!("create {}", dir.display()), e))?;
    Ok(dir)
}

/// The default profile's source. Self-contained (no includes), so it loads on a host whatever
/// abstractions its apparmor package ships.
pub fn default_profile_text() -> String {
    let name = DEFAULT_PROFILE;
    format!(
        r#"# wharf's default AppArmor profile for containers (written by wharfd; replaced at each start).
profile {name} flags=(attach_disconnected,mediate_deleted) {{
  # What a container's processes normally do: files, sockets, capabilities they were given.
  file,
  network,
  capability,
  umount,
  # Signals among the container's own processes, and from the host's unconfined ones.
  signal (send,receive) peer={name},
  signal (receive) peer=unconfined,
  ptrace (trace,read,tracedby,readby) peer={name},

  # No mounts, even with CAP_SYS_ADMIN.
  deny mount,

  # /proc: the container's own process directories stay writable; the host-wide files and
  # directories, the sysctls (set by the runtime before the exec) but the IPC namespace's
  # kernel.shm*, the kernel's memory and the magic SysRq key do not.
  deny /proc/* w,
  deny /proc/{{acpi,asound,bus,driver,dynamic_debug,fs,irq,mpt,pressure,scsi,sysvipc,tty}}/** w,
  deny /proc/sys/{{abi,crypto,debug,dev,fs,net,user,vm}}/** w,
  deny /proc/sys/kernel/[^s]** w,
  deny /proc/sys/kernel/s[^h]** w,
  deny /proc/sys/kernel/sh[^m]** w,
  deny /proc/sysrq-trigger rwklx,
  deny /proc/kcore rwklx,

  # /sys: read-only but for the cgroup tree; firmware and the LSMs' files not even readable.
  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_as_dockerd() {
        let cases = [
            (None, false, DEFAULT_PROFILE),
            (Some(""), false, DEFAULT_PROFILE),
            (None, true, UNCONFINED),
            (Some("unconfined"), false, UNCONFINED),
            (Some("my-profile"), false, "my-profile"),
            (Some("my-profile"), true, "my-profile"),
            (Some("docker-default"), false, DEFAULT_PROFILE),
            (Some("docker-default"), true, DEFAULT_PROFILE),
        ];
        for (explicit, privileged, want) in cases {
            assert_eq!(choose(explicit, privileged), want, "{explicit:?} privileged={privileged}");
        }
    }

    #[test]
    fn profile_names_from_the_kernel_list() {
        assert_eq!(profile_name("wharf-default (enforce)"), "wharf-default");
        assert_eq!(profile_name("/usr/bin/man (complain)"), "/usr/bin/man");
        assert_eq!(profile_name("odd name (x) (enforce)"), "odd name (x)");
        assert_eq!(profile_name("bare"), "bare");
    }

    #[test]
    fn the_default_profile_names_itself_and_denies_mounts() {
        let text = default_profile_text();
        assert!(text.contains("profile wharf-default flags="));
        assert!(text.contains("peer=wharf-default"));
        assert!(text.contains("deny mount,"));
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }
}
