//! Idle keep-alive connections, per origin, for reuse by the next request to it.
//!
//! A response's connection comes back here once its body has been read to the end of its
//! framing with nothing left over; a connection the server closed, or that sat idle too long,
//! is dropped instead of being reused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Stream;

/// Idle connections kept per origin: a pull's parallel layer downloads each keep one.
const MAX_IDLE_PER_ORIGIN: usize = 8;
/// Servers close idle connections after a while (nginx 75 s, many proxies less); reusing one
/// they are about to close only costs a retry, but there is no point keeping them longer.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// An idle connection and since when it is idle.
type Idle = (Instant, Box<dyn Stream>);

#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
}

impl Pool {
    /// An idle connection to `origin` that still looks usable, newest first.
    pub(crate) fn take(&self, origin: &str) -> Option<Box<dyn Stream>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(origin)?;
        while let Some((since, stream)) = list.pop() {
            if since.elapsed() < IDLE_TIMEOUT && stream.idle_and_open() {
                return Some(stream);
            }
        }
        None
    }

    pub(crate) fn put(&self, origin: &str, stream: Box<dyn Stream>) {
        let Ok(mut idle) = self.idle.lock() else { return };
        let list = idle.entry(origin.to_string()).or_default();
        list.retain(|(since, _)| since.elapsed() < IDLE_TIMEOUT);
        if list.len() >= MAX_IDLE_PER_ORIGIN {
            list.remove(0);
        }
        list.push((Instant::now(), stream));
    }
}
