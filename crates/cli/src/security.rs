//! The isolation flags of `run` and `create` (`--cap-add`, `--privileged`, `--security-opt`,
//! `--ulimit`, `--device`, namespace modes, ...) and how they become HostConfig fields, parsed
//! as the docker CLI parses them.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use wharf_client::{DeviceConfig, SecurityConfig, UlimitConfig};

use crate::human;

#[derive(Debug, Clone, Default, Args)]
pub struct SecurityFlags {
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "LIST")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "LIST")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Security options (seccomp=unconfined|<profile.json>, no-new-privileges, systempaths=unconfined)
    #[arg(long = "security-opt", value_name = "LIST")]
    pub security_opt: Vec<String>,
    /// Ulimit options (name=soft[:hard])
    #[arg(long = "ulimit", value_name = "ULIMIT")]
    pub ulimit: Vec<String>,
    /// Size of /dev/shm (e.g. 128m)
    #[arg(long = "shm-size", value_name = "BYTES")]
    pub shm_size: Option<String>,
    /// Sysctl options (KEY=VALUE)
    #[arg(long = "sysctl", value_name = "MAP")]
    pub sysctl: Vec<String>,
    /// Add additional groups to join
    #[arg(long = "group-add", value_name = "LIST")]
    pub group_add: Vec<String>,
    /// IPC mode to use
    #[arg(long)]
    pub ipc: Option<String>,
    /// PID namespace to use
    #[arg(long)]
    pub pid: Option<String>,
    /// UTS namespace to use
    #[arg(long)]
    pub uts: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// User namespace to use
    #[arg(long)]
    pub userns: Option<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Add a host device to the container (host[:container][:rwm])
    #[arg(long = "device", value_name = "LIST")]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list ('c 1:3 rwm')
    #[arg(long = "device-cgroup-rule", value_name = "LIST")]
    pub device_cgroup_rule: Vec<String>,
}

impl SecurityFlags {
    /// The HostConfig fields; `read_file` reads a seccomp profile given by path (a parameter
    /// so tests need no files).
    pub fn to_config(&self, read_file: &dyn Fn(&str) -> std::io::Result<String>) -> Result<SecurityConfig> {
        let mut c = SecurityConfig {
            privileged: self.privileged,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            group_add: self.group_add.clone(),
            ipc_mode: self.ipc.clone().unwrap_or_default(),
            pid_mode: self.pid.clone().unwrap_or_default(),
            uts_mode: self.uts.clone().unwrap_or_default(),
            cgroupns_mode: self.cgroupns.clone().unwrap_or_default(),
            userns_mode: self.userns.clone().unwrap_or_default(),
            oom_score_adj: self.oom_score_adj.unwrap_or(0),
            oom_kill_disable: self.oom_kill_disable.then_some(true),
            device_cgroup_rules: self.device_cgroup_rule.clone(),
            ..SecurityConfig::default()
        };
        for o in &self.security_opt {
            match security_opt(o, read_file)? {
                SecurityOpt::Pass(v) => c.security_opt.push(v),
                SecurityOpt::UnmaskSystemPaths => {
                    c.masked_paths = Some(Vec::new());
                    c.readonly_paths = Some(Vec::new());
                }
            }
        }
        c.ulimits = self.ulimit.iter().map(|u| parse_ulimit(u)).collect::<Result<_>>()?;
        if let Some(s) = &self.shm_size {
            c.shm_size =
                human::parse_memory(s).map_err(|e| anyhow!("invalid argument {s:?} for \"--shm-size\" flag: {e}"))?;
        }
        let mut sysctls = BTreeMap::new();
        for s in &self.sysctl {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| anyhow!("invalid argument {s:?} for \"--sysctl\" flag: expected KEY=VALUE"))?;
            sysctls.insert(k.to_string(), v.to_string());
        }
        c.sysctls = sysctls;
        c.devices = self.device.iter().map(|d| parse_device(d)).collect::<Result<_>>()?;
        if let Some(cg) = &self.cgroupns {
            if !matches!(cg.as_str(), "host" | "private") {
                bail!("invalid argument {cg:?} for \"--cgroupns\" flag: expected \"host\" or \"private\"");
            }
        }
        Ok(c)
    }
}

enum SecurityOpt {
    Pass(String),
    UnmaskSystemPaths,
}

