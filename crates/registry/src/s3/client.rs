//! The S3 operations the blob store needs, as path-style requests signed with SigV4, over
//! `wharf-http` (one connection per request).

use std::io::{self, Read};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use wharf_http::{Body, Connector, ConnectorOptions, HttpError, Response, Url};
use wharf_types::digest::to_hex;

use super::sigv4::{self, Credentials, EMPTY_SHA256};

/// XML answers (listings, errors) are small; anything bigger is not S3 talking.
const MAX_XML: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// `error` is no `source`: the message holds it already.
    #[error("{op}: {error}")]
    Http { op: String, error: HttpError },
    /// S3 answered with an error (`code` from its XML body, or the status alone).
    #[error("{op}: {status} {code}: {message}")]
    Status { op: String, status: u16, code: String, message: String },
    #[error("{op}: unexpected answer: {message}")]
    Malformed { op: String, message: String },
}

impl S3Error {
    /// The S3 error code (`NoSuchKey`, `AccessDenied`, ...), when S3 gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            S3Error::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<S3Error> for io::Error {
    fn from(e: S3Error) -> io::Error {
        let kind = match e.status() {
            Some(404) => io::ErrorKind::NotFound,
            Some(403) => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// An object's body from some offset, and the object's whole size.
pub type ObjectReader = (Box<dyn Read + Send>, u64);

/// An object found by a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

pub struct S3Client {
    connector: Connector,
    endpoint: Url,
    bucket: String,
    region: String,
    creds: Credentials,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client").field("endpoint", &self.endpoint.to_string()).field("bucket", &self.bucket).finish()
    }
}

/// A request before it is signed: the headers here are all signed.
struct Call<'a> {
    method: &'a str,
    key: Option<&'a str>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Body,
    payload_sha256: String,
}

impl<'a> Call<'a> {
    fn new(method: &'a str, key: Option<&'a str>) -> Call<'a> {
        Call {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
            payload_sha256: EMPTY_SHA256.to_string(),
        }
    }

    fn query(mut self, k: &str, v: impl Into<String>) -> Call<'a> {
        self.query.push((k.to_string(), v.into()));
        self
    }

    fn header(mut self, k: &str, v: impl Into<String>) -> Call<'a> {
        self.headers.push((k.to_string(), v.into()));
        self
    }

    /// A body in memory, signed with its real hash so that S3 refuses it when bytes change
    /// on the way.
    fn bytes(mut self, data: Vec<u8>) -> Call<'a> {
        self.payload_sha256 = to_hex(&Sha256::digest(&data));
        self.body = Body::Bytes(data);
        self
    }
}

impl S3Client {
    /// `endpoint` is `http(s)://host[:port][/path]`; `ca_file` adds a CA for https.
    pub fn new(
        endpoint: &str,
        region: &str,
        bucket: &str,
        creds: Credentials,
        ca_file: Option<&std::path::Path>,
    ) -> Result<S3Client, HttpError> {
        let endpoint = Url::parse(endpoint)?;
        let opts = ConnectorOptions {
            connect_timeout: Duration::from_secs(10),
            // A multipart completion or a copy may take S3 a while before it answers.
            io_timeout: Some(Duration::from_secs(300)),
            extra_ca_files: ca_file.map(|p| vec![p.to_path_buf()]).unwrap_or_default(),
            ..ConnectorOptions::default()
        };
        Ok(S3Client {
            connector: Connector::new(opts)?,
            endpoint,
            bucket: bucket.to_string(),
            region: region.to_string(),
            creds,
        })
    }

    pub fn describe(&self) -> String {
        format!("bucket {:?} at {}", self.bucket, self.endpoint.origin())
    }

    fn path(&self, key: Option<&str>) -> String {
        let base = self.endpoint.target.split('?').next().unwrap_or("/").trim_end_matches('/');
        match key {
            Some(k) => format!("{base}/{}/{k}", self.bucket),
            None => format!("{base}/{}", self.bucket),
        }
    }

