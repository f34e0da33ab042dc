//! The subset of Go's text/template that `--format` flags use in practice: fields, `$`,
//! pipelines, `if`/`else`/`range`/`with`, range variables, trim markers and the docker CLI's
//! functions (`json`, `index`, `join`, `split`, `upper`, `lower`, `title`, `len`, `printf`...),
//! evaluated over JSON values.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Vec<String>, Pipeline, Vec<Node>, Vec<Node>),
}

/// Commands joined by `|`: each command's result is the last argument of the next.
#[derive(Debug, Clone)]
struct Pipeline(Vec<Vec<Arg>>);

#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B` on dot, or `$x.A.B` on a variable (`$` is the root).
    Field(Option<String>, Vec<String>),
    Literal(Value),
    Func(String),
    Sub(Pipeline),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Option<String>, Vec<String>),
    Str(String),
    Num(Value),
    Ident(String),
    Pipe,
    Open,
    Close,
    Declare,
    Comma,
}

/// One `{{...}}` between texts.
enum Piece {
    Text(String),
    Action(Vec<Tok>),
}

impl Template {
    pub fn parse(src: &str) -> Result<Template> {
        let pieces = split(src)?;
        let mut pos = 0;
        let (nodes, end) = parse_list(&pieces, &mut pos)?;
        if let Some(end) = end {
            bail!("template: unexpected {{{{{end}}}}}");
        }
        Ok(Template { nodes })
    }

    pub fn render(&self, dot: &Value) -> Result<String> {
        let mut out = String::new();
        let mut vars = vec![("$".to_string(), dot.clone())];
        exec(&self.nodes, dot, &mut vars, &mut out)?;
        Ok(out)
    }
}

/// Parses and renders in one step.
pub fn render(template: &str, dot: &Value) -> Result<String> {
    Template::parse(template)?.render(dot)
}

fn split(src: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some((before, after)) = rest.split_once("{{") {
        let mut text = before;
        if trim_next {
            text = text.trim_start();
        }
        let (after, trim_prev) = match after.strip_prefix("- ") {
            Some(a) => (a, true),
            None => (after, false),
        };
        if trim_prev {
            text = text.trim_end();
        }
        pieces.push(Piece::Text(text.to_string()));
        let (mut inner, after_close) = split_close(after).ok_or_else(|| anyhow!("template: unclosed action"))?;
        trim_next = false;
        if let Some(i) = inner.strip_suffix(" -") {
            inner = i;
            trim_next = true;
        }
        let inner = inner.trim();
        // Comments produce nothing.
        if !(inner.starts_with("/*") && inner.ends_with("*/")) {
            pieces.push(Piece::Action(lex(inner)?));
        }
        rest = after_close;
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    pieces.push(Piece::Text(text.to_string()));
    Ok(pieces)
}

/// The `}}` closing an action, skipping ones inside quoted strings.
/// Splits `s` at the `}}` that closes an action (outside quotes): what is inside, what follows.
fn split_close(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            // `i` is at an ASCII `}`, so both `get`s are on char boundaries and succeed.
            b'}' if b.get(i + 1) == Some(&b'}') => return Some((s.get(..i)?, s.get(i + 2..)?)),
            _ => {}
        }
        i += 1;
    }
    None
}

