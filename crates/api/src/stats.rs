//! Container introspection: `top`, `stats` (Docker's JSON, streamed once a second), `changes`.

use std::time::Duration;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use wharf_engine::StatsSample;

use crate::body::Body;
use crate::router::{json, json_response, Ctx, Result};

/// `GET /containers/{id}/top?ps_args=`.
pub async fn top(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let args = ctx.query.get("ps_args").filter(|a| !a.trim().is_empty());
    let t = ctx.engine.top_container(id, args).await?;
    json(StatusCode::OK, &json!({ "Titles": t.titles, "Processes": t.processes }))
}

/// `GET /containers/{id}/changes`.
pub async fn changes(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let changes = ctx.engine.container_changes(id).await?;
    let v: Vec<Value> = changes.iter().map(|c| json!({ "Path": c.path, "Kind": c.kind as u8 })).collect();
    json(StatusCode::OK, &v)
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: streaming by default, one sample a second,
/// each with the previous one as `precpu_stats`. Without streaming, two samples a second apart
/// unless `one-shot`, so that a single answer can show a cpu percentage.
pub async fn stats(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let stream = ctx.query.get("stream").is_none_or(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let one_shot = ctx.query.bool("one-shot");
    let rec = ctx.engine.find_container(id)?;
    let first = ctx.engine.stats_sample(&rec.id).await?;
    if !stream {
        let (pre, cur) = if one_shot || !first.running {
            (StatsSample::default(), first)
        } else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let cur = ctx.engine.stats_sample(&rec.id).await?;
            (first, cur)
        };
        let v = stats_json(&rec.id, &rec.name, &pre, &cur);
        return Ok(json_response(StatusCode::OK, v.to_string()));
    }
    let (tx, body) = Body::channel();
    let engine = ctx.engine.clone();
    let (id, name) = (rec.id.clone(), rec.name.clone());
    tokio::spawn(async move {
        let mut pre = StatsSample::default();
        let mut cur = first;
        loop {
            let mut line = stats_json(&id, &name, &pre, &cur).to_string();
            line.push('\n');
            if tx.send(Bytes::from(line)).await.is_err() || !cur.running {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let next = match engine.stats_sample(&id).await {
                Ok(s) => s,
                Err(_) => return,
            };
            pre = std::mem::replace(&mut cur, next);
        }
    });
    let mut r = Response::new(body);
    r.headers_mut().insert("Content-Type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(r)
}

fn cpu_json(s: &StatsSample) -> Value {
    json!({
        "cpu_usage": {
            "total_usage": s.cpu_total,
            "percpu_usage": s.cpu_percpu,
            "usage_in_kernelmode": s.cpu_kernel,
            "usage_in_usermode": s.cpu_user,
        },
        "system_cpu_usage": s.system_cpu,
        "online_cpus": s.online_cpus,
        "throttling_data": {
            "periods": s.throttle_periods,
            "throttled_periods": s.throttled_periods,
            "throttled_time": s.throttled_time,
        },
    })
}

fn stats_json(id: &str, name: &str, pre: &StatsSample, cur: &StatsSample) -> Value {
    let preread = if pre.read.is_empty() { wharf_types::time::ZERO_TIME.to_string() } else { pre.read.clone() };
    let entries = |list: &[(u64, u64, String, u64)]| -> Value {
        if list.is_empty() {
            return Value::Null;
        }
        json!(list
            .iter()
            .map(|(major, minor, op, value)| json!({"major": major, "minor": minor, "op": op, "value": value}))
            .collect::<Vec<_>>())
    };
    let mut v = json!({
        "id": id,
        "name": format!("/{name}"),
        "read": cur.read,
        "preread": preread,
        "num_procs": 0,
        "cpu_stats": cpu_json(cur),
        "precpu_stats": cpu_json(pre),
        "memory_stats": if cur.running {
            json!({ "usage": cur.mem_usage, "limit": cur.mem_limit, "stats": cur.mem_stats })
        } else {
            json!({})
        },
        "pids_stats": if cur.running {
            if cur.pids_limit > 0 {
                json!({ "current": cur.pids_current, "limit": cur.pids_limit })
            } else {
                json!({ "current": cur.pids_current })
            }
        } else {
            json!({})
        },
        "blkio_stats": {
            "io_service_bytes_recursive": entries(&cur.blkio),
            "io_serviced_recursive": entries(&cur.blkio_serviced),
            "io_queue_recursive": null,
            "io_service_time_recursive": null,
            "io_wait_time_recursive": null,
            "io_merged_recursive": null,
            "io_time_recursive": null,
            "sectors_recursive": null,
        },
        "storage_stats": {},
    });
    if !cur.networks.is_empty() {
        let nets: serde_json::Map<String, Value> = cur
            .networks
            .iter()
            .map(|(k, n)| {
                (
                    k.clone(),
                    json!({
                        "rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2], "rx_dropped": n[3],
                        "tx_bytes": n[4], "tx_packets": n[5], "tx_errors": n[6], "tx_dropped": n[7],
                    }),
                )
            })
            .collect();
        v["networks"] = Value::Object(nets);
    }
    v
}
