//! What the registry needs to know of a pushed manifest: its media type, the blobs and child
//! manifests it names (which must be in the repository), its subject and artifact type (for
//! the referrers API). The bytes themselves are stored as they came.

use std::collections::BTreeMap;

use serde::Deserialize;
use wharf_types::oci::{
    MEDIA_DOCKER_FOREIGN_LAYER, MEDIA_DOCKER_MANIFEST, MEDIA_DOCKER_MANIFEST_LIST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST,
};
use wharf_types::Digest;

/// The largest manifest accepted; the spec asks registries to take at least 4 MiB.
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

const SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// A descriptor as far as the registry cares. Digests are parsed (sha256 only), so a
/// malformed one makes the manifest invalid.
#[derive(Debug, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: Digest,
    #[allow(dead_code)] // required by the spec: a descriptor without a size is refused
    size: u64,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Body {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A manifest understood.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    pub annotations: BTreeMap<String, String>,
    pub blobs: Vec<Digest>,
    pub manifests: Vec<Digest>,
}

/// A layer the registry is not expected to hold: a foreign or non-distributable layer that
/// names where it lives.
fn is_foreign(d: &Descriptor) -> bool {
    !d.urls.is_empty() && (d.media_type == MEDIA_DOCKER_FOREIGN_LAYER || d.media_type.contains(".nondistributable."))
}

/// Parses a manifest pushed with `content_type` (the header, parameters stripped; empty when
/// absent). The body's own `mediaType`, when present, must agree with the header.
pub fn parse(content_type: &str, bytes: &[u8]) -> Result<Parsed, String> {
    let body: Body = serde_json::from_slice(bytes).map_err(|e| format!("manifest is not valid: {e}"))?;
    let header = match content_type {
        "" | "application/json" | "application/octet-stream" | "text/plain" => None,
        ct => Some(ct),
    };
    let media_type = match (header, body.media_type.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(format!("the manifest's mediaType {b:?} does not match its Content-Type {h:?}"));
        }
        (Some(h), _) => h.to_string(),
        (None, Some(b)) => b.to_string(),
        // OCI lets mediaType be left out; the shape tells a manifest from an index.
        (None, None) if body.manifests.is_some() => MEDIA_OCI_INDEX.to_string(),
        (None, None) => MEDIA_OCI_MANIFEST.to_string(),
    };
    if SCHEMA1.contains(&media_type.as_str()) || body.schema_version == Some(1) {
        return Err("schema 1 manifests are not supported".to_string());
    }
    if body.schema_version != Some(2) {
        return Err("schemaVersion must be 2".to_string());
    }
    let subject = body.subject.map(|s| s.digest);
    match media_type.as_str() {
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => {
            let config = body.config.ok_or("an image manifest needs a config")?;
            let layers = body.layers.unwrap_or_default();
            if body.manifests.is_some() {
                return Err("an image manifest has no manifests field".to_string());
            }
            let artifact_type = body.artifact_type.or_else(|| Some(config.media_type.clone()));
            let mut blobs = vec![config.digest];
            blobs.extend(layers.into_iter().filter(|l| !is_foreign(l)).map(|l| l.digest));
            blobs.dedup();
            Ok(Parsed { media_type, artifact_type, subject, annotations: body.annotations, blobs, manifests: vec![] })
        }
        MEDIA_OCI_INDEX | MEDIA_DOCKER_MANIFEST_LIST => {
            let children = body.manifests.ok_or("an index needs a manifests field")?;
            if body.config.is_some() || body.layers.is_some() {
                return Err("an index has no config or layers".to_string());
            }
            let manifests = children.into_iter().map(|m| m.digest).collect();
            Ok(Parsed {
                media_type,
                artifact_type: body.artifact_type,
                subject,
                annotations: body.annotations,
                blobs: vec![],
                manifests,
            })
        }
        other => Err(format!("manifest media type {other:?} is not supported")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> String {
        Digest::of(s.as_bytes()).to_string()
    }

    #[test]
    fn image_manifest_with_subject() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_OCI_MANIFEST}","artifactType":"application/x-sig",
            "config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}},
            "layers":[{{"mediaType":"x","digest":"{}","size":1}}],
            "subject":{{"mediaType":"{MEDIA_OCI_MANIFEST}","digest":"{}","size":3}},
            "annotations":{{"a":"b"}}}}"#,
            d("c"),
            d("l"),
            d("s")
        );
        let p = parse(MEDIA_OCI_MANIFEST, body.as_bytes()).unwrap();
        assert_eq!(p.artifact_type.as_deref(), Some("application/x-sig"));
        assert_eq!(p.subject.unwrap().to_string(), d("s"));
        assert_eq!(p.blobs.len(), 2);
        assert_eq!(p.annotations["a"], "b");
    }

    #[test]
    fn refusals() {
        let cfg = format!(r#""config":{{"mediaType":"x","digest":"{}","size":2}}"#, d("c"));
        for (ct, body) in [
            (MEDIA_OCI_MANIFEST, "not json".to_string()),
            (MEDIA_OCI_MANIFEST, format!(r#"{{"schemaVersion":1,{cfg}}}"#)),
            (MEDIA_OCI_MANIFEST, format!(r#"{{"schemaVersion":2,"mediaType":"{MEDIA_OCI_INDEX}",{cfg}}}"#)),
            (MEDIA_OCI_MANIFEST, r#"{"schemaVersion":2,"layers":[]}"#.to_string()),
            (MEDIA_OCI_MANIFEST, r#"{"schemaVersion":2,"config":{"digest":"sha256:00","size":1}}"#.to_string()),
            ("application/x-unknown", format!(r#"{{"schemaVersion":2,{cfg}}}"#)),
            (MEDIA_OCI_INDEX, format!(r#"{{"schemaVersion":2,{cfg},"manifests":[]}}"#)),
        ] {
            assert!(parse(ct, body.as_bytes()).is_err(), "{ct} {body}");
        }
    }

    #[test]
    fn index_and_foreign_layers() {
        let body = format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"x","digest":"{}","size":1}}]}}"#, d("m"));
        let p = parse("", body.as_bytes()).unwrap();
        assert_eq!(p.media_type, MEDIA_OCI_INDEX);
        assert_eq!(p.manifests.len(), 1);
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_DOCKER_MANIFEST}",
            "config":{{"mediaType":"x","digest":"{}","size":2}},
            "layers":[{{"mediaType":"{MEDIA_DOCKER_FOREIGN_LAYER}","digest":"{}","size":1,"urls":["https://x"]}}]}}"#,
            d("c"),
            d("f")
        );
        assert_eq!(parse(MEDIA_DOCKER_MANIFEST, body.as_bytes()).unwrap().blobs.len(), 1);
    }
}