fn lex(s: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let word_end = |mut j: usize| {
        while j < chars.len() && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '.' | '$')) {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            ')' => {
                toks.push(Tok::Close);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => bail!("template: unterminated quoted string"),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => text.push('\n'),
                                Some('t') => text.push('\t'),
                                Some(c) => text.push(*c),
                                None => bail!("template: unterminated quoted string"),
                            }
                        }
                        Some(c) => text.push(*c),
                    }
                    i += 1;
                }
                toks.push(Tok::Str(text));
                i += 1;
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|c| *c == '`')
                    .ok_or_else(|| anyhow!("template: unterminated raw quoted string"))?;
                toks.push(Tok::Str(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '.' | '$' => {
                let end = word_end(i + 1);
                let word: String = chars[i..end].iter().collect();
                let (var, path) = match word.strip_prefix('$') {
                    Some(rest) => {
                        // `find` gives a char boundary, where split_at cannot panic.
                        let (name, path) = rest.find('.').map_or((rest, ""), |p| rest.split_at(p));
                        (Some(format!("${name}")), path.to_string())
                    }
                    None => (None, word.clone()),
                };
                let fields: Vec<String> = path.split('.').filter(|f| !f.is_empty()).map(String::from).collect();
                if path.len() > 1 && path.ends_with('.') {
                    bail!("template: bad field {word}");
                }
                toks.push(Tok::Field(var, fields));
                i = end;
            }
            c if c.is_ascii_digit() || c == '-' => {
                let mut end = i + 1;
                while end < chars.len() && (chars[end].is_ascii_digit() || chars[end] == '.') {
                    end += 1;
                }
                let text: String = chars[i..end].iter().collect();
                let num = match text.parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => Value::from(text.parse::<f64>().map_err(|_| anyhow!("template: bad number {text}"))?),
                };
                toks.push(Tok::Num(num));
                i = end;
            }
            c if c.is_alphabetic() => {
                let mut end = i;
                while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                    end += 1;
                }
                toks.push(Tok::Ident(chars[i..end].iter().collect()));
                i = end;
            }
            c => bail!("template: unexpected {c:?} in action"),
        }
    }
    Ok(toks)
}

/// Parses nodes up to an `else` or `end`, which is returned with its tokens' keyword.
fn parse_list(pieces: &[Piece], pos: &mut usize) -> Result<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while *pos < pieces.len() {
        let piece = &pieces[*pos];
        *pos += 1;
        let toks = match piece {
            Piece::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t.clone()));
                }
                continue;
            }
            Piece::Action(toks) => toks,
        };
        match toks.first() {
            Some(Tok::Ident(k)) if k == "end" || k == "else" => {
                if k == "else" && toks.len() > 1 {
                    // `else if ...`: rewind so the caller sees it as an `if` opening the else list.
                    *pos -= 1;
                    return Ok((nodes, Some("else if".into())));
                }
                return Ok((nodes, Some(k.clone())));
            }
            Some(Tok::Ident(k)) if k == "if" || k == "with" || k == "range" => {
                let mut rest = &toks[1..];
                let mut vars = Vec::new();
                if k == "range" {
                    if let Some(d) = rest.iter().position(|t| *t == Tok::Declare) {
                        for t in &rest[..d] {
                            match t {
                                Tok::Field(Some(v), f) if f.is_empty() => vars.push(v.clone()),
                                Tok::Comma => {}
                                _ => bail!("template: bad range variable declaration"),
                            }
                        }
                        rest = &rest[d + 1..];
                    }
                }
                let pipe = parse_pipeline(rest)?;
                let (body, end) = parse_list(pieces, pos)?;
                let otherwise = match end.as_deref() {
                    Some("end") => Vec::new(),
                    Some("else") => match parse_list(pieces, pos)? {
                        (list, Some(e)) if e == "end" => list,
                        _ => bail!("template: missing {{{{end}}}}"),
                    },
                    Some("else if") => {
                        // The `else if` piece becomes a nested `if` that ends at the shared `end`.
                        let Piece::Action(t) = &pieces[*pos] else { bail!("template: bad else") };
                        *pos += 1;
                        let pipe = parse_pipeline(&t[2..])?;
                        let nested = parse_branch(pieces, pos, pipe)?;
                        vec![nested]
                    }
                    _ => bail!("template: missing {{{{end}}}} for {k}"),
                };
                nodes.push(match k.as_str() {
                    "if" => Node::If(pipe, body, otherwise),
                    "with" => Node::With(pipe, body, otherwise),
                    _ => Node::Range(vars, pipe, body, otherwise),
                });
            }
            _ => nodes.push(Node::Action(parse_pipeline(toks)?)),
        }
    }
    Ok((nodes, None))
}

