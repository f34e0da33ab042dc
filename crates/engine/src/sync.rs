//! Taking the engine's std locks, one way: a poisoned lock is recovered, never refused. And
//! [`blocking_section`], for the short blocking steps (a redb commit, the read of an image config
//! from the content store) of code that can run on an async worker.
//!
//! Every engine lock guards a map or a value that is changed in single steps (an insert, a
//! remove, a replacement), so a panic while one was held leaves what it guards whole. Refusing
//! a poisoned lock would instead disable what it guards until the daemon restarts: a poisoned
//! gc lock failed every later pull, push, commit and image removal.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f`, which blocks (a redb commit waits for its fsync), telling tokio first when this is
/// one of its multi-thread workers: the worker's other tasks move to another thread meanwhile,
/// instead of waiting behind the disk. Elsewhere (a blocking-pool thread, a plain thread, a
/// current-thread runtime, where tokio cannot hand the worker over) `f` just runs.
pub(crate) fn blocking_section<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The waiting closure needs a task of the same single worker to run before it can return:
    /// only a worker handed over by `blocking_section` lets that task run.
    #[test]
    fn a_blocking_section_frees_its_worker_for_other_tasks() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let got = rt.block_on(async {
            tokio::spawn(async {
                let (tx, rx) = std::sync::mpsc::channel();
                tokio::spawn(async move { tx.send(()).unwrap() });
                blocking_section(|| rx.recv_timeout(std::time::Duration::from_secs(20)))
            })
            .await
            .unwrap()
        });
        assert!(got.is_ok(), "the other task never ran while the section blocked");
        // Off a runtime it just runs.
        assert_eq!(blocking_section(|| 7), 7);
    }
}
