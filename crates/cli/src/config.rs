//! The flags of `run` and `create`, and how they become a `POST /containers/create` body.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use clap::Args;
use wharf_client::{ContainerConfig, HostConfig, RestartPolicy};

/// Flags shared by `run` and `create`. `-h` is `--hostname` here, as in Docker.
#[derive(Debug, Clone, Default, Args)]
pub struct ContainerFlags {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach", value_name = "LIST")]
    pub attach: Vec<String>,
    /// Write the container ID to the file
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file", value_name = "FILE")]
    pub label_file: Vec<String>,
    /// Runtime to use for this container
    #[arg(long)]
    pub runtime: Option<String>,
    /// Optional volume driver for the container
    #[arg(long = "volume-driver")]
    pub volume_driver: Option<String>,
    /// Add an annotation to the container (passed through to the OCI runtime)
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "LIST")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount", value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long = "tmpfs", value_name = "LIST")]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from", value_name = "LIST")]
    pub volumes_from: Vec<String>,
    /// Set environment variables (KEY=VALUE, or KEY to take it from the environment)
    #[arg(short = 'e', long = "env", value_name = "LIST")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Set meta data on a container (KEY=VALUE)
    #[arg(short = 'l', long = "label", value_name = "LIST")]
    pub labels: Vec<String>,
    /// Memory, CPU, block I/O, pids, ... (`resources.rs`).
    #[command(flatten)]
    pub resources: crate::resources::ResourceFlags,
    #[command(flatten)]
    pub create_resources: crate::resources::CreateResourceFlags,
    /// Connect a container to a network
    #[arg(long, alias = "net")]
    pub network: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long)]
    pub ip6: Option<String>,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip")]
    pub link_local_ip: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Add link to another container (name[:alias])
    #[arg(long = "link")]
    pub link: Vec<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Publish a container's port(s) to the host: [ip:][hostPort:]containerPort[/proto]
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", allow_hyphen_values = true)]
    pub stop_timeout: Option<i64>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing", value_parser = ["always", "missing", "never"])]
    pub pull: String,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Restart policy to apply when a container exits ("no", "on-failure[:max-retries]", "always", "unless-stopped")
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h)
    #[arg(long = "health-start-interval")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Bind mount Docker API socket and required auth
    #[arg(long = "use-api-socket")]
    pub use_api_socket: bool,
    #[command(flatten)]
    pub security: crate::security::SecurityFlags,
    /// The image, then the command and its arguments (nothing here is read as a wharf flag)
    #[arg(value_name = "IMAGE [COMMAND] [ARG...]", required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub image_and_command: Vec<String>,
}

impl ContainerFlags {
    /// The image reference as the user wrote it.
    pub fn image(&self) -> &str {
        self.image_and_command.first().map(String::as_str).unwrap_or("")
    }

    /// The command after the image, if any.
    pub fn command(&self) -> &[String] {
        self.image_and_command.get(1..).unwrap_or(&[])
    }