/// The rest of an `if` whose condition was already read.
fn parse_branch(pieces: &[Piece], pos: &mut usize, pipe: Pipeline) -> Result<Node> {
    let (body, end) = parse_list(pieces, pos)?;
    let otherwise = match end.as_deref() {
        Some("end") => Vec::new(),
        Some("else") => match parse_list(pieces, pos)? {
            (list, Some(e)) if e == "end" => list,
            _ => bail!("template: missing {{{{end}}}}"),
        },
        Some("else if") => {
            let Piece::Action(t) = &pieces[*pos] else { bail!("template: bad else") };
            *pos += 1;
            let pipe = parse_pipeline(&t[2..])?;
            vec![parse_branch(pieces, pos, pipe)?]
        }
        _ => bail!("template: missing {{{{end}}}} for if"),
    };
    Ok(Node::If(pipe, body, otherwise))
}

fn parse_pipeline(toks: &[Tok]) -> Result<Pipeline> {
    let mut i = 0;
    let p = parse_pipe_until(toks, &mut i, false)?;
    if i != toks.len() {
        bail!("template: unexpected ) in action");
    }
    Ok(p)
}

fn parse_pipe_until(toks: &[Tok], i: &mut usize, in_paren: bool) -> Result<Pipeline> {
    let mut cmds = vec![Vec::new()];
    while *i < toks.len() {
        let t = &toks[*i];
        *i += 1;
        let arg = match t {
            Tok::Pipe => {
                cmds.push(Vec::new());
                continue;
            }
            Tok::Close if in_paren => return check(cmds),
            Tok::Close => bail!("template: unexpected )"),
            Tok::Open => Arg::Sub(parse_pipe_until(toks, i, true)?),
            Tok::Field(v, f) => Arg::Field(v.clone(), f.clone()),
            Tok::Str(s) => Arg::Literal(Value::String(s.clone())),
            Tok::Num(n) => Arg::Literal(n.clone()),
            Tok::Ident(w) if w == "true" || w == "false" => Arg::Literal(Value::Bool(w == "true")),
            Tok::Ident(w) if w == "nil" => Arg::Literal(Value::Null),
            Tok::Ident(w) => Arg::Func(w.clone()),
            Tok::Declare | Tok::Comma => bail!("template: variable declarations are not supported here"),
        };
        if let Some(last) = cmds.last_mut() {
            last.push(arg);
        }
    }
    if in_paren {
        bail!("template: unclosed (");
    }
    check(cmds)
}

fn check(cmds: Vec<Vec<Arg>>) -> Result<Pipeline> {
    if cmds.iter().any(Vec::is_empty) {
        bail!("template: missing value for command");
    }
    Ok(Pipeline(cmds))
}

type Vars = Vec<(String, Value)>;

fn exec(nodes: &[Node], dot: &Value, vars: &mut Vars, out: &mut String) -> Result<()> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&print(&eval_pipe(p, dot, vars)?)),
            Node::If(p, yes, no) => {
                let branch = if truthy(&eval_pipe(p, dot, vars)?) { yes } else { no };
                exec(branch, dot, vars, out)?;
            }
            Node::With(p, yes, no) => {
                let v = eval_pipe(p, dot, vars)?;
                if truthy(&v) {
                    exec(yes, &v, vars, out)?;
                } else {
                    exec(no, dot, vars, out)?;
                }
            }
            Node::Range(names, p, body, otherwise) => {
                let items: Vec<(Value, Value)> = match eval_pipe(p, dot, vars)? {
                    Value::Array(a) => a.into_iter().enumerate().map(|(i, v)| (Value::from(i), v)).collect(),
                    Value::Object(o) => {
                        let mut items: Vec<(String, Value)> = o.into_iter().collect();
                        items.sort_by(|a, b| a.0.cmp(&b.0));
                        items.into_iter().map(|(k, v)| (Value::String(k), v)).collect()
                    }
                    Value::Null => Vec::new(),
                    other => bail!("template: range can't iterate over {}", print(&other)),
                };
                if items.is_empty() {
                    exec(otherwise, dot, vars, out)?;
                }
                for (key, item) in items {
                    let mark = vars.len();
                    match names.as_slice() {
                        [] => {}
                        [v] => vars.push((v.clone(), item.clone())),
                        [k, v, ..] => {
                            vars.push((k.clone(), key));
                            vars.push((v.clone(), item.clone()));
                        }
                    }
                    let r = exec(body, &item, vars, out);
                    vars.truncate(mark);
                    r?;
                }
            }
        }
    }
    Ok(())
}

