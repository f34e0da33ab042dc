//! Dockerfile text into raw nodes, as BuildKit's parser does it: parser directives, comments,
//! line continuations, builder flags, heredocs and JSON (exec) form detection.

use crate::error::{Error, Result};

/// A heredoc attached to an instruction (`RUN <<EOF`, `COPY <<EOF /dest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The body, each line ending in `\n`; for `<<-` with leading tabs stripped.
    pub content: String,
    /// False when any part of the terminator word was quoted: the body is taken literally.
    pub expand: bool,
}

/// One instruction as written, before it is typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// 1-based line where it ends (its last continuation line or heredoc terminator).
    pub end_line: usize,
    /// The instruction name, lowercased (`run`).
    pub name: String,
    /// The instruction line as written, continuations joined, without heredoc bodies.
    pub original: String,
    /// Builder flags without their leading `--`, quotes removed: `from=build`, `link`.
    pub flags: Vec<String>,
    /// Everything after the name and the flags, trimmed.
    pub rest: String,
    /// The heredocs named on the line, in order (RUN, COPY and ADD only).
    pub heredocs: Vec<Heredoc>,
}

/// A parsed Dockerfile before typing: its directives and nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub escape: char,
    pub syntax: Option<String>,
    pub nodes: Vec<Node>,
}

/// Splits Dockerfile text into nodes.
pub fn parse_nodes(text: &str) -> Result<Parsed> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let mut escape = '\\';
    let mut syntax = None;
    let mut seen: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some((key, value)) = directive(lines[i]) else {
            break;
        };
        if seen.contains(&key) {
            return Err(Error::at(i + 1, format!("only one {key} parser directive can be used")));
        }
        match key.as_str() {
            "escape" => {
                escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(Error::at(i + 1, format!("invalid escape token '{value}' does not match ` or \\")))
                    }
                }
            }
            "syntax" => syntax = Some(value),
            "check" => {}
            // An unknown directive is a comment, and ends the directives.
            _ => break,
        }
        seen.push(key);
        i += 1;
    }

    let mut nodes = Vec::new();
    while i < lines.len() {
        let first = lines[i].trim_start();
        i += 1;
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        let line = i;
        let (mut joined, mut more) = strip_continuation(first, escape);
        while more && i < lines.len() {
            let raw = lines[i];
            i += 1;
            let trimmed = raw.trim_start();
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            let (piece, again) = strip_continuation(raw, escape);
            joined.push_str(&piece);
            more = again;
        }
        let mut node = split_node(joined.trim_end(), line)?;
        if matches!(node.name.as_str(), "run" | "copy" | "add") {
            for (name, chomp, expand) in heredoc_markers(&node.rest, escape) {
                let mut content = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let body = lines[i];
                    i += 1;
                    let body = if chomp { body.trim_start_matches('\t') } else { body };
                    if body == name {
                        terminated = true;
                        break;
                    }
                    content.push_str(body);
                    content.push('\n');
                }
                if !terminated {
                    return Err(Error::at(line, format!("unterminated heredoc {name}")));
                }
                node.heredocs.push(Heredoc { name, content, expand });
            }
        }
        node.end_line = i;
        nodes.push(node);
    }
    Ok(Parsed { escape, syntax, nodes })
}

/// Parses one instruction line (no continuations, no heredocs): an ONBUILD trigger.
pub fn parse_line(text: &str, line: usize) -> Result<Node> {
    split_node(text.trim(), line)
}

/// `# key=value` at the top of the file: the key lowercased and the value.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let (key, value) = rest.split_once('=')?;
    let key = key.trim_end();
    let mut chars = key.chars();
    if !chars.next()?.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.to_string()))
}

/// A line ending in the escape character (then maybe blanks) continues on the next line.
fn strip_continuation(line: &str, escape: char) -> (String, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        Some(head) => (head.to_string(), true),
        None => (line.to_string(), false),
    }
}