    /// The create body. `lookup` reads the caller's environment (for `-e KEY`), `read_file`
    /// reads an `--env-file`; both are parameters so tests need neither.
    pub fn to_config(
        &self,
        lookup: &dyn Fn(&str) -> Option<String>,
        read_file: &dyn Fn(&str) -> std::io::Result<String>,
    ) -> Result<ContainerConfig> {
        let image = self.image();
        if image.starts_with('-') {
            bail!("unknown flag: {image}");
        }
        let mut env = Vec::new();
        for path in &self.env_file {
            let text = read_file(path).with_context(|| format!("open {path}"))?;
            env.extend(parse_env_file(&text, lookup).with_context(|| format!("env file {path}"))?);
        }
        for e in &self.env {
            env.extend(env_entry(e, lookup)?);
        }
        // Label files first, then `-l`, as the docker CLI reads them: `key=value` lines, `#`
        // comments; a line without `=` names nothing.
        let mut label_lines = Vec::new();
        for path in &self.label_file {
            let text = read_file(path).with_context(|| format!("open {path}"))?;
            label_lines.extend(parse_env_file(&text, &|_| None).with_context(|| format!("label file {path}"))?);
        }
        label_lines.extend(self.labels.iter().cloned());
        let mut labels = BTreeMap::new();
        for l in &label_lines {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            if k.is_empty() {
                bail!("invalid label {l:?}: empty key");
            }
            labels.insert(k.to_string(), v.to_string());
        }
        let networks: Vec<crate::network::NetworkOpt> =
            self.network.iter().map(|n| crate::network::NetworkOpt::parse(n)).collect::<Result<_>>()?;
        let memory = self.resources.memory()?;
        let nano_cpus = self.resources.nano_cpus()?;
        let mut resources = self.resources.fields()?;
        resources.extend(self.create_resources.fields()?);
        // Docker sends an empty entrypoint as [""] to clear the image's, and a set one as one word.
        let entrypoint = self.entrypoint.as_ref().map(|e| vec![e.clone()]);
        // `-a` names the streams to attach; without it, stdout and stderr (and stdin with -i).
        let mut streams = [false; 3];
        for a in &self.attach {
            match a.to_ascii_lowercase().as_str() {
                "stdin" => streams[0] = true,
                "stdout" => streams[1] = true,
                "stderr" => streams[2] = true,
                _ => bail!(
                    "invalid argument {a:?} for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"
                ),
            }
        }
        if self.attach.is_empty() {
            streams = [self.interactive, true, true];
        }
        streams[0] |= self.interactive;
        let [attach_stdin, attach_stdout, attach_stderr] = streams;
        let mut annotations = BTreeMap::new();
        for a in &self.annotation {
            match a.split_once('=') {
                Some((k, v)) if !k.is_empty() => annotations.insert(k.to_string(), v.to_string()),
                _ => bail!("invalid argument {a:?} for \"--annotation\" flag: use key=value"),
            };
        }
        let ports = crate::network::parse_ports(&self.publish, &self.expose)?;
        Ok(ContainerConfig {
            hostname: self.hostname.clone().unwrap_or_default(),
            domainname: self.domainname.clone().unwrap_or_default(),
            user: self.user.clone().unwrap_or_default(),
            attach_stdin,
            attach_stdout,
            attach_stderr,
            tty: self.tty,
            open_stdin: self.interactive,
            stdin_once: self.interactive && attach_stdin,
            env,
            cmd: if self.command().is_empty() { None } else { Some(self.command().to_vec()) },
            image: image.to_string(),
            working_dir: self.workdir.clone().unwrap_or_default(),
            entrypoint,
            labels,
            stop_signal: self.stop_signal.clone().unwrap_or_default(),
            stop_timeout: self.stop_timeout,
            host_config: HostConfig {
                auto_remove: self.rm,
                restart_policy: parse_restart(&self.restart)?,
                memory,
                nano_cpus,
                cpu_shares: self.resources.cpu_shares.unwrap_or(0),
                pids_limit: self.resources.pids_limit,
                resources,
                network_mode: networks.first().map(|n| n.name.clone()).unwrap_or_default(),
                binds: self.volume.clone(),
                mounts: self.mount.iter().map(|m| crate::lifecycle::parse_mount(m)).collect::<Result<_>>()?,
                tmpfs: self
                    .tmpfs
                    .iter()
                    .map(|t| {
                        let (p, o) = t.split_once(':').unwrap_or((t.as_str(), ""));
                        (p.to_string(), o.to_string())
                    })
                    .collect(),
                readonly_rootfs: self.read_only,
                init: self.init,
                volumes_from: self.volumes_from.clone(),
                port_bindings: ports.bindings,
                publish_all_ports: self.publish_all,
                dns: self.dns.clone(),
                dns_search: self.dns_search.clone(),
                dns_options: self.dns_option.clone(),
                extra_hosts: self.add_host.clone(),
                links: self.link.clone(),
                cgroup_parent: self.cgroup_parent.clone().unwrap_or_default(),
                runtime: self.runtime.clone().unwrap_or_default(),
                volume_driver: self.volume_driver.clone().unwrap_or_default(),
                annotations,
                log_config: self.log_config()?,
                security: self.security.to_config(read_file)?,
            },
            exposed_ports: ports.exposed,
            healthcheck: self.healthcheck()?,
            mac_address: self.mac_address.clone().unwrap_or_default(),
            networking_config: crate::network::networking_config(
                &networks,
                &crate::network::NetworkOpt {
                    aliases: self.network_alias.clone(),
                    ip: self.ip.clone(),
                    ip6: self.ip6.clone(),
                    link_local_ips: self.link_local_ip.clone(),
                    ..Default::default()
                },
            )?,
        })
    }
}

