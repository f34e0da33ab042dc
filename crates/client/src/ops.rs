//! The Engine API's operations on a [`Client`], grouped by resource and named after what they
//! do: the only place where request paths are written, so that every name a user typed reaches
//! the daemon encoded (a space, `?`, `#` or `%` in a name is a "no such container", not a
//! broken request line or another endpoint).
//!
//! Names and ids go into the path through [`path_segment`], query values through [`Query`].
//! Image references are the exception: like the docker CLI (`/images/127.0.0.1:5000/a/b/json`)
//! their `/` stays as it is and each piece between slashes is encoded ([`image_path`]).
//! wharfd splits the path at `/` before it percent-decodes each segment and joins the segments
//! between `/images/` and the last one with `/`, so a `%2F` would be served the same (the
//! router's `routes_names_as_the_client_encodes_them` test pins this). dockerd's image routes
//! are `/images/{name:.*}/json` and the like, written for the slashes the docker CLI leaves in;
//! keeping them is what every daemon expects and what a proxy that refuses `%2F` passes.
//!
//! Where the CLI needs the request itself (a body it streams, headers it adds, a status it
//! reads), a function here returns the [`Request`] with its target built.

use std::io::Read;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{path_segment, post_request, Attached, Body, Client, ClientError, JsonMessage, JsonStream, Query, Request};

/// `/containers/{id}/{action}`, the id encoded.
fn container_path(id: &str, action: &str) -> String {
    format!("/containers/{}/{action}", path_segment(id))
}

/// `/exec/{id}/{action}`, the id encoded.
fn exec_path(id: &str, action: &str) -> String {
    format!("/exec/{}/{action}", path_segment(id))
}

/// `/images/{name}/{action}`, the name as [`image_path`] writes it.
fn image_action(name: &str, action: &str) -> String {
    format!("/images/{}/{action}", image_path(name))
}

/// An image reference as a run of path segments: the docker CLI's form, `/` kept and every
/// piece between slashes encoded with [`path_segment`] (see the module's comment for why).
pub fn image_path(name: &str) -> String {
    name.split('/').map(path_segment).collect::<Vec<_>>().join("/")
}

/// Adds `filters` (a JSON text, as `filters_json` writes it) unless it is empty.
fn with_filters(q: Query, filters: &str) -> Query {
    q.set_nonempty("filters", filters)
}

/// What `docker logs` asks for besides stdout and stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsOptions {
    pub follow: bool,
    pub timestamps: bool,
    pub details: bool,
    /// `all` or a number of lines.
    pub tail: String,
    /// API timestamps (`seconds.nanoseconds`).
    pub since: Option<String>,
    pub until: Option<String>,
}

/// What a terminal size is posted to: a container's TTY or an exec's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resize {
    Container(String),
    Exec(String),
}

/// The Swarm objects the docker CLI lists and inspects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmObjects {
    Services,
    Nodes,
    Secrets,
    Configs,
}

impl SwarmObjects {
    fn path(self) -> &'static str {
        match self {
            SwarmObjects::Services => "/services",
            SwarmObjects::Nodes => "/nodes",
            SwarmObjects::Secrets => "/secrets",
            SwarmObjects::Configs => "/configs",
        }
    }
}

/// The first request a Swarm command of the docker CLI makes, which wharf sends only to
/// report the daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwarmProbe<'a> {
    /// `GET /swarm`.
    Inspect,
    /// `GET /swarm/unlockkey`.
    UnlockKey,
    /// `POST /swarm/{init,join,leave,unlock}` with an empty object; `force` for `leave -f`.
    Action {
        verb: &'a str,
        force: bool,
    },
    List(SwarmObjects),
    /// `POST /{objects}/create` with an empty object.
    Create(SwarmObjects),
    /// `GET /{objects}/{name}` (`/nodes/self` for `node ps`).
    Get(SwarmObjects, &'a str),
}

impl SwarmProbe<'_> {
    /// The request this probe sends.
    pub fn request(&self) -> Request {
        let empty = serde_json::json!({});
        match self {
            SwarmProbe::Inspect => Request::new("GET", "/swarm"),
            SwarmProbe::UnlockKey => Request::new("GET", "/swarm/unlockkey"),
            SwarmProbe::Action { verb, force } => {
                let target = Query::new().flag("force", *force).to_target(&format!("/swarm/{}", path_segment(verb)));
                post_request(&target, Some(&empty))
            }
            SwarmProbe::List(o) => Request::new("GET", o.path()),
            SwarmProbe::Create(o) => post_request(&format!("{}/create", o.path()), Some(&empty)),
            SwarmProbe::Get(o, name) => Request::new("GET", &format!("{}/{}", o.path(), path_segment(name))),
        }
    }
}

