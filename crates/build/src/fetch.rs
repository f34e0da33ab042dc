//! Downloads for `ADD <url>` and `POST /build?remote=<url>`: plain HTTP(S) GETs with redirects
//! followed, streamed to a file while hashed, bounded in size, with the `Last-Modified` time.
//! They go through the daemon's proxies (`HTTP_PROXY`…, which wharfd sets from its
//! configuration), as dockerd's do.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use wharf_http::{Connector, ConnectorOptions, ProxyConfig, Request, Url};

/// What a download gave.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// `sha256:<hex>` of the body.
    pub digest: String,
    pub size: u64,
    /// From `Last-Modified`, when the server sent one.
    pub modified: Option<SystemTime>,
    /// The last path segment of the final URL (the file name `ADD url dir/` uses).
    pub name: String,
}

const MAX_REDIRECTS: usize = 10;

/// GETs `url` into `dest`. Fails on a status other than 2xx, or past `limit` bytes.
pub fn fetch(url: &str, dest: &Path, limit: u64) -> Result<Fetched, String> {
    let proxy = ProxyConfig::from_env().map_err(|e| format!("{url}: proxy settings: {e}"))?;
    let opts = ConnectorOptions {
        io_timeout: Some(Duration::from_secs(60)),
        proxy,
        // One download: nothing to reuse a connection for.
        keep_alive: false,
        ..Default::default()
    };
    let connector = Connector::new(opts).map_err(|e| format!("{url}: {e}"))?;
    let mut current = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        let u = Url::parse(&current).map_err(|e| format!("{url}: {e}"))?;
        let req = Request::new("GET", &u.target).header("User-Agent", "wharf-builder");
        let mut resp = connector.request(&u, req).map_err(|e| format!("{current}: {e}"))?;
        if (300..400).contains(&resp.status) {
            let location = resp.header("Location").ok_or_else(|| format!("{current}: redirect without a Location"))?;
            current = resolve(&u, location);
            continue;
        }
        if !(200..300).contains(&resp.status) {
            return Err(format!("failed to GET {current} with status {}: {}", resp.status, resp.reason));
        }
        let modified = resp.header("Last-Modified").and_then(parse_http_date);
        let mut file = std::fs::File::create(dest).map_err(|e| format!("create {}: {e}", dest.display()))?;
        let mut hash = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        let body = resp.body_reader();
        loop {
            let n = body.read(&mut buf).map_err(|e| format!("{current}: {e}"))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > limit {
                return Err(format!("{current}: larger than the {limit} bytes allowed"));
            }
            hash.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(|e| format!("write {}: {e}", dest.display()))?;
        }
        let path = u.target.split(['?', '#']).next().unwrap_or("");
        let name = path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("index.html").to_string();
        return Ok(Fetched { digest: format!("sha256:{:x}", hash.finalize()), size, modified, name });
    }
    Err(format!("{url}: more than {MAX_REDIRECTS} redirects"))
}

/// A `Location` relative to the URL it came from.
fn resolve(base: &Url, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let origin = format!("{}://{}", base.scheme.as_str(), base.host_header());
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let dir = base.target.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    format!("{origin}{dir}/{location}")
}

/// RFC 7231's IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = months.iter().position(|m| m == month)? as u32 + 1;
    let (day, year): (u32, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<u64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else { return None };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 || year < 1970 {
        return None;
    }
    let days = wharf_types::time::days_from_civil(year, month, day);
    let secs = days.checked_mul(86_400)? + (*h * 3600 + *m * 60 + *sec) as i64;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("parse");
        assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).ok(), Some(784_111_777));
        assert!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
        assert!(parse_http_date("Sun, 32 Nov 1994 08:49:37 GMT").is_none());
        assert!(parse_http_date("").is_none());
    }

    #[test]
    fn relative_redirects() {
        let base = Url::parse("http://127.0.0.1:8080/a/b/file").expect("url");
        assert_eq!(resolve(&base, "/x"), "http://127.0.0.1:8080/x");
        assert_eq!(resolve(&base, "y"), "http://127.0.0.1:8080/a/b/y");
        assert_eq!(resolve(&base, "https://h/z"), "https://h/z");
    }
}
