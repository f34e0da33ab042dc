//! Layer transfers: one download per layer however many pulls want it at once, and downloads
//! that carry on where they broke off.
//!
//! A pull that needs a layer another pull is fetching waits for that transfer (showing its
//! progress) instead of opening a second connection; if the transfer fails, the waiter tries
//! itself. A transfer whose own client went away stops, unless someone is waiting for it.
//!
//! A download whose body breaks off (reset, early end, time-out) asks for the rest with
//! `Range: bytes=N-` a few times, feeding the same hasher and decompressor. What it received
//! stays in the content store's ingest area under the blob's digest, so a later pull (after a
//! failure, a cancel or a killed daemon) replays those bytes, verified, and asks only for the
//! rest. Only a fully verified blob is ever committed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Take};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use wharf_content::BlobWriter;
use wharf_distribution::{AuthConfig, DistributionError, Endpoint, RegistryClient};
use wharf_types::oci::{Compression, Descriptor};
use wharf_types::{Digest, ErrorKind, ImageRef};

use crate::pull::{Events, LayerJob};
use crate::{Engine, EngineError};

/// The first pause before asking again; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// How often waiters look at the progress of the transfer they wait for.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// The layer transfers in flight, by (compressed blob digest, chain id): a layer is downloaded,
/// hashed, stored and unpacked in one pass, so both name what a transfer produces.
#[derive(Default)]
pub(crate) struct Transfers {
    active: Mutex<HashMap<(Digest, Digest), Arc<Transfer>>>,
}

#[derive(Default)]
pub(crate) struct Transfer {
    state: Mutex<TransferState>,
    changed: Condvar,
    /// Compressed bytes received so far, for the waiters' progress.
    received: AtomicU64,
}

#[derive(Default)]
struct TransferState {
    /// Set when the transfer ended: `Err` carries the owner's error message.
    outcome: Option<Result<(), String>>,
    /// Pulls waiting for it: while there are any, it goes on without its own client.
    watchers: usize,
}

impl Transfer {
    fn state(&self) -> MutexGuard<'_, TransferState> {
        crate::sync::lock(&self.state)
    }

    fn watchers(&self) -> usize {
        self.state().watchers
    }
}

/// What `join` made of the caller: the one who downloads, or one who waits.
enum Joined<'a> {
    Owner(Owner<'a>),
    Watcher(Arc<Transfer>),
}

/// The owner's hold on a transfer: when it goes, the transfer leaves the table and its waiters
/// learn the outcome (a failure if none was set).
struct Owner<'a> {
    transfers: &'a Transfers,
    key: (Digest, Digest),
    transfer: Arc<Transfer>,
    outcome: Option<Result<(), String>>,
}

impl Drop for Owner<'_> {
    fn drop(&mut self) {
        // Out of the table first: a waiter that retries after a failure must not find it again.
        {
            let mut active = crate::sync::lock(&self.transfers.active);
            if active.get(&self.key).is_some_and(|t| Arc::ptr_eq(t, &self.transfer)) {
                active.remove(&self.key);
            }
        }
        let outcome = self.outcome.take().unwrap_or_else(|| Err("the transfer stopped".to_string()));
        self.transfer.state().outcome = Some(outcome);
        self.transfer.changed.notify_all();
    }
}

impl Transfers {
    fn join(&self, key: (Digest, Digest)) -> Joined<'_> {
        let mut active = crate::sync::lock(&self.active);
        if let Some(t) = active.get(&key) {
            t.state().watchers += 1;
            return Joined::Watcher(t.clone());
        }
        let transfer = Arc::new(Transfer::default());
        active.insert(key.clone(), transfer.clone());
        Joined::Owner(Owner { transfers: self, key, transfer, outcome: None })
    }
}

/// How a wait for another pull's transfer ended.
enum Watched {
    Done,
    Failed(String),
    /// This pull's own client went away.
    Cancelled,
}