/// Containers.
impl Client {
    /// `GET /containers/json`; `limit` 0 or less for no limit, `filters` empty for none.
    pub fn containers_list<T: DeserializeOwned>(
        &self,
        all: bool,
        size: bool,
        limit: i64,
        filters: &str,
    ) -> Result<T, ClientError> {
        let mut q = Query::new().flag("all", all).flag("size", size);
        if limit > 0 {
            q = q.set("limit", limit.to_string());
        }
        self.get_json(&with_filters(q, filters).to_target("/containers/json"))
    }

    /// `POST /containers/create`: `name` and `platform` are sent when not empty.
    pub fn container_create<B: Serialize, T: DeserializeOwned>(
        &self,
        name: &str,
        platform: &str,
        config: &B,
    ) -> Result<T, ClientError> {
        let q = Query::new().set_nonempty("name", name).set_nonempty("platform", platform);
        self.post_json(&q.to_target("/containers/create"), Some(config))
    }

    /// `GET /containers/{id}/json`, with the sizes when `size`.
    pub fn container_inspect<T: DeserializeOwned>(&self, id: &str, size: bool) -> Result<T, ClientError> {
        self.get_json(&container_inspect_target(id, size))
    }

    /// [`Client::container_inspect`], the answer's bytes as they came (for `inspect`, which
    /// keeps the daemon's key order).
    pub fn container_inspect_raw(&self, id: &str, size: bool) -> Result<Vec<u8>, ClientError> {
        self.get_bytes(&container_inspect_target(id, size))
    }

    pub fn container_start(&self, id: &str) -> Result<(), ClientError> {
        self.post::<()>(&container_path(id, "start"), None)
    }