fn split_node(text: &str, line: usize) -> Result<Node> {
    let (name, args) = match text.split_once(char::is_whitespace) {
        Some((name, args)) => (name, args.trim_start()),
        None => (text, ""),
    };
    let (flags, rest) = extract_flags(args);
    Ok(Node {
        line,
        end_line: line,
        name: name.to_ascii_lowercase(),
        original: text.to_string(),
        flags,
        rest: rest.trim().to_string(),
        heredocs: Vec::new(),
    })
}

/// The `--name[=value]` words at the start of the arguments and what follows them. Quotes
/// are removed and `\` escapes the next character; a bare `--` ends the flags.
fn extract_flags(args: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut rest = args;
    loop {
        rest = rest.trim_start();
        if !rest.starts_with("--") {
            return (flags, rest);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut chars = rest.chars();
        // What follows the word's ending whitespace (trimmed above and below anyway).
        let mut after = "";
        while let Some(c) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    after = chars.as_str();
                    break;
                }
                None if c == '"' || c == '\'' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
                _ => word.push(c),
            }
        }
        rest = after;
        if word == "--" {
            return (flags, rest.trim_start());
        }
        // The word began with the unquoted "--" checked above.
        flags.push(word.strip_prefix("--").unwrap_or(&word).to_string());
    }
}

/// Splits on whitespace outside quotes, keeping quotes and escapes in the words (BuildKit's
/// `parseWords`): the words are expanded later.
pub fn split_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut word));
                in_word = false;
            }
            continue;
        }
        in_word = true;
        if c == escape && quote != Some('\'') {
            word.push(c);
            if let Some(n) = chars.next() {
                word.push(n);
            }
            continue;
        }
        match quote {
            None if c == '"' || c == '\'' => quote = Some(c),
            Some(q) if c == q => quote = None,
            _ => {}
        }
        word.push(c);
    }
    if in_word {
        words.push(word);
    }
    words
}

/// If `word` is a heredoc marker (`<<EOF`, `<<-EOF`, `<<"EOF"`, `2<<EOF`): its name, whether
/// tabs are stripped (`<<-`) and whether the body expands (no part of the name quoted).
pub fn heredoc_marker(word: &str) -> Option<(String, bool, bool)> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let mut name = String::new();
    let mut quoted = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match quote {
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                quoted = true;
            }
            Some(q) if c == q => quote = None,
            Some('\'') => name.push(c),
            _ if c == '\\' => name.push(chars.next()?),
            _ => name.push(c),
        }
    }
    if quote.is_some() || name.is_empty() {
        return None;
    }
    Some((name, chomp, !quoted))
}

fn heredoc_markers(rest: &str, escape: char) -> Vec<(String, bool, bool)> {
    if rest.starts_with('[') && json_array(rest).ok().flatten().is_some() {
        return Vec::new();
    }
    split_words(rest, escape).iter().filter_map(|w| heredoc_marker(w)).collect()
}

