//! The rate limit on password checks: repeated failures for one account from one client
//! address (and, more loosely, from one address for any account) are refused with a wait that
//! doubles with each further failure, up to a cap. A success resets the account's count.
//!
//! It slows a brute force down without handing an attacker a way to lock a real user out:
//! the account's count is kept per client address, so failures from one address never block
//! the same account from another, a block lasts at most [`MAX_BLOCK`], and a count is
//! forgotten after [`FORGET_AFTER`] without failures. A blocked attempt is refused before the
//! password is hashed, so it costs the server nothing.
//!
//! Two halves: this process's counts ([`LoginLimiter`], checked on every request, no I/O), and
//! the index's ([`shared_wait`] and friends), which replicas sharing a PostgreSQL index all
//! write, so that spreading guesses over replicas does not multiply them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Failures of one account from one address before the first wait.
pub const FREE_PER_ACCOUNT: u32 = 5;
/// Failures from one address, whatever the accounts, before the first wait.
pub const FREE_PER_ADDRESS: u32 = 30;
/// The first wait; each further failure doubles it.
pub const FIRST_BLOCK: Duration = Duration::from_secs(1);
/// The longest wait.
pub const MAX_BLOCK: Duration = Duration::from_secs(300);
/// A count with no failure for this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Counts kept before the stale ones are swept (and past twice that, the oldest dropped).
const MAX_ENTRIES: usize = 100_000;

