//! `inspect`: the daemon's JSON for containers or images, printed as an indented array in the
//! daemon's own key order (as docker does), or through a small `--format` template.

use anyhow::{bail, Result};
use wharf_client::{Client, ClientError};

use crate::Exit;

/// `size`: containers come with `SizeRw` and `SizeRootFs` (`--size`).
pub fn inspect(client: &Client, names: &[String], kind: Option<&str>, format: Option<&str>, size: bool) -> Result<()> {
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        match fetch(client, name, kind, size) {
            Ok(Some(raw)) => found.push(raw),
            Ok(None) => missing.push(name.clone()),
            Err(e) => return Err(e),
        }
    }
    match format {
        Some(f) => {
            for raw in &found {
                let v: serde_json::Value = serde_json::from_slice(raw)?;
                println!("{}", render_template(f, &v)?);
            }
        }
        None => {
            let items: Vec<String> = found.iter().map(|raw| indent_json(raw, 1)).collect();
            if items.is_empty() {
                println!("[]");
            } else {
                println!("[\n    {}\n]", items.join(",\n    "));
            }
        }
    }
    if !missing.is_empty() {
        for m in &missing {
            eprintln!("Error: No such object: {m}");
        }
        return Err(Exit::silent(1).into());
    }
    Ok(())
}

/// The raw JSON of `name`, or `None` when no object of the wanted kind has that name.
fn fetch(client: &Client, name: &str, kind: Option<&str>, size: bool) -> Result<Option<Vec<u8>>> {
    let (container, image) = match kind {
        Some("container") => (true, false),
        Some("image") => (false, true),
        Some(other) => bail!("{other:?} is not a valid value for --type"),
        None => (true, true),
    };
    if container {
        if let Some(raw) = found(client.container_inspect_raw(name, size))? {
            return Ok(Some(raw));
        }
    }
    if image {
        return found(client.image_inspect_raw(name));
    }
    Ok(None)
}

/// An inspect's answer; `None` when the daemon has no such object.
fn found(answer: Result<Vec<u8>, ClientError>) -> Result<Option<Vec<u8>>> {
    match answer {
        Ok(raw) => Ok(Some(raw)),
        Err(ClientError::Daemon { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Re-indents compact JSON with four spaces per level, keeping key order; `depth` is the level
/// the value starts at.
pub fn indent_json(raw: &[u8], depth: usize) -> String {
    indent_json_with(raw, depth, "    ")
}

/// `indent_json` with `unit` per level (`"\t"` is Go's `json.Indent` as docker prints raw
/// manifests).
pub fn indent_json_with(raw: &[u8], depth: usize, unit: &str) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len() * 2);
    let mut level = depth;
    let mut in_string = false;
    let mut escaped = false;
    let chars: Vec<char> = text.trim().chars().collect();
    let newline = |out: &mut String, level: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n(unit, level));
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                // Empty containers stay on one line: `{}` and `[]`.
                let close = if c == '{' { '}' } else { ']' };
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                if chars.get(j) == Some(&close) {
                    out.push(c);
                    out.push(close);
                    i = j + 1;
                    continue;
                }
                out.push(c);
                level += 1;
                newline(&mut out, level);
            }
            '}' | ']' => {
                level = level.saturating_sub(1);
                newline(&mut out, level);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, level);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The template language is `crate::template` (Go's text/template subset).
pub fn render_template(template: &str, v: &serde_json::Value) -> Result<String> {
    crate::template::render(template, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_keeping_order() {
        let raw = br#"{"Id":"x","B":[1,2],"Empty":{},"None":[],"S":"a,b:{c}\"[","N":{"Z":1,"A":null}}"#;
        let want = r#"{
        "Id": "x",
        "B": [
            1,
            2
        ],
        "Empty": {},
        "None": [],
        "S": "a,b:{c}\"[",
        "N": {
            "Z": 1,
            "A": null
        }
    }"#;
        assert_eq!(indent_json(raw, 1), want);
    }
}