/// The exec (JSON) form: `Ok(Some(args))` for a JSON array of strings, `Ok(None)` when the
/// text is not JSON (the shell form), an error for a JSON array holding anything else.
pub fn json_array(rest: &str) -> std::result::Result<Option<Vec<String>>, String> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(None);
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(rest) else {
        return Ok(None);
    };
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err("when using JSON array syntax, arrays must be comprised of strings only".to_string()),
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, flags, rest) of each node.
    fn shape(text: &str) -> Vec<(usize, String, Vec<String>, String)> {
        parse_nodes(text).unwrap().nodes.into_iter().map(|n| (n.line, n.name, n.flags, n.rest)).collect()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// (line, name, flags, rest) expected of each node.
    type NodeShape<'a> = (usize, &'a str, &'a [&'a str], &'a str);

    #[test]
    fn nodes_table() {
        let cases: &[(&str, &[NodeShape])] = &[
            ("FROM busybox", &[(1, "from", &[], "busybox")]),
            ("from busybox\nrun echo hi", &[(1, "from", &[], "busybox"), (2, "run", &[], "echo hi")]),
            ("  # comment\n\n  RUN  a  ", &[(3, "run", &[], "a")]),
            ("RUN echo # not a comment", &[(1, "run", &[], "echo # not a comment")]),
            ("RUN a \\\n  b", &[(1, "run", &[], "a   b")]),
            ("RUN a \\  \t\n b", &[(1, "run", &[], "a  b")]),
            ("RUN a \\\n# inside\n\n   \n b\nRUN c", &[(1, "run", &[], "a  b"), (6, "run", &[], "c")]),
            ("RUN a \\", &[(1, "run", &[], "a")]),
            ("RUN a \\\n", &[(1, "run", &[], "a")]),
            ("RUN a\r\nRUN b\r\n", &[(1, "run", &[], "a"), (2, "run", &[], "b")]),
            ("# escape=`\nRUN a `\n b\nRUN c:\\", &[(2, "run", &[], "a  b"), (4, "run", &[], "c:\\")]),
            ("COPY --from=build --chown=1:1 a b", &[(1, "copy", &["from=build", "chown=1:1"], "a b")]),
            (
                "RUN --mount=type=cache,target=/x --mount=type=tmpfs,target=/t x",
                &[(1, "run", &["mount=type=cache,target=/x", "mount=type=tmpfs,target=/t"], "x")],
            ),
            ("COPY --link a b", &[(1, "copy", &["link"], "a b")]),
            ("COPY --chown=\"a b\" x y", &[(1, "copy", &["chown=a b"], "x y")]),
            ("COPY -- --weird dest", &[(1, "copy", &[], "--weird dest")]),
            ("HEALTHCHECK --interval=5s CMD true", &[(1, "healthcheck", &["interval=5s"], "CMD true")]),
            ("\u{feff}FROM a", &[(1, "from", &[], "a")]),
            ("CMD", &[(1, "cmd", &[], "")]),
            // Multibyte text next to every split point (a word's end, a flag's "--", non-ASCII
            // whitespace) is kept whole.
            ("RUNé a", &[(1, "runé", &[], "a")]),
            ("RUN\u{3000}é", &[(1, "run", &[], "é")]),
            ("COPY --chown=é\u{3000}é y", &[(1, "copy", &["chown=é"], "é y")]),
            ("COPY --é", &[(1, "copy", &["é"], "")]),
        ];
        for (input, want) in cases {
            let want: Vec<_> = want.iter().map(|(l, n, f, r)| (*l, n.to_string(), s(f), r.to_string())).collect();
            assert_eq!(shape(input), want, "input {input:?}");
        }
    }

    #[test]
    fn original_joins_continuations() {
        let p = parse_nodes("RUN echo \\\n  hi   \n").unwrap();
        assert_eq!(p.nodes[0].original, "RUN echo   hi");
        assert_eq!(p.nodes[0].end_line, 2);
    }

    #[test]
    fn directives() {
        let p = parse_nodes("# syntax=docker/dockerfile:1\n# escape=`\nFROM a").unwrap();
        assert_eq!(p.escape, '`');
        assert_eq!(p.syntax.as_deref(), Some("docker/dockerfile:1"));
        // After a plain comment, directives are comments.
        let p = parse_nodes("# hello\n# escape=`\nFROM a").unwrap();
        assert_eq!(p.escape, '\\');
        // After an unknown directive too.
        let p = parse_nodes("# foo=bar\n# escape=`\nFROM a").unwrap();
        assert_eq!(p.escape, '\\');
        // After a blank line too.
        let p = parse_nodes("\n# escape=`\nFROM a").unwrap();
        assert_eq!(p.escape, '\\');
        let p = parse_nodes("#ESCAPE = `\nFROM a").unwrap();
        assert_eq!(p.escape, '`');
    }

    #[test]
    fn directive_errors() {
        let cases = [
            ("# escape=x\nFROM a", "Dockerfile line 1: invalid escape token 'x' does not match ` or \\"),
            ("# escape=`\n# escape=\\\nFROM a", "Dockerfile line 2: only one escape parser directive can be used"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_nodes(input).unwrap_err().to_string(), want, "input {input:?}");
        }
    }

    #[test]
    fn heredocs() {
        let p = parse_nodes("RUN <<EOF\necho $a\n  x\nEOF\nRUN b").unwrap();
        assert_eq!(p.nodes.len(), 2);
        assert_eq!(
            p.nodes[0].heredocs,
            vec![Heredoc { name: "EOF".into(), content: "echo $a\n  x\n".into(), expand: true }]
        );
        assert_eq!(p.nodes[0].end_line, 4);
        assert_eq!(p.nodes[1].line, 5);

        let p = parse_nodes("COPY <<-EOT /x\n\t\tindented\n\tEOT\n").unwrap();
        assert_eq!(p.nodes[0].heredocs[0].content, "indented\n");

        let p = parse_nodes("COPY <<\"A\" <<'B' /dest/\na\nA\nb\nB\n").unwrap();
        let h = &p.nodes[0].heredocs;
        assert_eq!((h[0].name.as_str(), h[0].content.as_str(), h[0].expand), ("A", "a\n", false));
        assert_eq!((h[1].name.as_str(), h[1].content.as_str(), h[1].expand), ("B", "b\n", false));

        let p = parse_nodes("RUN cat <<EOF > /f \\\n && true\n# not a comment here\nEOF\n").unwrap();
        assert_eq!(p.nodes[0].heredocs[0].content, "# not a comment here\n");
        assert_eq!(p.nodes[0].rest, "cat <<EOF > /f  && true");

        // Only RUN, COPY and ADD take heredocs.
        let p = parse_nodes("CMD <<EOF\nEOF\n").unwrap();
        assert_eq!(p.nodes.len(), 2);
        assert!(p.nodes[0].heredocs.is_empty());
        // A quoted marker is not one.
        let p = parse_nodes("RUN echo \"<<EOF\"\nRUN x").unwrap();
        assert!(p.nodes[0].heredocs.is_empty());
    }

    #[test]
    fn unterminated_heredoc() {
        assert_eq!(
            parse_nodes("FROM a\nRUN <<EOF\nx\n").unwrap_err().to_string(),
            "Dockerfile line 2: unterminated heredoc EOF"
        );
    }

    #[test]
    fn heredoc_marker_table() {
        type Marker<'a> = Option<(&'a str, bool, bool)>;
        let cases: &[(&str, Marker)] = &[
            ("<<EOF", Some(("EOF", false, true))),
            ("<<-EOF", Some(("EOF", true, true))),
            ("<<\"EOF\"", Some(("EOF", false, false))),
            ("<<'E O'", Some(("E O", false, false))),
            ("<<E\"O\"F", Some(("EOF", false, false))),
            ("2<<EOF", Some(("EOF", false, true))),
            ("<<", None),
            ("<<<EOF", None),
            ("x<<EOF", None),
            ("\"<<EOF\"", None),
        ];
        for (input, want) in cases {
            let got = heredoc_marker(input);
            assert_eq!(got.as_ref().map(|(n, c, e)| (n.as_str(), *c, *e)), *want, "input {input:?}");
        }
    }

    #[test]
    fn json_table() {
        assert_eq!(json_array("[\"a\", \"b c\"]"), Ok(Some(s(&["a", "b c"]))));
        assert_eq!(json_array("  [] "), Ok(Some(vec![])));
        assert_eq!(json_array("echo [a]"), Ok(None));
        assert_eq!(json_array("[not json"), Ok(None));
        assert_eq!(json_array("[\"a\"] trailing"), Ok(None));
        assert!(json_array("[1, 2]").is_err());
    }

    #[test]
    fn split_words_table() {
        let cases: &[(&str, &[&str])] = &[
            ("a b", &["a", "b"]),
            ("a=\"x y\" b='c d'", &["a=\"x y\"", "b='c d'"]),
            ("a\\ b c", &["a\\ b", "c"]),
            ("  ", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(split_words(input, '\\'), s(want), "input {input:?}");
        }
    }
}
