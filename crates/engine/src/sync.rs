//! Taking the engine's std locks, one way: a poisoned lock is recovered, never refused.
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
