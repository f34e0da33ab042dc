//! What the daemon's configuration (daemon.json, wharfd's flags) sets for every container that
//! does not set it itself, as dockerd's `dns`, `default-ulimits`, `default-shm-size`, `init`,
//! `no-new-privileges`, `seccomp-profile` and `default-cgroupns-mode`; and the real-time CPU budget of
//! the containers' parent cgroups (`cpu-rt-period`, `cpu-rt-runtime`).

use crate::{HostConfig, Ulimit};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerDefaults {
    /// Name servers, search domains and resolver options for containers that give none.
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// Ulimits every container gets unless it sets the same one.
    pub ulimits: Vec<Ulimit>,
    /// `/dev/shm`'s size in bytes for containers that give none; 0 for wharf's 64 MiB.
    pub shm_size: i64,
    /// `--init` for containers whose request left `Init` out.
    pub init: bool,
    /// no-new-privileges unless a container says `no-new-privileges=false`.
    pub no_new_privileges: bool,
    /// The seccomp profile for containers that ask for none: a profile's JSON, or
    /// `unconfined`. `None` is Docker's default profile.
    pub seccomp_profile: Option<String>,
    /// `private` or `host` for containers that give no cgroupns mode; empty for wharf's.
    pub cgroupns_mode: String,
    /// `cpu-rt-period`/`cpu-rt-runtime` (µs, 0 for unset): the real-time budget written, as
    /// dockerd writes it at each start, into every cgroup from the top down to the
    /// container's parent (cgroup v1's `cpu` hierarchy only), so that containers can be
    /// given real-time runtime of their own.
    pub cpu_rt_period: i64,
    pub cpu_rt_runtime: i64,
}

impl ContainerDefaults {
    /// Whether the daemon's `init` applies: on, and the request left `Init` out.
    pub(crate) fn init_for(&self, hc: &HostConfig) -> bool {
        self.init && hc.unset.as_ref().is_some_and(|u| u.iter().any(|k| k == "Init"))
    }

    /// Fills in what the create request left out (not `init`: see [`Self::init_for`]). Kept in the container's record, so a later
    /// change of daemon.json does not change a container already made (as with dockerd's
    /// `ShmSize` and `CgroupnsMode`).
    pub(crate) fn apply(&self, hc: &mut HostConfig) {
        if hc.net.dns.is_empty() {
            hc.net.dns = self.dns.clone();
        }
        if hc.net.dns_search.is_empty() {
            hc.net.dns_search = self.dns_search.clone();
        }
        if hc.net.dns_options.is_empty() {
            hc.net.dns_options = self.dns_options.clone();
        }
        for u in &self.ulimits {
            if !hc.security.ulimits.iter().any(|x| x.name == u.name) {
                hc.security.ulimits.push(u.clone());
            }
        }
        if hc.security.shm_size == 0 {
            hc.security.shm_size = self.shm_size;
        }
        if hc.security.cgroupns_mode.is_empty() {
            hc.security.cgroupns_mode =
                if self.cgroupns_mode.is_empty() { host_cgroupns_default() } else { self.cgroupns_mode.clone() };
        }
    }
}

/// dockerd's default cgroup namespace mode when neither the container nor daemon.json gives
/// one: `private` on a pure cgroup v2 host, `host` on v1 and hybrid hosts.
fn host_cgroupns_default() -> String {
    static LAYOUT: std::sync::OnceLock<wharf_runtime::cgroups::Layout> = std::sync::OnceLock::new();
    let layout = *LAYOUT.get_or_init(wharf_runtime::cgroups::Layout::detect);
    if layout == wharf_runtime::cgroups::Layout::V2 { "private" } else { "host" }.to_string()
}

/// Checks a daemon seccomp profile (the file's JSON, or `unconfined`) as a container's
/// `--security-opt seccomp=` is checked, so that a bad file stops the daemon at start.
pub fn check_seccomp_profile(profile: &str) -> Result<(), crate::EngineError> {
    crate::security::parse_security_opts(&[format!("seccomp={profile}")]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_only_what_was_left_out() {
        let d = ContainerDefaults {
            dns: vec!["192.0.2.53".into()],
            dns_search: vec!["example.test".into()],
            ulimits: vec![
                Ulimit { name: "nofile".into(), soft: 1000, hard: 2000 },
                Ulimit { name: "nproc".into(), soft: 50, hard: 60 },
            ],
            shm_size: 1 << 20,
            init: true,
            cgroupns_mode: "private".into(),
            ..Default::default()
        };
        let mut hc = HostConfig { unset: Some(vec!["Init".into()]), ..Default::default() };
        hc.security.ulimits.push(Ulimit { name: "nofile".into(), soft: 5, hard: 6 });
        hc.net.dns_search = vec!["mine.test".into()];
        d.apply(&mut hc);
        assert_eq!(hc.net.dns, vec!["192.0.2.53".to_string()]);
        assert_eq!(hc.net.dns_search, vec!["mine.test".to_string()]);
        assert_eq!(hc.security.ulimits.len(), 2);
        assert_eq!(hc.security.ulimits[0].soft, 5);
        assert_eq!(hc.security.shm_size, 1 << 20);
        assert!(!hc.init && d.init_for(&hc));
        assert_eq!(hc.security.cgroupns_mode, "private");
        // `Init: false` sent explicitly stays off.
        let hc = HostConfig { unset: Some(vec![]), ..Default::default() };
        assert!(!d.init_for(&hc));
    }
}
