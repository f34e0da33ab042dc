//! `docker cp`: `HEAD`, `GET` and `PUT /containers/{id}/archive?path=` (stat, tar of a path, tar
//! extracted into a directory), with the stat in the `X-Docker-Container-Path-Stat` header.

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use wharf_engine::{ExtractOptions, PathStat};

use crate::archive::{body_reader, ChannelWriter};
use crate::body::Body;
use crate::error::ApiError;
use crate::router::{empty, Ctx, Result};

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

// Go's os.FileMode type bits, which Docker's stat carries.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_DEVICE: u32 = 1 << 26;
const MODE_NAMED_PIPE: u32 = 1 << 25;
const MODE_SOCKET: u32 = 1 << 24;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_CHAR_DEVICE: u32 = 1 << 21;
const MODE_STICKY: u32 = 1 << 20;

// The Unix st_mode bits (fixed by POSIX and the kernel's ABI).
const S_IFMT: u32 = 0o170000;
const S_IFSOCK: u32 = 0o140000;
const S_IFLNK: u32 = 0o120000;
const S_IFBLK: u32 = 0o060000;
const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;
const S_IFIFO: u32 = 0o010000;
const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;
#[cfg(test)]
const S_IFREG: u32 = 0o100000;

/// A Unix `st_mode` as Go's `os.FileMode` (what Go's `os.Lstat` reports on Linux).
pub(crate) fn go_file_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    m |= match st_mode & S_IFMT {
        S_IFBLK => MODE_DEVICE,
        S_IFCHR => MODE_DEVICE | MODE_CHAR_DEVICE,
        S_IFDIR => MODE_DIR,
        S_IFIFO => MODE_NAMED_PIPE,
        S_IFLNK => MODE_SYMLINK,
        S_IFSOCK => MODE_SOCKET,
        _ => 0,
    };
    if st_mode & S_ISUID != 0 {
        m |= MODE_SETUID;
    }
    if st_mode & S_ISGID != 0 {
        m |= MODE_SETGID;
    }
    if st_mode & S_ISVTX != 0 {
        m |= MODE_STICKY;
    }
    m
}

/// The header value: base64 of Docker's `ContainerPathStat` JSON.
pub(crate) fn stat_header(stat: &PathStat) -> String {
    let json = serde_json::json!({
        "name": stat.name,
        "size": stat.size,
        "mode": go_file_mode(stat.mode),
        "mtime": wharf_types::time::rfc3339_nanos(stat.mtime),
        "linkTarget": stat.link_target,
    });
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

fn path_param(ctx: &Ctx) -> Result<String> {
    match ctx.query.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ApiError::bad_request("path is required")),
    }
}

fn with_stat(mut r: Response<Body>, stat: &PathStat) -> Result<Response<Body>> {
    let v = HeaderValue::from_str(&stat_header(stat))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("stat header: {e}")))?;
    r.headers_mut().insert(STAT_HEADER, v);
    Ok(r)
}

/// `HEAD /containers/{id}/archive?path=`: the stat only.
pub async fn head(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let path = path_param(ctx)?;
    let stat = ctx.engine.container_stat_path(id, &path).await?;
    with_stat(empty(StatusCode::OK), &stat)
}

/// `GET /containers/{id}/archive?path=`: the tar, streamed; a failure midway can only cut it.
pub async fn get(ctx: &Ctx, id: &str) -> Result<Response<Body>> {
    let path = path_param(ctx)?;
    let (tx, body) = Body::channel();
    let stat = ctx.engine.container_archive(id, &path, Box::new(ChannelWriter::new(tx))).await?;
    let mut r = Response::new(body);
    r.headers_mut().insert("Content-Type", HeaderValue::from_static("application/x-tar"));
    with_stat(r, &stat)
}

/// `PUT /containers/{id}/archive?path=&noOverwriteDirNonDir=&copyUIDGID=` with a tar body.
pub async fn put(ctx: &Ctx, id: &str, req: Request<Incoming>) -> Result<Response<Body>> {
    let path = path_param(ctx)?;
    let options = ExtractOptions {
        no_overwrite_dir_non_dir: ctx.query.bool("noOverwriteDirNonDir"),
        copy_uid_gid: ctx.query.bool("copyUIDGID"),
    };
    ctx.engine.container_extract(id, &path, options, Box::new(body_reader(req))).await?;
    Ok(empty(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_modes_as_go() {
        let cases = [
            (S_IFREG | 0o644, 0o644),
            (S_IFDIR | 0o755, MODE_DIR | 0o755),
            (S_IFLNK | 0o777, MODE_SYMLINK | 0o777),
            (S_IFCHR | 0o666, MODE_DEVICE | MODE_CHAR_DEVICE | 0o666),
            (S_IFBLK | 0o660, MODE_DEVICE | 0o660),
            (S_IFIFO | 0o600, MODE_NAMED_PIPE | 0o600),
            (S_IFSOCK | 0o755, MODE_SOCKET | 0o755),
            (S_IFREG | 0o4755, MODE_SETUID | 0o755),
            (S_IFDIR | 0o1777, MODE_DIR | MODE_STICKY | 0o777),
            (S_IFDIR | 0o2775, MODE_DIR | MODE_SETGID | 0o775),
        ];
        for (st, want) in cases {
            assert_eq!(go_file_mode(st), want, "{st:o}");
        }
        // As Docker reports a directory 0755: 2147484141.
        assert_eq!(go_file_mode(S_IFDIR | 0o755), 2147484141);
    }

    #[test]
    fn stat_header_is_base64_json() {
        let stat = PathStat {
            name: "hostname".into(),
            size: 13,
            mode: S_IFREG | 0o644,
            mtime: std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            link_target: String::new(),
        };
        let raw = base64::engine::general_purpose::STANDARD.decode(stat_header(&stat)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["name"], "hostname");
        assert_eq!(v["size"], 13);
        assert_eq!(v["mode"], 0o644);
        assert_eq!(v["linkTarget"], "");
        assert!(v["mtime"].as_str().unwrap().starts_with("2023-11-14T22:13:20"), "{}", v["mtime"]);
    }
}
