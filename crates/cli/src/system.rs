//! `version` and `info`: what the client is, and a summary of the daemon.

use anyhow::Result;
use wharf_client::{Client, Info, Version};

/// `version --format`: the template sees `.Client` (this CLI) and `.Server` (the daemon's
/// `/version` answer as it came), as the docker CLI's does.
pub fn version_format(client: &Client, format: &str) -> Result<()> {
    let server: serde_json::Value = client.version()?;
    let dot = serde_json::json!({
        "Client": {
            "Platform": {"Name": ""},
            "Version": env!("CARGO_PKG_VERSION"),
            "ApiVersion": client.api_version(),
            "DefaultAPIVersion": client.api_version(),
            "GitCommit": "",
            "GoVersion": "",
            "Os": std::env::consts::OS,
            "Arch": go_arch(std::env::consts::ARCH),
            "BuildTime": "",
            "Context": client.host(),
        },
        "Server": server,
    });
    print!("{}", crate::template::format_list(format, &[dot], &serde_json::json!({}))?);
    Ok(())
}

/// `info --format`: the template sees the daemon's `/info` answer, with `.ClientInfo` added.
pub fn info_format(client: &Client, format: &str) -> Result<()> {
    let mut dot: serde_json::Value = client.info()?;
    if let Some(o) = dot.as_object_mut() {
        o.insert(
            "ClientInfo".into(),
            serde_json::json!({"Version": env!("CARGO_PKG_VERSION"), "Context": client.host(), "Debug": false}),
        );
    }
    print!("{}", crate::template::format_list(format, &[dot], &serde_json::json!({}))?);
    Ok(())
}

pub fn version(client: &Client) -> Result<()> {
    println!("Client:");
    println!(" Version:           {}", env!("CARGO_PKG_VERSION"));
    println!(" API version:       {}", client.api_version());
    println!(" OS/Arch:           {}/{}", std::env::consts::OS, go_arch(std::env::consts::ARCH));
    println!(" Context:           {}", client.host());
    println!();
    let v: Version = client.version()?;
    let platform = v.platform.as_ref().map(|p| p.name.as_str()).filter(|n| !n.is_empty()).unwrap_or("");
    println!("{}", format!("Server: {platform}").trim_end());
    println!(" Engine:");
    println!("  Version:          {}", v.version);
    if v.min_api_version.is_empty() {
        println!("  API version:      {}", v.api_version);
    } else {
        println!("  API version:      {} (minimum version {})", v.api_version, v.min_api_version);
    }
    if !v.go_version.is_empty() {
        println!("  Go version:       {}", v.go_version);
    }
    println!("  Git commit:       {}", v.git_commit);
    println!("  Built:            {}", v.build_time);
    println!("  OS/Arch:          {}/{}", v.os, v.arch);
    println!("  Kernel version:   {}", v.kernel_version);
    Ok(())
}

pub fn info(client: &Client) -> Result<()> {
    let i: Info = client.info()?;
    print!("{}", info_text(&i, client.host()));
    Ok(())
}

fn info_text(i: &Info, host: &str) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line("Client:".into());
    line(format!(" Version:    {}", env!("CARGO_PKG_VERSION")));
    line(format!(" Context:    {host}"));
    line(String::new());
    line("Server:".into());
    line(format!(" Containers: {}", i.containers));
    line(format!("  Running: {}", i.containers_running));
    line(format!("  Paused: {}", i.containers_paused));
    line(format!("  Stopped: {}", i.containers_stopped));
    line(format!(" Images: {}", i.images));
    line(format!(" Server Version: {}", i.server_version));
    line(format!(" Storage Driver: {}", i.driver));
    line(format!(" Logging Driver: {}", i.logging_driver));
    line(format!(" Cgroup Driver: {}", i.cgroup_driver));
    line(format!(" Cgroup Version: {}", i.cgroup_version));
    if !i.runtimes.is_empty() {
        line(format!(" Runtimes: {}", i.runtimes.keys().cloned().collect::<Vec<_>>().join(" ")));
    }
    if !i.default_runtime.is_empty() {
        line(format!(" Default Runtime: {}", i.default_runtime));
    }
    line(format!(" Kernel Version: {}", i.kernel_version));
    line(format!(" Operating System: {}", i.operating_system));
    line(format!(" OSType: {}", i.os_type));
    line(format!(" Architecture: {}", i.architecture));
    line(format!(" CPUs: {}", i.ncpu));
    line(format!(" Total Memory: {}", binary_size(i.mem_total)));
    line(format!(" Name: {}", i.name));
    line(format!(" ID: {}", i.id));
    line(format!(" Docker Root Dir: {}", i.docker_root_dir));
    for (name, value) in [("HTTP Proxy", &i.http_proxy), ("HTTPS Proxy", &i.https_proxy), ("No Proxy", &i.no_proxy)] {
        if !value.is_empty() {
            line(format!(" {name}: {value}"));
        }
    }
    s
}

/// Docker's `units.BytesSize`: binary units with up to two decimals (`23.47GiB`).
fn binary_size(bytes: i64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", UNITS[i])
}

fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_sizes_table() {
        let cases = [(0, "0B"), (1024, "1KiB"), (25_199_999_000, "23.47GiB"), (1536 << 20, "1.5GiB")];
        for (n, want) in cases {
            assert_eq!(binary_size(n), want);
        }
    }

    #[test]
    fn info_summary() {
        let i: Info = serde_json::from_str(
            r#"{"Containers":3,"ContainersRunning":1,"ContainersStopped":2,"Images":5,"ServerVersion":"0.1.0",
                "Driver":"overlayfs","CgroupDriver":"cgroupfs","CgroupVersion":"1","DockerRootDir":"/var/lib/wharf",
                "HttpProxy":"http://xxxxx:xxxxx@p:3128","HttpsProxy":"","NoProxy":"corp.example"}"#,
        )
        .unwrap();
        let s = info_text(&i, "unix:///run/wharf/wharfd.sock");
        for want in [
            " Containers: 3\n  Running: 1\n  Paused: 0\n  Stopped: 2\n Images: 5\n",
            " Storage Driver: overlayfs\n",
            " Cgroup Driver: cgroupfs\n Cgroup Version: 1\n",
            " Docker Root Dir: /var/lib/wharf\n HTTP Proxy: http://xxxxx:xxxxx@p:3128\n No Proxy: corp.example\n",
        ] {
            assert!(s.contains(want), "{s}");
        }
    }
}