    /// `POST /containers/{id}/stop`, with the grace period and signal when given.
    pub fn container_stop(&self, id: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<(), ClientError> {
        self.post::<()>(&stop_query(timeout, signal).to_target(&container_path(id, "stop")), None)
    }

    /// `POST /containers/{id}/restart`, with the grace period and signal when given.
    pub fn container_restart(&self, id: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<(), ClientError> {
        self.post::<()>(&stop_query(timeout, signal).to_target(&container_path(id, "restart")), None)
    }

    /// `POST /containers/{id}/kill`; the daemon's default signal when `signal` is empty.
    pub fn container_kill(&self, id: &str, signal: &str) -> Result<(), ClientError> {
        let q = Query::new().set_nonempty("signal", signal);
        self.post::<()>(&q.to_target(&container_path(id, "kill")), None)
    }

    /// `DELETE /containers/{id}`. With `link`, `id` is a legacy link (`parent/alias`) and its
    /// `/` stays a path separator, as the docker CLI sends it: the daemon routes
    /// `/containers/{parent}/{alias}?link=1` to the link's removal.
    pub fn container_remove(&self, id: &str, force: bool, volumes: bool, link: bool) -> Result<(), ClientError> {
        let q = Query::new().flag("v", volumes).flag("force", force).flag("link", link);
        let name = if link { image_path(id) } else { path_segment(id) };
        self.delete(&q.to_target(&format!("/containers/{name}")))
    }

    pub fn container_pause(&self, id: &str) -> Result<(), ClientError> {
        self.post::<()>(&container_path(id, "pause"), None)
    }

    pub fn container_unpause(&self, id: &str) -> Result<(), ClientError> {
        self.post::<()>(&container_path(id, "unpause"), None)
    }

    /// `POST /containers/{id}/update` with the resources in `body`.
    pub fn container_update<B: Serialize, T: DeserializeOwned>(&self, id: &str, body: &B) -> Result<T, ClientError> {
        self.post_json(&container_path(id, "update"), Some(body))
    }

    pub fn container_rename(&self, id: &str, new_name: &str) -> Result<(), ClientError> {
        let q = Query::new().set("name", new_name);
        self.post::<()>(&q.to_target(&container_path(id, "rename")), None)
    }

    /// `POST /containers/{id}/wait` (the daemon's default condition), its answer decoded.
    pub fn container_wait<T: DeserializeOwned>(&self, id: &str) -> Result<T, ClientError> {
        self.post_json::<(), T>(&container_path(id, "wait"), None)
    }

    /// `GET /containers/{id}/top`, with `ps` arguments when not empty.
    pub fn container_top<T: DeserializeOwned>(&self, id: &str, ps_args: &str) -> Result<T, ClientError> {
        let q = Query::new().set_nonempty("ps_args", ps_args);
        self.get_json(&q.to_target(&container_path(id, "top")))
    }

    /// `GET /containers/{id}/changes`.
    pub fn container_changes<T: DeserializeOwned>(&self, id: &str) -> Result<T, ClientError> {
        self.get_json(&container_path(id, "changes"))
    }

    /// One sample of `GET /containers/{id}/stats` (`stream=false`).
    pub fn container_stats<T: DeserializeOwned>(&self, id: &str) -> Result<T, ClientError> {
        self.get_json(&Query::new().set("stream", "false").to_target(&container_path(id, "stats")))
    }

    /// `GET /containers/{id}/stats?stream=true`: a sample a second for as long as it runs.
    pub fn container_stats_stream<T: DeserializeOwned>(&self, id: &str) -> Result<JsonStream<T>, ClientError> {
        let target = Query::new().set("stream", "true").to_target(&container_path(id, "stats"));
        self.json_stream(Request::new("GET", &target))
    }

    /// `GET /containers/{id}/logs` of stdout and stderr: the raw body (multiplexed unless the
    /// container has a TTY).
    pub fn container_logs(&self, id: &str, opts: &LogsOptions) -> Result<Box<dyn Read + Send>, ClientError> {
        let mut q = Query::new()
            .set("stdout", "1")
            .set("stderr", "1")
            .flag("follow", opts.follow)
            .flag("timestamps", opts.timestamps)
            .flag("details", opts.details)
            .set("tail", opts.tail.as_str());
        if let Some(s) = &opts.since {
            q = q.set("since", s.as_str());
        }
        if let Some(u) = &opts.until {
            q = q.set("until", u.as_str());
        }
        self.stream(Request::new("GET", &q.to_target(&container_path(id, "logs"))))
    }

    /// `GET /containers/{id}/export`: the file system as a tar stream.
    pub fn container_export(&self, id: &str) -> Result<Box<dyn Read + Send>, ClientError> {
        self.stream(Request::new("GET", &container_path(id, "export")))
    }

    /// `POST /containers/prune`; `filters` empty for none.
    pub fn containers_prune<T: DeserializeOwned>(&self, filters: &str) -> Result<T, ClientError> {
        self.post_json::<(), T>(&with_filters(Query::new(), filters).to_target("/containers/prune"), None)
    }

    /// Posts a terminal's size to a container's TTY or an exec's.
    pub fn resize(&self, target: &Resize, rows: u16, cols: u16) -> Result<(), ClientError> {
        let path = match target {
            Resize::Container(id) => container_path(id, "resize"),
            Resize::Exec(id) => exec_path(id, "resize"),
        };
        let q = Query::new().set("h", rows.to_string()).set("w", cols.to_string());
        self.post::<()>(&q.to_target(&path), None)
    }
}

fn container_inspect_target(id: &str, size: bool) -> String {
    Query::new().flag("size", size).to_target(&container_path(id, "json"))
}

fn stop_query(timeout: Option<i64>, signal: Option<&str>) -> Query {
    let mut q = Query::new();
    if let Some(t) = timeout {
        q = q.set("t", t.to_string());
    }
    if let Some(s) = signal {
        q = q.set("signal", s);
    }
    q
}

/// `POST /containers/{id}/wait?condition=..`: the request alone, for a caller that must know
/// the daemon took it (the headers came) before it starts the container.
pub fn container_wait_request(id: &str, condition: &str) -> Request {
    Request::new("POST", &Query::new().set("condition", condition).to_target(&container_path(id, "wait")))
}

/// `HEAD /containers/{id}/archive?path=..`: the path's stat in a header. Sent raw (the caller
/// reads a 404 itself), so versioned by the caller.
pub fn container_archive_head(id: &str, path: &str) -> Request {
    Request::new("HEAD", &Query::new().set("path", path).to_target(&container_path(id, "archive")))
}

/// `GET /containers/{id}/archive?path=..`: the path as a tar stream.
pub fn container_archive_get(id: &str, path: &str) -> Request {
    Request::new("GET", &Query::new().set("path", path).to_target(&container_path(id, "archive")))
}

/// `PUT /containers/{id}/archive` of the tar in `body`; `q` holds `path` and the extraction's
/// options (`noOverwriteDirNonDir`, `copyUIDGID`).
pub fn container_archive_put(id: &str, q: &Query, body: Body) -> Request {
    Request::new("PUT", &q.to_target(&container_path(id, "archive")))
        .header("Content-Type", "application/x-tar")
        .body(body)
}

/// Exec instances.
impl Client {
    /// `POST /containers/{id}/exec`: creates an exec instance, its id in the answer.
    pub fn exec_create<B: Serialize, T: DeserializeOwned>(&self, container: &str, body: &B) -> Result<T, ClientError> {
        self.post_json(&container_path(container, "exec"), Some(body))
    }

    /// `POST /exec/{id}/start` of a detached exec.
    pub fn exec_start<B: Serialize>(&self, id: &str, body: &B) -> Result<(), ClientError> {
        self.post(&exec_path(id, "start"), Some(body))
    }

    /// `POST /exec/{id}/start`, taking over the connection for the exec's streams; `what`
    /// names it in errors.
    pub fn exec_start_attached<B: Serialize>(&self, id: &str, body: &B, what: &str) -> Result<Attached, ClientError> {
        self.hijack(post_request(&exec_path(id, "start"), Some(body)), what)
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect<T: DeserializeOwned>(&self, id: &str) -> Result<T, ClientError> {
        self.get_json(&exec_path(id, "json"))
    }
}

/// Images.
impl Client {
    /// `GET /images/json`; `filters` empty for none.
    pub fn images_list<T: DeserializeOwned>(&self, all: bool, filters: &str) -> Result<T, ClientError> {
        self.get_json(&with_filters(Query::new().flag("all", all), filters).to_target("/images/json"))
    }

    /// `GET /images/{name}/json`, the answer's bytes as they came.
    pub fn image_inspect_raw(&self, name: &str) -> Result<Vec<u8>, ClientError> {
        self.get_bytes(&image_action(name, "json"))
    }

    /// `DELETE /images/{name}`: what was untagged and deleted.
    pub fn image_remove<T: DeserializeOwned>(&self, name: &str, force: bool, no_prune: bool) -> Result<T, ClientError> {
        let q = Query::new().flag("force", force).flag("noprune", no_prune);
        self.delete_json(&q.to_target(&format!("/images/{}", image_path(name))))
    }

    /// `POST /images/{source}/tag?repo=..&tag=..`.
    pub fn image_tag(&self, source: &str, repo: &str, tag: &str) -> Result<(), ClientError> {
        let q = Query::new().set("repo", repo).set("tag", tag);
        self.post::<()>(&q.to_target(&image_action(source, "tag")), None)
    }

    /// `GET /images/{name}/history`.
    pub fn image_history<T: DeserializeOwned>(&self, name: &str) -> Result<T, ClientError> {
        self.get_json(&image_action(name, "history"))
    }

    /// `POST /images/create?fromImage=..&tag=..`: a pull's progress. `tag` is a tag or a
    /// digest, empty for every tag; `auth` the `X-Registry-Auth` header when there is one.
    pub fn image_pull(
        &self,
        from_image: &str,
        tag: &str,
        platform: &str,
        auth: Option<&str>,
    ) -> Result<JsonStream<JsonMessage>, ClientError> {
        let q = Query::new().set("fromImage", from_image).set("tag", tag).set_nonempty("platform", platform);
        let mut req = Request::new("POST", &q.to_target("/images/create"));
        if let Some(auth) = auth {
            req = req.header("X-Registry-Auth", auth);
        }
        self.json_stream(req)
    }

    /// `POST /images/create?fromSrc=-`: an import of the tar in `body`; `q` holds `fromSrc`
    /// and the import's options (`repo`, `changes`, `message`, `platform`).
    pub fn image_import(&self, q: &Query, body: Body) -> Result<JsonStream<JsonMessage>, ClientError> {
        let req =
            Request::new("POST", &q.to_target("/images/create")).header("Content-Type", "application/x-tar").body(body);
        self.json_stream(req)
    }

    /// `POST /images/{name}/push`: a push's progress; `tag` empty for every tag.
    pub fn image_push(&self, name: &str, tag: &str, auth: &str) -> Result<JsonStream<JsonMessage>, ClientError> {
        let target = Query::new().set_nonempty("tag", tag).to_target(&image_action(name, "push"));
        self.json_stream(Request::new("POST", &target).header("X-Registry-Auth", auth))
    }

    /// `GET /images/search`; `limit` 0 for the daemon's default, `filters` empty for none.
    pub fn images_search<T: DeserializeOwned>(&self, term: &str, limit: i64, filters: &str) -> Result<T, ClientError> {
        let mut q = Query::new().set("term", term);
        if limit != 0 {
            q = q.set("limit", limit.to_string());
        }
        self.get_json(&with_filters(q, filters).to_target("/images/search"))
    }

    /// `POST /images/prune`; `filters` empty for none.
    pub fn images_prune<T: DeserializeOwned>(&self, filters: &str) -> Result<T, ClientError> {
        self.post_json::<(), T>(&with_filters(Query::new(), filters).to_target("/images/prune"), None)
    }

    /// `GET /images/get?names=..`: the images as one tar stream.
    pub fn images_save(&self, names: &[String]) -> Result<Box<dyn Read + Send>, ClientError> {
        let q = names.iter().fold(Query::new(), |q, n| q.set("names", n.as_str()));
        self.stream(Request::new("GET", &q.to_target("/images/get")))
    }

    /// `POST /images/load` of the tar in `body` (`len` bytes when known).
    pub fn images_load(
        &self,
        quiet: bool,
        body: Box<dyn Read + Send>,
        len: Option<u64>,
    ) -> Result<JsonStream<JsonMessage>, ClientError> {
        let target = Query::new().flag("quiet", quiet).to_target("/images/load");
        let req =
            Request::new("POST", &target).header("Content-Type", "application/x-tar").body(Body::Reader(body, len));
        self.json_stream(req)
    }

    /// `POST /commit`: an image of a container; `q` holds `container` and the commit's options.
    pub fn commit<T: DeserializeOwned>(&self, q: &Query) -> Result<T, ClientError> {
        self.post_json::<(), T>(&q.to_target("/commit"), None)
    }
}

/// `POST /build` with the builder's options in `q`; the caller adds the context body and the
/// `X-Registry-Config` header.
pub fn build_request(q: &Query) -> Request {
    Request::new("POST", &q.to_target("/build"))
}

/// Networks.
impl Client {
    /// `POST /networks/create`.
    pub fn network_create<B: Serialize, T: DeserializeOwned>(&self, body: &B) -> Result<T, ClientError> {
        self.post_json("/networks/create", Some(body))
    }

    /// `GET /networks`; `filters` empty for none.
    pub fn networks_list<T: DeserializeOwned>(&self, filters: &str) -> Result<T, ClientError> {
        self.get_json(&with_filters(Query::new(), filters).to_target("/networks"))
    }

    /// `GET /networks/{name}`.
    pub fn network_inspect<T: DeserializeOwned>(&self, name: &str) -> Result<T, ClientError> {
        self.get_json(&format!("/networks/{}", path_segment(name)))
    }

    /// `DELETE /networks/{name}`.
    pub fn network_remove(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("/networks/{}", path_segment(name)))
    }

    /// `POST /networks/prune`; `filters` empty for none.
    pub fn networks_prune<T: DeserializeOwned>(&self, filters: &str) -> Result<T, ClientError> {
        self.post_json::<(), T>(&with_filters(Query::new(), filters).to_target("/networks/prune"), None)
    }

    /// `POST /networks/{name}/connect` with the container and its endpoint in `body`.
    pub fn network_connect<B: Serialize>(&self, name: &str, body: &B) -> Result<(), ClientError> {
        self.post(&format!("/networks/{}/connect", path_segment(name)), Some(body))
    }

    /// `POST /networks/{name}/disconnect`.
    pub fn network_disconnect<B: Serialize>(&self, name: &str, body: &B) -> Result<(), ClientError> {
        self.post(&format!("/networks/{}/disconnect", path_segment(name)), Some(body))
    }
}

/// Volumes.
impl Client {
    /// `POST /volumes/create`.
    pub fn volume_create<B: Serialize, T: DeserializeOwned>(&self, body: &B) -> Result<T, ClientError> {
        self.post_json("/volumes/create", Some(body))
    }

    /// `GET /volumes`; `filters` empty for none.
    pub fn volumes_list<T: DeserializeOwned>(&self, filters: &str) -> Result<T, ClientError> {
        self.get_json(&with_filters(Query::new(), filters).to_target("/volumes"))
    }

    /// `GET /volumes/{name}`.
    pub fn volume_inspect<T: DeserializeOwned>(&self, name: &str) -> Result<T, ClientError> {
        self.get_json(&format!("/volumes/{}", path_segment(name)))
    }

    /// `DELETE /volumes/{name}`.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<(), ClientError> {
        self.delete(&Query::new().flag("force", force).to_target(&format!("/volumes/{}", path_segment(name))))
    }

    /// `POST /volumes/prune`; `filters` empty for none.
    pub fn volumes_prune<T: DeserializeOwned>(&self, filters: &str) -> Result<T, ClientError> {
        self.post_json::<(), T>(&with_filters(Query::new(), filters).to_target("/volumes/prune"), None)
    }
}

/// The daemon as a whole: version, info, disk use, events, registry logins, the build cache,
/// Swarm.
impl Client {
    /// `GET /version`.
    pub fn version<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        self.get_json("/version")
    }

