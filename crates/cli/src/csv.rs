//! The comma-separated fields of the docker CLI's `key=value,…` flags (`--mount`, the long form
//! of `--network`, `context --docker`), read as it reads them: one CSV record (Go's
//! `encoding/csv`), so a field in double quotes may hold commas (`"driver-opt=k=a,b"`) and `""`
//! is a quote inside one.

use anyhow::{bail, Result};

/// The fields of `line`, or the CSV reader's error for a stray quote.
pub fn fields(line: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    loop {
        let mut field = Vec::new();
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => bail!("parse error on line 1, column {}: extraneous or missing \" in quoted-field", i + 1),
                    Some(b'"') if bytes.get(i + 1) == Some(&b'"') => {
                        field.push(b'"');
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        field.push(c);
                        i += 1;
                    }
                }
            }
            if !matches!(bytes.get(i), None | Some(b',')) {
                bail!("parse error on line 1, column {}: extraneous or missing \" in quoted-field", i + 1);
            }
        } else {
            while let Some(&c) = bytes.get(i) {
                match c {
                    b',' => break,
                    b'"' => bail!("parse error on line 1, column {}: bare \" in non-quoted-field", i + 1),
                    _ => {
                        field.push(c);
                        i += 1;
                    }
                }
            }
        }
        // Quotes and commas are ASCII: the bytes between them are whole UTF-8 sequences.
        out.push(String::from_utf8_lossy(&field).into_owned());
        match bytes.get(i) {
            Some(b',') => i += 1,
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_as_go_reads_them() {
        let ok: &[(&str, &[&str])] = &[
            ("name=n,alias=a", &["name=n", "alias=a"]),
            ("type=bind,source=/x,target=/y,readonly", &["type=bind", "source=/x", "target=/y", "readonly"]),
            (r#"name=n,"driver-opt=k=a,b""#, &["name=n", "driver-opt=k=a,b"]),
            (r#""say ""hi""",x"#, &[r#"say "hi""#, "x"]),
            ("a,,b,", &["a", "", "b", ""]),
            ("", &[""]),
            ("naïve=é", &["naïve=é"]),
        ];
        for (line, want) in ok {
            assert_eq!(fields(line).unwrap(), *want, "{line}");
        }
        for (line, err) in [
            (r#"name=n"x"#, "bare \" in non-quoted-field"),
            (r#""open,x"#, "extraneous or missing \" in quoted-field"),
            (r#""a"b,c"#, "extraneous or missing \" in quoted-field"),
        ] {
            let got = fields(line);
            assert!(got.as_ref().is_err_and(|e| e.to_string().contains(err)), "{line}: {got:?}");
        }
    }
}