fn eval_pipe(p: &Pipeline, dot: &Value, vars: &Vars) -> Result<Value> {
    let mut piped: Option<Value> = None;
    for cmd in &p.0 {
        piped = Some(eval_cmd(cmd, dot, vars, piped)?);
    }
    Ok(piped.unwrap_or(Value::Null))
}

fn eval_cmd(cmd: &[Arg], dot: &Value, vars: &Vars, piped: Option<Value>) -> Result<Value> {
    match &cmd[0] {
        Arg::Func(name) => {
            let mut args = Vec::new();
            for a in &cmd[1..] {
                args.push(eval_arg(a, dot, vars)?);
            }
            args.extend(piped);
            call(name, args)
        }
        first => {
            if cmd.len() > 1 || piped.is_some() {
                bail!("template: can't give argument to non-function");
            }
            eval_arg(first, dot, vars)
        }
    }
}

fn eval_arg(a: &Arg, dot: &Value, vars: &Vars) -> Result<Value> {
    match a {
        Arg::Literal(v) => Ok(v.clone()),
        Arg::Sub(p) => eval_pipe(p, dot, vars),
        Arg::Func(name) => call(name, Vec::new()),
        Arg::Field(var, path) => {
            let mut cur = match var {
                None => dot,
                Some(name) => {
                    &vars
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .ok_or_else(|| anyhow!("template: undefined variable {name}"))?
                        .1
                }
            };
            for field in path {
                cur = match cur {
                    Value::Object(o) => {
                        o.get(field).ok_or_else(|| anyhow!("template: map has no entry for key {field:?}"))?
                    }
                    Value::Null => return Ok(Value::Null),
                    other => bail!("template: can't evaluate field {field} in {}", kind(other)),
                };
            }
            Ok(cur.clone())
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A value as Go's fmt prints it with `%v`.
pub fn print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(print_inner).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let items: Vec<String> = keys.iter().map(|k| format!("{k}:{}", print_inner(&o[k.as_str()]))).collect();
            format!("map[{}]", items.join(" "))
        }
        other => other.to_string(),
    }
}

fn print_inner(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        other => print(other),
    }
}

fn string_arg(name: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => bail!("template: {name}: expected a string, got {}", kind(other)),
    }
}

fn arity(name: &str, args: &[Value], n: usize) -> Result<()> {
    if args.len() != n {
        bail!("template: wrong number of args for {name}: want {n} got {}", args.len());
    }
    Ok(())
}

fn compare(name: &str, a: &Value, b: &Value) -> Result<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().zip(y.as_f64()).and_then(|(x, y)| x.partial_cmp(&y)).ok_or_else(|| anyhow!("template: {name}"))
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => bail!("template: {name}: incompatible types for comparison"),
    }
}