impl Engine {
    /// Makes layer `job` present: downloads it, or waits for the pull that is downloading it
    /// already (and tries itself if that one fails).
    pub(crate) fn fetch_layer(
        &self,
        r: &ImageRef,
        ep: &Endpoint,
        job: &LayerJob,
        auth: Option<&AuthConfig>,
        events: &Events,
    ) -> Result<(), EngineError> {
        let short = job.desc.digest.short();
        let key = (job.desc.digest.clone(), job.chain_id.clone());
        loop {
            match self.inner.transfers.join(key.clone()) {
                Joined::Owner(mut owner) => {
                    // Another pull may have finished it between our look and the join.
                    if self.inner.snapshots.has_layer(&job.chain_id) {
                        owner.outcome = Some(Ok(()));
                        events.layer(short, "Pull complete");
                        return Ok(());
                    }
                    let res = self.download_layer(r, ep, job, auth, events, &owner.transfer);
                    owner.outcome = Some(res.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                    return res;
                }
                Joined::Watcher(transfer) => {
                    events.layer(short, "Waiting");
                    match watch(&transfer, job.desc.size, short, events) {
                        Watched::Done => {
                            events.layer(short, "Download complete");
                            events.layer(short, "Pull complete");
                            return Ok(());
                        }
                        Watched::Failed(e) => {
                            log::info!(
                                "pull {r}: the transfer of layer {} failed ({e}); trying again",
                                job.desc.digest
                            );
                        }
                        Watched::Cancelled => return Err(cancelled(r)),
                    }
                }
            }
        }
    }

    /// Downloads (or reads from the store), verifies, stores and unpacks one layer.
    fn download_layer(
        &self,
        r: &ImageRef,
        ep: &Endpoint,
        job: &LayerJob,
        auth: Option<&AuthConfig>,
        events: &Events,
        transfer: &Transfer,
    ) -> Result<(), EngineError> {
        let short = job.desc.digest.short();
        let registry = self.registry();
        let mut src = LayerReader {
            replay: None,
            body: None,
            remote: None,
            writer: None,
            received: 0,
            total: job.desc.size,
            attempts: 0,
            // dockerd's max-download-attempts counts the first try.
            max_retries: self.registry_settings().max_download_attempts.saturating_sub(1),
            stalled_at: None,
            io_failed: false,
            id: short,
            events,
            transfer,
            last: Instant::now(),
            pulled: self.metrics(),
        };
        if self.inner.content.contains(&job.desc.digest) {
            src.body = Some(Box::new(self.inner.content.open_blob(&job.desc.digest)?));
        } else {
            let resumed = self.inner.content.resume(&job.desc.digest, job.desc.size)?;
            if resumed.offset > 0 {
                log::info!(
                    "pull {r}: layer {}: resuming after {} of {} bytes",
                    job.desc.digest,
                    resumed.offset,
                    job.desc.size
                );
            }
            src.replay = resumed.replay;
            src.writer = Some(resumed.writer);
            src.remote = Some(Remote { registry: &registry, r, ep, desc: &job.desc, auth, offset: resumed.offset });
        }
        let applied = match job.compression {
            Compression::None => self.inner.snapshots.apply_layer(&job.chain_id, Some(&job.diff_id), &mut src),
            Compression::Gzip => {
                let dec = flate2::read::MultiGzDecoder::new(&mut src);
                self.inner.snapshots.apply_layer(&job.chain_id, Some(&job.diff_id), dec)
            }
            Compression::Zstd => match zstd::stream::read::Decoder::new(&mut src) {
                Ok(dec) => self.inner.snapshots.apply_layer(&job.chain_id, Some(&job.diff_id), dec),
                Err(e) => return Err(EngineError::io(format!("layer {}: zstd", job.desc.digest), e)),
            },
        };
        if let Err(e) = applied {
            // Bytes that arrived whole but do not unpack are no use to a later attempt.
            if !src.io_failed {
                if let Some(w) = src.writer.take() {
                    w.discard();
                }
            }
            return Err(EngineError::Invalid(format!("pull {r}: {e}")));
        }
        // The tar may end before the compressed stream does: the digest covers every byte.
        let drained = io::copy(&mut src, &mut io::sink());
        let verified = match (drained, src.writer.take()) {
            (Err(e), _) => Err(EngineError::Invalid(format!("pull {r}: layer {}: {e}", job.desc.digest))),
            (Ok(_), Some(w)) => w.commit().map(|_| ()).map_err(|e| {
                EngineError::Invalid(format!(
                    "pull {r}: filesystem layer verification failed for digest {}: {e}",
                    job.desc.digest
                ))
            }),
            (Ok(_), None) => Ok(()),
        };
        if let Err(e) = verified {
            let _ = self.inner.snapshots.remove_layer(&job.chain_id);
            return Err(e);
        }
        events.layer(short, "Pull complete");
        Ok(())
    }
}

/// Waits for another pull's transfer, relaying its progress.
fn watch(transfer: &Transfer, total: u64, id: &str, events: &Events) -> Watched {
    let mut last = 0;
    let mut state = transfer.state();
    loop {
        if let Some(outcome) = state.outcome.clone() {
            state.watchers = state.watchers.saturating_sub(1);
            return match outcome {
                Ok(()) => Watched::Done,
                Err(e) => Watched::Failed(e),
            };
        }
        if events.gone() {
            state.watchers = state.watchers.saturating_sub(1);
            return Watched::Cancelled;
        }
        let received = transfer.received.load(Ordering::Relaxed);
        if received != last {
            last = received;
            events.progress(id, "Downloading", received, total);
        }
        state = transfer.changed.wait_timeout(state, WATCH_INTERVAL).unwrap_or_else(PoisonError::into_inner).0;
    }
}

fn cancelled(r: &ImageRef) -> EngineError {
    EngineError::Internal(format!("pull {r}: cancelled: the client went away"))
}

/// Where the rest of a layer comes from when its body breaks off.
struct Remote<'a> {
    registry: &'a RegistryClient,
    r: &'a ImageRef,
    ep: &'a Endpoint,
    desc: &'a Descriptor,
    auth: Option<&'a AuthConfig>,
    /// Where the network part starts: the bytes before it are replayed from the store.
    offset: u64,
}