/// One `--security-opt`: a seccomp profile path is read here and its JSON sent, as the docker
/// CLI does; `systempaths=unconfined` becomes empty masked and read-only path lists.
fn security_opt(o: &str, read_file: &dyn Fn(&str) -> std::io::Result<String>) -> Result<SecurityOpt> {
    let (key, value) = match o.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        // `no-new-privileges` alone, or the old `key:value` form.
        None => match o.split_once(':') {
            Some((k, v)) if k != "no-new-privileges" => (k, Some(v)),
            _ => (o, None),
        },
    };
    match (key, value) {
        ("seccomp", Some(v @ ("unconfined" | "builtin" | "default"))) => Ok(SecurityOpt::Pass(format!("seccomp={v}"))),
        ("seccomp", Some(path)) => {
            let text = read_file(path).with_context(|| format!("opening seccomp profile ({path}) failed"))?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("compacting json for seccomp profile ({path}) failed"))?;
            Ok(SecurityOpt::Pass(format!("seccomp={json}")))
        }
        ("seccomp", None) => bail!("invalid --security-opt: {o:?}"),
        ("systempaths", Some("unconfined")) => Ok(SecurityOpt::UnmaskSystemPaths),
        ("systempaths", _) => bail!("invalid --security-opt systempaths: {o:?}, only \"unconfined\" is allowed"),
        _ => Ok(SecurityOpt::Pass(o.to_string())),
    }
}