fn call(name: &str, args: Vec<Value>) -> Result<Value> {
    let s = |v: String| Ok(Value::String(v));
    match name {
        "json" => {
            arity(name, &args, 1)?;
            s(serde_json::to_string(&args[0])?)
        }
        "upper" | "lower" | "title" => {
            arity(name, &args, 1)?;
            let text = string_arg(name, &args[0])?;
            s(match name {
                "upper" => text.to_uppercase(),
                "lower" => text.to_lowercase(),
                _ => text
                    .split(' ')
                    .map(|w| {
                        let mut c = w.chars();
                        c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
                    })
                    .collect::<Vec<String>>()
                    .join(" "),
            })
        }
        "join" => {
            arity(name, &args, 2)?;
            let sep = string_arg(name, &args[1])?;
            match &args[0] {
                Value::Array(a) => s(a.iter().map(print).collect::<Vec<_>>().join(&sep)),
                Value::Null => s(String::new()),
                other => bail!("template: join: expected a slice, got {}", kind(other)),
            }
        }
        "split" => {
            arity(name, &args, 2)?;
            let (text, sep) = (string_arg(name, &args[0])?, string_arg(name, &args[1])?);
            Ok(Value::Array(text.split(sep.as_str()).map(|p| Value::String(p.into())).collect()))
        }
        "truncate" => {
            arity(name, &args, 2)?;
            let text = string_arg(name, &args[0])?;
            let n = args[1].as_u64().ok_or_else(|| anyhow!("template: truncate: expected a length"))? as usize;
            s(text.chars().take(n).collect())
        }
        "len" => {
            arity(name, &args, 1)?;
            Ok(Value::from(match &args[0] {
                Value::String(t) => t.len(),
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                Value::Null => 0,
                other => bail!("template: len of {}", kind(other)),
            }))
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else { bail!("template: index of nothing") };
            let mut cur = first.clone();
            for k in keys {
                cur = match (&cur, k) {
                    (Value::Object(o), Value::String(key)) => o.get(key).cloned().unwrap_or(Value::Null),
                    (Value::Null, _) => Value::Null,
                    (Value::Array(a), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|i| a.get(i as usize))
                        .cloned()
                        .ok_or_else(|| anyhow!("template: index out of range: {n}"))?,
                    (c, _) => bail!("template: can't index item of type {}", kind(c)),
                };
            }
            Ok(cur)
        }
        "print" | "println" => {
            let parts: Vec<String> = args.iter().map(print).collect();
            let mut text = parts.join(if name == "println" { " " } else { "" });
            if name == "println" {
                text.push('\n');
            }
            s(text)
        }
        "printf" => {
            let Some((fmt, rest)) = args.split_first() else { bail!("template: printf needs a format") };
            s(printf(&string_arg(name, fmt)?, rest))
        }
        "not" => {
            arity(name, &args, 1)?;
            Ok(Value::Bool(!truthy(&args[0])))
        }
        "and" | "or" => {
            let want = name == "or";
            let last = args.last().cloned().unwrap_or(Value::Null);
            Ok(args.into_iter().find(|a| truthy(a) == want).unwrap_or(last))
        }
        "eq" | "ne" => {
            let Some((a, rest)) = args.split_first() else { bail!("template: {name} needs arguments") };
            let eq = rest.iter().any(|b| b == a);
            Ok(Value::Bool(if name == "eq" { eq } else { !eq }))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, &args, 2)?;
            let o = compare(name, &args[0], &args[1])?;
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match name {
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            }))
        }
        other => bail!("template: function {other:?} not defined"),
    }
}

/// Go's `printf` for the verbs scripts use: %s %v %d %q %%.
fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => match args.next() {
                Some(v) => out.push_str(&serde_json::to_string(&print(v)).unwrap_or_default()),
                None => out.push_str("%!q(MISSING)"),
            },
            Some(verb) => match args.next() {
                Some(v) => out.push_str(&print(v)),
                None => out.push_str(&format!("%!{verb}(MISSING)")),
            },
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}

