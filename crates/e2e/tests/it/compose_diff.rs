//! docker-compose 1.29 (Debian's, docker-py underneath) against wharfd and a private dockerd
//! side by side (issue 12): the same project (a built service with build args and labels, a
//! health check, a restart policy, a named volume filled from the image, a bind mount, network
//! aliases, an internal network, `--scale`, `init`) goes through `up --build`, `ps`, `exec`,
//! `run --rm` and `down -v --rmi local` on both engines. What compose prints, and what the
//! docker CLI then shows of the containers, networks, volumes and images compose made, must be
//! the same once ids, addresses and subnets are taken out.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::dockerd::Dockerd;
use crate::harness::{registry, unique, Daemon, Output, TempDir};

/// The docker CLI pointed at one engine.
type DockerCli<'a> = Box<dyn Fn(&[&str]) -> Output + 'a>;

/// One engine under test: how to reach it, and the docker CLI pointed at it.
struct Engine<'a> {
    name: &'static str,
    host: String,
    docker_config: &'a Path,
    docker: DockerCli<'a>,
}

fn compose(e: &Engine, dir: &Path, project: &str, args: &[&str]) -> Output {
    crate::compose::compose_at(&e.host, e.docker_config, dir, project, args)
}

/// Ids (12 or 64 hex digits) and the engine's subnets replaced by placeholders; lines sorted
/// when compose prints them from parallel workers.
fn normalize(text: &str, subnets: &[String], sort: bool) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut l = hex_ids(l);
            for (i, s) in subnets.iter().enumerate() {
                l = l.replace(s.trim_end_matches("0/24"), &format!("<subnet{i}>."));
            }
            l.split_whitespace().collect::<Vec<_>>().join(" ")
        })
        .filter(|l| !l.is_empty())
        .collect();
    if sort {
        lines.sort();
    }
    lines
}

