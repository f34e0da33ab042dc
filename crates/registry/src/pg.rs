//! The PostgreSQL backend of the index, for several registry replicas sharing one database:
//! [`wire`] is the protocol client, [`meta`] the schema and [`PgMetadata`]'s queries, and
//! [`Pool`] the small bounded set of connections they run on.
//!
//! The client is written here rather than taken from crates.io: the `postgres` crate is a
//! synchronous wrapper around tokio-postgres and brings its own runtime, futures and a dozen
//! more crates into a binary whose index calls are synchronous anyway; what the registry
//! needs (connect, authenticate, run parameterised statements, read text rows, SQLSTATEs) is a
//! few hundred lines of protocol 3.0, and the HMAC and PBKDF2 that SCRAM needs are in
//! [`crate::auth`] already.

pub mod iam;
pub mod meta;
#[cfg(test)]
pub(crate) mod test_cluster;
pub mod wire;

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use meta::PgMetadata;
use wire::{ConnConfig, Connection, PgError, TxStatus};

/// How long a caller waits for a free connection before it is told the pool is exhausted.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// At most `max` connections to one server, kept open between uses. A connection comes back
/// only when it is healthy and outside a transaction; any other is closed.
pub struct Pool {
    cfg: ConnConfig,
    max: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Connection>,
    /// Connections out plus idle ones.
    open: usize,
}

impl Pool {
    pub fn new(cfg: ConnConfig, max: usize) -> Pool {
        Pool { cfg, max: max.max(1), state: Mutex::new(PoolState { idle: Vec::new(), open: 0 }), freed: Condvar::new() }
    }

    pub fn config(&self) -> &ConnConfig {
        &self.cfg
    }

    /// A connection, and whether it was used before (so it may have died while idle).
    pub fn take(&self) -> Result<(Connection, bool), PgError> {
        let deadline = Instant::now() + POOL_WAIT;
        let mut st = lock(&self.state);
        loop {
            if let Some(c) = st.idle.pop() {
                return Ok((c, true));
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return match Connection::connect(&self.cfg) {
                    Ok(c) => Ok((c, false)),
                    Err(e) => {
                        lock(&self.state).open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(PgError::Config(format!(
                    "all {} connections to {} stayed busy for {}s",
                    self.max,
                    self.cfg,
                    POOL_WAIT.as_secs()
                )));
            }
            st = match self.freed.wait_timeout(st, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    pub fn give_back(&self, c: Connection) {
        if c.is_broken() || c.status() != TxStatus::Idle {
            self.discard(c);
            return;
        }
        lock(&self.state).idle.push(c);
        self.freed.notify_one();
    }

    /// Closes a connection instead of keeping it.
    pub fn discard(&self, c: Connection) {
        drop(c);
        let mut st = lock(&self.state);
        st.open = st.open.saturating_sub(1);
        drop(st);
        self.freed.notify_one();
    }

    /// Closes every idle connection: after one was found dead (a server restart) the others
    /// are most likely dead too.
    pub fn discard_idle(&self) {
        let idle = {
            let mut st = lock(&self.state);
            let idle = std::mem::take(&mut st.idle);
            st.open = st.open.saturating_sub(idle.len());
            idle
        };
        drop(idle);
        self.freed.notify_all();
    }
}

/// A poisoned lock only means a thread panicked while holding it; the pool's lists stay usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
