//! Pure data types shared by every wharf crate. No I/O lives here.

pub mod detach;
pub mod digest;
pub mod error;
pub mod oci;
pub mod pattern;
pub mod percent;
pub mod reference;
pub mod time;

pub use digest::{Digest, DigestError, Sha256Writer};
pub use error::ErrorKind;
pub use reference::{ImageRef, ReferenceError};
