//! The daemon's event log: every service publishes what it did (container create/start/die,
//! image pull/tag/delete, volume create/destroy, ...) into an in-memory ring that `GET /events`
//! replays for `since`, plus a broadcast channel for followers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

use tokio::sync::broadcast;

use crate::{ContainerRecord, Engine};

/// How many past events are kept for `since` (Docker keeps 256 per daemon).
const RING: usize = 1024;

/// One event, typed; the API shapes it as Docker's JSON message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `container`, `image`, `volume`, `network`, `daemon`.
    pub kind: String,
    pub action: String,
    pub actor_id: String,
    pub attributes: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub time_nano: i64,
}

impl Event {
    /// Docker's event filters: `type`, `event`, `container`, `image`, `volume`, `network`,
    /// `label`; values of one key are alternatives, keys must all match.
    pub fn matches(&self, filters: &BTreeMap<String, Vec<String>>) -> bool {
        filters.iter().filter(|(_, v)| !v.is_empty()).all(|(key, values)| {
            let attr = |k: &str| self.attributes.get(k).map(String::as_str).unwrap_or("");
            values.iter().any(|v| match key.as_str() {
                "type" => self.kind == *v,
                // `health_status: healthy` is matched by `health_status` too, as Docker does.
                "event" => self.action == *v || self.action.split(':').next() == Some(v.as_str()),
                "container" => {
                    self.kind == "container"
                        && (self.actor_id.starts_with(v.as_str()) || attr("name") == v.trim_start_matches('/'))
                }
                "image" => {
                    (self.kind == "image" && (self.actor_id == *v || attr("name") == v))
                        || (self.kind == "container" && attr("image") == v)
                }
                "volume" => self.kind == "volume" && self.actor_id == *v,
                "network" => self.kind == "network" && (self.actor_id.starts_with(v.as_str()) || attr("name") == v),
                "label" => match v.split_once('=') {
                    Some((k, val)) => self.attributes.get(k).is_some_and(|x| x == val),
                    None => self.attributes.contains_key(v.as_str()),
                },
                "scope" => v == "local",
                _ => false,
            })
        })
    }
}

/// The ring of past events and the channel to live subscribers.
pub(crate) struct EventBus {
    ring: Mutex<VecDeque<Event>>,
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    pub(crate) fn new() -> EventBus {
        let (tx, _) = broadcast::channel(RING);
        EventBus { ring: Mutex::new(VecDeque::with_capacity(RING)), tx }
    }

    fn publish(&self, ev: Event) {
        let mut ring = crate::sync::lock(&self.ring);
        if ring.len() == RING {
            ring.pop_front();
        }
        ring.push_back(ev.clone());
        // Sent while the ring is held, so a subscriber that copies the ring and then listens
        // neither misses nor doubles an event.
        let _ = self.tx.send(ev);
    }
}

fn now_nanos() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

impl Engine {
    /// Publishes an event now.
    pub fn publish_event(&self, kind: &str, action: &str, actor_id: &str, attributes: BTreeMap<String, String>) {
        self.inner.events.publish(Event {
            kind: kind.to_string(),
            action: action.to_string(),
            actor_id: actor_id.to_string(),
            attributes,
            time_nano: now_nanos(),
        });
    }

    /// A container event with Docker's attributes: the image as named, the name, the labels,
    /// then `extra` (`exitCode`, `signal`, `oldName`, ...).
    pub(crate) fn container_event(&self, rec: &ContainerRecord, action: &str, extra: &[(&str, String)]) {
        let mut attrs = rec.config.labels.clone();
        attrs.insert("image".to_string(), rec.config.image.clone());
        attrs.insert("name".to_string(), rec.name.clone());
        for (k, v) in extra {
            attrs.insert((*k).to_string(), v.clone());
        }
        self.publish_event("container", action, &rec.id, attrs);
    }

    /// An image event as Docker logs them: the actor is the image id (or, for `pull`, the
    /// reference), `name` the reference concerned.
    pub(crate) fn image_event(&self, action: &str, actor: &str, name: &str) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), name.to_string());
        self.publish_event("image", action, actor, attrs);
    }

    /// How many clients follow `GET /events` now.
    pub fn event_listeners(&self) -> usize {
        self.inner.events.tx.receiver_count()
    }

    /// The past events at or after `since_nanos` (all kept ones when `None`), and a receiver of
    /// every event published afterwards.
    pub fn subscribe_events(&self, since_nanos: Option<i64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let ring = crate::sync::lock(&self.inner.events.ring);
        let rx = self.inner.events.tx.subscribe();
        let past = match since_nanos {
            Some(s) => ring.iter().filter(|e| e.time_nano >= s).cloned().collect(),
            None => Vec::new(),
        };
        (past, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            kind: kind.into(),
            action: action.into(),
            actor_id: id.into(),
            attributes: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            time_nano: 1,
        }
    }

    fn f(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()
    }

    #[test]
    fn filters() {
        let c = ev("container", "die", "abc123", &[("name", "web"), ("image", "busybox"), ("com.x", "1")]);
        let h = ev("container", "health_status: healthy", "abc123", &[("name", "web")]);
        let i = ev("image", "pull", "busybox:latest", &[("name", "busybox:latest")]);
        type Case<'a> = (&'a Event, BTreeMap<String, Vec<String>>, bool);
        let cases: Vec<Case> = vec![
            (&c, f(&[]), true),
            (&c, f(&[("type", &["container"])]), true),
            (&c, f(&[("type", &["image"])]), false),
            (&c, f(&[("event", &["start", "die"])]), true),
            (&c, f(&[("event", &["start"])]), false),
            (&c, f(&[("container", &["web"])]), true),
            (&c, f(&[("container", &["/web"])]), true),
            (&c, f(&[("container", &["abc"])]), true),
            (&c, f(&[("container", &["other"])]), false),
            (&c, f(&[("image", &["busybox"])]), true),
            (&c, f(&[("label", &["com.x=1"])]), true),
            (&c, f(&[("label", &["com.x=2"])]), false),
            (&c, f(&[("label", &["com.x"])]), true),
            (&c, f(&[("type", &["container"]), ("event", &["start"])]), false),
            (&h, f(&[("event", &["health_status"])]), true),
            (&i, f(&[("image", &["busybox:latest"])]), true),
            (&i, f(&[("container", &["busybox:latest"])]), false),
            (&c, f(&[("bogus", &["x"])]), false),
        ];
        for (e, filt, want) in cases {
            assert_eq!(e.matches(&filt), want, "{e:?} {filt:?}");
        }
    }

    #[test]
    fn ring_replays_since_and_drops_oldest() {
        let bus = EventBus::new();
        let mut rx = bus.tx.subscribe();
        for n in 0..(RING as i64 + 5) {
            bus.publish(Event { time_nano: n, ..ev("container", "start", "x", &[]) });
        }
        let ring = bus.ring.lock().unwrap();
        assert_eq!(ring.len(), RING);
        assert_eq!(ring.front().map(|e| e.time_nano), Some(5));
        drop(ring);
        // The live channel lags rather than blocking a publisher.
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(_))));
    }
}
