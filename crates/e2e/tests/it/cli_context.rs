//! `wharf context`: two wharfds, a context for each (one made by `wharf`, one by the docker
//! CLI, in the same store), selected by `--context`, `context use`, `DOCKER_CONTEXT`, and
//! overridden by `DOCKER_HOST`, as the docker CLI selects them.

use std::process::Command;
use std::time::Duration;

use crate::harness::{bin, run_cmd, Daemon, Output, TempDir};

/// `program ARGS` with the test's CLI config and only the given environment for the daemon.
fn cli(program: &str, config: &TempDir, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.env("DOCKER_CONFIG", &config.0)
        .env("DOCKER_CLI_HINTS", "false")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args);
    run_cmd(cmd, Duration::from_secs(60))
}

#[test]
fn contexts_select_the_daemon_and_are_shared_with_the_docker_cli() {
    let (one, two) = (Daemon::start(), Daemon::start());
    let config = TempDir::new("contexts");
    let wharf = bin("wharf");
    let wharf = wharf.to_str().unwrap();
    let w = |env: &[(&str, &str)], args: &[&str]| cli(wharf, &config, env, args);
    let docker = |env: &[(&str, &str)], args: &[&str]| cli("docker", &config, env, args);

    let host_one = format!("host={}", one.host());
    w(&[], &["context", "create", "one", "--description", "the first", "--docker", &host_one]).ok();
    docker(&[], &["context", "create", "two", "--docker", &format!("host={}", two.host())]).ok();
    w(&[], &["context", "create", "one", "--docker", &host_one]).fails().mentions(&["already exists"]);
    w(&[], &["context", "create", "default"]).fails().mentions(&["reserved"]);

    // Each context reaches its own daemon: mark each with a volume.
    w(&[], &["--context", "one", "volume", "create", "mark-one"]).ok();
    w(&[], &["-c", "two", "volume", "create", "mark-two"]).ok();
    let on_one = one.wharf(&["volume", "ls", "-q"]).ok().stdout.clone();
    let on_two = two.wharf(&["volume", "ls", "-q"]).ok().stdout.clone();
    assert!(on_one.contains("mark-one") && !on_one.contains("mark-two"), "{on_one}");
    assert!(on_two.contains("mark-two") && !on_two.contains("mark-one"), "{on_two}");
    let volumes = |out: &Output| out.stdout.lines().map(str::to_string).collect::<Vec<_>>();

    // `context use`, seen by both CLIs.
    w(&[], &["context", "use", "two"]).ok();
    assert_eq!(docker(&[], &["context", "show"]).ok().trimmed(), "two");
    assert_eq!(volumes(w(&[], &["volume", "ls", "-q"]).ok()), ["mark-two"]);
    assert_eq!(volumes(docker(&[], &["volume", "ls", "-q"]).ok()), ["mark-two"]);
    docker(&[], &["context", "use", "one"]).ok();
    assert_eq!(w(&[], &["context", "show"]).ok().trimmed(), "one");
    assert_eq!(volumes(w(&[], &["volume", "ls", "-q"]).ok()), ["mark-one"]);

    // DOCKER_CONTEXT over the config; DOCKER_HOST and -H over both; -c over DOCKER_HOST.
    assert_eq!(volumes(w(&[("DOCKER_CONTEXT", "two")], &["volume", "ls", "-q"]).ok()), ["mark-two"]);
    let host_two = two.host();
    assert_eq!(volumes(w(&[("DOCKER_HOST", &host_two)], &["volume", "ls", "-q"]).ok()), ["mark-two"]);
    assert_eq!(w(&[("DOCKER_HOST", &host_two)], &["context", "show"]).ok().trimmed(), "default");
    assert_eq!(volumes(w(&[], &["-H", &host_two, "volume", "ls", "-q"]).ok()), ["mark-two"]);
    assert_eq!(volumes(w(&[("DOCKER_HOST", &host_two)], &["-c", "one", "volume", "ls", "-q"]).ok()), ["mark-one"]);
    w(&[], &["-c", "one", "-H", &host_two, "volume", "ls"]).fails().mentions(&["either specify --host or --context"]);
    w(&[], &["-c", "nosuch", "volume", "ls"]).fails().mentions(&["nosuch"]);

    // Both list the same contexts, the current one marked.
    let names = |out: &Output| out.stdout.lines().map(str::to_string).collect::<Vec<_>>();
    let theirs = names(docker(&[], &["context", "ls", "--format", "{{.Name}} {{.Current}} {{.DockerEndpoint}}"]).ok());
    let ours = names(w(&[], &["context", "ls", "--format", "{{.Name}} {{.Current}} {{.DockerEndpoint}}"]).ok());
    // The default context's endpoint is each CLI's own default socket; the stored ones agree.
    assert_eq!(theirs[1..], ours[1..], "docker:\n{theirs:?}\nwharf:\n{ours:?}");
    assert_eq!(ours[1], format!("one true {}", one.host()));
    let inspect = |out: &Output| out.json();
    assert_eq!(
        inspect(w(&[], &["context", "inspect", "one"]).ok()),
        inspect(docker(&[], &["context", "inspect", "one"]).ok())
    );

    // Export and import, across the two CLIs both ways.
    let archive = config.0.join("one.dockercontext");
    let archive = archive.to_str().unwrap();
    w(&[], &["context", "export", "one", archive]).ok();
    docker(&[], &["context", "import", "one-again", archive]).ok();
    assert_eq!(
        w(&[], &["context", "inspect", "--format", "{{.Endpoints.docker.Host}}", "one-again"]).ok().trimmed(),
        one.host()
    );
    let archive2 = config.0.join("two.dockercontext");
    let archive2 = archive2.to_str().unwrap();
    docker(&[], &["context", "export", "two", archive2]).ok();
    w(&[], &["context", "import", "two-again", archive2]).ok();
    assert_eq!(volumes(w(&[], &["-c", "two-again", "volume", "ls", "-q"]).ok()), ["mark-two"]);
    w(&[], &["context", "rm", "one-again", "two-again"]).ok();

    // Removing the context in use needs -f, and leaves `default` current.
    w(&[], &["context", "rm", "one"]).fails().mentions(&["in use"]);
    w(&[], &["context", "rm", "-f", "one"]).ok();
    assert_eq!(docker(&[], &["context", "show"]).ok().trimmed(), "default");
    assert_eq!(names(docker(&[], &["context", "ls", "-q"]).ok()), ["default", "two"]);
}

