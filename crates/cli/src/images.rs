//! Image commands: `images`, `rmi` and `tag` (pull lives in its own module).

use std::collections::BTreeSet;

use anyhow::{anyhow, Result};
use clap::Args;
use wharf_client::{Client, ImageDeleteItem, ImageSummary};
use wharf_types::ImageRef;

use crate::containers::{filters_param, short_id};
use crate::human;
use crate::table::Table;
use crate::Exit;

#[derive(Debug, Args)]
pub struct ImagesFlags {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided (key=value)
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Only images of this repository (and tag)
    pub repository: Option<String>,
}

pub fn images(client: &Client, f: &ImagesFlags) -> Result<()> {
    let mut filters = f.filter.clone();
    if let Some(r) = &f.repository {
        filters.push(format!("reference={r}"));
    }
    let list: Vec<ImageSummary> = client.images_list(f.all, &filters_param(&filters)?)?;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    match f.format.as_deref() {
        Some(format) if !f.quiet && format != "table" => print!("{}", images_format(&list, f, now, format)?),
        _ => print!("{}", images_output(&list, f, now)),
    }
    Ok(())
}

/// `docker images --format`: the fields of the docker CLI's image context, as text.
fn images_format(list: &[ImageSummary], f: &ImagesFlags, now: i64, format: &str) -> Result<String> {
    let rows: Vec<serde_json::Value> = rows(list)
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "ID": if f.no_trunc { r.image.id.clone() } else { short_id(&r.image.id).to_string() },
                "Repository": r.repo,
                "Tag": r.tag,
                "Digest": r.digest,
                "CreatedSince": human::ago(r.image.created, now),
                "CreatedAt": crate::containers::go_time(r.image.created),
                "Size": human::size(r.image.size),
                "VirtualSize": human::size(r.image.size),
                "SharedSize": "N/A",
                "UniqueSize": "N/A",
                "Containers": "N/A",
            })
        })
        .collect();
    let headers = serde_json::json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "VirtualSize": "VIRTUAL SIZE",
        "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS",
    });
    crate::template::format_list(format, &rows, &headers)
}

/// One row of the images table: repository, tag, digest, and the image.
struct Row<'a> {
    repo: String,
    tag: String,
    digest: String,
    image: &'a ImageSummary,
}

fn rows(list: &[ImageSummary]) -> Vec<Row<'_>> {
    let mut rows = Vec::new();
    for image in list {
        // (familiar repository, tag) and (familiar repository, digest) pairs.
        let tags: Vec<(String, String)> = image
            .repo_tags
            .iter()
            .filter(|t| t.as_str() != "<none>:<none>")
            .map(|t| match ImageRef::parse_any(t) {
                Ok(r) => (r.familiar_name(), r.tag.unwrap_or_default()),
                Err(_) => split_last(t, ':'),
            })
            .collect();
        let digests: Vec<(String, String)> = image
            .repo_digests
            .iter()
            .filter(|d| d.as_str() != "<none>@<none>")
            .map(|d| match ImageRef::parse_any(d) {
                Ok(r) => (r.familiar_name(), r.digest.map(|d| d.to_string()).unwrap_or_default()),
                Err(_) => split_last(d, '@'),
            })
            .collect();
        let repos: BTreeSet<&str> = tags.iter().chain(digests.iter()).map(|(r, _)| r.as_str()).collect();
        if repos.is_empty() {
            rows.push(Row { repo: "<none>".into(), tag: "<none>".into(), digest: "<none>".into(), image });
            continue;
        }
        // Keep the daemon's order of tags; repositories only known by digest come after.
        let mut seen = BTreeSet::new();
        for (repo, tag) in &tags {
            let digest =
                digests.iter().find(|(r, _)| r == repo).map(|(_, d)| d.clone()).unwrap_or_else(|| "<none>".into());
            seen.insert(repo.clone());
            rows.push(Row { repo: repo.clone(), tag: tag.clone(), digest, image });
        }
        for (repo, digest) in &digests {
            if !seen.contains(repo) {
                rows.push(Row { repo: repo.clone(), tag: "<none>".into(), digest: digest.clone(), image });
            }
        }
    }
    rows
}

fn split_last(s: &str, sep: char) -> (String, String) {
    match s.rsplit_once(sep) {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (s.to_string(), "<none>".to_string()),
    }
}

