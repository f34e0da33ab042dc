//! Pulls through a real forward proxy (Debian's tinyproxy, started by each test on loopback),
//! as dockerd honours one: `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` in the daemon's environment,
//! daemon.json's `proxies` over them, `CONNECT` tunnels for HTTPS, proxy credentials in the
//! URL; and the docker config's `proxies` given to builds and containers by the CLIs.
//!
//! The shared test registry listens on 127.0.0.1, which is never proxied unless `NO_PROXY`
//! holds `<-loopback>`; the TLS registry has an address of its own (198.18.x.y), which is not
//! loopback.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{
    free_port, terminate, wait_for, Cli, Daemon, DaemonOptions, RegistryOptions, TempDir, TestRegistry, TlsRegistry,
};

/// A tinyproxy of one test on a free loopback port, stopped when dropped.
struct Tinyproxy {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Tinyproxy {
    #[track_caller]
    fn start(basic_auth: Option<(&str, &str)>) -> Tinyproxy {
        let dir = TempDir::new("wharf-e2e-proxy");
        let port = free_port();
        let log = dir.0.join("tinyproxy.log");
        // No ConnectPort line: CONNECT to any port (the test registries have random ones).
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile \"{}\"\nLogLevel Connect\n\
             PidFile \"{}\"\nMaxClients 50\n",
            log.display(),
            dir.0.join("tinyproxy.pid").display()
        );
        if let Some((user, password)) = basic_auth {
            conf.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let conf_path = dir.0.join("tinyproxy.conf");
        fs::write(&conf_path, conf).expect("write tinyproxy.conf");
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tinyproxy (Debian's tinyproxy package)");
        let p = Tinyproxy { port, dir, child: Some(child) };
        let up = wait_for(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(up, "tinyproxy did not listen on 127.0.0.1:{port}; log:\n{}", p.log());
        p
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.0.join("tinyproxy.log")).unwrap_or_default()
    }

    /// The request lines the proxy saw (`GET http://…/v2/ HTTP/1.1`, `CONNECT host:port …`).
    fn requests(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("): ").map(|(_, r)| r.to_string()))
            .filter(|r| r.contains(" HTTP/1."))
            .collect()
    }

    fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c, Duration::from_secs(5));
        }
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn daemon_with(env: &[(&str, &str)], config_json: Option<String>) -> Daemon {
    Daemon::start_with(DaemonOptions {
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        config_json,
        ..DaemonOptions::default()
    })
}

#[test]
fn pulls_use_the_environments_proxy_unless_no_proxy_says_otherwise() {
    let reg = TestRegistry::start(RegistryOptions { only: vec!["library/busybox".into()], ..Default::default() });
    let proxy = Tinyproxy::start(None);
    let image = reg.image("library/busybox:latest");

    let d = daemon_with(&[("HTTP_PROXY", &proxy.url()), ("no_proxy", "<-loopback>")], None);
    d.wharf(&["pull", &image]).ok();
    let seen = proxy.requests();
    let manifest = format!("GET http://{}/v2/library/busybox/manifests/latest HTTP/1.1", reg.addr);
    assert!(seen.iter().any(|r| r == &manifest), "the proxy saw {seen:#?}");
    assert!(seen.iter().any(|r| r.starts_with(&format!("GET http://{}/v2/library/busybox/blobs/sha256:", reg.addr))));
    let out = d.wharf(&["run", "--rm", &image, "echo", "via-proxy"]);
    assert_eq!(out.ok().trimmed(), "via-proxy");
    // Both CLIs show the daemon's proxies.
    d.wharf(&["info"]).ok().mentions(&[&format!(" HTTP Proxy: {}\n", proxy.url()), " No Proxy: <-loopback>\n"]);
    let out = d.docker(&["info", "--format", "{{.HTTPProxy}}|{{.HTTPSProxy}}|{{.NoProxy}}"]);
    assert_eq!(out.ok().trimmed(), format!("{}||<-loopback>", proxy.url()));
    // The docker CLI's pulls go the same way.
    d.docker(&["rmi", &image]).ok();
    let before = proxy.requests().len();
    d.docker(&["pull", &image]).ok();
    assert!(proxy.requests().len() > before, "docker pull through wharfd did not use the proxy");

    // A build's ADD of a URL is downloaded through the proxy too.
    let ctx = TempDir::new("wharf-e2e-proxyadd");
    let add = format!("http://{}/v2/", reg.addr);
    fs::write(ctx.0.join("Dockerfile"), format!("FROM {image}\nADD {add} /v2.json\n")).expect("write Dockerfile");
    d.wharf(&["build", "-q", "-t", "proxy-add:1", ctx.0.to_str().unwrap_or_default()]).ok();
    assert!(proxy.requests().iter().any(|r| r == &format!("GET {add} HTTP/1.1")), "{:#?}", proxy.requests());
    let out = d.wharf(&["run", "--rm", "proxy-add:1", "cat", "/v2.json"]);
    assert_eq!(out.ok().trimmed(), "{}");

    // Loopback is never proxied unless asked, and NO_PROXY entries with a port bypass it.
    for no_proxy in ["", &format!("<-loopback>,{}", reg.addr)] {
        let d = daemon_with(&[("HTTP_PROXY", &proxy.url()), ("NO_PROXY", no_proxy)], None);
        let before = proxy.requests().len();
        d.wharf(&["pull", &image]).ok();
        assert_eq!(proxy.requests().len(), before, "NO_PROXY={no_proxy:?}: the pull went through the proxy");
    }
}

