//! AWS Signature Version 4 for header-signed requests (`Authorization: AWS4-HMAC-SHA256 ...`).
//!
//! Only what the S3 client sends is covered: a request's method, path, query and headers are
//! made canonical, hashed with the payload's hash, and signed with a key derived from the
//! secret, the day, the region and the service.

use sha2::{Digest as _, Sha256};
use wharf_types::digest::to_hex;

use crate::auth::hmac_sha256;

/// The SHA-256 of nothing: the payload hash of a request without a body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("Credentials").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

/// One request to sign. `path` is not encoded yet (an object key may hold any character);
/// `query` pairs are not encoded either; `headers` are every header that is to be signed,
/// `host` and `x-amz-date` among them.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub payload_sha256: &'a str,
}

/// Where and when a signature is valid: `amz_date` is `YYYYMMDDTHHMMSSZ`, the value of the
/// request's `x-amz-date`.
pub struct Scope<'a> {
    pub amz_date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl Scope<'_> {
    fn day(&self) -> &str {
        self.amz_date.split_once('T').map_or(self.amz_date, |(d, _)| d)
    }

    fn credential_scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.day(), self.region, self.service)
    }
}

/// Percent-encodes everything but the unreserved characters (RFC 3986), and `/` too unless
/// `keep_slash` (paths keep their separators, query values do not).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The query string as it is both sent and signed: encoded pairs sorted by name, then value.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(k, v)| (uri_encode(k, false), uri_encode(v, false))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

fn canonical_request(req: &Request) -> (String, String) {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    headers.sort();
    let signed = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let mut text = format!("{}\n{}\n{}\n", req.method, uri_encode(req.path, true), canonical_query(req.query));
    for (k, v) in &headers {
        text.push_str(&format!("{k}:{v}\n"));
    }
    text.push_str(&format!("\n{signed}\n{}", req.payload_sha256));
    (text, signed)
}

fn string_to_sign(scope: &Scope, canonical: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{}\n{}\n{}",
        scope.amz_date,
        scope.credential_scope(),
        to_hex(&Sha256::digest(canonical.as_bytes()))
    )
}

fn signing_key(secret: &str, scope: &Scope) -> [u8; 32] {
    let k = hmac_sha256(format!("AWS4{secret}").as_bytes(), scope.day().as_bytes());
    let k = hmac_sha256(&k, scope.region.as_bytes());
    let k = hmac_sha256(&k, scope.service.as_bytes());
    hmac_sha256(&k, b"aws4_request")
}

/// The `Authorization` header's value for `req`.
pub fn authorization(creds: &Credentials, scope: &Scope, req: &Request) -> String {
    let (canonical, signed) = canonical_request(req);
    let to_sign = string_to_sign(scope, &canonical);
    let signature = to_hex(&hmac_sha256(&signing_key(&creds.secret_key, scope), to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{},SignedHeaders={signed},Signature={signature}",
        creds.access_key,
        scope.credential_scope()
    )
}

/// `2013-05-24T00:00:00Z` (RFC 3339, whole seconds) as `20130524T000000Z`.
pub fn amz_date(rfc3339: &str) -> String {
    rfc3339.chars().filter(|c| *c != '-' && *c != ':').collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The S3 examples of "Signature Calculations for the Authorization Header" in the S3 API
    /// reference, and `get-vanilla` of the AWS SigV4 test suite.
    #[test]
    fn published_examples() {
        let s3 = Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        };
        let scope = Scope { amz_date: "20130524T000000Z", region: "us-east-1", service: "s3" };
        let host = "examplebucket.s3.amazonaws.com";
        type Case<'a> = (&'a str, &'a str, Vec<(String, String)>, Vec<(String, String)>, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            (
                "GET",
                "/test.txt",
                vec![],
                h(&[
                    ("Host", host),
                    ("Range", "bytes=0-9"),
                    ("x-amz-content-sha256", EMPTY_SHA256),
                    ("x-amz-date", "20130524T000000Z"),
                ]),
                EMPTY_SHA256,
                "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
                 Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
            (
                "PUT",
                "/test$file.text",
                vec![],
                h(&[
                    ("Host", host),
                    ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                    ("x-amz-date", "20130524T000000Z"),
                    ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                    ("x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"),
                ]),
                "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
                "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,\
                 Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
            ),
            (
                "GET",
                "/",
                h(&[("lifecycle", "")]),
                h(&[("Host", host), ("x-amz-date", "20130524T000000Z"), ("x-amz-content-sha256", EMPTY_SHA256)]),
                EMPTY_SHA256,
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date,\
                 Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
            ),
            (
                "GET",
                "/",
                h(&[("prefix", "J"), ("max-keys", "2")]),
                h(&[("Host", host), ("x-amz-date", "20130524T000000Z"), ("x-amz-content-sha256", EMPTY_SHA256)]),
                EMPTY_SHA256,
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date,\
                 Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
            ),
        ];
        for (method, path, query, headers, payload, want) in cases {
            let req = Request { method, path, query: &query, headers: &headers, payload_sha256: payload };
            let got = authorization(&s3, &scope, &req);
            let want =
                format!("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,{want}");
            assert_eq!(got, want, "{method} {path}");
        }

        let suite = Credentials {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        };
        let scope = Scope { amz_date: "20150830T123600Z", region: "us-east-1", service: "service" };
        let headers = h(&[("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")]);
        let req = Request { method: "GET", path: "/", query: &[], headers: &headers, payload_sha256: EMPTY_SHA256 };
        assert_eq!(
            authorization(&suite, &scope, &req),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request,\
             SignedHeaders=host;x-amz-date,Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn encoding() {
        assert_eq!(uri_encode("a b/c~d*e", true), "a%20b/c~d%2Ae");
        assert_eq!(uri_encode("a/b=c", false), "a%2Fb%3Dc");
        let q = h(&[("prefix", "x/y"), ("list-type", "2"), ("continuation-token", "a+b")]);
        assert_eq!(canonical_query(&q), "continuation-token=a%2Bb&list-type=2&prefix=x%2Fy");
        assert_eq!(amz_date("2013-05-24T00:00:00Z"), "20130524T000000Z");
    }
}