/// A layer's compressed bytes for the decompressor: first the verified bytes of an earlier
/// attempt (replayed from the ingest area), then the registry's body, asked for again from the
/// byte where it broke off. Network bytes go to the blob writer too (hashed and stored), and
/// the progress goes to the pull's client and to the transfer's waiters.
struct LayerReader<'a> {
    replay: Option<Take<File>>,
    body: Option<Box<dyn Read + Send>>,
    /// `None` for a blob read from the store: its end is final.
    remote: Option<Remote<'a>>,
    writer: Option<BlobWriter>,
    /// Bytes of the blob handed on so far.
    received: u64,
    total: u64,
    attempts: u32,
    /// Retries allowed after the first attempt (daemon.json `max-download-attempts` less one).
    max_retries: u32,
    /// Where the body last timed out.
    stalled_at: Option<u64>,
    /// Set when reading failed for good (network, cancel): the bytes so far are still good.
    io_failed: bool,
    id: &'a str,
    events: &'a Events,
    transfer: &'a Transfer,
    last: Instant,
    /// Where the network bytes are counted (`metrics-addr`).
    pulled: &'a crate::metrics::Metrics,
}

impl LayerReader<'_> {
    fn report(&mut self, n: usize) {
        self.received += n as u64;
        self.transfer.received.store(self.received, Ordering::Relaxed);
        if self.last.elapsed() > Duration::from_millis(100) || (n == 0 && self.received > 0) {
            self.last = Instant::now();
            self.events.progress(self.id, "Downloading", self.received, self.total);
        }
    }

    /// Reads the network part, asking again (with a back-off) where the body broke off.
    fn read_remote(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut stalled_twice = false;
            let Some(remote) = self.remote.as_ref() else {
                let Some(body) = self.body.as_mut() else { return Ok(0) };
                return body.read(buf);
            };
            let failure = match self.body.as_mut() {
                None if self.received >= self.total => return Ok(0),
                None => match remote.registry.open_blob(remote.r, remote.ep, remote.desc, self.received, remote.auth) {
                    Ok(body) => {
                        if self.received > remote.offset || self.attempts > 0 {
                            log::info!("layer {}: asked again from byte {}", remote.desc.digest, self.received);
                        }
                        self.body = Some(body);
                        continue;
                    }
                    Err(e) if !retryable(&e) => return Err(io::Error::other(e)),
                    Err(e) => e.to_string(),
                },
                Some(body) => match body.read(buf) {
                    Ok(0) if self.received < self.total => format!(
                        "connection closed after {} of {} bytes (unexpected end of the blob)",
                        self.received, self.total
                    ),
                    Ok(n) => {
                        if let Some(w) = self.writer.as_mut() {
                            std::io::Write::write_all(w, &buf[..n])?;
                        }
                        return Ok(n);
                    }
                    Err(e) => {
                        // A registry that stalls twice at the same byte is not worth more waits
                        // of a whole idle time-out each.
                        if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
                            stalled_twice = self.stalled_at == Some(self.received);
                            self.stalled_at = Some(self.received);
                        }
                        e.to_string()
                    }
                },
            };
            self.body = None;
            if self.attempts >= self.max_retries || stalled_twice {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "layer {}: download broke off after {} of {} bytes, {} attempts: {failure}",
                        remote.desc.digest,
                        self.received,
                        self.total,
                        self.attempts + 1
                    ),
                ));
            }
            log::info!("layer {}: {failure}; asking for the rest", remote.desc.digest);
            std::thread::sleep(FIRST_BACKOFF * 2u32.pow(self.attempts));
            self.attempts += 1;
            if self.cancelled() {
                return Err(io::Error::other("cancelled: the client went away"));
            }
        }
    }

    /// The pull's client went away and no other pull waits for this layer.
    fn cancelled(&self) -> bool {
        self.events.gone() && self.transfer.watchers() == 0
    }
}

impl Read for LayerReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancelled() {
            self.io_failed = true;
            return Err(io::Error::other("cancelled: the client went away"));
        }
        if let Some(replay) = self.replay.as_mut() {
            match replay.read(buf) {
                Ok(0) => self.replay = None,
                Ok(n) => {
                    self.report(n);
                    return Ok(n);
                }
                Err(e) => {
                    self.io_failed = true;
                    return Err(e);
                }
            }
        }
        match self.read_remote(buf) {
            Ok(n) => {
                if self.remote.is_some() {
                    self.pulled.pulled(n as u64);
                }
                self.report(n);
                Ok(n)
            }
            Err(e) => {
                self.io_failed = true;
                Err(e)
            }
        }
    }
}

/// Whether asking again may help: the registry or the path to it failed, not the request.
fn retryable(e: &DistributionError) -> bool {
    matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal)
}
