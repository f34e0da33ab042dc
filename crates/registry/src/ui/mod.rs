//! The web UI: one HTML page, a style sheet and plain scripts (`app.js`, and `policies.js` for
//! a project's Policies tab), embedded in the binary (no CDN, no external font, no build
//! step). The scripts are a small single-page app that calls the REST API (`/api/v2.0`) with
//! the session cookie of `/c/login` and the CSRF header; every list it shows is one page the
//! server cut (`page`, `page_size`, `q`), never all.

use hyper::Method;

use crate::handlers::{Reply, Resp};

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");
const POLICIES: &str = include_str!("policies.js");

/// One of the UI's documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Index,
    Script,
    Style,
    /// The Policies tab (`policies.js`).
    PoliciesScript,
}

/// The UI document a path names: `/` and `/harbor/...` (Harbor's UI paths, so links and
/// bookmarks work) are the page; the assets are under `/ui/`.
pub fn page(path: &str) -> Option<Page> {
    match path {
        "/" | "/harbor" => Some(Page::Index),
        "/ui/app.js" => Some(Page::Script),
        "/ui/app.css" => Some(Page::Style),
        "/ui/policies.js" => Some(Page::PoliciesScript),
        p if p.starts_with("/harbor/") => Some(Page::Index),
        _ => None,
    }
}

/// Serves a UI document: GET and HEAD only, never framed by another site, and only this
/// origin's scripts and styles (the page has no inline script).
pub fn serve(page: Page, method: &Method) -> Resp {
    if *method != Method::GET && *method != Method::HEAD {
        return Reply::new(405)
            .header("Allow", "GET, HEAD")
            .header("Content-Type", "text/plain")
            .body(format!("method {method} is not allowed on the web UI"))
            .into_response();
    }
    let (kind, body) = match page {
        Page::Index => ("text/html; charset=utf-8", INDEX),
        Page::Script => ("text/javascript; charset=utf-8", SCRIPT),
        Page::Style => ("text/css; charset=utf-8", STYLE),
        Page::PoliciesScript => ("text/javascript; charset=utf-8", POLICIES),
    };
    let reply = Reply::new(200)
        .header("Content-Type", kind)
        .header("Cache-Control", "no-cache")
        .header("X-Content-Type-Options", "nosniff")
        .header("X-Frame-Options", "DENY")
        .header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        );
    if *method == Method::HEAD {
        reply.header("Content-Length", body.len().to_string()).into_response()
    } else {
        reply.body(body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(page("/"), Some(Page::Index));
        assert_eq!(page("/harbor/projects"), Some(Page::Index));
        assert_eq!(page("/ui/app.js"), Some(Page::Script));
        assert_eq!(page("/ui/policies.js"), Some(Page::PoliciesScript));
        assert_eq!(page("/ui/other.js"), None);
        assert_eq!(page("/v2/"), None);
        assert_eq!(page("/harborx"), None);
    }

    #[test]
    fn assets_are_self_contained() {
        // No asset from elsewhere: no scheme-qualified or protocol-relative URL in src/href.
        for (name, text) in [("index.html", INDEX), ("app.js", SCRIPT), ("app.css", STYLE), ("policies.js", POLICIES)] {
            for bad in ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "@import", "url(http"] {
                assert!(!text.contains(bad), "{name} loads something from elsewhere ({bad})");
            }
        }
        assert!(INDEX.contains("/ui/app.js") && INDEX.contains("/ui/app.css") && INDEX.contains("/ui/policies.js"));
    }
}
