//! `GET /events`: the daemon's events as Docker shapes them, one JSON object a line: the past
//! ones from `since`, then live ones until `until` or until the client goes away.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use wharf_engine::Event;

use crate::body::Body;
use crate::error::ApiError;
use crate::router::{Ctx, Result};

const FILTER_KEYS: [&str; 12] = [
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "service",
    "type",
];

/// Docker's JSON message for an event, with the legacy `status`/`id`/`from` fields for
/// containers and images.
pub fn message(e: &Event) -> Value {
    let mut v = json!({
        "Type": e.kind,
        "Action": e.action,
        "Actor": { "ID": e.actor_id, "Attributes": e.attributes },
        "scope": "local",
        "time": e.time_nano / 1_000_000_000,
        "timeNano": e.time_nano,
    });
    if e.kind == "container" || e.kind == "image" {
        v["status"] = json!(e.action);
        v["id"] = json!(e.actor_id);
        if e.kind == "container" {
            v["from"] = json!(e.attributes.get("image").cloned().unwrap_or_default());
        }
    }
    v
}

/// `since`/`until` as the API takes them: seconds since the epoch with optional nanoseconds
/// (`1700000000.000000001`); the CLI turns durations and dates into this form.
fn parse_timestamp(key: &str, raw: &str) -> Result<i64> {
    let bad = || ApiError::bad_request(format!("invalid value for {key}: {raw:?}: expected seconds[.nanoseconds]"));
    let (secs, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().map_err(|_| bad())? };
    Ok(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

fn now_nanos() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

fn line(e: &Event) -> Bytes {
    let mut s = message(e).to_string();
    s.push('\n');
    Bytes::from(s)
}

pub fn events(ctx: &Ctx) -> Result<Response<Body>> {
    let since = ctx.query.get("since").filter(|s| !s.is_empty()).map(|s| parse_timestamp("since", s)).transpose()?;
    let until = ctx.query.get("until").filter(|s| !s.is_empty()).map(|s| parse_timestamp("until", s)).transpose()?;
    let filters = ctx.query.filters()?;
    for key in filters.keys() {
        if !FILTER_KEYS.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!("Invalid filter '{key}'")));
        }
    }
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(ApiError::bad_request("`since` time is after `until`"));
        }
    }
    let (past, mut rx) = ctx.engine.subscribe_events(since);
    let (tx, body) = Body::channel();
    tokio::spawn(async move {
        for e in past.iter().filter(|e| until.is_none_or(|u| e.time_nano <= u)) {
            if e.matches(&filters) && tx.send(line(e)).await.is_err() {
                return;
            }
        }
        loop {
            let deadline = match until {
                Some(u) => {
                    let left = u - now_nanos();
                    if left <= 0 {
                        return;
                    }
                    Some(Duration::from_nanos(left as u64))
                }
                None => None,
            };
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout(d, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            let ev = tokio::select! {
                ev = next => ev,
                _ = tx.closed() => return,
            };
            match ev {
                None => return,
                Some(Ok(e)) => {
                    if until.is_some_and(|u| e.time_nano > u) {
                        return;
                    }
                    if e.matches(&filters) && tx.send(line(&e)).await.is_err() {
                        return;
                    }
                }
                Some(Err(RecvError::Lagged(n))) => log::warn!("events: a slow client missed {n} events"),
                Some(Err(RecvError::Closed)) => return,
            }
        }
    });
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert("Content-Type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let cases = [
            ("1700000000", Some(1_700_000_000_000_000_000)),
            ("1700000000.5", Some(1_700_000_000_500_000_000)),
            ("1700000000.000000001", Some(1_700_000_000_000_000_001)),
            ("1700000000.0000000001", None),
            ("10m", None),
            ("", None),
            ("1.x", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_timestamp("since", raw).ok(), want, "{raw}");
        }
    }

    #[test]
    fn shapes_like_docker() {
        let e = Event {
            kind: "container".into(),
            action: "die".into(),
            actor_id: "abc".into(),
            attributes: [("image".to_string(), "busybox".to_string()), ("exitCode".to_string(), "3".to_string())]
                .into_iter()
                .collect(),
            time_nano: 1_700_000_000_123_456_789,
        };
        let v = message(&e);
        assert_eq!(v["status"], "die");
        assert_eq!(v["id"], "abc");
        assert_eq!(v["from"], "busybox");
        assert_eq!(v["Actor"]["Attributes"]["exitCode"], "3");
        assert_eq!(v["time"], 1_700_000_000);
        assert_eq!(v["scope"], "local");
        let vol = Event { kind: "volume".into(), ..e };
        assert!(message(&vol).get("status").is_none());
    }
}