/// `name=soft[:hard]`; without a hard limit it equals the soft one, as go-units parses it.
fn parse_ulimit(u: &str) -> Result<UlimitConfig> {
    let bad = |why: &str| anyhow!("invalid argument {u:?} for \"--ulimit\" flag: {why}");
    let (name, limits) = u.split_once('=').ok_or_else(|| bad("expected name=soft[:hard]"))?;
    if name.is_empty() {
        return Err(bad("empty ulimit name"));
    }
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let num = |s: &str| s.trim().parse::<i64>().map_err(|_| bad(&format!("invalid limit {s:?}")));
    let (soft, hard) = (num(soft)?, num(hard)?);
    if hard >= 0 && soft > hard {
        return Err(bad(&format!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")));
    }
    Ok(UlimitConfig { name: name.to_string(), soft, hard })
}

/// `host[:container][:permissions]`, as the docker CLI reads `--device`.
fn parse_device(d: &str) -> Result<DeviceConfig> {
    let bad = |why: &str| anyhow!("invalid argument {d:?} for \"--device\" flag: {why}");
    let perms_ok = |p: &str| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| "rwm".contains(c));
    let parts: Vec<&str> = d.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if perms_ok(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if perms_ok(p) => (*h, *c, *p),
        [_, _, p] => return Err(bad(&format!("invalid device permissions {p:?}"))),
        _ => return Err(bad("expected host[:container][:rwm]")),
    };
    if host.is_empty() || container.is_empty() {
        return Err(bad("empty device path"));
    }
    if !container.starts_with('/') {
        return Err(bad(&format!("{container} is not an absolute path")));
    }
    Ok(DeviceConfig {
        path_on_host: host.to_string(),
        path_in_container: container.to_string(),
        cgroup_permissions: perms.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: SecurityFlags,
    }

    fn parse(args: &[&str]) -> Result<SecurityConfig> {
        let cli = Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied()))?;
        cli.flags.to_config(&|p| match p {
            "profile.json" => Ok("{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": []\n}\n".to_string()),
            "broken.json" => Ok("{not json".to_string()),
            _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")),
        })
    }

    #[test]
    fn builds_the_security_fields() {
        let c = parse(&[
            "--cap-add",
            "SYS_ADMIN",
            "--cap-drop",
            "chown",
            "--privileged",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            "seccomp=profile.json",
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "core=0",
            "--shm-size",
            "128m",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--group-add",
            "audio",
            "--ipc",
            "host",
            "--pid",
            "container:web",
            "--uts",
            "host",
            "--cgroupns",
            "private",
            "--oom-score-adj",
            "-500",
            "--oom-kill-disable",
            "--device",
            "/dev/null:/dev/mynull:r",
            "--device-cgroup-rule",
            "c 1:3 mr",
        ])
        .unwrap();
        assert!(c.privileged);
        assert_eq!(c.cap_add, ["SYS_ADMIN"]);
        assert_eq!(c.cap_drop, ["chown"]);
        assert_eq!(
            c.security_opt,
            ["no-new-privileges", r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}"#]
        );
        assert_eq!(
            c.ulimits,
            [
                UlimitConfig { name: "nofile".into(), soft: 1024, hard: 2048 },
                UlimitConfig { name: "core".into(), soft: 0, hard: 0 }
            ]
        );
        assert_eq!(c.shm_size, 128 << 20);
        assert_eq!(c.sysctls.get("net.ipv4.ip_forward").map(String::as_str), Some("1"));
        assert_eq!((c.ipc_mode.as_str(), c.pid_mode.as_str()), ("host", "container:web"));
        assert_eq!((c.uts_mode.as_str(), c.cgroupns_mode.as_str()), ("host", "private"));
        assert_eq!(c.oom_score_adj, -500);
        assert_eq!(c.oom_kill_disable, Some(true));
        assert_eq!(c.devices[0].path_in_container, "/dev/mynull");
        assert_eq!(c.devices[0].cgroup_permissions, "r");
        assert_eq!(c.device_cgroup_rules, ["c 1:3 mr"]);
        assert_eq!(c.masked_paths, None);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["UTSMode"], "host");
        assert_eq!(json["OomKillDisable"], true);
        assert_eq!(json["Ulimits"][0]["Soft"], 1024);
    }

    #[test]
    fn empty_flags_send_nothing() {
        let json = serde_json::to_value(parse(&[]).unwrap()).unwrap();
        assert_eq!(json, serde_json::json!({}));
    }

    #[test]
    fn security_opts_table() {
        let cases: [(&str, Result<&[&str], &str>); 7] = [
            ("seccomp=unconfined", Ok(&["seccomp=unconfined"])),
            ("seccomp:unconfined", Ok(&["seccomp=unconfined"])),
            ("no-new-privileges:true", Ok(&["no-new-privileges:true"])),
            ("systempaths=unconfined", Ok(&[])),
            ("seccomp=missing.json", Err("opening seccomp profile (missing.json) failed")),
            ("seccomp=broken.json", Err("compacting json")),
            ("systempaths=other", Err("only \"unconfined\"")),
        ];
        for (opt, want) in cases {
            match (parse(&["--security-opt", opt]), want) {
                (Ok(c), Ok(w)) => assert_eq!(c.security_opt, w, "{opt}"),
                (Err(e), Err(w)) => assert!(format!("{e:#}").contains(w), "{opt}: {e:#}"),
                (got, want) => panic!("{opt}: got {got:?}, wanted {want:?}"),
            }
        }
        let c = parse(&["--security-opt", "systempaths=unconfined"]).unwrap();
        assert_eq!((c.masked_paths, c.readonly_paths), (Some(vec![]), Some(vec![])));
    }

    #[test]
    fn ulimits_table() {
        let cases: [(&str, Option<(i64, i64)>); 7] = [
            ("nofile=1024:2048", Some((1024, 2048))),
            ("nofile=512", Some((512, 512))),
            ("memlock=-1:-1", Some((-1, -1))),
            ("nofile=2048:1024", None),
            ("nofile", None),
            ("=1:2", None),
            ("nofile=a:b", None),
        ];
        for (u, want) in cases {
            assert_eq!(parse_ulimit(u).ok().map(|u| (u.soft, u.hard)), want, "{u}");
        }
    }

    #[test]
    fn devices_table() {
        type Case<'a> = (&'a str, Option<(&'a str, &'a str, &'a str)>);
        let cases: [Case; 7] = [
            ("/dev/fuse", Some(("/dev/fuse", "/dev/fuse", "rwm"))),
            ("/dev/fuse:r", Some(("/dev/fuse", "/dev/fuse", "r"))),
            ("/dev/sda:/dev/xvda", Some(("/dev/sda", "/dev/xvda", "rwm"))),
            ("/dev/sda:/dev/xvda:rw", Some(("/dev/sda", "/dev/xvda", "rw"))),
            ("/dev/sda:/dev/xvda:rwx", None),
            ("/dev/sda:xvda", None),
            ("a:b:c:d", None),
        ];
        for (d, want) in cases {
            let got = parse_device(d).ok();
            let got = got
                .as_ref()
                .map(|d| (d.path_on_host.as_str(), d.path_in_container.as_str(), d.cgroup_permissions.as_str()));
            assert_eq!(got, want, "{d}");
        }
    }

    #[test]
    fn rejects_bad_values() {
        for args in [
            &["--shm-size", "12x"][..],
            &["--sysctl", "novalue"],
            &["--cgroupns", "maybe"],
            &["--ulimit", "nofile=2:1"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }
}