    fn send(&self, call: Call) -> Result<Response, S3Error> {
        let op =
            format!("{} {}", call.method, call.key.map_or_else(|| format!("bucket {}", self.bucket), str::to_string));
        let path = self.path(call.key);
        let amz_date = sigv4::amz_date(&wharf_types::time::rfc3339_secs(SystemTime::now()));
        let mut headers = call.headers;
        headers.push(("Host".into(), self.endpoint.host_header()));
        headers.push(("x-amz-date".into(), amz_date.clone()));
        headers.push(("x-amz-content-sha256".into(), call.payload_sha256.clone()));
        let req = sigv4::Request {
            method: call.method,
            path: &path,
            query: &call.query,
            headers: &headers,
            payload_sha256: &call.payload_sha256,
        };
        let scope = sigv4::Scope { amz_date: &amz_date, region: &self.region, service: "s3" };
        let authz = sigv4::authorization(&self.creds, &scope, &req);
        let query = sigv4::canonical_query(&call.query);
        let mut target = sigv4::uri_encode(&path, true);
        if !query.is_empty() {
            target = format!("{target}?{query}");
        }
        let mut request = wharf_http::Request::new(call.method, &target).header("Authorization", &authz);
        for (k, v) in &headers {
            request = request.header(k, v);
        }
        request = request.body(call.body);
        let http = |source| S3Error::Http { op: op.clone(), error: source };
        let resp = self.connector.request(&self.endpoint, request).map_err(http)?;
        if (200..300).contains(&resp.status) {
            return Ok(resp);
        }
        Err(error_of(op, resp))
    }

    /// Sends a call whose answer is XML, read whole. Copies and multipart completions may
    /// answer 200 with an `<Error>` body; that is an error too.
    fn send_xml(&self, call: Call) -> Result<String, S3Error> {
        let op = format!("{} {}", call.method, call.key.unwrap_or(&self.bucket));
        let resp = self.send(call)?;
        let body = resp.read_body(MAX_XML).map_err(|source| S3Error::Http { op: op.clone(), error: source })?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if let Some(err) = xml_blocks(&text, "Error").first() {
            return Err(S3Error::Status {
                op,
                status: 200,
                code: xml_value(err, "Code").unwrap_or_default(),
                message: xml_value(err, "Message").unwrap_or_default(),
            });
        }
        Ok(text)
    }

