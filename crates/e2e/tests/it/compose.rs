//! docker-compose (Debian's 1.29, docker-py underneath, API 1.38 paths) against wharfd: a web
//! service serving a file from a named volume, a client fetching it by service name, a port
//! published on 127.0.0.1; `up -d`, `ps`, `logs`, then `down -v` leaving nothing behind.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{registry, run_cmd, unique, Daemon, Output};

fn compose(d: &Daemon, dir: &Path, project: &str, args: &[&str]) -> Output {
    compose_at(&d.host(), &d.docker_config, dir, project, args)
}

/// `docker-compose -p PROJECT ARGS` in `dir` against the engine at `host` (a wharfd or a
/// private dockerd), builds through docker-py's classic build API.
pub(crate) fn compose_at(host: &str, docker_config: &Path, dir: &Path, project: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("docker-compose");
    cmd.current_dir(dir)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", docker_config)
        .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
        .env("COMPOSE_DOCKER_CLI_BUILD", "0")
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .args(["--ansi", "never", "-p", project])
        .args(args);
    run_cmd(cmd, Duration::from_secs(180))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// A /24 of this daemon's own, derived from its unique `--bip` as network_user does.
fn subnet(d: &Daemon) -> String {
    let parts: Vec<u16> =
        d.bip.split('/').next().unwrap_or_default().split('.').filter_map(|p| p.parse().ok()).collect();
    let (a, b) = (parts.get(1).copied().unwrap_or(200) - 100, parts.get(2).copied().unwrap_or(0));
    format!("10.{a}.{}.0/24", (b + 5 * 7) % 256)
}

fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut body = String::new();
            if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok() && s.read_to_string(&mut body).is_ok() && !body.is_empty()
            {
                return body;
            }
        }
        if Instant::now() > deadline {
            return String::new();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn compose_up_ps_logs_down_leaves_nothing() {
    if Command::new("docker-compose").arg("version").output().is_err() {
        panic!("docker-compose is not installed (apt-get install docker-compose)");
    }
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    let port = free_port();
    let project = unique("cmp").replace('-', "");
    let dir = d.dir.join("compose");
    std::fs::create_dir_all(&dir).expect("compose dir");
    // The stop grace period keeps `down` short: sh and httpd as pid 1 ignore SIGTERM.
    let file = format!(
        r#"version: "3.7"
services:
  web:
    image: {bb}
    command: sh -c 'echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www'
    volumes:
      - www:/www
    ports:
      - "127.0.0.1:{port}:80"
    stop_grace_period: 1s
  client:
    image: {bb}
    command: sh -c 'for i in $$(seq 50); do wget -q -O - http://web/ && break; sleep 0.2; done; exec sleep 300'
    depends_on:
      - web
    stop_grace_period: 1s
volumes:
  www:
networks:
  default:
    ipam:
      config:
        - subnet: {subnet}
"#,
        subnet = subnet(&d)
    );
    std::fs::write(dir.join("docker-compose.yml"), file).expect("write compose file");

    compose(&d, &dir, &project, &["up", "-d"]).ok();
    let ps = compose(&d, &dir, &project, &["ps"]);
    ps.ok();
    assert!(
        ps.stdout.contains(&format!("{project}_web_1")) && ps.stdout.contains(&format!("{project}_client_1")),
        "{ps}"
    );
    assert!(ps.stdout.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    // Each service lists its own container only (label filters are ANDed).
    assert_eq!(ps.stdout.matches(&format!("{project}_web_1")).count(), 1, "{ps}");

    let body = http_get(port);
    assert!(body.contains("200 OK") && body.contains("hello-from-web"), "published port: {body:?}");

    // The client found `web` by name through the network's DNS.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let logs = compose(&d, &dir, &project, &["logs", "--no-color", "client"]);
        logs.ok();
        if logs.stdout.contains("hello-from-web") {
            break;
        }
        assert!(Instant::now() < deadline, "the client never fetched http://web/:\n{logs}");
        std::thread::sleep(Duration::from_millis(300));
    }

    let net = format!("{project}_default");
    let net_id = d.wharf(&["network", "inspect", "-f", "{{.Id}}", &net]);
    net_id.ok();
    let bridge = format!("br-{}", &net_id.trimmed()[..12]);
    assert!(Path::new(&format!("/sys/class/net/{bridge}")).exists(), "bridge {bridge}");
    let vol = d.wharf(&["volume", "inspect", &format!("{project}_www")]);
    vol.ok();

    compose(&d, &dir, &project, &["down", "-v"]).ok();
    let left = d.wharf(&["ps", "-aq"]);
    assert_eq!(left.trimmed(), "", "containers left: {left}");
    let nets = d.wharf(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.stdout.contains(&net), "network left: {nets}");
    let vols = d.wharf(&["volume", "ls", "-q"]);
    assert!(!vols.stdout.contains(&format!("{project}_www")), "volume left: {vols}");
    assert!(!Path::new(&format!("/sys/class/net/{bridge}")).exists(), "bridge {bridge} left");
    let table = format!("wharf_{}", d.bridge);
    let rules =
        Command::new("nft").args(["list", "table", "ip", &table]).output().map(|o| o.stdout).unwrap_or_default();
    let rules = String::from_utf8_lossy(&rules);
    let prefix = subnet(&d).trim_end_matches(".0/24").to_string();
    assert!(!rules.contains(&bridge) && !rules.contains(&prefix) && !rules.contains("dnat"), "rules left:\n{rules}");
    assert!(
        std::net::TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().expect("addr"),
            Duration::from_millis(300)
        )
        .is_err(),
        "port {port} still answers"
    );
}

