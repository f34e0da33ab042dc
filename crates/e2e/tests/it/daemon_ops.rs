//! Running wharfd as dockerd is run (issue 19): a Docker host's daemon.json, SIGHUP, remote
//! access over TLS, several `-H`, systemd socket activation, the socket's group, the
//! `dial-stdio` proxy and the install script's units. Everything on loopback; the TLS tests
//! make a throw-away CA with openssl.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{
    bin, free_port, http_unix, openssl_ca, openssl_signed, run_cmd, unique, wait_for, Daemon, DaemonOptions, Output,
    TempDir,
};

const T: Duration = Duration::from_secs(60);

fn with_config(json: &str, extra: &[&str]) -> DaemonOptions {
    DaemonOptions {
        config_json: Some(json.to_string()),
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn a_docker_hosts_daemon_json_is_honoured_or_warned_of() {
    let json = r#"{
        "live-restore": true, "storage-driver": "overlay2", "ip6tables": false, "bip6": "fd00:77::1/64",
        "features": {"buildkit": true}, "userland-proxy": false, "icc": true, "default-runtime": "runc",
        "exec-opts": ["native.cgroupdriver=cgroupfs"], "log-driver": "json-file",
        "dns": ["192.0.2.53"], "dns-search": ["wharf.test"], "dns-opts": ["ndots:3"],
        "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 4321, "Hard": 8642}},
        "default-shm-size": "96M", "labels": ["site=e2e", "rack=7"], "init": true, "no-new-privileges": true,
        "max-concurrent-uploads": 2, "max-download-attempts": 3
    }"#;
    let d = Daemon::start_with(with_config(json, &[]));
    let log = d.log_text();
    for w in ["live-restore:", "storage-driver:", "features:", "userland-proxy:", "IPv6"] {
        assert_eq!(log.lines().filter(|l| l.contains(w)).count(), 1, "one warning line with {w:?} expected:\n{log}");
    }
    // Docker's own runtime name is wharf's own runtime: honoured, nothing to warn of.
    assert!(!log.contains("default-runtime"), "{log}");
    let info = d.docker(&["info", "--format", "{{json .Labels}}"]);
    info.ok();
    assert_eq!(info.trimmed(), r#"["site=e2e","rack=7"]"#, "{info}");

    let image = d.pull("library/busybox:latest");
    let script = "cat /etc/resolv.conf; echo nofile=$(ulimit -Sn):$(ulimit -Hn); df -k /dev/shm | tail -1; \
                  grep NoNewPrivs /proc/self/status; cat /proc/1/cmdline | tr '\\0' ' '; echo";
    let out = d.docker(&["run", "--rm", &image, "sh", "-c", script]);
    out.ok();
    let text = &out.stdout;
    assert!(text.contains("nameserver 192.0.2.53"), "{out}");
    assert!(text.contains("search wharf.test"), "{out}");
    assert!(text.contains("options ndots:3"), "{out}");
    assert!(text.contains("nofile=4321:8642"), "{out}");
    assert!(text.contains(&(96 * 1024).to_string()), "/dev/shm is not 96M:\n{out}");
    assert!(text.contains("NoNewPrivs:\t1"), "{out}");
    assert!(text.contains("docker-init"), "pid 1 is not the init:\n{out}");

    // As dockerd: the shm size is the container's from create on, the init is decided at
    // start (inspect keeps `Init` as the client left it: unset).
    d.docker(&["create", "--name", "defaults-inspected", &image, "true"]).ok();
    let hc = d.docker(&["inspect", "--format", "{{json .HostConfig}}", "defaults-inspected"]);
    hc.ok();
    let hc = hc.json();
    assert_eq!(hc["ShmSize"], 96 << 20, "{hc}");
    assert!(hc.get("Init").is_none_or(|v| v.is_null()), "{hc}");
    d.docker(&["rm", "defaults-inspected"]).ok();

    // What a container gives itself wins over the daemon's defaults.
    let out = d.docker(&[
        "run",
        "--rm",
        "--dns",
        "192.0.2.99",
        "--ulimit",
        "nofile=100:200",
        "--shm-size",
        "8m",
        "--init=false",
        "--security-opt",
        "no-new-privileges=false",
        &image,
        "sh",
        "-c",
        script,
    ]);
    out.ok();
    let text = &out.stdout;
    assert!(text.contains("nameserver 192.0.2.99") && !text.contains("192.0.2.53"), "{out}");
    assert!(text.contains("nofile=100:200"), "{out}");
    assert!(text.contains(&(8 * 1024).to_string()), "{out}");
    assert!(text.contains("NoNewPrivs:\t0"), "{out}");
    assert!(!text.contains("docker-init"), "{out}");
}

#[test]
fn keys_wharf_cannot_honour_are_refused_by_name() {
    let json = r#"{"ip-forward": false, "graph": "/var/lib/x", "storage-driver": "btrfs", "selinux-enabled": false,
                  "no-such-key": 1}"#;
    let e = match Daemon::try_start(with_config(json, &[])) {
        Ok(d) => panic!("wharfd started; log:\n{}", d.log_text()),
        Err(e) => e,
    };
    assert!(e.code.is_some_and(|c| c != 0), "{e:?}");
    for key in ["\"ip-forward\"", "\"graph\"", "\"storage-driver\" = btrfs", "\"no-such-key\"", "data-root"] {
        assert!(e.log.contains(key), "the refusal does not say {key}:\n{}", e.log);
    }
    assert!(!e.log.contains("selinux"), "a value wharf has anyway is refused:\n{}", e.log);
    // The same keys as dockerd's flags.
    let e = match Daemon::try_start(with_config("{}", &["--ip-forward=false", "--live-restore"])) {
        Ok(d) => panic!("wharfd started with --ip-forward=false; log:\n{}", d.log_text()),
        Err(e) => e,
    };
    assert!(e.log.contains("--ip-forward") && e.log.contains("always enables net.ipv4.ip_forward"), "{}", e.log);
    // --validate checks and says what it warns of, without starting anything.
    let dir = TempDir::new("wharf-e2e-validate");
    let path = dir.0.join("daemon.json");
    fs::write(&path, r#"{"live-restore": true, "dns": ["192.0.2.1"]}"#).unwrap();
    let mut cmd = Command::new(bin("wharfd"));
    cmd.arg("--validate").arg("--config-file").arg(&path);
    let out = run_cmd(cmd, T);
    out.ok().mentions(&["live-restore", "configuration OK"]);
}

#[test]
fn sighup_reloads_what_dockerd_reloads_and_says_what_waits_for_a_restart() {
    let d = Daemon::start_with(with_config(r#"{"labels": ["phase=one"], "shutdown-timeout": 40}"#, &[]));
    let info = |f: &str| d.docker(&["info", "--format", f]).trimmed().to_string();
    assert_eq!(info("{{json .Labels}}"), r#"["phase=one"]"#);
    let path = d.dir.join("daemon.json");
    let pid = d.pid().unwrap().to_string();
    let hup = || {
        let mut cmd = Command::new("kill");
        cmd.args(["-HUP", &pid]);
        run_cmd(cmd, T).ok();
    };
    fs::write(
        &path,
        r#"{"labels": ["phase=two"], "registry-mirrors": ["http://127.0.0.1:9/"], "insecure-registries": ["192.0.2.7:5000"],
            "max-concurrent-uploads": 1, "dns": ["192.0.2.1"]}"#,
    )
    .unwrap();
    hup();
    assert!(wait_for(T, || info("{{json .Labels}}") == r#"["phase=two"]"#), "labels not reloaded");
    let raw = http_unix(&d.sock, "GET", "/v1.41/info").unwrap_or_default();
    assert_eq!(info("{{json .RegistryConfig.Mirrors}}"), r#"["http://127.0.0.1:9/"]"#, "{raw}");
    assert!(info("{{json .RegistryConfig.IndexConfigs}}").contains("192.0.2.7:5000"));
    let log = d.log_text();
    assert!(log.contains("reload: registry settings") && log.contains("max_concurrent_uploads: 1"), "{log}");
    assert!(log.contains("container defaults") && log.contains("when it next starts"), "{log}");
    // A key that left the file keeps its running value (dockerd's reload of shutdown-timeout).
    assert!(!log.contains("shutdown-timeout"), "{log}");
    // A broken file changes nothing and the daemon keeps serving.
    fs::write(&path, r#"{"labels": ["phase=three"], "ip-forward": false}"#).unwrap();
    hup();
    assert!(wait_for(T, || d.log_text().contains("the running configuration stays")), "{}", d.log_text());
    assert_eq!(info("{{json .Labels}}"), r#"["phase=two"]"#);
    assert_eq!(info("{{json .RegistryConfig.Mirrors}}"), r#"["http://127.0.0.1:9/"]"#);
}

/// A CA, a server certificate for 127.0.0.1, a client certificate signed by the CA, and one
/// signed by another CA; laid out as DOCKER_CERT_PATH wants (ca.pem, cert.pem, key.pem).
struct Certs {
    dir: TempDir,
}

impl Certs {
    fn make() -> Certs {
        let dir = TempDir::new("wharf-e2e-tlsd");
        let d = &dir.0;
        openssl_ca(d, "wharf-e2e-daemon-ca");
        openssl_signed(
            d,
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        openssl_signed(d, "client", "e2e-client", "extendedKeyUsage=clientAuth\n");
        let client = d.join("client-dir");
        fs::create_dir_all(&client).unwrap();
        fs::copy(d.join("ca.crt"), client.join("ca.pem")).unwrap();
        fs::copy(d.join("client.crt"), client.join("cert.pem")).unwrap();
        fs::copy(d.join("client.key"), client.join("key.pem")).unwrap();
        // A stranger: a client certificate from a CA the daemon does not trust.
        let other = d.join("other");
        fs::create_dir_all(&other).unwrap();
        openssl_ca(&other, "some-other-ca");
        openssl_signed(&other, "client", "stranger", "extendedKeyUsage=clientAuth\n");
        Certs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.0.join(name).display().to_string()
    }

    fn daemon_args(&self, port: u16) -> Vec<String> {
        vec![
            "-H".into(),
            format!("tcp://127.0.0.1:{port}"),
            "--tlsverify".into(),
            "--tlscacert".into(),
            self.path("ca.crt"),
            "--tlscert".into(),
            self.path("server.crt"),
            "--tlskey".into(),
            self.path("server.key"),
        ]
    }
}

fn docker_tcp(d: &Daemon, port: u16, cert_path: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", cert_path)
        .env("DOCKER_CONFIG", &d.docker_config)
        .env_remove("DOCKER_CONTEXT")
        .env("DOCKER_CLI_HINTS", "false")
        .args(args);
    run_cmd(cmd, T)
}

fn curl(args: &[&str]) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20"]).args(args);
    run_cmd(cmd, T)
}

#[test]
fn docker_cli_and_docker_py_over_tls_with_client_certificates() {
    let certs = Certs::make();
    let port = free_port();
    // The harness's own unix socket stays: two hosts at once.
    let d = Daemon::start_with(DaemonOptions { extra_args: certs.daemon_args(port), ..Default::default() });
    let listening = format!("tcp://127.0.0.1:{port} (TLS)");
    assert!(wait_for(T, || d.log_text().contains(&listening)), "{}", d.log_text());
    let cert_path = certs.path("client-dir");
    docker_tcp(&d, port, &cert_path, &["version", "--format", "{{.Server.APIVersion}}"]).ok();
    let image = d.pull("library/busybox:latest");
    // run attaches (a hijacked connection) over TLS.
    let out = docker_tcp(&d, port, &cert_path, &["run", "--rm", &image, "echo", "over-tls"]);
    out.ok();
    assert_eq!(out.trimmed(), "over-tls", "{out}");
    let out = docker_tcp(&d, port, &cert_path, &["ps", "-a", "--format", "{{.Image}}"]);
    out.ok();

    // The wharf CLI reads the same environment.
    let wharf = |cert_path: &str, args: &[&str]| {
        let mut cmd = Command::new(bin("wharf"));
        cmd.env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", cert_path)
            .args(args);
        run_cmd(cmd, T)
    };
    wharf(&cert_path, &["version"]).ok().mentions(&["Server"]);
    // Without DOCKER_CERT_PATH the certificates come from the config directory, as the docker
    // CLI has it (DOCKER_CONFIG here).
    for program in [bin("wharf"), PathBuf::from("docker")] {
        let mut cmd = Command::new(&program);
        cmd.env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
            .env("DOCKER_TLS_VERIFY", "1")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", &cert_path)
            .args(["version", "--format", "{{.Server.Version}}"]);
        run_cmd(cmd, T).ok();
    }
    let out = wharf(&cert_path, &["run", "--rm", &image, "echo", "wharf-over-tls"]);
    out.ok();
    assert_eq!(out.trimmed(), "wharf-over-tls", "{out}");
    // `run -i`: the container's stdin written while its output is read, on one TLS session.
    let mut cmd = Command::new("sh");
    cmd.env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &cert_path)
        .arg("-c")
        .arg(format!(
            "printf 'one\\ntwo\\n' | {} run -i --rm {image} sh -c 'while read l; do echo got-$l; done'",
            bin("wharf").display()
        ));
    let out = run_cmd(cmd, T);
    out.ok();
    assert_eq!(out.trimmed(), "got-one\ngot-two", "{out}");
    // With a stranger's certificate (and its CA) the handshake fails.
    let stranger = certs.dir.0.join("stranger-dir");
    fs::create_dir_all(&stranger).unwrap();
    fs::copy(certs.dir.0.join("ca.crt"), stranger.join("ca.pem")).unwrap();
    fs::copy(certs.dir.0.join("other/client.crt"), stranger.join("cert.pem")).unwrap();
    fs::copy(certs.dir.0.join("other/client.key"), stranger.join("key.pem")).unwrap();
    wharf(&stranger.display().to_string(), &["version"]).fails();
    docker_tcp(&d, port, &stranger.display().to_string(), &["version"]).fails();

    let py = format!(
        "import docker\n\
         tls = docker.tls.TLSConfig(client_cert=('{c}/cert.pem', '{c}/key.pem'), ca_cert='{c}/ca.pem', verify=True)\n\
         c = docker.DockerClient(base_url='tcp://127.0.0.1:{port}', tls=tls)\n\
         print(c.containers.run('{image}', ['echo', 'py-over-tls'], remove=True).decode().strip())\n",
        c = cert_path
    );
    // docker-py from PyPI, in the venv build_py.rs makes.
    let mut cmd = Command::new(crate::build_py::venv_python());
    // requests lets these override the client's own CA (as it would for any user's session).
    cmd.env_remove("REQUESTS_CA_BUNDLE").env_remove("CURL_CA_BUNDLE").arg("-c").arg(py);
    let out = run_cmd(cmd, T);
    out.ok();
    assert_eq!(out.trimmed(), "py-over-tls", "{out}");

    // Refused at the handshake: no client certificate, or one from another CA.
    let url = format!("https://127.0.0.1:{port}/_ping");
    let ca = certs.path("ca.crt");
    curl(&["--cacert", &ca, &url]).fails();
    curl(&["--cacert", &ca, "--cert", &certs.path("other/client.crt"), "--key", &certs.path("other/client.key"), &url])
        .fails();
    let ok = curl(&["--cacert", &ca, "--cert", &certs.path("client.crt"), "--key", &certs.path("client.key"), &url]);
    ok.ok();
    assert_eq!(ok.trimmed(), "OK", "{ok}");
    // Plain HTTP on the TLS port gets no API answer.
    let plain = curl(&[&format!("http://127.0.0.1:{port}/_ping")]);
    assert!(!plain.stdout.contains("OK"), "{plain}");
}

#[test]
fn tls_without_verify_serves_any_client_and_plain_tcp_only_on_loopback() {
    let certs = Certs::make();
    let port = free_port();
    let extra = [
        "-H".to_string(),
        format!("tcp://127.0.0.1:{port}"),
        "--tls".into(),
        "--tlscert".into(),
        certs.path("server.crt"),
        "--tlskey".into(),
        certs.path("server.key"),
    ];
    let d = Daemon::start_with(DaemonOptions { extra_args: extra.to_vec(), ..Default::default() });
    let ok = curl(&["--cacert", &certs.path("ca.crt"), &format!("https://127.0.0.1:{port}/_ping")]);
    ok.ok();
    assert_eq!(ok.trimmed(), "OK", "{ok}");
    assert!(d.log_text().contains("clients are not authenticated"), "{}", d.log_text());
    drop(d);

    // Plain TCP on loopback: served, with a warning.
    let port = free_port();
    let d = Daemon::start_with(DaemonOptions {
        extra_args: vec!["-H".into(), format!("tcp://127.0.0.1:{port}")],
        ..Default::default()
    });
    let ok = curl(&[&format!("http://127.0.0.1:{port}/_ping")]);
    assert_eq!(ok.trimmed(), "OK", "{ok}");
    assert!(d.log_text().contains("without TLS"), "{}", d.log_text());
    drop(d);

    // Plain TCP on every address: refused before anything listens.
    let e = match Daemon::try_start(DaemonOptions {
        extra_args: vec!["-H".into(), format!("tcp://0.0.0.0:{}", free_port())],
        ..Default::default()
    }) {
        Ok(d) => panic!("plain TCP on 0.0.0.0 was served; log:\n{}", d.log_text()),
        Err(e) => e,
    };
    assert!(e.log.contains("without TLS") && e.log.contains("--tls=false"), "{}", e.log);
}

/// Plain TCP on a non-loopback address when forced: served with the loud warning. The address
/// is on a bridge this test makes, with no port in it (no traffic leaves the host).
#[test]
fn forced_plain_tcp_on_a_non_loopback_address_warns_loudly() {
    let link = format!("whd{}", std::process::id() % 100_000);
    let addr = format!("198.18.{}.{}", std::process::id() % 200 + 1, 7);
    let ip = |args: &[&str]| {
        let mut cmd = Command::new("ip");
        cmd.args(args);
        run_cmd(cmd, T)
    };
    ip(&["link", "add", &link, "type", "bridge"]).ok();
    struct Link(String);
    impl Drop for Link {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }
    let _link = Link(link.clone());
    ip(&["addr", "add", &format!("{addr}/32"), "dev", &link]).ok();
    ip(&["link", "set", &link, "up"]).ok();
    let port = free_port();
    let d = Daemon::start_with(DaemonOptions {
        extra_args: vec!["-H".into(), format!("tcp://{addr}:{port}"), "--tls=false".into()],
        ..Default::default()
    });
    assert!(d.log_text().contains("WITHOUT TLS"), "{}", d.log_text());
    let ok = curl(&[&format!("http://{addr}:{port}/_ping")]);
    assert_eq!(ok.trimmed(), "OK", "{ok}");
}

#[test]
fn socket_activation_with_fd_hosts() {
    let dir = TempDir::new("wharf-e2e-fd");
    let sock = dir.0.join("activated.sock");
    // systemd-socket-activate listens, then starts wharfd on the first connection with
    // LISTEN_FDS=1 and LISTEN_PID set, as systemd does with wharfd.socket.
    let name = unique("wharf-e2e-fd");
    let (data, exec) = (dir.0.join("data"), dir.0.join("exec"));
    let bridge = format!("whf{}", std::process::id() % 100_000);
    let bip = format!("10.{}.{}.1/24", 250 + std::process::id() % 5, std::process::id() % 250);
    let log = fs::File::create(dir.0.join("wharfd.log")).unwrap();
    let child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&sock)
        .arg(bin("wharfd"))
        .args(["-H", "fd://", "--cgroup-parent", &format!("/{name}"), "--bridge", &bridge, "--bip", &bip])
        .arg("--data-root")
        .arg(&data)
        .arg("--exec-root")
        .arg(&exec)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let up = wait_for(T, || {
        // The first connection starts wharfd and is then served by it.
        http_unix(&sock, "GET", "/_ping").is_some_and(|r| r.contains(" 200 "))
    });
    let log_text = fs::read_to_string(dir.0.join("wharfd.log")).unwrap_or_default();
    // systemd-socket-activate execs wharfd in its own place: this is wharfd's pid.
    crate::harness::terminate(child, Duration::from_secs(15));
    let leaks = crate::network::leaked_network(&bridge);
    assert!(up, "wharfd did not answer on the activated socket:\n{log_text}");
    assert!(log_text.contains("listening on unix://"), "{log_text}");
    assert!(leaks.is_empty(), "{leaks:?}");
    // wharfd leaves systemd's socket file alone.
    assert!(sock.exists());
    assert!(crate::harness::cgroup_dirs(&format!("/{name}")).is_empty());
}

#[test]
fn fd_host_without_activation_is_refused() {
    match Daemon::try_start(DaemonOptions { extra_args: vec!["-H".into(), "fd://".into()], ..Default::default() }) {
        Ok(d) => panic!("started; log:\n{}", d.log_text()),
        Err(e) => assert!(e.log.contains("LISTEN_PID"), "{}", e.log),
    }
}

/// A group and a user the test makes (and removes): members reach the API without root.
struct TestUser {
    user: String,
    group: String,
}

impl TestUser {
    fn make() -> TestUser {
        let n = std::process::id() % 100_000;
        let (user, group) = (format!("whu{n}"), format!("whg{n}"));
        let sh = |args: &[&str]| {
            let mut cmd = Command::new(args[0]);
            cmd.args(&args[1..]);
            run_cmd(cmd, T)
        };
        let _etc = crate::harness::ETC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        sh(&["groupadd", &group]).ok();
        let u = TestUser { user: user.clone(), group: group.clone() };
        sh(&["useradd", "--no-create-home", "--shell", "/bin/sh", "-G", &group, &user]).ok();
        u
    }

    fn curl_as(&self, sock: &Path) -> Output {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &self.user, "--", "curl", "-sS", "--max-time", "20", "--unix-socket"])
            .arg(sock)
            .arg("http://localhost/_ping");
        run_cmd(cmd, T)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _etc = crate::harness::ETC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(&self.user).status();
        let _ = Command::new("groupdel").arg(&self.group).status();
    }
}

#[test]
fn members_of_the_sockets_group_use_the_api_without_root() {
    let u = TestUser::make();
    let d =
        Daemon::start_with(DaemonOptions { extra_args: vec!["--group".into(), u.group.clone()], ..Default::default() });
    // The user must reach the socket's directory.
    let mut p = d.sock.parent().map(Path::to_path_buf);
    while let Some(dir) = p {
        let mode = fs::metadata(&dir).unwrap().mode();
        assert!(mode & 0o001 != 0, "{} is not traversable by others", dir.display());
        p = dir.parent().map(Path::to_path_buf);
    }
    let meta = fs::metadata(&d.sock).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!(meta.uid(), 0);
    let gid = fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{}:x:", u.group)).and_then(|r| r.split(':').next()?.parse::<u32>().ok()))
        .unwrap();
    assert_eq!(meta.gid(), gid);
    let ok = u.curl_as(&d.sock);
    assert_eq!(ok.trimmed(), "OK", "{ok}");
    drop(d);
    // Without the group the same user is turned away by the socket's mode.
    let d = Daemon::start_with(DaemonOptions { extra_args: vec!["--group".into(), "0".into()], ..Default::default() });
    let denied = u.curl_as(&d.sock);
    assert!(!denied.success() && !denied.stdout.contains("OK"), "{denied}");
    assert!(http_unix(&d.sock, "GET", "/_ping").is_some_and(|r| r.contains(" 200 ")), "root is turned away too");
    // A group asked for that does not exist stops the daemon.
    match Daemon::try_start(DaemonOptions {
        extra_args: vec!["--group".into(), "no-such-group-e2e".into()],
        ..Default::default()
    }) {
        Ok(d) => panic!("started; log:\n{}", d.log_text()),
        Err(e) => assert!(e.log.contains("no-such-group-e2e"), "{}", e.log),
    }
}

#[test]
fn a_pid_file_is_written_and_a_second_daemon_on_it_is_refused() {
    let dir = TempDir::new("wharf-e2e-pidfile");
    let pidfile = dir.0.join("wharfd.pid");
    let arg = vec!["--pidfile".to_string(), pidfile.display().to_string()];
    let d = Daemon::start_with(DaemonOptions { extra_args: arg.clone(), ..Default::default() });
    assert_eq!(fs::read_to_string(&pidfile).unwrap().trim(), d.pid().unwrap().to_string());
    match Daemon::try_start(DaemonOptions { extra_args: arg, ..Default::default() }) {
        Ok(d2) => panic!("a second daemon started on the same pid file; log:\n{}", d2.log_text()),
        Err(e) => assert!(e.log.contains("pid file"), "{}", e.log),
    }
    drop(d);
    assert!(!pidfile.exists(), "the pid file outlived the daemon");
}

#[test]
fn dial_stdio_proxies_a_request_to_the_daemon() {
    let d = Daemon::start();
    let mut child = Command::new(bin("wharf"))
        .arg("-H")
        .arg(d.host())
        .args(["system", "dial-stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("OK"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn install_script_puts_binaries_and_units_that_systemd_accepts() {
    let dir = TempDir::new("wharf-e2e-install");
    let (prefix, units) = (dir.0.join("prefix"), dir.0.join("units"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install");
    let install = |extra: &[&str]| {
        let mut cmd = Command::new("bash");
        cmd.arg(&script).args(["--from"]).arg(crate::harness::bin_dir()).arg("--no-build").args(extra);
        run_cmd(cmd, T)
    };
    let (p, u) = (prefix.display().to_string(), units.display().to_string());
    install(&["--prefix", &p, "--unitdir", &u]).ok();
    for b in ["wharfd", "wharf-shim", "wharf", "wharf-registry"] {
        let meta = fs::metadata(prefix.join("bin").join(b)).unwrap_or_else(|e| panic!("{b}: {e}"));
        assert!(meta.mode() & 0o111 != 0, "{b} is not executable");
    }
    let service = fs::read_to_string(units.join("wharfd.service")).unwrap();
    let exec = format!("ExecStart={p}/bin/wharfd -H fd://");
    for line in [
        exec.as_str(),
        "Delegate=yes",
        "KillMode=process",
        "LimitNOFILE=",
        "Restart=on-failure",
        "Requires=wharfd.socket",
    ] {
        assert!(service.lines().any(|l| l.starts_with(line)), "wharfd.service has no {line}:\n{service}");
    }
    let socket = fs::read_to_string(units.join("wharfd.socket")).unwrap();
    assert!(socket.contains("ListenStream=/run/wharf/wharfd.sock") && socket.contains("SocketMode=0660"), "{socket}");
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify")
        .arg(units.join("wharfd.service"))
        .arg(units.join("wharfd.socket"))
        .arg(units.join("wharf-registry.service"));
    let out = run_cmd(cmd, T);
    out.ok();
    assert!(out.stderr.trim().is_empty(), "systemd-analyze verify complains:\n{out}");

    // A staging root: files land under it, the units name the real prefix.
    let stage = dir.0.join("stage");
    install(&["--destdir", &stage.display().to_string()]).ok();
    assert!(stage.join("usr/local/bin/wharfd").is_file());
    let staged = fs::read_to_string(stage.join("etc/systemd/system/wharfd.service")).unwrap();
    assert!(staged.contains("ExecStart=/usr/local/bin/wharfd -H fd://"), "{staged}");
    // Bad input: nothing installed.
    let bad = dir.0.join("bad");
    install(&["--prefix", "relative/path", "--unitdir", &bad.display().to_string()]).fails();
    assert!(!bad.exists());
}

/// One sample of a Prometheus text page: the value of the line that starts with `series `.
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in:\n{page}"))
}

#[test]
fn metrics_addr_serves_prometheus_text() {
    let port = free_port();
    let d = Daemon::start_with(with_config(&format!(r#"{{"metrics-addr": "127.0.0.1:{port}"}}"#), &[]));
    let url = format!("http://127.0.0.1:{port}/metrics");
    let page = || {
        let out = curl(&["-f", &url]);
        out.ok();
        out.stdout
    };
    let before = page();
    assert_eq!(sample(&before, "wharf_containers{state=\"running\"}"), 0.0);
    assert_eq!(sample(&before, "wharf_image_pulls_total"), 0.0);
    curl(&["-f", &format!("http://127.0.0.1:{port}/nothing")]).fails();

    let image = d.pull("library/busybox:latest");
    d.docker(&["run", "-d", "--name", "metrics-sleeper", &image, "sleep", "600"]).ok();
    d.docker(&["run", "--rm", &image, "true"]).ok();
    d.docker(&["inspect", "no-such-container-here"]).fails();
    let local = crate::harness::TestRegistry::start(crate::harness::RegistryOptions::default());
    let pushed = local.image("e2e/metrics:pushed");
    d.docker(&["tag", &image, &pushed]).ok();
    d.docker(&["push", &pushed]).ok();

    let after = page();
    assert_eq!(sample(&after, "wharf_containers{state=\"running\"}"), 1.0, "{after}");
    assert_eq!(sample(&after, "wharf_container_starts_total"), 2.0);
    assert_eq!(sample(&after, "wharf_container_start_seconds_count"), 2.0);
    assert!(sample(&after, "wharf_container_start_seconds_sum") > 0.0);
    assert_eq!(sample(&after, "wharf_image_pulls_total"), 1.0);
    assert_eq!(sample(&after, "wharf_image_pushes_total"), 1.0);
    // busybox's layer is over 500 kB compressed, both ways.
    assert!(sample(&after, "wharf_pulled_bytes_total") > 500_000.0, "{after}");
    assert!(sample(&after, "wharf_pushed_bytes_total") > 500_000.0, "{after}");
    assert!(
        sample(&after, "wharf_api_requests_total{method=\"POST\",endpoint=\"/containers/create\",status=\"201\"}")
            >= 2.0
    );
    assert!(
        sample(
            &after,
            "wharf_api_requests_total{method=\"POST\",endpoint=\"/containers/{name}/start\",status=\"204\"}"
        ) >= 2.0
    );
    assert!(sample(&after, "wharf_api_errors_total{status=\"404\"}") >= 1.0, "{after}");
    d.docker(&["rm", "-f", "metrics-sleeper"]).ok();
}
