//! File system work confined below a directory: every path operation here is relative to an
//! open directory fd (the `*at` calls, `openat2` with `RESOLVE_IN_ROOT`), never a joined
//! string, so that a symlink or `..` planted by a layer, a container or an archive cannot
//! redirect it. Layer apply (`snapshot`), `docker cp`, export, diff and the account-file reads
//! of the engine all go through this one copy.
//!
//! - the system call wrappers (`sys.rs`, re-exported here);
//! - [`overlay`]: whether overlayfs sees a directory as opaque, and marking one so;
//! - [`entry`]: the one set of rules that turns a tar entry name (or hard-link target) into
//!   components below the extraction directory, shared by every extractor of the project;
//! - [`untar`]: the one extraction loop (parents through fds, replacement, creation, metadata,
//!   whiteouts), with a [`untar::Policy`] for what its callers differ in.
//!
//! Built on `libc` (already a dependency of every crate that needs these) rather than `rustix`:
//! the calls needed are about twenty and were already written twice, and `rustix` would bring
//! a large dependency (and its own error and fd types into every caller) for them. The one
//! call `libc` has no function for, `openat2`, goes through `libc::syscall`, as does
//! `fchmodat2`.
//!
//! Everything here is `unsafe` only at the system call boundary, each block with its
//! `SAFETY:`; callers get safe functions over `&CStr` names and owned fds.

pub mod entry;
pub mod overlay;
mod sys;
pub mod untar;

pub use sys::*;
