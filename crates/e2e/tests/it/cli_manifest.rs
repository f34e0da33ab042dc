//! `wharf manifest`: a manifest list made from two single-platform images (the fixtures'
//! busybox for the host's architecture and for another), annotated, pushed to a plain-HTTP
//! registry, inspected, pulled through wharfd; each step also done by the docker CLI, whose
//! answers (and local store) must be the same.

use std::process::Command;
use std::time::Duration;

use crate::harness::{bin, run_cmd, Daemon, Output, RegistryOptions, TempDir, TestRegistry};

/// `program ARGS` with a CLI config dir of the test's and no daemon in the environment.
fn cli(program: &str, config: &TempDir, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.env("DOCKER_CONFIG", &config.0)
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .args(args);
    run_cmd(cmd, Duration::from_secs(120))
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no fixture architecture for {other}"),
    }
}

#[test]
fn lists_made_annotated_pushed_and_pulled_as_docker_does() {
    let reg = TestRegistry::start(RegistryOptions { only: vec!["test/multiarch".into()], ..Default::default() });
    let platforms = &reg.summary["images"]["test/multiarch:latest"]["platforms"];
    let arch = host_arch();
    let other = if arch == "arm64" { "amd64" } else { "arm64" };
    let member = |a: &str| {
        let digest = platforms[a]["manifest_digest"].as_str().expect("fixture digest");
        format!("{}@{digest}", reg.image("test/multiarch"))
    };
    let (native, foreign) = (member(arch), member(other));

    let wharf_cfg = TempDir::new("manifest-wharf");
    let docker_cfg = TempDir::new("manifest-docker");
    let wharf_bin = bin("wharf");
    let w = |args: &[&str]| cli(wharf_bin.to_str().unwrap(), &wharf_cfg, args);
    let d = |args: &[&str]| cli("docker", &docker_cfg, args);
    // The docker CLI on wharf's store: the lists are shared.
    let d_on_wharf = |args: &[&str]| cli("docker", &wharf_cfg, args);

    let wlist = reg.image("test/wharf-list:v1");
    let dlist = reg.image("test/docker-list:v1");
    let mut annotation = vec!["--os-version", "1.0", "--os-features", "f1,f2"];
    if other == "arm64" {
        annotation.extend(["--variant", "v8"]);
    }

    // The same steps with both CLIs.
    for (run, list) in [(&w as &dyn Fn(&[&str]) -> Output, &wlist), (&d, &dlist)] {
        let out = run(&["manifest", "create", "--insecure", list, &foreign, &native]);
        assert_eq!(out.ok().trimmed(), format!("Created manifest list {list}"));
        let mut args = vec!["manifest", "annotate"];
        args.extend(&annotation);
        args.extend([list.as_str(), foreign.as_str()]);
        run(&args).ok();
    }

    // The local list, as each CLI shows it, and as docker reads wharf's store.
    let local = w(&["manifest", "inspect", &wlist]).ok().stdout.clone();
    assert_eq!(d_on_wharf(&["manifest", "inspect", &wlist]).ok().stdout, local);
    assert_eq!(
        d_on_wharf(&["manifest", "inspect", "-v", &wlist]).ok().stdout,
        w(&["manifest", "inspect", "-v", &wlist]).ok().stdout
    );
    let local_d = d(&["manifest", "inspect", &dlist]).ok().stdout.clone();
    assert_eq!(local, local_d, "wharf's list differs from docker's");
    let index: serde_json::Value = serde_json::from_str(&local).expect("list JSON");
    let entries = index["manifests"].as_array().expect("manifests");
    assert_eq!(entries.len(), 2, "{local}");
    let annotated = entries.iter().find(|e| e["platform"]["architecture"] == other).expect("foreign entry");
    assert_eq!(annotated["platform"]["os.version"], "1.0", "{local}");
    assert_eq!(annotated["platform"]["os.features"], serde_json::json!(["f1", "f2"]), "{local}");

    // Refusals, with docker's words, and nothing written by them.
    w(&["manifest", "create", "--insecure", &wlist, &native]).fails().mentions(&["--amend"]);
    d(&["manifest", "create", "--insecure", &dlist, &native]).fails().mentions(&["--amend"]);
    let multi = reg.image("test/multiarch:latest");
    w(&["manifest", "create", "--insecure", &reg.image("test/x:1"), &multi]).fails().mentions(&["is a manifest list"]);
    w(&["manifest", "annotate", "--arch", "nonsense", &wlist, &native]).fails().mentions(&["unsupported os/arch"]);
    w(&["manifest", "annotate", &wlist, &reg.image("test/absent:1")]).fails().mentions(&["does not exist in"]);
    w(&["manifest", "inspect", "--insecure", &reg.image("test/absent:1")]).fails().mentions(&["no such manifest"]);
    assert_eq!(w(&["manifest", "inspect", &wlist]).ok().stdout, local, "a refusal changed the list");

    // Pushed: the same list bytes (so the same digest) from both CLIs.
    let wpush = w(&["manifest", "push", "--insecure", &wlist]).ok().stdout.clone();
    let dpush = d(&["manifest", "push", "--insecure", "--purge", &dlist]).ok().stdout.clone();
    let last = |s: &str| s.lines().last().unwrap_or("").to_string();
    assert!(last(&wpush).starts_with("sha256:"), "{wpush}");
    assert_eq!(last(&wpush), last(&dpush), "wharf pushed:\n{wpush}\ndocker pushed:\n{dpush}");
    assert_eq!(wpush.lines().count(), dpush.lines().count(), "{wpush}\n{dpush}");

    // The pushed list, inspected from the registry by both.
    for verbose in [false, true] {
        let mut args = vec!["manifest", "inspect", "--insecure"];
        if verbose {
            args.push("-v");
        }
        args.push(&dlist);
        assert_eq!(w(&args).ok().stdout, d(&args).ok().stdout, "inspect {args:?}");
    }
    // And one of its manifests.
    assert_eq!(
        w(&["manifest", "inspect", "--insecure", &native]).ok().stdout,
        d(&["manifest", "inspect", "--insecure", &native]).ok().stdout
    );

    // rm: gone for both CLIs; a second rm fails as docker's.
    w(&["manifest", "rm", &wlist]).ok();
    let left: Vec<_> = std::fs::read_dir(wharf_cfg.0.join("manifests")).expect("manifests dir").collect();
    assert!(left.is_empty(), "rm left {left:?}");
    w(&["manifest", "rm", &wlist]).fails().mentions(&["No such manifest"]);
    d_on_wharf(&["manifest", "rm", &wlist]).fails().mentions(&["No such manifest"]);

    // A pull through wharfd picks the host's platform from the pushed list.
    let daemon = Daemon::start();
    daemon.wharf(&["pull", &wlist]).ok();
    let env = daemon.wharf(&["image", "inspect", "--format", "{{.Architecture}} {{json .Config.Env}}", &wlist]);
    let env = env.ok().trimmed().to_string();
    assert!(env.starts_with(&format!("{arch} ")), "{env}");
    assert!(env.contains(&format!("WHARF_ARCH={arch}")), "{env}");
}