/// A service on two networks (compose creates it on the first and connects the second before
/// starting it): clients on either network fetch it by name, a client on one network cannot
/// resolve the other network's service, and `down` removes both networks and their bridges.
#[test]
fn compose_service_on_two_networks() {
    if Command::new("docker-compose").arg("version").output().is_err() {
        panic!("docker-compose is not installed (apt-get install docker-compose)");
    }
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    let project = unique("cmp2").replace('-', "");
    let dir = d.dir.join("compose2");
    std::fs::create_dir_all(&dir).expect("compose dir");
    let base = subnet(&d);
    let front = base.replace(".0/24", ".0/26");
    let back = base.replace(".0/24", ".64/26");
    let fetch = "for i in $$(seq 50); do wget -q -O - http://api/ && break; sleep 0.2; done; exec sleep 300";
    let file = format!(
        r#"version: "3.7"
services:
  api:
    image: {bb}
    command: sh -c 'echo hello-from-api > /tmp/index.html && exec httpd -f -p 80 -h /tmp'
    networks: [front, back]
    stop_grace_period: 1s
  db:
    image: {bb}
    command: sleep 300
    networks: [back]
    stop_grace_period: 1s
  web:
    image: {bb}
    command: sh -c '{fetch}'
    networks: [front]
    depends_on: [api]
    stop_grace_period: 1s
  worker:
    image: {bb}
    command: sh -c '{fetch}'
    networks: [back]
    depends_on: [api]
    stop_grace_period: 1s
networks:
  front:
    ipam:
      config:
        - subnet: {front}
  back:
    ipam:
      config:
        - subnet: {back}
"#
    );
    std::fs::write(dir.join("docker-compose.yml"), file).expect("write compose file");
    compose(&d, &dir, &project, &["up", "-d"]).ok();
    let api = format!("{project}_api_1");
    let v = d.wharf(&["inspect", &api]).json();
    let nets = &v[0]["NetworkSettings"]["Networks"];
    for n in ["front", "back"] {
        let ip = nets[format!("{project}_{n}")]["IPAddress"].as_str().unwrap_or_default().to_string();
        assert!(!ip.is_empty(), "api has an address on {n}: {nets}");
    }
    let a = d.wharf(&["exec", &api, "ip", "-4", "addr"]);
    a.ok();
    assert!(a.stdout.contains("eth0") && a.stdout.contains("eth1"), "{a}");
    for client in ["web", "worker"] {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let logs = compose(&d, &dir, &project, &["logs", "--no-color", client]);
            logs.ok();
            if logs.stdout.contains("hello-from-api") {
                break;
            }
            assert!(Instant::now() < deadline, "{client} never fetched http://api/:\n{logs}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    // web is on front only: db (back) is not a name it knows; api, on both, knows db.
    let web = format!("{project}_web_1");
    let out = d.wharf(&["exec", &web, "nslookup", "db"]);
    assert!(!out.success() || !out.stdout.contains("Name:\tdb"), "{out}");
    let out = d.wharf(&["exec", &api, "nslookup", "db"]);
    assert!(out.stdout.contains("Name:\tdb"), "{out}");

    let bridges: Vec<String> = ["front", "back"]
        .iter()
        .map(|n| {
            let id = d.wharf(&["network", "inspect", "-f", "{{.Id}}", &format!("{project}_{n}")]);
            id.ok();
            format!("br-{}", &id.trimmed()[..12])
        })
        .collect();
    compose(&d, &dir, &project, &["down"]).ok();
    let left = d.wharf(&["ps", "-aq"]);
    assert_eq!(left.trimmed(), "", "containers left: {left}");
    let nets = d.wharf(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.stdout.contains(&project), "networks left: {nets}");
    for b in bridges {
        assert!(!Path::new(&format!("/sys/class/net/{b}")).exists(), "bridge {b} left");
    }
}

/// `docker-compose up --build` of two services built from Dockerfiles (one multi-stage) and one
/// from an image: the built images run, find each other by service name, and a second
/// `build` is all cache.
#[test]
fn compose_up_build_builds_services_and_rebuilds_from_cache() {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    let project = unique("cmpb").replace('-', "");
    let dir = d.dir.join("compose-build");
    for sub in ["web", "client"] {
        std::fs::create_dir_all(dir.join(sub)).expect("compose dir");
    }
    std::fs::write(
        dir.join("web/Dockerfile"),
        format!(
            "FROM {bb} AS page\nRUN mkdir /www && echo built-web > /www/index.html\n\
             FROM {bb}\nCOPY --from=page /www /www\nCMD [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n"
        ),
    )
    .expect("web Dockerfile");
    std::fs::write(
        dir.join("client/fetch.sh"),
        "for i in $(seq 50); do wget -q -O - http://web/ && break; sleep 0.2; done\nexec sleep 300\n",
    )
    .expect("fetch.sh");
    std::fs::write(
        dir.join("client/Dockerfile"),
        format!("FROM {bb}\nCOPY fetch.sh /fetch.sh\nCMD [\"sh\", \"/fetch.sh\"]\n"),
    )
    .expect("client Dockerfile");
    let file = format!(
        r#"version: "3.7"
services:
  web:
    build: ./web
    stop_grace_period: 1s
  client:
    build:
      context: ./client
    depends_on:
      - web
    stop_grace_period: 1s
  plain:
    image: {bb}
    command: sleep 300
    stop_grace_period: 1s
networks:
  default:
    ipam:
      config:
        - subnet: {subnet}
"#,
        subnet = subnet(&d)
    );
    std::fs::write(dir.join("docker-compose.yml"), file).expect("write compose file");

    let up = compose(&d, &dir, &project, &["up", "-d", "--build"]);
    up.ok();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = compose(&d, &dir, &project, &["logs", "--no-color", "client"]);
        logs.ok();
        if logs.stdout.contains("built-web") {
            break;
        }
        assert!(Instant::now() < deadline, "the built client never fetched the built web:\n{logs}\n{up}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let again = compose(&d, &dir, &project, &["build"]);
    again.ok();
    assert!(!again.all().contains("Running in"), "the second build ran a step:\n{again}");
    assert!(again.all().contains("Using cache"), "{again}");
    compose(&d, &dir, &project, &["down", "-v", "--rmi", "local"]).ok();
}
