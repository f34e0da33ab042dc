//! `wharf search`: the daemon's `GET /images/search`, which asks the registry the term names
//! (`host[:port]/term`, else Docker Hub), shown as the docker CLI's table or `--format`.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use wharf_client::Client;

#[derive(Debug, Args)]
pub struct SearchFlags {
    /// Filter output based on conditions provided (is-official=true, stars=N)
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print search using a Go template
    #[arg(long)]
    pub format: Option<String>,
    /// Max number of search results (default 25)
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    pub term: String,
}

pub fn search(client: &Client, f: &SearchFlags) -> Result<()> {
    let filters = crate::containers::filters_param(&f.filter)?;
    // The daemon's refusal in docker's words (the registry may have no search API).
    let results: Vec<Value> = match client.images_search(&f.term, f.limit, &filters) {
        Ok(r) => r,
        Err(e @ wharf_client::ClientError::Daemon { .. }) => {
            return Err(crate::Exit::new(1, format!("wharf: Error response from daemon: {e}")).into())
        }
        Err(e) => return Err(anyhow::Error::new(e).context("search")),
    };
    let rows: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut description = r["description"].as_str().unwrap_or("").replace('\n', " ");
            if !f.no_trunc && description.chars().count() > 45 {
                description = description.chars().take(44).collect::<String>() + "…";
            }
            let official = r["is_official"].as_bool().unwrap_or(false);
            let automated = r["is_automated"].as_bool().unwrap_or(false);
            json!({
                "Name": r["name"],
                "Description": description,
                "StarCount": r["star_count"].as_i64().unwrap_or(0).to_string(),
                "IsOfficial": if official { "[OK]" } else { "" },
                "IsAutomated": if automated { "[OK]" } else { "" },
            })
        })
        .collect();
    let headers = json!({
        "Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL",
        "IsAutomated": "AUTOMATED",
    });
    let format = match f.format.as_deref() {
        None | Some("table") => "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}",
        Some(other) => other,
    };
    print!("{}", crate::template::format_list(format, &rows, &headers)?);
    Ok(())
}