fn images_output(list: &[ImageSummary], f: &ImagesFlags, now: i64) -> String {
    let id = |i: &ImageSummary| if f.no_trunc { i.id.clone() } else { short_id(&i.id).to_string() };
    if f.quiet {
        let mut seen = BTreeSet::new();
        return list.iter().map(id).filter(|i| seen.insert(i.clone())).map(|i| i + "\n").collect();
    }
    let mut header = vec!["REPOSITORY", "TAG"];
    if f.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    let mut t = Table::new(&header);
    for r in rows(list) {
        let mut row = vec![r.repo, r.tag];
        if f.digests {
            row.push(r.digest);
        }
        row.extend([id(r.image), human::ago(r.image.created, now), human::size(r.image.size)]);
        t.row(row);
    }
    t.render()
}

pub fn rmi(client: &Client, images: &[String], force: bool, no_prune: bool) -> Result<()> {
    let mut failed = false;
    for image in images {
        match client.image_remove::<Vec<ImageDeleteItem>>(image, force, no_prune) {
            Ok(items) => {
                for item in items {
                    if let Some(u) = item.untagged {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = item.deleted {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                failed = true;
                crate::print_error(&anyhow::Error::new(e));
            }
        }
    }
    if failed {
        return Err(Exit::silent(1).into());
    }
    Ok(())
}

pub fn tag(client: &Client, source: &str, target: &str) -> Result<()> {
    let r = ImageRef::parse(target).map_err(|e| anyhow!("{e}"))?;
    if r.digest.is_some() {
        return Err(anyhow!("refusing to create a tag with a digest reference"));
    }
    client.image_tag(source, &r.familiar_name(), &r.tag.unwrap_or_else(|| "latest".into()))?;
    Ok(())
}

/// `"1.45"` as `(1, 45)`, for comparing API versions.
fn api_version(v: &str) -> (u32, u32) {
    let (major, minor) = v.trim_start_matches('v').split_once('.').unwrap_or((v, "0"));
    (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
}

/// `--platform` of `save`, `load`, `history` (API 1.48), `image inspect` (1.49), `rmi` (1.50)
/// and `push` (1.46): per-platform operations on a multi-platform image store. The docker CLI
/// refuses the flag before any request when the daemon's API is older than that, as wharfd's
/// (1.45) and dockerd 20.10's (1.41) are, with this message; wharf does the same. Against a newer
/// daemon it still refuses: wharf's requests are API 1.41's, which have no platform.
pub fn refuse_platform(client: &Client, platform: Option<&str>, required: &str) -> Result<()> {
    if platform.is_none() {
        return Ok(());
    }
    let v: serde_json::Value = client.version()?;
    let daemon = v["ApiVersion"].as_str().unwrap_or("1.41").to_string();
    if api_version(&daemon) < api_version(required) {
        return Err(Exit::new(
            1,
            format!("\"--platform\" requires API version {required}, but the Docker daemon API version is {daemon}"),
        )
        .into());
    }
    Err(Exit::new(
        1,
        format!(
            "\"--platform\" requires API version {required}: wharf sends API {} requests, which name no platform",
            client.api_version()
        ),
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_compare_by_number() {
        assert!(api_version("1.45") < api_version("1.48"));
        assert!(api_version("1.9") < api_version("1.10"));
        assert_eq!(api_version("v1.50"), (1, 50));
    }

    fn flags() -> ImagesFlags {
        ImagesFlags {
            all: false,
            quiet: false,
            digests: false,
            no_trunc: false,
            filter: vec![],
            format: None,
            repository: None,
        }
    }

    #[test]
    fn images_table() {
        let list: Vec<ImageSummary> = serde_json::from_str(
            r#"[{"Id":"sha256:a416a98b71e224a31ee99cff8e16063554498227d2b696152a9c3e0aa65e5824",
                 "RepoTags":["busybox:latest","busybox:1.36"],
                 "RepoDigests":["busybox@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79"],
                 "Created":0,"Size":4261000},
                {"Id":"sha256:0123456789abcdef","RepoTags":null,"RepoDigests":null,"Created":86400,"Size":850}]"#,
        )
        .unwrap();
        let now = 86400 + 5;
        let want = "\
REPOSITORY   TAG       IMAGE ID       CREATED         SIZE
busybox      latest    a416a98b71e2   24 hours ago    4.26MB
busybox      1.36      a416a98b71e2   24 hours ago    4.26MB
<none>       <none>    0123456789ab   5 seconds ago   850B
";
        assert_eq!(images_output(&list, &flags(), now), want);
        let quiet = ImagesFlags { quiet: true, ..flags() };
        assert_eq!(images_output(&list, &quiet, now), "a416a98b71e2\n0123456789ab\n");
        let digests = ImagesFlags { digests: true, ..flags() };
        let out = images_output(&list, &digests, now);
        assert!(out.starts_with("REPOSITORY   TAG       DIGEST"), "{out}");
        assert!(out.contains("busybox      1.36      sha256:3fbc63"), "{out}");
    }
}