    /// `GET /info`.
    pub fn info<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        self.get_json("/info")
    }

    /// `GET /system/df`.
    pub fn system_df<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        self.get_json("/system/df")
    }

    /// `GET /events`, as they come; `since`/`until` are API timestamps, `filters` empty for
    /// none.
    pub fn events<T: DeserializeOwned>(
        &self,
        since: Option<&str>,
        until: Option<&str>,
        filters: &str,
    ) -> Result<JsonStream<T>, ClientError> {
        let mut q = Query::new();
        if let Some(s) = since {
            q = q.set("since", s);
        }
        if let Some(u) = until {
            q = q.set("until", u);
        }
        self.json_stream(Request::new("GET", &with_filters(q, filters).to_target("/events")))
    }

    /// `POST /auth`: checks a registry login, maybe answering an identity token.
    pub fn auth<B: Serialize, T: DeserializeOwned>(&self, body: &B) -> Result<T, ClientError> {
        self.post_json("/auth", Some(body))
    }

    /// `POST /build/prune`; `filters` empty for none.
    pub fn build_prune<T: DeserializeOwned>(
        &self,
        all: bool,
        keep_storage: u64,
        filters: &str,
    ) -> Result<T, ClientError> {
        let q = Query::new().flag("all", all).set("keep-storage", keep_storage.to_string());
        self.post_json::<(), T>(&with_filters(q, filters).to_target("/build/prune"), None)
    }

    /// Sends a Swarm command's first request; its answer's body is not read.
    pub fn swarm_probe(&self, probe: &SwarmProbe) -> Result<(), ClientError> {
        self.request(probe.request()).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The request line `op` sends (without the version prefix), read by a socket that
    /// answers every request with an empty 200.
    fn wire(op: impl FnOnce(&Client)) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wharf-client-ops-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("s");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; len];
            std::io::Read::read_exact(&mut r, &mut body).unwrap();
            (&conn).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
            first.trim_end().to_string()
        });
        let client = Client::new(&format!("unix://{}", sock.display())).unwrap();
        op(&client);
        let line = server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let (method, rest) = line.split_once(' ').unwrap();
        let target = rest.trim_end_matches(" HTTP/1.1");
        format!("{method} {}", target.strip_prefix("/v1.41").unwrap_or(target))
    }

    type Value = serde_json::Value;

    /// Names that break an unencoded path: the request line, the query, the fragment, an
    /// escape, a segment, non-ASCII.
    const ODD: &str = "a b?c#d%e/f é";
    const ODD_SEGMENT: &str = "a%20b%3Fc%23d%25e%2Ff%20%C3%A9";

    #[test]
    fn image_paths_table() {
        let cases = [
            ("busybox", "busybox"),
            ("busybox:1.36", "busybox:1.36"),
            ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b"),
            ("a/b@sha256:0123abcd", "a/b@sha256:0123abcd"),
            ("sha256:0123", "sha256:0123"),
            (ODD, "a%20b%3Fc%23d%25e/f%20%C3%A9"),
            ("a+b", "a%2Bb"),
        ];
        for (input, want) in cases {
            assert_eq!(image_path(input), want, "{input}");
        }
    }

    #[test]
    fn container_targets_table() {
        let body = serde_json::json!({});
        type Op = Box<dyn Fn(&Client)>;
        let cases: Vec<(Op, String)> = vec![
            (Box::new(|c| drop(c.container_inspect::<Value>("web", false))), "GET /containers/web/json".into()),
            (Box::new(|c| drop(c.container_inspect::<Value>("web", true))), "GET /containers/web/json?size=1".into()),
            (Box::new(|c| drop(c.container_inspect_raw(ODD, false))), format!("GET /containers/{ODD_SEGMENT}/json")),
            (Box::new(|c| drop(c.container_pause("a b"))), "POST /containers/a%20b/pause".into()),
            (Box::new(|c| drop(c.container_unpause("x?all=1"))), "POST /containers/x%3Fall%3D1/unpause".into()),
            (Box::new(|c| drop(c.container_start("x#y"))), "POST /containers/x%23y/start".into()),
            (
                Box::new(|c| drop(c.container_stop("100%", Some(3), Some("SIGINT")))),
                "POST /containers/100%25/stop?t=3&signal=SIGINT".into(),
            ),
            (Box::new(|c| drop(c.container_stop("web", None, None))), "POST /containers/web/stop".into()),
            (Box::new(|c| drop(c.container_restart("é", Some(0), None))), "POST /containers/%C3%A9/restart?t=0".into()),
            (Box::new(|c| drop(c.container_kill("a/b", ""))), "POST /containers/a%2Fb/kill".into()),
            (Box::new(|c| drop(c.container_kill("web", "HUP"))), "POST /containers/web/kill?signal=HUP".into()),
            (
                Box::new(|c| drop(c.container_remove(ODD, true, true, false))),
                format!("DELETE /containers/{ODD_SEGMENT}?v=1&force=1"),
            ),
            (
                Box::new(|c| drop(c.container_remove("web/db", false, false, true))),
                "DELETE /containers/web/db?link=1".into(),
            ),
            (
                Box::new(|c| drop(c.container_remove("web/a b", false, false, true))),
                "DELETE /containers/web/a%20b?link=1".into(),
            ),
            (
                Box::new(move |c| drop(c.container_update::<_, Value>("a b", &serde_json::json!({})))),
                "POST /containers/a%20b/update".into(),
            ),
            (
                Box::new(|c| drop(c.container_rename("old", "new name"))),
                "POST /containers/old/rename?name=new+name".into(),
            ),
            (Box::new(|c| drop(c.container_wait::<Value>("a?b"))), "POST /containers/a%3Fb/wait".into()),
            (Box::new(|c| drop(c.container_top::<Value>("web", ""))), "GET /containers/web/top".into()),
            (
                Box::new(|c| drop(c.container_top::<Value>("a#b", "-ef aux"))),
                "GET /containers/a%23b/top?ps_args=-ef+aux".into(),
            ),
            (Box::new(|c| drop(c.container_changes::<Value>("a b"))), "GET /containers/a%20b/changes".into()),
            (Box::new(|c| drop(c.container_stats::<Value>("a b"))), "GET /containers/a%20b/stats?stream=false".into()),
            (
                Box::new(|c| drop(c.container_stats_stream::<Value>("a b"))),
                "GET /containers/a%20b/stats?stream=true".into(),
            ),
            (Box::new(|c| drop(c.container_export("a b"))), "GET /containers/a%20b/export".into()),
            (
                Box::new(|c| {
                    let opts = LogsOptions {
                        follow: true,
                        tail: "all".into(),
                        since: Some("1.5".into()),
                        ..Default::default()
                    };
                    drop(c.container_logs("a b", &opts))
                }),
                "GET /containers/a%20b/logs?stdout=1&stderr=1&follow=1&tail=all&since=1.5".into(),
            ),
            (
                Box::new(|c| drop(c.resize(&Resize::Container("a b".into()), 24, 80))),
                "POST /containers/a%20b/resize?h=24&w=80".into(),
            ),
            (Box::new(|c| drop(c.resize(&Resize::Exec("x%y".into()), 1, 2))), "POST /exec/x%25y/resize?h=1&w=2".into()),
            (
                Box::new(|c| drop(c.containers_list::<Value>(true, true, 3, r#"{"a":["b"]}"#))),
                "GET /containers/json?all=1&size=1&limit=3&filters=%7B%22a%22%3A%5B%22b%22%5D%7D".into(),
            ),
            (Box::new(|c| drop(c.containers_list::<Value>(false, false, 0, ""))), "GET /containers/json".into()),
            (
                Box::new(move |c| drop(c.container_create::<_, Value>("a b", "", &body))),
                "POST /containers/create?name=a+b".into(),
            ),
            (Box::new(|c| drop(c.containers_prune::<Value>(""))), "POST /containers/prune".into()),
            (
                Box::new(|c| drop(c.exec_create::<_, Value>("a b", &serde_json::json!({})))),
                "POST /containers/a%20b/exec".into(),
            ),
            (Box::new(|c| drop(c.exec_start("a b", &serde_json::json!({})))), "POST /exec/a%20b/start".into()),
            (
                Box::new(|c| drop(c.exec_start_attached("a b", &serde_json::json!({}), "exec"))),
                "POST /exec/a%20b/start".into(),
            ),
            (Box::new(|c| drop(c.exec_inspect::<Value>("a?b"))), "GET /exec/a%3Fb/json".into()),
        ];
        for (i, (op, want)) in cases.into_iter().enumerate() {
            assert_eq!(wire(|c| op(c)), want, "case {i}");
        }
    }

    #[test]
    fn image_and_other_targets_table() {
        type Op = Box<dyn Fn(&Client)>;
        let cases: Vec<(Op, &str)> = vec![
            (Box::new(|c| drop(c.image_inspect_raw("127.0.0.1:5000/a/b"))), "GET /images/127.0.0.1:5000/a/b/json"),
            (Box::new(|c| drop(c.image_inspect_raw(ODD))), "GET /images/a%20b%3Fc%23d%25e/f%20%C3%A9/json"),
            (
                Box::new(|c| drop(c.image_remove::<Value>("a/b:1", true, true))),
                "DELETE /images/a/b:1?force=1&noprune=1",
            ),
            (Box::new(|c| drop(c.image_remove::<Value>("x#y", false, false))), "DELETE /images/x%23y"),
            (
                Box::new(|c| drop(c.image_tag("busybox", "my/repo", "v1"))),
                "POST /images/busybox/tag?repo=my%2Frepo&tag=v1",
            ),
            (Box::new(|c| drop(c.image_tag("a?b", "r", "latest"))), "POST /images/a%3Fb/tag?repo=r&tag=latest"),
            (Box::new(|c| drop(c.image_history::<Value>("h/é"))), "GET /images/h/%C3%A9/history"),
            (Box::new(|c| drop(c.image_push("reg:5000/a", "", "e30="))), "POST /images/reg:5000/a/push"),
            (Box::new(|c| drop(c.image_push("a b", "v1", "e30="))), "POST /images/a%20b/push?tag=v1"),
            (
                Box::new(|c| drop(c.image_pull("reg:5000/a", "latest", "", None))),
                "POST /images/create?fromImage=reg%3A5000%2Fa&tag=latest",
            ),
            (Box::new(|c| drop(c.images_list::<Value>(true, ""))), "GET /images/json?all=1"),
            (Box::new(|c| drop(c.images_search::<Value>("a b", 5, ""))), "GET /images/search?term=a+b&limit=5"),
            (Box::new(|c| drop(c.images_prune::<Value>("{}"))), "POST /images/prune?filters=%7B%7D"),
            (Box::new(|c| drop(c.images_save(&["a/b".into(), "c d".into()]))), "GET /images/get?names=a%2Fb&names=c+d"),
            (Box::new(|c| drop(c.images_load(true, Box::new(&b""[..]), Some(0)))), "POST /images/load?quiet=1"),
            (
                Box::new(|c| drop(c.commit::<Value>(&Query::new().set("container", "a b")))),
                "POST /commit?container=a+b",
            ),
            (Box::new(|c| drop(c.network_create::<_, Value>(&serde_json::json!({})))), "POST /networks/create"),
            (Box::new(|c| drop(c.networks_list::<Value>(""))), "GET /networks"),
            (Box::new(|c| drop(c.network_inspect::<Value>("my net/x"))), "GET /networks/my%20net%2Fx"),
            (Box::new(|c| drop(c.network_remove("a?b"))), "DELETE /networks/a%3Fb"),
            (Box::new(|c| drop(c.networks_prune::<Value>(""))), "POST /networks/prune"),
            (Box::new(|c| drop(c.network_connect("n#1", &serde_json::json!({})))), "POST /networks/n%231/connect"),
            (
                Box::new(|c| drop(c.network_disconnect("n%1", &serde_json::json!({})))),
                "POST /networks/n%251/disconnect",
            ),
            (Box::new(|c| drop(c.volume_create::<_, Value>(&serde_json::json!({})))), "POST /volumes/create"),
            (Box::new(|c| drop(c.volumes_list::<Value>(""))), "GET /volumes"),
            (Box::new(|c| drop(c.volume_inspect::<Value>("v é"))), "GET /volumes/v%20%C3%A9"),
            (Box::new(|c| drop(c.volume_remove("a/b", true))), "DELETE /volumes/a%2Fb?force=1"),
            (Box::new(|c| drop(c.volumes_prune::<Value>(""))), "POST /volumes/prune"),
            (Box::new(|c| drop(c.version::<Value>())), "GET /version"),
            (Box::new(|c| drop(c.info::<Value>())), "GET /info"),
            (Box::new(|c| drop(c.system_df::<Value>())), "GET /system/df"),
            (Box::new(|c| drop(c.events::<Value>(Some("1.0"), None, ""))), "GET /events?since=1.0"),
            (Box::new(|c| drop(c.auth::<_, Value>(&serde_json::json!({})))), "POST /auth"),
            (Box::new(|c| drop(c.build_prune::<Value>(true, 0, ""))), "POST /build/prune?all=1&keep-storage=0"),
            (Box::new(|c| drop(c.swarm_probe(&SwarmProbe::Inspect))), "GET /swarm"),
            (Box::new(|c| drop(c.swarm_probe(&SwarmProbe::UnlockKey))), "GET /swarm/unlockkey"),
            (
                Box::new(|c| drop(c.swarm_probe(&SwarmProbe::Action { verb: "leave", force: true }))),
                "POST /swarm/leave?force=1",
            ),
            (Box::new(|c| drop(c.swarm_probe(&SwarmProbe::List(SwarmObjects::Secrets)))), "GET /secrets"),
            (Box::new(|c| drop(c.swarm_probe(&SwarmProbe::Create(SwarmObjects::Configs)))), "POST /configs/create"),
            (Box::new(|c| drop(c.swarm_probe(&SwarmProbe::Get(SwarmObjects::Services, "a b")))), "GET /services/a%20b"),
            (Box::new(|c| drop(c.swarm_probe(&SwarmProbe::Get(SwarmObjects::Nodes, "self")))), "GET /nodes/self"),
        ];
        for (i, (op, want)) in cases.into_iter().enumerate() {
            assert_eq!(wire(|c| op(c)), want, "case {i}");
        }
    }

    #[test]
    fn request_targets_table() {
        let cases = [
            (container_wait_request("a b", "next-exit"), "POST", "/containers/a%20b/wait?condition=next-exit"),
            (container_archive_head("a?b", "/etc/x y"), "HEAD", "/containers/a%3Fb/archive?path=%2Fetc%2Fx+y"),
            (container_archive_get("é", "/"), "GET", "/containers/%C3%A9/archive?path=%2F"),
            (
                container_archive_put("a#b", &Query::new().set("path", "/"), Body::Empty),
                "PUT",
                "/containers/a%23b/archive?path=%2F",
            ),
            (build_request(&Query::new().set("t", "a b")), "POST", "/build?t=a+b"),
        ];
        for (req, method, target) in cases {
            assert_eq!((req.method.as_str(), req.target.as_str()), (method, target));
        }
    }
}
