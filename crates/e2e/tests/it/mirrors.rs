//! `registry-mirrors` in daemon.json: a mirror that holds an image serves it; an image it
//! lacks comes from the origin registry.

use crate::harness::{Cli, Daemon, DaemonOptions, RegistryOptions, TestRegistry};

fn mirror_first_then_origin(cli: Cli) {
    let origin = TestRegistry::start(RegistryOptions {
        only: vec!["library/busybox".into(), "test/entrypoint".into()],
        access_log: true,
        ..Default::default()
    });
    let mirror = TestRegistry::start(RegistryOptions {
        only: vec!["library/busybox".into()],
        access_log: true,
        ..Default::default()
    });
    let d = Daemon::start_with(DaemonOptions {
        config_json: Some(format!(r#"{{"registry-mirrors": ["http://{}"]}}"#, mirror.addr)),
        ..Default::default()
    });

    // Only the requests after this point count: make_images.py's pushes are logged too.
    let (m0, o0) = (mirror.log_text().len(), origin.log_text().len());
    let busybox = origin.image("library/busybox:latest");
    d.cli(cli, &["pull", &busybox]).ok();
    let mlog = mirror.log_text().split_off(m0);
    assert!(mlog.contains("\"GET /v2/library/busybox/manifests/latest"), "the mirror was not asked:\n{mlog}");
    assert!(mlog.contains("\"GET /v2/library/busybox/blobs/sha256:"), "the mirror served no blob:\n{mlog}");
    let olog = origin.log_text().split_off(o0);
    assert!(!olog.contains("/v2/library/busybox/"), "the origin served what the mirror holds:\n{olog}");
    let out = d.cli(cli, &["run", "--rm", &busybox, "echo", "from-mirror"]);
    assert_eq!(out.ok().trimmed(), "from-mirror", "{out}");

    // The mirror lacks test/entrypoint: the origin serves it.
    let o1 = origin.log_text().len();
    let ep = origin.image("test/entrypoint:latest");
    d.cli(cli, &["pull", &ep]).ok();
    let olog = origin.log_text().split_off(o1);
    assert!(olog.contains("\"GET /v2/test/entrypoint/manifests/latest"), "the origin was not asked:\n{olog}");
    let out = d.cli(cli, &["run", "--rm", &ep]);
    assert_eq!(out.ok().trimmed(), "ep default", "{out}");

    // With the origin gone, the mirror alone still serves a fresh pull.
    let origin_addr = origin.addr.clone();
    drop(origin);
    d.cli(cli, &["rmi", &busybox]).ok();
    d.cli(cli, &["pull", &format!("{origin_addr}/library/busybox:latest")]).ok();
}
both!(mirror_first_then_origin);