impl ContainerFlags {
    /// `Config.Healthcheck` from the `--health-*` flags, as the docker CLI builds it.
    fn healthcheck(&self) -> Result<Option<serde_json::Value>> {
        let dur = |flag: &str, v: &Option<String>| -> Result<i64> {
            match v {
                None => Ok(0),
                Some(s) => {
                    let ns = parse_go_duration(s).ok_or_else(|| {
                        anyhow::anyhow!("invalid argument {s:?} for \"--{flag}\" flag: invalid duration")
                    })?;
                    if ns < 0 {
                        bail!("--{flag} cannot be negative");
                    }
                    Ok(ns)
                }
            }
        };
        let interval = dur("health-interval", &self.health_interval)?;
        let timeout = dur("health-timeout", &self.health_timeout)?;
        let start_period = dur("health-start-period", &self.health_start_period)?;
        let start_interval = dur("health-start-interval", &self.health_start_interval)?;
        let retries = self.health_retries.unwrap_or(0);
        if retries < 0 {
            bail!("--health-retries cannot be negative");
        }
        let options = self.health_cmd.is_some()
            || interval != 0
            || timeout != 0
            || start_period != 0
            || start_interval != 0
            || retries != 0;
        if self.no_healthcheck {
            if options {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(serde_json::json!({ "Test": ["NONE"] })));
        }
        if !options {
            return Ok(None);
        }
        let test = match self.health_cmd.as_deref() {
            Some(c) if !c.is_empty() => serde_json::json!(["CMD-SHELL", c]),
            _ => serde_json::Value::Null,
        };
        Ok(Some(serde_json::json!({
            "Test": test,
            "Interval": interval,
            "Timeout": timeout,
            "StartPeriod": start_period,
            "Retries": retries,
            "StartInterval": start_interval,
        })))
    }

    /// `HostConfig.LogConfig` from `--log-driver` and `--log-opt key=value`.
    fn log_config(&self) -> Result<Option<serde_json::Value>> {
        if self.log_driver.is_none() && self.log_opt.is_empty() {
            return Ok(None);
        }
        let mut opts = BTreeMap::new();
        for o in &self.log_opt {
            let Some((k, v)) = o.split_once('=') else {
                bail!("invalid log opt {o:?}: use key=value");
            };
            opts.insert(k.to_string(), v.to_string());
        }
        Ok(Some(serde_json::json!({ "Type": self.log_driver.clone().unwrap_or_default(), "Config": opts })))
    }
}

/// A Go duration (`1s`, `500ms`, `1m30s`, `1.5h`) in nanoseconds; a bare `0` too.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    wharf_types::time::parse_go_duration(s).ok()
}

/// One `-e` value: `KEY=VALUE` as is; `KEY` alone takes the value from the environment and is
/// dropped when unset, as Docker does.
fn env_entry(e: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>> {
    let name = e.split_once('=').map(|(k, _)| k).unwrap_or(e);
    if name.is_empty() {
        bail!("invalid environment variable: {e}");
    }
    if e.contains('=') {
        return Ok(Some(e.to_string()));
    }
    Ok(lookup(e).map(|v| format!("{e}={v}")))
}

/// An env file: one `KEY=VALUE` or `KEY` per line; blank lines and `#` comments skipped.
pub fn parse_env_file(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line.split_once('=').map(|(k, _)| k).unwrap_or(line);
        if name.is_empty() {
            bail!("line {}: no variable name", n + 1);
        }
        if name.contains(char::is_whitespace) {
            bail!("line {}: variable '{name}' contains whitespaces", n + 1);
        }
        if let Some(e) = env_entry(line, lookup)? {
            out.push(e);
        }
    }
    Ok(out)
}

