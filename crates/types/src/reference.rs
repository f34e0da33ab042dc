//! Image references, parsed and normalized the way Docker does it:
//! `busybox` is `docker.io/library/busybox:latest`.

#![warn(clippy::indexing_slicing)]

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A fully normalized image reference. `registry` and `repository` are always set; at least one
/// of `tag` and `digest` is set after [`ImageRef::parse`] (the tag defaults to `latest`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?} is empty")]
    Empty(String),
    #[error("invalid reference format: repository name {0:?} must be lowercase")]
    Uppercase(String),
    #[error("invalid reference format: {0:?}: {1}")]
    Malformed(String, &'static str),
    #[error("invalid reference format: {0:?}: repository name is longer than 255 characters")]
    TooLong(String),
    #[error("invalid reference format: {0:?}: {1}")]
    BadDigest(String, String),
}

impl ImageRef {
    /// Parses and normalizes a reference as given by a user: adds the default registry,
    /// `library/` for official images on docker.io, and `:latest` when neither tag nor digest is given.
    pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
        let mut r = Self::parse_any(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parses a reference without adding the default tag (used for `docker images busybox`,
    /// `rmi`, and repository-only names such as the `fromImage` of a pull with a separate tag).
    pub fn parse_any(s: &str) -> Result<ImageRef, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty(s.to_string()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest =
                    d.parse::<Digest>().map_err(|e| ReferenceError::BadDigest(s.to_string(), e.to_string()))?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        // A tag follows the last ':' when no '/' comes after it; a ':' before a '/' is a port.
        let (name, tag) = match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(ReferenceError::Malformed(s.to_string(), "invalid tag"));
            }
        }
        if name.is_empty() {
            return Err(ReferenceError::Malformed(s.to_string(), "missing repository name"));
        }
        let (registry, path) = split_registry(name);
        let mut registry = registry.unwrap_or(DEFAULT_REGISTRY).to_string();
        if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            registry = DEFAULT_REGISTRY.to_string();
        }
        if registry.is_empty() || !registry.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) {
            return Err(ReferenceError::Malformed(s.to_string(), "invalid registry host"));
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(s.to_string()));
        }
        for component in path.split('/') {
            if !valid_component(component) {
                return Err(ReferenceError::Malformed(
                    s.to_string(),
                    "repository name components must be lowercase letters, digits and separators (. _ __ -), not starting or ending with a separator",
                ));
            }
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong(s.to_string()));
        }
        Ok(ImageRef { registry, repository, tag: tag.map(str::to_string), digest })
    }

    /// `registry/repository`, fully qualified.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name as Docker shows it: without `docker.io/`, and without `library/` when what
    /// follows is one component (`library/a/b` stays so, as in Docker's familiar form).
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The familiar name with its tag (`busybox:latest`), as Docker lists RepoTags.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }

    /// The same reference with the digest set and the tag removed (`name@sha256:...`), as
    /// Docker lists RepoDigests.
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }
}

fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() <= MAX_TAG_LEN
        && b.first().is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if !b.first().is_some_and(|&x| is_alnum(x)) || !b.last().is_some_and(|&x| is_alnum(x)) {
        return false;
    }
    // What lies between the alphanumeric runs are the separator runs: ".", "_", "__", or one or
    // more "-". Any other character (upper case, non-ASCII) is part of a run and fails it.
    c.split(|x: char| x.is_ascii_lowercase() || x.is_ascii_digit())
        .filter(|sep| !sep.is_empty())
        .all(|sep| sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-'))
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// Prints the fully qualified form: `docker.io/library/busybox:latest`.
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalizes_like_docker() {
        let cases: &[(&str, &str)] = &[
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("user/app", "docker.io/user/app:latest"),
            ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
            ("127.0.0.1:5000/library/busybox", "127.0.0.1:5000/library/busybox:latest"),
            ("localhost/app:v1", "localhost/app:v1"),
            ("localhost:5000/a/b/c:v1.2-rc_3", "localhost:5000/a/b/c:v1.2-rc_3"),
            ("registry.example/ns/name:tag", "registry.example/ns/name:tag"),
            ("my.reg:443/x__y/a.b-c", "my.reg:443/x__y/a.b-c:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(ImageRef::parse(input).unwrap().to_string(), *want, "{input}");
        }
    }

    #[test]
    fn digests_and_tags_together() {
        let r = ImageRef::parse(&format!("busybox@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().unwrap().hex(), HEX);
        let r = ImageRef::parse(&format!("host:5000/busybox:1@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.registry, "host:5000");
        assert_eq!(r.familiar(), format!("host:5000/busybox:1@sha256:{HEX}"));
    }

    #[test]
    fn familiar_names() {
        assert_eq!(ImageRef::parse("busybox").unwrap().familiar(), "busybox:latest");
        assert_eq!(ImageRef::parse("user/app:1").unwrap().familiar(), "user/app:1");
        assert_eq!(ImageRef::parse("127.0.0.1:5000/x").unwrap().familiar(), "127.0.0.1:5000/x:latest");
    }

    #[test]
    fn rejects_malformed() {
        let bad = [
            "",
            "Busybox",
            "busybox:",
            ":tag",
            "busy box",
            "-busybox",
            "busybox-",
            "a//b",
            "busybox@sha256:abc",
            "busybox@md5:abc",
            "busybox:-tag",
            "a/b/",
            "host:5000/",
        ];
        for b in bad {
            assert!(ImageRef::parse(b).is_err(), "{b:?} should be refused");
        }
        let long = "a".repeat(300);
        assert!(matches!(ImageRef::parse(&long), Err(ReferenceError::TooLong(_))));
    }

    #[test]
    fn multibyte_text_is_refused_not_a_panic() {
        for b in ["é", "busybox:é", "é:tag", "a/é:1", "hé:5000/a", "a.é", "a-é-b", "aé", "éa", "busybox:tagé"]
        {
            assert!(ImageRef::parse(b).is_err(), "{b:?} should be refused");
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let e = ImageRef::parse("Busybox").unwrap_err().to_string();
        assert!(e.contains("lowercase"), "{e}");
        let e = ImageRef::parse("busybox:bad!tag").unwrap_err().to_string();
        assert!(e.contains("invalid tag"), "{e}");
    }

    // Found by the `reference` fuzz target: `library/` was stripped before a nested path, and
    // the familiar form then read as a registry host that is no valid one.
    #[test]
    fn library_with_a_nested_path_keeps_its_prefix_in_the_familiar_form() {
        let r = ImageRef::parse("library/b.sy_b/sha256aaa").unwrap();
        assert_eq!(r.familiar(), "library/b.sy_b/sha256aaa:latest");
        assert_eq!(ImageRef::parse(&r.familiar()).unwrap(), r);
        assert_eq!(ImageRef::parse("library/busybox").unwrap().familiar(), "busybox:latest");
    }
}
