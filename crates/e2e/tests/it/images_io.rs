//! Image transport: push into an empty registry (blobs skipped when present, mounted across
//! repositories, the image pulled back and run), login/logout against a registry that wants
//! credentials, and history.

use crate::harness::{Cli, Daemon, RegistryOptions, TempDir, TestRegistry};

const USER: &str = "pushuser";
const PASSWORD: &str = "push-s3cret";

fn push_pull_back(cli: Cli) {
    let d = Daemon::start();
    let src = d.pull("library/busybox:latest");
    let reg = TestRegistry::start(RegistryOptions { access_log: true, ..Default::default() });
    let target = reg.image("pushed/box:v1");
    d.cli(cli, &["tag", &src, &target]).ok();

    let out = d.cli(cli, &["push", &target]);
    out.ok().mentions(&["Pushed", "v1: digest: sha256:"]);
    let log = reg.log_text();
    assert!(log.contains("PUT /v2/pushed/box/manifests/v1"), "no manifest put:\n{log}");

    // Again: the registry has every blob.
    d.cli(cli, &["push", &target]).ok().mentions(&["Layer already exists"]);

    // Another repository of the same registry: the layers are mounted, not uploaded again.
    let other = reg.image("other/box:v2");
    d.cli(cli, &["tag", &src, &other]).ok();
    d.cli(cli, &["push", &other]).ok().mentions(&["Mounted from pushed/box"]);
    assert!(reg.log_text().contains("mount=sha256"), "no mount request:\n{}", reg.log_text());

    // The registry's copy pulls back into an empty daemon and runs.
    let fresh = Daemon::start();
    fresh.cli(cli, &["pull", &other]).ok();
    let run = fresh.cli(cli, &["run", "--rm", &other, "echo", "round trip"]);
    assert_eq!(run.ok().trimmed(), "round trip");
    let digest = d.inspect(cli, &target)["RepoDigests"].to_string();
    assert!(digest.contains("pushed/box@sha256:"), "{digest}");
}
both!(push_pull_back);

#[test]
fn push_in_chunks_and_errors() {
    let d = Daemon::start();
    let src = d.pull("library/busybox:latest");
    let reg = TestRegistry::start(RegistryOptions::default());
    let target = reg.image("chunked/box:1");
    d.wharf(&["tag", &src, &target]).ok();
    // Chunked upload through the API: 64 KiB PATCHes.
    let sock = d.host();
    let sock = sock.trim_start_matches("unix://");
    let path = format!("/images/{}/push?tag=1&chunk-size=65536", reg.image("chunked/box"));
    let resp = crate::harness::http_unix(std::path::Path::new(sock), "POST", &path).unwrap_or_default();
    assert!(resp.contains("1: digest: sha256:") && !resp.contains("errorDetail"), "{resp}");
    Daemon::start().wharf(&["pull", &target]).ok();

    // Nothing local under that name: 404 before any progress.
    d.wharf(&["push", &reg.image("nosuch/thing:1")]).fails().mentions(&["does not exist locally"]);
    d.docker(&["push", &reg.image("nosuch/thing:1")]).fails().mentions(&["does not exist locally"]);
    // A registry nobody listens on.
    d.wharf(&["tag", &src, "127.0.0.1:1/x/y:1"]).ok();
    d.wharf(&["push", "127.0.0.1:1/x/y:1"]).fails().mentions(&["127.0.0.1:1"]);
}

fn login_push_logout(cli: Cli) {
    let reg =
        TestRegistry::start(RegistryOptions { htpasswd: Some((USER.into(), PASSWORD.into())), ..Default::default() });
    let d = Daemon::start();
    let src = d.pull("library/busybox:latest");
    let target = reg.image("secret/box:1");
    d.cli(cli, &["tag", &src, &target]).ok();
    let home = TempDir::new("wharf-e2e-home");
    let config = match cli {
        Cli::Wharf => home.0.join(".docker/config.json"),
        Cli::Docker => d.docker_config.join("config.json"),
    };
    let run = |args: &[&str]| match cli {
        Cli::Wharf => d.wharf_env(&[("HOME", &home.0)], args),
        Cli::Docker => d.docker(args),
    };

    run(&["push", &target]).fails().mentions(&["unauthorized"]);
    run(&["login", "-u", USER, "-p", "wrong", &reg.addr]).fails().mentions(&["unauthorized"]);
    assert!(!std::fs::read_to_string(&config).unwrap_or_default().contains(&reg.addr));

    run(&["login", "-u", USER, "-p", PASSWORD, &reg.addr]).ok().mentions(&["Login Succeeded"]);
    let text = std::fs::read_to_string(&config).expect("config.json written");
    assert!(text.contains(&reg.addr) && text.contains("\"auth\""), "{text}");
    run(&["push", &target]).ok().mentions(&["Pushed"]);

    run(&["logout", &reg.addr]).ok().mentions(&["Removing login credentials"]);
    assert!(!std::fs::read_to_string(&config).unwrap_or_default().contains(&reg.addr));
    run(&["push", &target]).fails().mentions(&["unauthorized"]);
}
both!(login_push_logout);

fn history(cli: Cli) {
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    let out = d.cli(cli, &["history", &image]);
    let text = out.ok().stdout.clone();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("IMAGE") && lines[0].contains("CREATED BY"), "{text}");
    assert!(lines.len() >= 2, "{text}");
    let id = d.inspect(cli, &image)["Id"].as_str().unwrap_or_default().to_string();
    assert!(lines[1].starts_with(&id["sha256:".len()..][..12]), "{text}");
    let quiet = d.cli(cli, &["history", "-q", "--no-trunc", &image]);
    assert_eq!(quiet.ok().stdout.lines().next(), Some(id.as_str()));
    d.cli(cli, &["history", "nosuch:image"]).fails().mentions(&["No such image"]);
}
both!(history);