#[test]
fn a_registry_that_wants_credentials_gets_the_docker_configs() {
    let reg = TestRegistry::start(RegistryOptions {
        only: vec!["test/multiarch".into()],
        htpasswd: Some(("mfuser".into(), "s3cret".into())),
        ..Default::default()
    });
    let digest = reg.summary["images"]["test/multiarch:latest"]["platforms"][host_arch()]["manifest_digest"]
        .as_str()
        .expect("fixture digest")
        .to_string();
    let member = format!("{}@{digest}", reg.image("test/multiarch"));
    let list = reg.image("test/authed-list:1");
    let cfg = TempDir::new("manifest-auth");
    let wharf_bin = bin("wharf");
    let w = |args: &[&str]| cli(wharf_bin.to_str().unwrap(), &cfg, args);

    w(&["manifest", "inspect", "--insecure", &member]).fails().mentions(&["unauthorized"]);
    w(&["manifest", "create", "--insecure", &list, &member]).fails().mentions(&["unauthorized"]);
    assert!(!cfg.0.join("manifests").exists(), "a refused create left a list");

    // As `docker login` keeps them: base64 of "mfuser:s3cret" under the registry's address.
    let config = serde_json::json!({"auths": {reg.addr.clone(): {"auth": "bWZ1c2VyOnMzY3JldA=="}}});
    std::fs::write(cfg.0.join("config.json"), config.to_string()).expect("write config.json");
    w(&["manifest", "create", "--insecure", &list, &member]).ok();
    let pushed = w(&["manifest", "push", "--insecure", "--purge", &list]).ok().stdout.clone();
    let digest = pushed.lines().last().unwrap_or("").to_string();
    assert!(digest.starts_with("sha256:"), "{pushed}");
    let left: Vec<_> = std::fs::read_dir(cfg.0.join("manifests")).expect("manifests dir").collect();
    assert!(left.is_empty(), "--purge left {left:?}");
    let index = w(&["manifest", "inspect", "--insecure", &list]).ok().json();
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(1), "{index}");
    // docker reads the same credentials and sees the same list.
    assert_eq!(
        cli("docker", &cfg, &["manifest", "inspect", "--insecure", &list]).ok().stdout,
        w(&["manifest", "inspect", "--insecure", &list]).ok().stdout
    );
}