#[test]
fn daemon_json_proxies_win_over_the_environment_and_carry_credentials() {
    let reg = TestRegistry::start(RegistryOptions { only: vec!["library/busybox".into()], ..Default::default() });
    let proxy = Tinyproxy::start(Some(("alice", "pr0xy-pass")));
    let image = reg.image("library/busybox:latest");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config = |url: &str| Some(format!(r#"{{"proxies": {{"http-proxy": "{url}", "no-proxy": "<-loopback>"}}}}"#));

    // Without credentials: the proxy's 407 is named, and nothing is left half pulled.
    let d = daemon_with(&[("HTTP_PROXY", &dead)], config(&proxy.url()));
    d.wharf(&["pull", &image]).fails().mentions(&["407", "proxy requires authentication"]);
    d.wharf(&["image", "inspect", &image]).fails();
    d.wharf(&["info"]).ok().mentions(&[&format!(" HTTP Proxy: {}\n", proxy.url())]);
    drop(d);

    let wrong = format!("http://alice:wrong@127.0.0.1:{}", proxy.port);
    let d = daemon_with(&[], config(&wrong));
    // tinyproxy answers wrong credentials with a 401 of its own (not 407), which reads as
    // the registry's; the pull fails either way, and leaves nothing.
    d.wharf(&["pull", &image]).fails().mentions(&["unauthorized"]);
    d.wharf(&["image", "inspect", &image]).fails();
    drop(d);

    let with_password = format!("http://alice:pr0xy-pass@127.0.0.1:{}", proxy.port);
    let d = daemon_with(&[("HTTP_PROXY", &dead)], config(&with_password));
    d.wharf(&["pull", &image]).ok();
    assert!(proxy.requests().iter().any(|r| r.contains(&format!("http://{}/v2/", reg.addr))));
    // The password is shown masked, as dockerd shows it, and never logged.
    let masked = format!("http://xxxxx:xxxxx@127.0.0.1:{}", proxy.port);
    d.wharf(&["info"]).ok().mentions(&[&format!(" HTTP Proxy: {masked}\n")]);
    let out = d.docker(&["info", "--format", "{{.HTTPProxy}}"]);
    assert_eq!(out.ok().trimmed(), masked);
    let log = d.log_text();
    assert!(!log.contains("pr0xy-pass"), "wharfd logged the proxy password:\n{log}");

    // A malformed proxy stops the daemon at start, naming it.
    let bad = Daemon::try_start(DaemonOptions {
        config_json: Some(r#"{"proxies": {"https-proxy": "socks5://127.0.0.1:1080"}}"#.into()),
        ..DaemonOptions::default()
    });
    let err = bad.err().expect("a socks5 proxy must be refused");
    assert!(err.log.contains("proxies") && err.log.contains("only http:// proxies"), "{}", err.log);
}

#[test]
fn https_pulls_tunnel_through_connect_to_a_registry_with_its_own_ca() {
    let tls = TlsRegistry::start(false);
    let _certs = tls.install_certs_d(false);
    let mut proxy = Tinyproxy::start(None);
    let image = tls.image("library/busybox:latest");
    let dead = format!("http://127.0.0.1:{}", free_port());

    // HTTP_PROXY (dead) is not used for https; the CA of certs.d verifies the registry inside
    // the tunnel.
    let d = daemon_with(&[("HTTPS_PROXY", &proxy.url()), ("HTTP_PROXY", &dead)], None);
    d.wharf(&["pull", &image]).ok();
    let connect = format!("CONNECT {} HTTP/1.1", tls.addr);
    assert!(proxy.requests().iter().any(|r| r == &connect), "the proxy saw {:#?}", proxy.requests());
    let out = d.wharf(&["run", "--rm", &image, "echo", "tunnelled"]);
    assert_eq!(out.ok().trimmed(), "tunnelled");

    // A CIDR in NO_PROXY sends the registry's address direct.
    let direct = daemon_with(&[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", "198.18.0.0/15")], None);
    let before = proxy.requests().len();
    direct.wharf(&["pull", &image]).ok();
    assert_eq!(proxy.requests().len(), before, "NO_PROXY=198.18.0.0/15 still went through the proxy");

    // With the proxy gone, a pull fails naming it, and leaves no image.
    d.wharf(&["rmi", &image]).ok();
    proxy.stop();
    d.wharf(&["pull", &image]).fails().mentions(&[&format!("proxy {}", proxy.url()), "cannot connect"]);
    d.wharf(&["image", "inspect", &image]).fails();
}

/// A docker config with `proxies.default`, in a directory of its own.
fn docker_config_with_proxies() -> TempDir {
    let dir = TempDir::new("wharf-e2e-proxycfg");
    let cfg = r#"{"proxies": {"default": {"httpProxy": "http://proxy.example:3128", "noProxy": ".corp.example"}}}"#;
    fs::write(dir.0.join("config.json"), cfg).expect("write config.json");
    dir
}

#[test]
fn the_client_configs_proxies_reach_builds_and_containers_as_with_docker() {
    let d = Daemon::start();
    let base = d.pull("library/busybox:latest");
    let cfg = docker_config_with_proxies();
    let ctx = TempDir::new("wharf-e2e-proxyctx");
    // Proxy variables are predefined build arguments: no ARG needed, none left in history.
    fs::write(ctx.0.join("Dockerfile"), format!("FROM {base}\nRUN echo \"$HTTP_PROXY $no_proxy\" > /proxy\n"))
        .expect("write Dockerfile");
    let ctx_path = ctx.0.to_str().expect("utf-8 path");
    for (cli, tag) in [(Cli::Wharf, "proxy-build:wharf"), (Cli::Docker, "proxy-build:docker")] {
        let mut cmd = d.command(cli, &["build", "-q", "-t", tag, ctx_path]);
        cmd.env("DOCKER_CONFIG", &cfg.0).env("DOCKER_BUILDKIT", "0");
        let out = crate::harness::run_cmd(cmd, Duration::from_secs(120));
        out.ok();
        let out = d.wharf(&["run", "--rm", tag, "cat", "/proxy"]);
        assert_eq!(out.ok().trimmed(), "http://proxy.example:3128 .corp.example", "{cli:?}");
        let history = d.wharf(&["history", "--no-trunc", tag]);
        assert!(!history.ok().stdout.contains("proxy.example"), "{cli:?}: {history}");
    }
    for cli in [Cli::Wharf, Cli::Docker] {
        let run = |extra: &[&str]| {
            let mut args = vec!["run", "--rm"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&[&base, "sh", "-c", "echo $HTTP_PROXY $http_proxy $NO_PROXY"]);
            let mut cmd = d.command(cli, &args);
            cmd.env("DOCKER_CONFIG", &cfg.0);
            crate::harness::run_cmd(cmd, Duration::from_secs(60))
        };
        let out = run(&[]);
        assert_eq!(out.ok().trimmed(), "http://proxy.example:3128 http://proxy.example:3128 .corp.example", "{cli:?}");
        let out = run(&["-e", "HTTP_PROXY=http://mine:1"]);
        assert_eq!(out.ok().trimmed(), "http://mine:1 http://proxy.example:3128 .corp.example", "{cli:?}");
    }
}
