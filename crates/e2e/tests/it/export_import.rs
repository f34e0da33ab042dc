//! export/import: a running container's merged file system (files added, deleted and replaced)
//! exported to a file and to stdout, imported back with `--change`s and a message, run; bad
//! archives and URLs refused with nothing left behind; no mount ever seen by the host.

use std::process::Command;
use std::time::Duration;

use crate::harness::{list_dir, run_cmd, Cli, Daemon, TempDir};

fn tar_list(file: &std::path::Path) -> Vec<String> {
    let mut c = Command::new("tar");
    c.arg("tf").arg(file);
    let out = run_cmd(c, Duration::from_secs(30));
    out.ok();
    out.stdout.lines().map(|l| l.trim_end_matches('/').to_string()).collect()
}

fn stored(d: &Daemon) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["content/blobs/sha256", "content/ingest", "snapshots/layers"] {
        out.extend(list_dir(&d.data_root.join(sub)).into_iter().map(|n| format!("{sub}/{n}")));
    }
    out.sort();
    out
}

fn export_import_round_trip(cli: Cli) {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let script = "echo hi > /hello && rm /etc/group && rm -rf /home && mkdir -p /home/new && echo x > /home/new/f \
                  && mkfifo /pipe && touch /ready && sleep 600";
    let c = d.cli(cli, &["run", "-d", "--name", "src", &busybox, "sh", "-c", script]);
    c.ok();
    let tmp = TempDir::new("export");
    let file = tmp.0.join("fs.tar");
    let file_s = file.to_str().unwrap_or_default();
    assert!(crate::harness::wait_for(Duration::from_secs(20), || {
        d.cli(cli, &["export", "-o", file_s, "src"]).success() && tar_list(&file).iter().any(|n| n == "ready")
    }));
    let names = tar_list(&file);
    for want in ["hello", "bin/busybox", "home/new/f", "pipe", "etc/passwd"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from the export: {names:?}");
    }
    for gone in ["etc/group", "proc/1"] {
        assert!(!names.iter().any(|n| n == gone), "{gone} in the export: {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains(".wh.")), "whiteouts in an export: {names:?}");
    // Nothing mounted in the host's namespace, before or after.
    assert!(crate::harness::mounts_under(&d.data_root).is_empty());

    // Import with changes and a message; the image runs the changed command.
    let out = d.cli(
        cli,
        &[
            "import",
            "-c",
            r#"CMD ["/bin/sh", "-c", "cat /hello; echo $FOO; test -e /etc/group || echo no-group"]"#,
            "-c",
            "ENV FOO=bar",
            "-c",
            "WORKDIR /home/new",
            "-c",
            "LABEL stage=imported",
            "-m",
            "from a test",
            file_s,
            "imported/fs:1",
        ],
    );
    out.ok().mentions(&["sha256:"]);
    let run = d.cli(cli, &["run", "--rm", "imported/fs:1"]);
    assert_eq!(run.ok().trimmed(), "hi\nbar\nno-group");
    let pwd = d.cli(cli, &["run", "--rm", "imported/fs:1", "sh", "-c", "pwd; cat f; test -p /pipe && echo fifo"]);
    assert_eq!(pwd.ok().trimmed(), "/home/new\nx\nfifo");
    let img = d.inspect(cli, "imported/fs:1");
    assert_eq!(img["Config"]["Labels"]["stage"], "imported");
    assert_eq!(img["RootFS"]["Layers"].as_array().map(|l| l.len()), Some(1));
    let hist = d.cli(cli, &["history", "--no-trunc", "imported/fs:1"]);
    hist.ok().mentions(&["from a test"]);
    // `--platform`: the image claims the platform given, as dockerd's import records it.
    d.cli(cli, &["import", "--platform", "linux/arm64/v8", file_s, "imported/arm:1"]).ok();
    let img = d.inspect(cli, "imported/arm:1");
    assert_eq!((&img["Os"], &img["Architecture"], &img["Variant"]), (&"linux".into(), &"arm64".into(), &"v8".into()));
    assert_ne!(d.inspect(cli, "imported/fs:1")["Architecture"], "arm64", "without --platform: this machine's");
    // `create --platform`: as dockerd 20.10, a local image of another platform is not taken.
    let create = ["create", "--pull", "never", "--platform"];
    d.cli(cli, &[&create[..], &["linux/amd64", "imported/arm:1"]].concat())
        .fails()
        .mentions(&["does not match the specified platform: wanted linux/amd64, actual: linux/arm64/v8"]);
    let id = d.cli(cli, &[&create[..], &["linux/arm64", "--name", "arm", "imported/arm:1", "true"]].concat());
    id.ok();
    d.cli(cli, &["rm", "arm"]).ok();

    // Export to stdout, import from stdin (gzip-compressed on the way in).
    if cli == Cli::Wharf {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(r#""$WHARF" -H "$HOST" export src | gzip -1 | "$WHARF" -H "$HOST" import - piped/fs"#)
            .env("WHARF", crate::harness::bin("wharf"))
            .env("HOST", d.host());
        run_cmd(sh, Duration::from_secs(120)).ok();
        let run = d.cli(cli, &["run", "--rm", "piped/fs", "cat", "/hello"]);
        assert_eq!(run.ok().trimmed(), "hi");
    }
    d.cli(cli, &["rm", "-f", "src"]).ok();
    assert!(crate::harness::mounts_under(&d.data_root).is_empty());
}
both!(export_import_round_trip);

fn bad_imports(cli: Cli) {
    let d = Daemon::start();
    let tmp = TempDir::new("import");
    let junk = tmp.0.join("junk.tar");
    std::fs::write(&junk, vec![b'x'; 5000]).unwrap_or_default();
    let before = stored(&d);
    d.cli(cli, &["import", junk.to_str().unwrap_or_default(), "junk/img"]).fails();
    d.cli(cli, &["import", "-c", "RUN echo", junk.to_str().unwrap_or_default()])
        .fails()
        .mentions(&["RUN is not a valid change command"]);
    d.cli(cli, &["export", "no-such-container"]).fails().mentions(&["No such container"]);
    d.cli(cli, &["import", "--platform", "nonsense", junk.to_str().unwrap_or_default(), "junk/img"])
        .fails()
        .mentions(&["invalid platform"]);
    assert_eq!(before, stored(&d));
    d.cli(cli, &["image", "inspect", "junk/img"]).fails();
}
both!(bad_imports);