/// `--restart`: `no`, `always`, `unless-stopped`, `on-failure[:max]`; the daemon checks the rest.
fn parse_restart(s: &str) -> Result<Option<RestartPolicy>> {
    if s.is_empty() {
        return Ok(None);
    }
    let (name, max) = match s.split_once(':') {
        Some((n, m)) => {
            let max = m.parse::<i64>().map_err(|_| {
                anyhow::anyhow!("invalid restart policy format: maximum retry count must be an integer")
            })?;
            (n, max)
        }
        None => (s, 0),
    };
    Ok(Some(RestartPolicy { name: name.to_string(), maximum_retry_count: max }))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct Cli {
        #[arg(short = 'd')]
        _detach: bool,
        #[command(flatten)]
        flags: ContainerFlags,
    }

    fn parse(args: &[&str]) -> ContainerFlags {
        Cli::try_parse_from(std::iter::once("run").chain(args.iter().copied())).unwrap().flags
    }

    fn env(k: &str) -> Option<String> {
        match k {
            "HOME" => Some("/root".to_string()),
            _ => None,
        }
    }

    fn no_files(p: &str) -> std::io::Result<String> {
        match p {
            "app.env" => Ok("# comment\n\nA=1\n  B=two words\nHOME\nUNSET\nC=\n".to_string()),
            _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")),
        }
    }

    #[test]
    fn attach_label_file_annotation_and_the_rest() {
        let files = |p: &str| match p {
            "labels" => Ok("# team\n\n  a=1\nb=2\nbare\n".to_string()),
            _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")),
        };
        let c = parse(&[
            "-a",
            "STDOUT",
            "--label-file",
            "labels",
            "-l",
            "b=3",
            "--domainname",
            "example.org",
            "--runtime",
            "wharf",
            "--volume-driver",
            "local",
            "--annotation",
            "org.example/k=v=w",
            "--health-cmd",
            "true",
            "--health-start-interval",
            "250ms",
            "busybox",
        ])
        .to_config(&env, &files)
        .unwrap();
        assert!(c.attach_stdout && !c.attach_stderr && !c.attach_stdin && !c.stdin_once);
        assert_eq!(c.labels, BTreeMap::from([("a".to_string(), "1".to_string()), ("b".to_string(), "3".to_string())]));
        assert_eq!(c.domainname, "example.org");
        assert_eq!((c.host_config.runtime.as_str(), c.host_config.volume_driver.as_str()), ("wharf", "local"));
        assert_eq!(c.host_config.annotations.get("org.example/k").map(String::as_str), Some("v=w"));
        assert_eq!(c.healthcheck.unwrap()["StartInterval"], 250_000_000);
        // -i attaches stdin whatever -a says; no -a is stdout and stderr.
        let c = parse(&["-i", "-a", "stderr", "busybox"]).to_config(&env, &files).unwrap();
        assert!(c.attach_stdin && c.stdin_once && c.attach_stderr && !c.attach_stdout);
        let c = parse(&["busybox"]).to_config(&env, &files).unwrap();
        assert!(!c.attach_stdin && c.attach_stdout && c.attach_stderr);
        for (args, want) in [
            (&["-a", "stdio", "busybox"][..], "valid streams are STDIN, STDOUT and STDERR"),
            (&["--annotation", "novalue", "busybox"][..], "use key=value"),
            (&["--label-file", "missing", "busybox"][..], "open missing"),
        ] {
            let e = parse(args).to_config(&env, &files).unwrap_err();
            assert!(format!("{e:#}").contains(want), "{args:?}: {e:#}");
        }
    }

    #[test]
    fn trailing_arguments_table() {
        let cases: [(&[&str], &str, &[&str]); 6] = [
            (&["busybox"], "busybox", &[]),
            (&["busybox", "ls", "-l"], "busybox", &["ls", "-l"]),
            (&["-d", "busybox", "-l", "x"], "busybox", &["-l", "x"]),
            (&["-e", "A=1", "busybox", "sh", "-c", "echo -e hi"], "busybox", &["sh", "-c", "echo -e hi"]),
            (&["--rm", "busybox", "--", "--rm"], "busybox", &["--", "--rm"]),
            (&["--name", "web", "-m", "6m", "busybox", "--name"], "busybox", &["--name"]),
        ];
        for (args, image, cmd) in cases {
            let f = parse(args);
            assert_eq!(f.image(), image, "{args:?}");
            assert_eq!(f.command(), cmd, "{args:?}");
        }
    }

    #[test]
    fn builds_the_create_body() {
        let f = parse(&[
            "--name",
            "web",
            "-e",
            "A=1",
            "-e",
            "HOME",
            "-e",
            "UNSET",
            "--env-file",
            "app.env",
            "-w",
            "/srv",
            "-u",
            "1000:1000",
            "--entrypoint",
            "",
            "-h",
            "box",
            "-l",
            "a=b",
            "-l",
            "flag",
            "-m",
            "512m",
            "--cpus",
            "1.5",
            "-c",
            "512",
            "--pids-limit",
            "-1",
            "--network",
            "none",
            "--stop-signal",
            "SIGINT",
            "--stop-timeout",
            "3",
            "--rm",
            "busybox",
            "echo",
            "hi",
        ]);
        let c = f.to_config(&env, &no_files).unwrap();
        assert_eq!(c.image, "busybox");
        assert_eq!(c.cmd, Some(vec!["echo".to_string(), "hi".to_string()]));
        assert_eq!(c.env, ["A=1", "B=two words", "HOME=/root", "C=", "A=1", "HOME=/root"]);
        assert_eq!(c.entrypoint, Some(vec![String::new()]));
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.user, "1000:1000");
        assert_eq!(c.hostname, "box");
        assert_eq!(c.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(c.labels.get("flag").map(String::as_str), Some(""));
        assert_eq!(c.host_config.memory, 512 << 20);
        assert_eq!(c.host_config.nano_cpus, 1_500_000_000);
        assert_eq!(c.host_config.cpu_shares, 512);
        assert_eq!(c.host_config.pids_limit, Some(-1));
        assert_eq!(c.host_config.network_mode, "none");
        assert!(c.host_config.auto_remove);
        assert_eq!(c.stop_signal, "SIGINT");
        assert_eq!(c.stop_timeout, Some(3));
        assert!(c.attach_stdout && c.attach_stderr && !c.tty && !c.open_stdin);
    }

    #[test]
    fn rejects_bad_values() {
        for args in [
            &["-m", "12x", "busybox"][..],
            &["--cpus", "a", "busybox"],
            &["--env-file", "nope", "busybox"],
            &["-e", "=x", "busybox"],
        ] {
            assert!(parse(args).to_config(&env, &no_files).is_err(), "{args:?}");
        }
    }

    #[test]
    fn go_durations_table() {
        let table: &[(&str, Option<i64>)] = &[
            ("1s", Some(1_000_000_000)),
            ("500ms", Some(500_000_000)),
            ("1m30s", Some(90_000_000_000)),
            ("1.5h", Some(5_400_000_000_000)),
            ("0", Some(0)),
            ("-2s", Some(-2_000_000_000)),
            ("10", None),
            ("", None),
            ("1x", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_go_duration(input), *want, "{input}");
        }
    }

    #[test]
    fn health_and_log_flags() {
        let c = parse(&["--health-cmd", "true", "--health-interval", "1s", "--health-retries", "2", "img"])
            .to_config(&env, &no_files)
            .unwrap();
        let h = c.healthcheck.unwrap();
        assert_eq!(h["Test"], serde_json::json!(["CMD-SHELL", "true"]));
        assert_eq!(h["Interval"], 1_000_000_000i64);
        assert_eq!(h["Retries"], 2);
        let c = parse(&["--no-healthcheck", "img"]).to_config(&env, &no_files).unwrap();
        assert_eq!(c.healthcheck.unwrap()["Test"], serde_json::json!(["NONE"]));
        assert!(parse(&["--no-healthcheck", "--health-cmd", "x", "img"]).to_config(&env, &no_files).is_err());
        let c =
            parse(&["--log-opt", "max-size=10k", "--log-opt", "max-file=3", "img"]).to_config(&env, &no_files).unwrap();
        let l = c.host_config.log_config.unwrap();
        assert_eq!(l["Config"]["max-size"], "10k");
        assert_eq!(l["Config"]["max-file"], "3");
        assert!(parse(&["--log-opt", "bogus", "img"]).to_config(&env, &no_files).is_err());
        assert!(parse(&["img"]).to_config(&env, &no_files).unwrap().healthcheck.is_none());
    }

    #[test]
    fn env_files_table() {
        let cases: [(&str, Result<&[&str], &str>); 5] = [
            ("A=1\nB=2", Ok(&["A=1", "B=2"])),
            ("# only a comment\n\n   \n", Ok(&[])),
            ("HOME\nMISSING", Ok(&["HOME=/root"])),
            ("X=a=b", Ok(&["X=a=b"])),
            ("BAD NAME=1", Err("contains whitespaces")),
        ];
        for (text, want) in cases {
            match (parse_env_file(text, &env), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{text:?}"),
                (Err(e), Err(w)) => assert!(format!("{e:#}").contains(w), "{text:?}: {e:#}"),
                (got, want) => panic!("{text:?}: got {got:?}, wanted {want:?}"),
            }
        }
    }
}