fn hex_ids(s: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() == 12 || run.len() == 64 {
            out.push_str("<id>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn inspect(e: &Engine, args: &[&str]) -> Value {
    let out = (e.docker)(args);
    out.ok();
    out.json()
}

/// What a user sees of a container compose made, ids and addresses aside.
fn container_view(c: &Value) -> Value {
    let mut env: Vec<Value> = c["Config"]["Env"].as_array().cloned().unwrap_or_default();
    env.sort_by_key(|v| v.to_string());
    let mut labels = c["Config"]["Labels"].clone();
    // The config hash covers a built service's image id, which differs; the other compose
    // labels are the client's, equal on both (one directory and project for both runs).
    if let Some(l) = labels.as_object_mut() {
        l.remove("com.docker.compose.config-hash");
    }
    // Compose orders binds through a Python set: differently from one run to the next.
    let mut binds: Vec<Value> = c["HostConfig"]["Binds"].as_array().cloned().unwrap_or_default();
    binds.sort_by_key(|v| v.to_string());
    let networks: Value = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|nets| {
            nets.iter()
                .map(|(name, n)| {
                    let mut aliases: Vec<String> = n["Aliases"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|v| v.as_str()).map(hex_ids).collect())
                        .unwrap_or_default();
                    aliases.sort();
                    (name.clone(), json!({ "Aliases": aliases }))
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .unwrap_or(Value::Null);
    let mut mounts: Vec<Value> = c["Mounts"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    json!({
                        "Type": m["Type"], "Name": m["Name"], "Destination": m["Destination"],
                        "Mode": m["Mode"], "RW": m["RW"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    mounts.sort_by_key(|v| v["Destination"].to_string());
    json!({
        "Name": c["Name"],
        "Image": c["Config"]["Image"],
        "Cmd": c["Config"]["Cmd"],
        "Entrypoint": c["Config"]["Entrypoint"],
        "WorkingDir": c["Config"]["WorkingDir"],
        "Env": env,
        "Labels": labels,
        "Healthcheck": c["Config"]["Healthcheck"],
        "StopSignal": c["Config"]["StopSignal"],
        "Restart": c["HostConfig"]["RestartPolicy"],
        "Init": c["HostConfig"]["Init"],
        "NetworkMode": c["HostConfig"]["NetworkMode"],
        "Binds": binds,
        "PortBindings": c["HostConfig"]["PortBindings"],
        "Links": c["HostConfig"]["Links"],
        "Networks": networks,
        "Mounts": mounts,
        "Status": c["State"]["Status"],
    })
}

fn network_view(n: &Value) -> Value {
    json!({
        "Name": n["Name"], "Driver": n["Driver"], "Scope": n["Scope"], "Internal": n["Internal"],
        "Attachable": n["Attachable"], "Labels": n["Labels"], "EnableIPv6": n["EnableIPv6"],
        "IPAMDriver": n["IPAM"]["Driver"],
    })
}

/// Everything compose and the CLI show of the project on one engine, normalized.
fn run_project(e: &Engine, dir: &Path, project: &str, subnets: &[String]) -> Value {
    let up = compose(e, dir, project, &["up", "-d", "--build", "--scale", "worker=2"]);
    up.ok();
    let web = format!("{project}_web_1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while inspect(e, &["inspect", &web])[0]["State"]["Health"]["Status"] != "healthy" {
        assert!(Instant::now() < deadline, "{}: {web} never became healthy", e.name);
        std::thread::sleep(Duration::from_millis(200));
    }
    let ps = compose(e, dir, project, &["ps"]);
    ps.ok();
    let page = compose(e, dir, project, &["exec", "-T", "web", "cat", "/www/index.html"]);
    page.ok();
    let by_alias =
        compose(e, dir, project, &["exec", "-T", "--index=2", "worker", "wget", "-q", "-O", "-", "http://site/"]);
    by_alias.ok();
    let static_file = compose(e, dir, project, &["exec", "-T", "web", "cat", "/static/note.txt"]);
    static_file.ok();
    // Compose's dockerpty attaches only after the start: a command that ends at once may be
    // over before that on either engine.
    let one_off = compose(e, dir, project, &["run", "--rm", "-T", "worker", "sh", "-c", "sleep 1; echo one-off"]);
    one_off.ok();

    let names = (e.docker)(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.Names}}",
    ]);
    let mut names: Vec<String> = names.ok().stdout.lines().map(str::to_string).collect();
    names.sort();
    let containers: Vec<Value> = names.iter().map(|n| container_view(&inspect(e, &["inspect", n])[0])).collect();
    let networks: Vec<Value> = ["front", "back"]
        .iter()
        .map(|n| network_view(&inspect(e, &["network", "inspect", &format!("{project}_{n}")])[0]))
        .collect();
    let volume = &inspect(e, &["volume", "inspect", &format!("{project}_www")])[0];
    let image = &inspect(e, &["image", "inspect", &format!("{project}_web")])[0];

    let down = compose(e, dir, project, &["down", "-v", "--rmi", "local"]);
    down.ok();
    let left = (e.docker)(&["ps", "-aq", "--filter", &format!("label=com.docker.compose.project={project}")]);
    assert_eq!(left.ok().trimmed(), "", "{}: containers left after down", e.name);
    (e.docker)(&["network", "inspect", &format!("{project}_front")]).fails();
    (e.docker)(&["volume", "inspect", &format!("{project}_www")]).fails();
    (e.docker)(&["image", "inspect", &format!("{project}_web")]).fails();

    // The builder's own lines are left out on purpose: dockerd's classic builder runs a
    // container for every config-only step (ARG, CMD, LABEL: "Running in", "Removing
    // intermediate container"), wharf only for RUN; and wharf says why a step missed the
    // cache ("Cache miss: ..."). The steps, the image and its tags must be the same.
    let builder_chatter = |l: &String| {
        !(l.starts_with("---> Running in")
            || l.starts_with("Removing intermediate container")
            || l.starts_with("---> Cache miss"))
    };
    let up_lines: Vec<String> = normalize(&up.all(), subnets, true).into_iter().filter(builder_chatter).collect();
    json!({
        "up": up_lines,
        "ps": normalize(&ps.stdout, subnets, false),
        "page": page.stdout,
        "by_alias": by_alias.stdout,
        "static": static_file.stdout,
        "one_off": normalize(&one_off.stdout, subnets, false),
        "containers": containers,
        "networks": networks,
        "volume": {"Name": volume["Name"], "Driver": volume["Driver"], "Labels": volume["Labels"], "Scope": volume["Scope"]},
        "image": {"RepoTags": image["RepoTags"], "Labels": image["Config"]["Labels"], "Cmd": image["Config"]["Cmd"]},
        "down": normalize(&down.all(), subnets, true),
    })
}

fn project_files(dir: &Path, bb: &str) {
    std::fs::create_dir_all(dir.join("web")).expect("web dir");
    std::fs::create_dir_all(dir.join("static")).expect("static dir");
    std::fs::write(dir.join("static/note.txt"), "bound from the host\n").expect("note");
    std::fs::write(
        dir.join("web/Dockerfile"),
        format!(
            "FROM {bb}\nARG GREETING=unset\nRUN mkdir -p /www && echo \"$GREETING from the image\" > /www/index.html\n\
             CMD [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n"
        ),
    )
    .expect("web Dockerfile");
}

fn compose_file(bb: &str, subnets: &[String]) -> String {
    format!(
        r#"version: "3.7"
services:
  web:
    build:
      context: ./web
      args:
        GREETING: hello
      labels:
        com.example.built: "yes"
    environment:
      - MODE=test
    labels:
      com.example.tier: front
    volumes:
      - www:/www
      - ./static:/static:ro
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      timeout: 2s
      retries: 3
    restart: unless-stopped
    networks:
      front:
        aliases:
          - site
    stop_grace_period: 1s
  worker:
    image: {bb}
    command: ["sh", "-c", "exec sleep 300"]
    init: true
    depends_on:
      - web
    networks:
      - front
      - back
    stop_grace_period: 1s
volumes:
  www:
    labels:
      com.example.volume: data
networks:
  front:
    ipam:
      config:
        - subnet: {front}
  back:
    internal: true
    labels:
      com.example.net: back
    ipam:
      config:
        - subnet: {back}
"#,
        front = subnets[0],
        back = subnets[1]
    )
}

/// Two /24s of the daemon's own, derived from its unique `--bip` (as compose.rs does), and
/// two more for dockerd beside them.
fn subnets(d: &Daemon, offset: u16) -> Vec<String> {
    let parts: Vec<u16> =
        d.bip.split('/').next().unwrap_or_default().split('.').filter_map(|p| p.parse().ok()).collect();
    let (a, b) = (parts.get(1).copied().unwrap_or(200) - 100, parts.get(2).copied().unwrap_or(0));
    (0..2).map(|i| format!("10.{a}.{}.0/24", (b + 97 + offset + i) % 256)).collect()
}

#[test]
fn a_compose_project_looks_the_same_on_wharfd_and_dockerd() {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.pull("library/busybox:latest");
    let docker = Dockerd::start(&[&registry().addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    docker.cli(&["pull", "-q", &bb]).ok();
    // One directory and project name for both: compose's labels name them.
    let work = TempDir::new("wharf-e2e-compose-diff");
    let project = unique("cdiff").replace('-', "");
    project_files(&work.0, &bb);

    let mut answers = Vec::new();
    let engines = [
        (
            Engine {
                name: "wharfd",
                host: d.host(),
                docker_config: &d.docker_config,
                docker: Box::new(|a| d.docker(a)),
            },
            0,
        ),
        (
            Engine {
                name: "dockerd",
                host: docker.host(),
                docker_config: &d.docker_config,
                docker: Box::new(|a| docker.cli(a)),
            },
            2,
        ),
    ];
    for (e, offset) in &engines {
        let nets = subnets(&d, *offset);
        std::fs::write(work.0.join("docker-compose.yml"), compose_file(&bb, &nets)).expect("compose file");
        answers.push(run_project(e, &work.0, &project, &nets));
    }
    let (ours, theirs) = (&answers[0], &answers[1]);
    let mut differences = Vec::new();
    for (k, theirs_v) in theirs.as_object().into_iter().flatten() {
        if &ours[k] != theirs_v {
            differences.push(format!("`{k}`:\n  wharfd  {}\n  dockerd {theirs_v}", ours[k]));
        }
    }
    assert!(differences.is_empty(), "{} differences:\n{}", differences.len(), differences.join("\n"));
    // And what both say, so that a change in dockerd shows too.
    assert_eq!(ours["page"], "hello from the image\n");
    assert_eq!(ours["by_alias"], "hello from the image\n");
    assert_eq!(ours["static"], "bound from the host\n");
    assert_eq!(ours["containers"].as_array().map(Vec::len), Some(3));
}