/// Lists as the docker CLI's `--format` prints them: `table TEMPLATE` lays the cells (split
/// on tabs) out under a header rendered from `headers`; `json` is `{{json .}}`; anything else
/// is one rendered template per row. `\t` and `\n` in the flag stand for tab and newline.
pub fn format_list(format: &str, rows: &[Value], headers: &Value) -> Result<String> {
    let (table, body) = match format.strip_prefix("table") {
        Some(rest) => (true, rest),
        None => (false, format),
    };
    let body = body.trim_matches(' ').replace("\\t", "\t").replace("\\n", "\n");
    let body = if body == "json" { "{{json .}}".to_string() } else { body };
    let t = Template::parse(&body)?;
    let mut out = String::new();
    if !table {
        for row in rows {
            out.push_str(&t.render(row)?);
            out.push('\n');
        }
        return Ok(out);
    }
    let header = t.render(headers)?;
    let cells: Vec<&str> = header.split('\t').collect();
    let mut tab = crate::table::Table::new(&cells);
    for row in rows {
        tab.row(t.render(row)?.split('\t').map(String::from).collect());
    }
    Ok(tab.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_table() {
        let v: Value = serde_json::from_str(
            r#"{"Id":"abc","Name":"/web","State":{"Pid":42,"Status":"running","Running":true,"Health":null},
               "Config":{"Labels":{"k":"v","a.b":"c"},"Env":["A=1","B=2"]},
               "Mounts":[{"Source":"/s1"},{"Source":"/s2"}],
               "NetworkSettings":{"IPAddress":"172.17.0.2","Networks":{"bridge":{"IPAddress":"172.17.0.2"}}}}"#,
        )
        .unwrap();
        let cases: &[(&str, Option<&str>)] = &[
            ("{{.Id}}", Some("abc")),
            ("{{.State.Pid}}", Some("42")),
            ("{{ .State.Status }}", Some("running")),
            ("{{.Name}}", Some("/web")),
            ("{{json .Config.Labels}}", Some(r#"{"a.b":"c","k":"v"}"#)),
            ("{{range .Mounts}}{{.Source}} {{end}}", Some("/s1 /s2 ")),
            (r#"{{index .Config.Labels "k"}}"#, Some("v")),
            (r#"{{index .Config.Labels "a.b"}}"#, Some("c")),
            (r#"{{index .Config.Labels "none"}}"#, Some("<no value>")),
            ("{{.NetworkSettings.IPAddress}}", Some("172.17.0.2")),
            ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", Some("172.17.0.2")),
            ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", Some("a.b=c;k=v;")),
            ("{{.Config.Env}}", Some("[A=1 B=2]")),
            ("{{.Config.Labels}}", Some("map[a.b:c k:v]")),
            ("{{join .Config.Env \",\"}}", Some("A=1,B=2")),
            ("{{.Name | upper}}", Some("/WEB")),
            ("{{if .State.Running}}up{{else}}down{{end}}", Some("up")),
            ("{{if eq .State.Status \"exited\"}}x{{else if .State.Running}}r{{else}}o{{end}}", Some("r")),
            ("{{with .State}}{{.Pid}}{{end}}", Some("42")),
            ("{{with .State.Health}}{{.Status}}{{else}}none{{end}}", Some("none")),
            ("{{.State.Health}}", Some("<no value>")),
            ("{{len .Mounts}}", Some("2")),
            ("{{printf \"%s:%d\" .Name .State.Pid}}", Some("/web:42")),
            ("{{$.Id}}{{range .Mounts}}{{$.Id}}{{end}}", Some("abcabcabc")),
            ("a {{- .Id -}} b", Some("aabcb")),
            ("{{/* note */}}x", Some("x")),
            ("{{.Nope}}", None),
            ("{{.Id", None),
            ("{{if .Id}}x", None),
            ("{{end}}", None),
            ("{{nofunc .Id}}", None),
            ("{{.Id.Sub}}", None),
            // Multibyte text next to the delimiters is text; an unclosed action is an error.
            ("é{{.Id}}é", Some("éabcé")),
            ("é {{- .Id -}} é", Some("éabcé")),
            ("{{.Id}}é{{", None),
            ("{{\"é}}", None),
            ("{{`é`}}", Some("é")),
        ];
        for (t, want) in cases {
            let got = render(t, &v).ok();
            assert_eq!(got.as_deref(), *want, "{t}");
        }
    }

    #[test]
    fn lists_table() {
        let rows = vec![serde_json::json!({"ID":"abc","Names":"web"}), serde_json::json!({"ID":"d","Names":"db"})];
        let headers = serde_json::json!({"ID":"CONTAINER ID","Names":"NAMES"});
        let cases = [
            ("{{.Names}}", "web\ndb\n"),
            ("table {{.ID}}\\t{{.Names}}", "CONTAINER ID   NAMES\nabc            web\nd              db\n"),
            ("table {{.Names}}", "NAMES\nweb\ndb\n"),
            ("json", "{\"ID\":\"abc\",\"Names\":\"web\"}\n{\"ID\":\"d\",\"Names\":\"db\"}\n"),
        ];
        for (f, want) in cases {
            assert_eq!(format_list(f, &rows, &headers).unwrap(), want, "{f}");
        }
    }
}