/// A request's client address, put into the request's extensions by the front door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The client address of a request, when the front door recorded it.
pub fn client_of<B>(req: &http::Request<B>) -> Option<IpAddr> {
    req.extensions().get::<ClientAddr>().map(|c| c.0)
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

/// Failure counts by key; see the module's doc.
#[derive(Default)]
pub struct LoginLimiter {
    entries: Mutex<HashMap<String, Entry>>,
}

/// A wait in whole seconds for `Retry-After` and messages, rounded up (at least 1): a client
/// that waits that long is not refused again.
pub fn whole_secs(wait: Duration) -> u64 {
    wait.as_millis().div_ceil(1000).max(1) as u64
}

/// The key of an account's failures from one address (`-` for none). The address comes
/// first and has no space, so any user name makes a distinct key; no NUL, which PostgreSQL's
/// text refuses.
fn account_key(user: &str, client: Option<IpAddr>) -> String {
    match client {
        Some(ip) => format!("u {ip} {user}"),
        None => format!("u - {user}"),
    }
}

fn address_key(ip: IpAddr) -> String {
    format!("a {ip}")
}

/// Unix time in milliseconds: the index's counts are compared across replicas, and a block
/// of one second must not end early for a rounding.
fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The index's half of the limit, which every replica shares: the failures all of them
/// counted. It is read only before a password is hashed (a remembered password skips it),
/// so a request with good credentials costs no round trip, and written at each failure.
/// `Ok((wait, account_failed))`: the wait, and whether the account's key had failures (a
/// success then clears it).
pub fn shared_wait(
    meta: &dyn crate::meta::Metadata,
    user: &str,
    client: Option<IpAddr>,
) -> crate::meta::Result<(Option<Duration>, bool)> {
    let now = unix_ms();
    let mut keys = vec![(account_key(user, client), FREE_PER_ACCOUNT)];
    keys.extend(client.map(|ip| (address_key(ip), FREE_PER_ADDRESS)));
    let (mut wait, mut account_failed) = (None, false);
    for (i, (key, free)) in keys.iter().enumerate() {
        let Some((failures, last)) = meta.login_failures(key)? else { continue };
        if now.saturating_sub(last) >= FORGET_AFTER.as_millis() as u64 {
            continue;
        }
        account_failed |= i == 0;
        let until = block_after(failures, *free).map(|d| last.saturating_add(d.as_millis() as u64));
        if let Some(left) = until.filter(|u| *u > now).map(|u| Duration::from_millis(u - now)) {
            wait = wait.max(Some(left));
        }
    }
    Ok((wait, account_failed))
}

/// Counts a failure in the index for every replica.
pub fn shared_failure(meta: &dyn crate::meta::Metadata, user: &str, client: Option<IpAddr>) -> crate::meta::Result<()> {
    let now = unix_ms();
    let stale = now.saturating_sub(FORGET_AFTER.as_millis() as u64);
    meta.add_login_failure(&account_key(user, client), now, stale)?;
    if let Some(ip) = client {
        meta.add_login_failure(&address_key(ip), now, stale)?;
    }
    Ok(())
}

/// A good check after failures: the account's count from that address starts over.
pub fn shared_success(meta: &dyn crate::meta::Metadata, user: &str, client: Option<IpAddr>) -> crate::meta::Result<()> {
    meta.clear_login_failures(&account_key(user, client))
}

/// The wait after `failures` failures when `free` are allowed: none up to `free - 1`, then
/// [`FIRST_BLOCK`] doubling, at most [`MAX_BLOCK`].
pub fn block_after(failures: u32, free: u32) -> Option<Duration> {
    if failures < free {
        return None;
    }
    let doublings = (failures - free).min(20);
    Some(FIRST_BLOCK.saturating_mul(1u32 << doublings).min(MAX_BLOCK))
}

impl LoginLimiter {
    /// The one limiter of this process.
    pub fn global() -> &'static LoginLimiter {
        static LIMITER: OnceLock<LoginLimiter> = OnceLock::new();
        LIMITER.get_or_init(LoginLimiter::default)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `user` from `client` must wait before a password is checked again; `None`
    /// when it may be checked now.
    pub fn wait(&self, user: &str, client: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let map = self.lock();
        let mut keys = vec![account_key(user, client)];
        keys.extend(client.map(address_key));
        keys.iter()
            .filter_map(|k| map.get(k).and_then(|e| e.blocked_until))
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Records a failed check.
    pub fn failure(&self, user: &str, client: Option<IpAddr>, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| now.saturating_duration_since(e.last_failure) < FORGET_AFTER);
            if map.len() >= 2 * MAX_ENTRIES {
                map.clear(); // a flood of distinct names: start over rather than grow
            }
        }
        let mut keys = vec![(account_key(user, client), FREE_PER_ACCOUNT)];
        keys.extend(client.map(|ip| (address_key(ip), FREE_PER_ADDRESS)));
        for (key, free) in keys {
            let e = map.entry(key).or_insert(Entry { failures: 0, last_failure: now, blocked_until: None });
            if now.saturating_duration_since(e.last_failure) >= FORGET_AFTER {
                e.failures = 0;
            }
            e.failures = e.failures.saturating_add(1);
            e.last_failure = now;
            e.blocked_until = block_after(e.failures, free).map(|d| now + d);
        }
    }

    /// Records a good check: the account's count from that address starts over. Whether it
    /// had failures.
    pub fn success(&self, user: &str, client: Option<IpAddr>) -> bool {
        self.lock().remove(&account_key(user, client)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn retry_after_is_rounded_up() {
        assert_eq!(whole_secs(Duration::from_millis(1)), 1);
        assert_eq!(whole_secs(Duration::from_millis(1000)), 1);
        assert_eq!(whole_secs(Duration::from_millis(1001)), 2);
        assert_eq!(whole_secs(Duration::ZERO), 1);
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        assert_eq!(block_after(4, 5), None);
        assert_eq!(block_after(5, 5), Some(Duration::from_secs(1)));
        assert_eq!(block_after(6, 5), Some(Duration::from_secs(2)));
        assert_eq!(block_after(9, 5), Some(Duration::from_secs(16)));
        assert_eq!(block_after(14, 5), Some(MAX_BLOCK));
        assert_eq!(block_after(u32::MAX, 5), Some(MAX_BLOCK));
    }

    #[test]
    fn failures_block_one_account_from_one_address_and_a_success_resets() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for i in 0..FREE_PER_ACCOUNT {
            assert_eq!(l.wait("alice", a, t0), None, "attempt {i}");
            l.failure("alice", a, t0);
        }
        assert_eq!(l.wait("alice", a, t0), Some(FIRST_BLOCK));
        // The same account from another address, and another account, are not blocked: an
        // attacker cannot lock the real user out.
        assert_eq!(l.wait("alice", ip("192.0.2.2"), t0), None);
        assert_eq!(l.wait("bob", a, t0), None);
        // The wait passes; the next failure doubles it.
        let t1 = t0 + FIRST_BLOCK;
        assert_eq!(l.wait("alice", a, t1), None);
        l.failure("alice", a, t1);
        assert_eq!(l.wait("alice", a, t1), Some(2 * FIRST_BLOCK));
        // After the wait a success resets the count.
        let t2 = t1 + 2 * FIRST_BLOCK;
        l.success("alice", a);
        l.failure("alice", a, t2);
        assert_eq!(l.wait("alice", a, t2), None, "one failure after a success is free again");
    }

    #[test]
    fn a_block_never_outlasts_the_cap_and_counts_are_forgotten() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        let a = ip("2001:db8::1");
        let mut t = t0;
        for _ in 0..40 {
            if let Some(w) = l.wait("alice", a, t) {
                assert!(w <= MAX_BLOCK);
                t += w;
            }
            l.failure("alice", a, t);
        }
        assert!(l.wait("alice", a, t).is_some_and(|w| w <= MAX_BLOCK));
        assert_eq!(l.wait("alice", a, t + MAX_BLOCK), None, "blocked at most MAX_BLOCK");
        // Quiet for FORGET_AFTER: the next failure is counted from zero.
        let later = t + FORGET_AFTER;
        l.failure("alice", a, later);
        assert_eq!(l.wait("alice", a, later), None);
    }

    #[test]
    fn one_address_trying_many_accounts_is_slowed_too() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        let a = ip("198.51.100.7");
        for i in 0..FREE_PER_ADDRESS {
            assert_eq!(l.wait(&format!("user{i}"), a, t0), None);
            l.failure(&format!("user{i}"), a, t0);
        }
        assert_eq!(l.wait("someone-new", a, t0), Some(FIRST_BLOCK));
        assert_eq!(l.wait("someone-new", ip("198.51.100.8"), t0), None);
        // Without an address (a caller that has none) the account alone is counted.
        for _ in 0..FREE_PER_ACCOUNT {
            l.failure("carol", None, t0);
        }
        assert_eq!(l.wait("carol", None, t0), Some(FIRST_BLOCK));
    }
}