/// The Swarm commands, asked of a daemon that is not in a swarm: `wharf` against wharfd (here
/// through a context, and `stack deploy -c` is the compose file there, not `--context`) says
/// what the docker CLI says against a private dockerd, with the same exit code. `swarm init`
/// and `join` would make that dockerd a manager; they are compared against wharfd instead.
#[test]
fn swarm_commands_answer_as_the_docker_cli_does() {
    let dockerd = crate::dockerd::Dockerd::start(&[]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    let d = Daemon::start();
    let config = TempDir::new("swarm-cli");
    let compose = config.0.join("compose.yml");
    std::fs::write(&compose, "services:\n  web:\n    image: busybox\n").unwrap();
    let compose = compose.to_str().unwrap();
    let payload = config.0.join("payload");
    std::fs::write(&payload, "s3cret\n").unwrap();
    let payload = payload.to_str().unwrap();
    let wharf = bin("wharf");
    let wharf = wharf.to_str().unwrap();
    cli(wharf, &config, &[], &["context", "create", "here", "--docker", &format!("host={}", d.host())]).ok();
    // The last line (`stack deploy` first notes docker's --detach default), without the
    // program's own prefix, which names the program.
    let message = |o: &Output| {
        let s = o.stderr.trim().lines().last().unwrap_or("").to_string();
        s.strip_prefix("wharf: ").or(s.strip_prefix("docker: ")).map(str::to_string).unwrap_or(s)
    };
    let lines: &[&[&str]] = &[
        &["service", "ls"],
        &["service", "ps", "web"],
        &["service", "inspect", "web"],
        &["service", "rm", "web"],
        &["service", "logs", "web"],
        &["service", "scale", "web=2"],
        &["service", "rollback", "web"],
        &["node", "ls"],
        &["node", "inspect", "self"],
        &["node", "ps"],
        &["node", "rm", "n1"],
        &["node", "promote", "n1"],
        &["node", "demote", "n1"],
        &["secret", "ls"],
        &["secret", "inspect", "s1"],
        &["secret", "rm", "s1"],
        &["secret", "create", "s1", payload],
        &["config", "ls"],
        &["config", "inspect", "c1"],
        &["config", "rm", "c1"],
        &["config", "create", "c1", payload],
        &["swarm", "leave"],
        &["swarm", "leave", "--force"],
        &["swarm", "join-token", "worker"],
        &["swarm", "unlock-key"],
        &["swarm", "update", "--autolock=true"],
        &["swarm", "ca"],
        &["stack", "ls"],
        &["stack", "ps", "app"],
        &["stack", "services", "app"],
        &["stack", "rm", "app"],
        &["stack", "deploy", "-c", compose, "app"],
    ];
    let mut differences = Vec::new();
    for args in lines {
        let theirs = dockerd.cli(args);
        let ours = cli(wharf, &config, &[], &[&["--context", "here"][..], args].concat());
        if (theirs.code, message(&theirs)) != (ours.code, message(&ours)) {
            differences.push(format!(
                "{args:?}:\n  docker/dockerd ({}): {}\n  wharf/wharfd ({}): {}",
                theirs.code,
                message(&theirs),
                ours.code,
                message(&ours)
            ));
        }
    }
    for args in [&["swarm", "init"][..], &["swarm", "join", "--token", "SWMTKN-1-x", "127.0.0.1:2377"]] {
        let theirs = d.docker(args);
        let ours = d.wharf(args);
        if (theirs.code, message(&theirs)) != (ours.code, message(&ours)) {
            differences.push(format!(
                "{args:?}:\n  docker/wharfd ({}): {}\n  wharf/wharfd ({}): {}",
                theirs.code,
                message(&theirs),
                ours.code,
                message(&ours)
            ));
        }
    }
    assert!(differences.is_empty(), "{} differences:\n{}", differences.len(), differences.join("\n"));
}
