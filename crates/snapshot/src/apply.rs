//! Applying an uncompressed layer tar into an empty directory, in one pass, converting Docker
//! whiteouts to overlayfs form and refusing any entry that would reach outside the directory.
//!
//! The extraction is the project's one loop, `wharf_confined::untar`, under the layer policy
//! below: every path walked from the layer root fd with `O_NOFOLLOW` and every object created
//! with an `*at` call in its parent's fd, so neither a `..`, an absolute path, nor a symlink
//! created by an earlier entry can make a write land elsewhere; overlay xattrs from the archive
//! dropped, whiteouts written in overlayfs form. (A layer shipping a 0/0 character device itself
//! gains nothing: it could hide the same lower files with a `.wh.` entry.) This file adds the
//! diff id, hashed in the same pass.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

use wharf_types::{Digest, Sha256Writer};

use crate::SnapshotError;
use wharf_confined::untar::{self, Owner, Policy, Replace, Resolve};

const READ_BUFFER: usize = 1 << 20;

/// A layer is applied as its image says: owners as given, PAX times and xattrs kept, every
/// later entry replacing an earlier one, unknown types refused, whiteouts in overlayfs form.
const POLICY: Policy<'static> = Policy {
    resolve: Resolve::NoFollow,
    root_entry: true,
    owner: Owner::AsGiven,
    replace: Replace::Always,
    pax_times: true,
    xattrs: true,
    refuse_unknown: true,
    nodes: true,
    whiteouts: true,
    lenient_header: false,
    rename: None,
};

/// What applying a layer produced: its diff id (sha256 of the whole uncompressed stream) and the
/// apparent size of its files.
pub(crate) struct Applied {
    pub diff_id: Digest,
    pub size: u64,
}

/// Hashes every byte read through it, so the diff id comes out of the same single pass.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256Writer,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Applies the layer tar read from `tar` into `dir`, which must be empty.
pub(crate) fn apply(layer: &Digest, dir: &Path, tar: impl Read) -> Result<Applied, SnapshotError> {
    let root = File::open(dir)
        .map(OwnedFd::from)
        .map_err(|e| SnapshotError::io(format!("open layer dir {}", dir.display()), e))?;
    let hashing = HashingReader { inner: tar, hasher: Sha256Writer::new() };
    let mut archive = tar::Archive::new(BufReader::with_capacity(READ_BUFFER, hashing));
    let read_err = |e| SnapshotError::ReadLayer { layer: layer.clone(), source: e };
    let summary = untar::extract(&root, &mut archive, &POLICY).map_err(|e| match e {
        untar::Error::Invalid { entry, problem } => {
            SnapshotError::InvalidLayer { layer: layer.clone(), entry, reason: problem.reason("layer") }
        }
        untar::Error::Io { entry, what, source } => {
            SnapshotError::io(format!("layer {layer}: entry {entry:?}: {what}"), source)
        }
        untar::Error::Read(e) => read_err(e),
    })?;
    // The diff id covers the whole stream, including the padding after the end-of-archive
    // blocks, which the tar reader leaves unread.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(read_err)?;
    let (diff_id, _) = rest.into_inner().hasher.finish();
    Ok(Applied { diff_id, size: summary.size })
}
