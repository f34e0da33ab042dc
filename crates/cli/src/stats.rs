//! `wharf stats`: Docker's table of cpu, memory, network, block I/O and pids per container,
//! redrawn once a second from each container's stats stream, or printed once (`--no-stream`).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde_json::Value;
use wharf_client::Client;

use crate::table::Table;

const HEADER: [&str; 8] =
    ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"];

pub fn stats(
    client: &Client,
    all: bool,
    no_stream: bool,
    no_trunc: bool,
    format: Option<&str>,
    names: &[String],
) -> Result<()> {
    // A bad template fails before anything is read, as docker's does.
    if let Some(f) = format {
        render(&[], Some(f))?;
    }
    let targets: Vec<String> = if names.is_empty() {
        let list: Vec<Value> = client.containers_list(all, false, 0, "")?;
        list.iter().filter_map(|c| c["Id"].as_str().map(str::to_string)).collect()
    } else {
        names.to_vec()
    };
    if no_stream {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| {
                let client = client.clone();
                let t = t.clone();
                std::thread::spawn(move || client.container_stats::<Value>(&t))
            })
            .collect();
        let mut rows = Vec::new();
        let mut failed = None;
        for (h, name) in handles.into_iter().zip(&targets) {
            match h.join() {
                Ok(Ok(v)) => rows.push(row(&v, no_trunc)),
                Ok(Err(e)) => failed = Some(anyhow::Error::from(e)),
                Err(_) => failed = Some(anyhow!("stats of {name}: reader failed")),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        print!("{}", render(&rows, format)?);
        return Ok(());
    }
    let latest: Arc<Mutex<BTreeMap<usize, Value>>> = Arc::default();
    for (i, target) in targets.iter().enumerate() {
        // Fail early on an unknown container, as docker does.
        if !names.is_empty() {
            client.container_inspect::<Value>(target, false)?;
        }
        let client = client.clone();
        let target = target.clone();
        let latest = latest.clone();
        std::thread::spawn(move || {
            let Ok(stream) = client.container_stats_stream::<Value>(&target) else { return };
            for v in stream.flatten() {
                if let Ok(mut m) = latest.lock() {
                    m.insert(i, v);
                }
            }
        });
    }
    let mut out = std::io::stdout();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let rows: Vec<Vec<String>> = match latest.lock() {
            Ok(m) => m.values().map(|v| row(v, no_trunc)).collect(),
            Err(_) => Vec::new(),
        };
        // Clear the screen and go home, as docker's live table does.
        let _ = write!(out, "\x1b[2J\x1b[H{}", render(&rows, format)?);
        let _ = out.flush();
    }
}

/// The rows as docker's default table, or through `--format` with the fields of the docker
/// CLI's stats context (`.Container` is the ID, as for containers listed rather than named).
fn render(rows: &[Vec<String>], format: Option<&str>) -> Result<String> {
    let Some(format) = format.filter(|f| *f != "table") else {
        let mut t = Table::new(&HEADER);
        for r in rows {
            t.row(r.clone());
        }
        return Ok(t.render());
    };
    let keys = ["ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"];
    let objects: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut o: serde_json::Map<String, Value> =
                keys.iter().zip(r).map(|(k, v)| (k.to_string(), Value::from(v.as_str()))).collect();
            o.insert("Container".into(), Value::from(r.first().map(String::as_str).unwrap_or("")));
            Value::Object(o)
        })
        .collect();
    let headers = serde_json::json!({
        "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
        "PIDs": "PIDS",
    });
    crate::template::format_list(format, &objects, &headers)
}

/// One table row from one stats JSON, with Docker's computations.
fn row(v: &Value, no_trunc: bool) -> Vec<String> {
    let u = |p: &Value| p.as_u64().unwrap_or(0);
    let id = v["id"].as_str().unwrap_or_default();
    let id = if no_trunc { id.to_string() } else { id.chars().take(12).collect() };
    let name = v["name"].as_str().unwrap_or_default().trim_start_matches('/').to_string();
    let running = v["memory_stats"].get("usage").is_some();
    if !running {
        return vec![
            id,
            name,
            "0.00%".into(),
            "0B / 0B".into(),
            "0.00%".into(),
            "0B / 0B".into(),
            "0B / 0B".into(),
            "0".into(),
        ];
    }
    let cpu_delta = u(&v["cpu_stats"]["cpu_usage"]["total_usage"]) as f64
        - u(&v["precpu_stats"]["cpu_usage"]["total_usage"]) as f64;
    let sys_delta = u(&v["cpu_stats"]["system_cpu_usage"]) as f64 - u(&v["precpu_stats"]["system_cpu_usage"]) as f64;
    let ncpu = u(&v["cpu_stats"]["online_cpus"]).max(1) as f64;
    let cpu = if cpu_delta > 0.0 && sys_delta > 0.0 { cpu_delta / sys_delta * ncpu * 100.0 } else { 0.0 };
    let stats = &v["memory_stats"]["stats"];
    let usage = u(&v["memory_stats"]["usage"]);
    // Docker leaves the page cache out: v1 total_inactive_file, v2 inactive_file.
    let cache = stats.get("total_inactive_file").or(stats.get("inactive_file")).map(u).unwrap_or(0);
    let used = if cache < usage { usage - cache } else { usage };
    let limit = u(&v["memory_stats"]["limit"]);
    let mem_pct = if limit > 0 { used as f64 / limit as f64 * 100.0 } else { 0.0 };
    let (mut rx, mut tx) = (0, 0);
    if let Some(nets) = v["networks"].as_object() {
        for n in nets.values() {
            rx += u(&n["rx_bytes"]);
            tx += u(&n["tx_bytes"]);
        }
    }
    let (mut rd, mut wr) = (0, 0);
    for e in v["blkio_stats"]["io_service_bytes_recursive"].as_array().cloned().unwrap_or_default() {
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => rd += u(&e["value"]),
            Some("write") => wr += u(&e["value"]),
            _ => {}
        }
    }
    let h = |b: u64| crate::human::size(b as i64);
    vec![
        id,
        name,
        format!("{cpu:.2}%"),
        format!("{} / {}", binary_size(used), binary_size(limit)),
        format!("{mem_pct:.2}%"),
        format!("{} / {}", h(rx), h(tx)),
        format!("{} / {}", h(rd), h(wr)),
        u(&v["pids_stats"]["current"]).to_string(),
    ]
}

/// Docker's `units.BytesSize`: binary units, `%.4g`.
fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let digits = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    format!("{s}{}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_render_as_docker() {
        for (b, want) in [(0, "0B"), (1024, "1KiB"), (1536, "1.5KiB"), (64 << 20, "64MiB"), (1_288_490_189, "1.2GiB")] {
            assert_eq!(binary_size(b), want, "{b}");
        }
    }

    #[test]
    fn row_computes_percentages() {
        let v = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000u64}, "system_cpu_usage": 20_000_000_000u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000u64}, "system_cpu_usage": 10_000_000_000u64, "online_cpus": 2},
            "memory_stats": {"usage": 2048, "limit": 4096, "stats": {"total_inactive_file": 1024}},
            "networks": {"eth0": {"rx_bytes": 1000, "tx_bytes": 2000}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 3000}, {"op": "Write", "value": 0}]},
            "pids_stats": {"current": 3}
        });
        assert_eq!(
            row(&v, false),
            vec!["0123456789ab", "web", "20.00%", "1KiB / 4KiB", "25.00%", "1kB / 2kB", "3kB / 0B", "3"]
        );
    }
}