    /// An object's size, or `None`.
    pub fn head(&self, key: &str) -> Result<Option<u64>, S3Error> {
        match self.send(Call::new("HEAD", Some(key))) {
            Ok(resp) => Ok(Some(content_length(&resp, key)?)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A reader of an object from `offset` and the object's whole size, or `None`.
    pub fn get(&self, key: &str, offset: u64) -> Result<Option<ObjectReader>, S3Error> {
        let mut call = Call::new("GET", Some(key));
        if offset > 0 {
            call = call.header("Range", format!("bytes={offset}-"));
        }
        match self.send(call) {
            Ok(resp) if resp.status == 206 => {
                let size = resp
                    .header("Content-Range")
                    .and_then(|v| v.rsplit_once('/'))
                    .and_then(|(_, total)| total.trim().parse::<u64>().ok())
                    .ok_or_else(|| S3Error::Malformed {
                        op: format!("GET {key}"),
                        message: "a partial answer without a Content-Range total".into(),
                    })?;
                Ok(Some((resp.into_body(), size)))
            }
            Ok(resp) => {
                let size = content_length(&resp, key)?;
                let mut body = resp.into_body();
                if offset > 0 {
                    // A server that ignored the Range: skip to where the caller wants.
                    io::copy(&mut (&mut body).take(offset), &mut io::sink()).map_err(|e| S3Error::Http {
                        op: format!("GET {key}"),
                        error: HttpError::io("skip to the offset", e),
                    })?;
                }
                Ok(Some((body, size)))
            }
            Err(e) if e.status() == Some(404) => Ok(None),
            // An offset at the object's end has no byte to send: nothing to read, and a HEAD
            // tells the size.
            Err(e) if e.status() == Some(416) => match self.head(key)? {
                Some(size) => Ok(Some((Box::new(io::empty()), size))),
                None => Ok(None),
            },
            Err(e) => Err(e),
        }
    }

    /// The first `len` bytes of an object, in memory (a small chunk).
    pub fn get_prefix(&self, key: &str, len: u64) -> Result<Vec<u8>, S3Error> {
        let op = format!("GET {key}");
        if len == 0 {
            return Ok(Vec::new());
        }
        let resp = self.send(Call::new("GET", Some(key)).header("Range", format!("bytes=0-{}", len - 1)))?;
        let mut out = Vec::with_capacity(len as usize);
        resp.into_body()
            .take(len)
            .read_to_end(&mut out)
            .map_err(|e| S3Error::Http { op: op.clone(), error: HttpError::io("read", e) })?;
        if out.len() as u64 != len {
            return Err(S3Error::Malformed { op, message: format!("{} bytes, not {len}", out.len()) });
        }
        Ok(out)
    }

    pub fn put(&self, key: &str, data: Vec<u8>) -> Result<(), S3Error> {
        self.send(Call::new("PUT", Some(key)).bytes(data)).map(drop)
    }

    /// Deletes an object; S3 answers the same whether it existed or not.
    pub fn delete(&self, key: &str) -> Result<(), S3Error> {
        self.send(Call::new("DELETE", Some(key))).map(drop)
    }

    /// A server-side copy of a whole object (up to 5 GiB).
    pub fn copy(&self, from: &str, to: &str) -> Result<(), S3Error> {
        let source = sigv4::uri_encode(&format!("/{}/{from}", self.bucket), true);
        self.send_xml(Call::new("PUT", Some(to)).header("x-amz-copy-source", source)).map(drop)
    }

    /// Every object under `prefix` (ListObjectsV2, page after page), in key order.
    pub fn list(&self, prefix: &str) -> Result<Vec<Listed>, S3Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut call = Call::new("GET", None).query("list-type", "2").query("prefix", prefix);
            if let Some(t) = &token {
                call = call.query("continuation-token", t.clone());
            }
            let xml = self.send_xml(call)?;
            for item in xml_blocks(&xml, "Contents") {
                let (Some(key), Some(size)) = (xml_value(item, "Key"), xml_value(item, "Size")) else {
                    continue;
                };
                let modified = xml_value(item, "LastModified")
                    .and_then(|t| wharf_types::time::parse_rfc3339(&t))
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let size = size.parse().map_err(|_| S3Error::Malformed {
                    op: format!("list {prefix}"),
                    message: format!("size {size:?} of {key:?}"),
                })?;
                out.push(Listed { key, size, modified });
            }
            let truncated = xml_value(&xml, "IsTruncated").is_some_and(|v| v == "true");
            match xml_value(&xml, "NextContinuationToken") {
                Some(t) if truncated => token = Some(t),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Whether the bucket answers a listing of `prefix` with these credentials (a policy may
    /// grant a prefix only).
    pub fn check(&self, prefix: &str) -> Result<(), S3Error> {
        let call = Call::new("GET", None).query("list-type", "2").query("max-keys", "1").query("prefix", prefix);
        self.send_xml(call).map(drop)
    }

    pub fn create_multipart(&self, key: &str) -> Result<String, S3Error> {
        let xml = self.send_xml(Call::new("POST", Some(key)).query("uploads", ""))?;
        xml_value(&xml, "UploadId")
            .ok_or_else(|| S3Error::Malformed { op: format!("create multipart {key}"), message: "no UploadId".into() })
    }

    /// Makes the object `from` part `part` of a multipart upload, without its bytes passing
    /// through here. Returns the part's ETag.
    pub fn upload_part_copy(&self, key: &str, upload: &str, part: u32, from: &str) -> Result<String, S3Error> {
        let source = sigv4::uri_encode(&format!("/{}/{from}", self.bucket), true);
        let call = Call::new("PUT", Some(key))
            .query("partNumber", part.to_string())
            .query("uploadId", upload)
            .header("x-amz-copy-source", source);
        let xml = self.send_xml(call)?;
        xml_value(&xml, "ETag")
            .ok_or_else(|| S3Error::Malformed { op: format!("copy part {part} of {key}"), message: "no ETag".into() })
    }

    pub fn upload_part(&self, key: &str, upload: &str, part: u32, data: Vec<u8>) -> Result<String, S3Error> {
        let call =
            Call::new("PUT", Some(key)).query("partNumber", part.to_string()).query("uploadId", upload).bytes(data);
        let resp = self.send(call)?;
        resp.header("ETag")
            .map(str::to_string)
            .ok_or_else(|| S3Error::Malformed { op: format!("part {part} of {key}"), message: "no ETag".into() })
    }

    pub fn complete_multipart(&self, key: &str, upload: &str, parts: &[(u32, String)]) -> Result<(), S3Error> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, etag) in parts {
            xml.push_str(&format!("<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>", xml_escape(etag)));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let call = Call::new("POST", Some(key)).query("uploadId", upload).bytes(xml.into_bytes());
        self.send_xml(call).map(drop)
    }

    /// The multipart uploads begun under `prefix` and neither completed nor aborted: key,
    /// upload id and when it began.
    pub fn list_multipart(&self, prefix: &str) -> Result<Vec<(String, String, SystemTime)>, S3Error> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut call = Call::new("GET", None).query("uploads", "").query("prefix", prefix);
            if let Some((key, id)) = &markers {
                call = call.query("key-marker", key.clone()).query("upload-id-marker", id.clone());
            }
            let xml = self.send_xml(call)?;
            for u in xml_blocks(&xml, "Upload") {
                let (Some(key), Some(id)) = (xml_value(u, "Key"), xml_value(u, "UploadId")) else { continue };
                let started = xml_value(u, "Initiated")
                    .and_then(|t| wharf_types::time::parse_rfc3339(&t))
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((key, id, started));
            }
            let truncated = xml_value(&xml, "IsTruncated").is_some_and(|v| v == "true");
            match (xml_value(&xml, "NextKeyMarker"), xml_value(&xml, "NextUploadIdMarker")) {
                (Some(k), Some(i)) if truncated && markers.as_ref() != Some(&(k.clone(), i.clone())) => {
                    markers = Some((k, i))
                }
                _ => break,
            }
        }
        Ok(out)
    }

    pub fn abort_multipart(&self, key: &str, upload: &str) -> Result<(), S3Error> {
        self.send(Call::new("DELETE", Some(key)).query("uploadId", upload)).map(drop)
    }
}

fn content_length(resp: &Response, key: &str) -> Result<u64, S3Error> {
    resp.header("Content-Length")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| S3Error::Malformed { op: key.to_string(), message: "no Content-Length".into() })
}

/// An error answer: S3's XML `Code` and `Message` when there is a body (HEAD has none).
fn error_of(op: String, resp: Response) -> S3Error {
    let status = resp.status;
    let reason = resp.reason.clone();
    let text = resp.read_body(64 << 10).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let code = xml_value(&text, "Code").unwrap_or_else(|| match status {
        404 => "NotFound".to_string(),
        403 => "AccessDenied".to_string(),
        _ => reason.clone(),
    });
    let message = xml_value(&text, "Message").unwrap_or(reason);
    S3Error::Status { op, status, code, message }
}

/// The inner texts of every `<tag>...</tag>` in `xml`, in order (no nesting of the same tag).
pub fn xml_blocks<'x>(xml: &'x str, tag: &str) -> Vec<&'x str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some((_, after)) = rest.split_once(open.as_str()) {
        let Some((inner, next)) = after.split_once(close.as_str()) else { break };
        out.push(inner);
        rest = next;
    }
    out
}

/// The first `<tag>` text in `xml`, with XML's entities decoded.
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    xml_blocks(xml, tag).first().map(|s| xml_unescape(s))
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_pieces() {
        let xml = "<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>true</IsTruncated>\
                   <Contents><Key>a&amp;b</Key><Size>3</Size></Contents><Contents><Key>c</Key><Size>0</Size></Contents>\
                   <NextContinuationToken>t+1</NextContinuationToken></ListBucketResult>";
        let items = xml_blocks(xml, "Contents");
        assert_eq!(items.len(), 2);
        assert_eq!(xml_value(items[0], "Key").as_deref(), Some("a&b"));
        assert_eq!(xml_value(items[1], "Size").as_deref(), Some("0"));
        assert_eq!(xml_value(xml, "NextContinuationToken").as_deref(), Some("t+1"));
        assert_eq!(xml_value(xml, "Missing"), None);
        assert_eq!(xml_value("<ETag>&quot;abc&quot;</ETag>", "ETag").as_deref(), Some("\"abc\""));
    }
}
