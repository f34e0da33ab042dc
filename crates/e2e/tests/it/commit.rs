//! commit: a running container's added file, deleted file (a whiteout) and replaced directory
//! (an opaque one) show the same way in a container of the committed image; `--change`s,
//! message and author land in the config and history; a paused commit leaves it running;
//! removing everything afterwards leaves no layer or blob.

use std::time::Duration;

use crate::harness::{list_dir, wait_for, Cli, Daemon};

fn commit_changes(cli: Cli) {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let before_layers = list_dir(&d.data_root.join("snapshots/layers"));
    let before_blobs = list_dir(&d.data_root.join("content/blobs/sha256"));
    let script = "echo added > /added && rm /etc/group && rm -rf /var && mkdir /var && echo new > /var/only \
                  && touch /ready && sleep 600";
    d.cli(cli, &["run", "-d", "--name", "src", "-e", "FROM_RUN=1", "-w", "/var", &busybox, "sh", "-c", script]).ok();
    assert!(wait_for(Duration::from_secs(20), || d.cli(cli, &["exec", "src", "test", "-e", "/ready"]).success()));
    let out = d.cli(
        cli,
        &[
            "commit",
            "-m",
            "a test commit",
            "-a",
            "Tester <t@example.com>",
            "-c",
            r#"CMD ["sh", "-c", "cat /added /var/only; ls /var; test -e /etc/group || echo no-group; echo $FROM_RUN"]"#,
            "-c",
            "LABEL committed=yes",
            "src",
            "committed/img:v1",
        ],
    );
    out.ok().mentions(&["sha256:"]);
    // The commit paused and thawed it: it still runs and answers.
    assert_eq!(d.inspect(cli, "src")["State"]["Status"], "running");
    d.cli(cli, &["exec", "src", "true"]).ok();

    let run = d.cli(cli, &["run", "--rm", "committed/img:v1"]);
    assert_eq!(run.ok().trimmed(), "added\nnew\nonly\nno-group\n1");
    let pwd = d.cli(cli, &["run", "--rm", "committed/img:v1", "pwd"]);
    assert_eq!(pwd.ok().trimmed(), "/var");
    let img = d.inspect(cli, "committed/img:v1");
    assert_eq!(img["Config"]["Labels"]["committed"], "yes");
    assert_eq!(img["Author"], "Tester <t@example.com>");
    let base_layers = d.inspect(cli, &busybox)["RootFS"]["Layers"].as_array().map(|l| l.len()).unwrap_or(0);
    assert_eq!(img["RootFS"]["Layers"].as_array().map(|l| l.len()), Some(base_layers + 1));
    d.cli(cli, &["history", "--no-trunc", "committed/img:v1"]).ok().mentions(&["a test commit"]);

    // A commit without a name and without pausing: a dangling image of the same content.
    let out = d.cli(cli, &["commit", "--pause=false", "src"]);
    let id = out.ok().trimmed().to_string();
    assert!(id.starts_with("sha256:"), "{out}");
    d.cli(cli, &["run", "--rm", &id, "cat", "/added"]).ok().mentions(&["added"]);

    // A refused change makes nothing.
    d.cli(cli, &["commit", "-c", "RUN true", "src", "bad/img"]).fails().mentions(&["not a valid change command"]);
    d.cli(cli, &["commit", "no-such-container", "x/y"]).fails().mentions(&["No such container"]);

    d.cli(cli, &["rm", "-f", "src"]).ok();
    d.cli(cli, &["rmi", "committed/img:v1", &id]).ok();
    assert_eq!(list_dir(&d.data_root.join("snapshots/layers")), before_layers);
    assert_eq!(list_dir(&d.data_root.join("content/blobs/sha256")), before_blobs);
}
both!(commit_changes);
