//! Registries over HTTPS with a private CA: trusted through `/etc/wharf/certs.d/<host:port>/`
//! (`ca.crt`, and `client.cert`/`client.key` for a registry that wants a client certificate),
//! refused with a TLS error naming the registry without it, and skipped verification for a
//! registry listed in `insecure-registries` or on loopback, as Docker does.

use crate::harness::{Cli, Daemon, DaemonOptions, TlsRegistry};

fn pull_with_the_ca(cli: Cli) {
    let reg = TlsRegistry::start(false);
    let d = Daemon::start();
    let image = reg.image("library/busybox:latest");

    // Not insecure: no fallback to plain HTTP, a certificate error that names the registry.
    d.cli(cli, &["pull", &image]).fails().mentions(&[&reg.addr, "certificate"]);
    d.cli(cli, &["image", "inspect", &image]).fails();

    let _certs = reg.install_certs_d(false);
    d.cli(cli, &["pull", &image]).ok();
    let out = d.cli(cli, &["run", "--rm", &image, "echo", "over-tls"]);
    out.ok();
    assert_eq!(out.trimmed(), "over-tls", "{out}");
}
both!(pull_with_the_ca);

fn push_with_the_ca(cli: Cli) {
    let reg = TlsRegistry::start(false);
    let d = Daemon::start();
    let source = d.pull("library/busybox:latest");
    let target = reg.image("test/pushed:v1");
    d.cli(cli, &["tag", &source, &target]).ok();

    d.cli(cli, &["push", &target]).fails().mentions(&[&reg.addr, "certificate"]);

    let _certs = reg.install_certs_d(false);
    d.cli(cli, &["push", &target]).ok();
    d.cli(cli, &["rmi", &target]).ok();
    d.cli(cli, &["pull", &target]).ok();
    let out = d.cli(cli, &["run", "--rm", &target, "echo", "pushed-over-tls"]);
    out.ok();
    assert_eq!(out.trimmed(), "pushed-over-tls", "{out}");
}
both!(push_with_the_ca);

fn client_certificate(cli: Cli) {
    let reg = TlsRegistry::start(true);
    let image = reg.image("library/busybox:latest");
    {
        // A daemon keeps a host's TLS settings once read: a fresh one for each layout.
        let _certs = reg.install_certs_d(false);
        let d = Daemon::start();
        d.cli(cli, &["pull", &image]).fails().mentions(&[&reg.addr]);
    }
    let _certs = reg.install_certs_d(true);
    let d = Daemon::start();
    d.cli(cli, &["pull", &image]).ok();
    let out = d.cli(cli, &["run", "--rm", &image, "echo", "client-cert"]);
    out.ok();
    assert_eq!(out.trimmed(), "client-cert", "{out}");
}
both!(client_certificate);

fn insecure_skips_verification(cli: Cli) {
    let reg = TlsRegistry::start(false);
    let d = Daemon::start_with(DaemonOptions {
        config_json: Some(format!(r#"{{"insecure-registries": ["{}"]}}"#, reg.addr)),
        ..Default::default()
    });
    let image = reg.image("library/busybox:latest");
    // Docker: an insecure registry is tried over HTTPS without verifying its certificate.
    d.cli(cli, &["pull", &image]).ok();
    let out = d.cli(cli, &["run", "--rm", &image, "echo", "insecure-tls"]);
    out.ok();
    assert_eq!(out.trimmed(), "insecure-tls", "{out}");
}
both!(insecure_skips_verification);

/// A TLS registry on 127.0.0.1 with a certificate nobody trusts: loopback registries are
/// insecure to Docker, so HTTPS is tried first without verification (then plain HTTP, which
/// every other loopback test's registry speaks). Pull and push both work.
fn a_tls_registry_on_loopback_works_as_with_docker(cli: Cli) {
    let reg = TlsRegistry::start_on_loopback();
    let d = Daemon::start();
    let image = reg.image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let out = d.cli(cli, &["run", "--rm", &image, "echo", "loopback-tls"]);
    assert_eq!(out.ok().trimmed(), "loopback-tls", "{out}");
    let pushed = reg.image("library/pushed:1");
    d.cli(cli, &["tag", &image, &pushed]).ok();
    d.cli(cli, &["push", &pushed]).ok();
    d.cli(cli, &["rmi", &pushed]).ok();
    d.cli(cli, &["pull", &pushed]).ok();
}
both!(a_tls_registry_on_loopback_works_as_with_docker);
