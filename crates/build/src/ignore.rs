//! `.dockerignore` rules as Docker applies them (moby's patternmatcher), matched by a
//! state-set automaton so that no pattern can make matching blow up.

use crate::error::{Error, Result};

/// The patterns of a `.dockerignore`, in order.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern, without its `!`.
    text: String,
    /// A `!` line: re-includes what it matches.
    exception: bool,
    toks: Vec<Tok>,
}

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    /// `?`: one character but `/`.
    One,
    /// `*`: any run of characters without `/`.
    Star,
    /// `**` at the end: anything.
    All,
    /// `**` elsewhere, `(.*/)?`: either skip to after the body, or enter it.
    DirsStart,
    /// Inside `(.*/)?`: any character stays, a `/` also leaves.
    DirsBody,
    /// `[...]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Ignore {
    /// Reads `.dockerignore` text.
    pub fn new(text: &str) -> Result<Ignore> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, raw) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if exception && raw.is_empty() {
                return Err(Error::Ignore { line: index + 1, message: "illegal exclusion pattern: \"!\"".into() });
            }
            let mut text = clean(raw);
            if text.len() > 1 && text.starts_with('/') {
                text.remove(0);
            }
            let toks = compile(&text).ok_or_else(|| Error::Ignore {
                line: index + 1,
                message: format!("syntax error in pattern \"{raw}\""),
            })?;
            patterns.push(Pattern { text, exception, toks });
        }
        Ok(Ignore { patterns })
    }

    /// The cleaned patterns, `!` kept, in order (for cache keys and messages).
    pub fn patterns(&self) -> Vec<String> {
        self.patterns.iter().map(|p| format!("{}{}", if p.exception { "!" } else { "" }, p.text)).collect()
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded: the last pattern
    /// that matches it or one of its parent directories decides.
    pub fn matches(&self, path: &str) -> bool {
        let path = clean(path);
        let path = path.trim_start_matches('/');
        let mut excluded = false;
        for p in &self.patterns {
            // A pattern that would not change the outcome need not be run.
            if p.exception != excluded {
                continue;
            }
            if p.matches_or_parent(path) {
                excluded = !p.exception;
            }
        }
        excluded
    }

    /// Whether a walker may skip the whole directory `dir`: it is excluded and no `!`
    /// exception could re-include anything below it.
    pub fn can_skip_dir(&self, dir: &str) -> bool {
        if !self.matches(dir) {
            return false;
        }
        let dir = clean(dir);
        let below = format!("{}/", dir.trim_start_matches('/'));
        !self.patterns.iter().any(|p| p.exception && p.may_match_below(&below))
    }
}

impl Pattern {
    /// Runs the automaton over `path`; true if it accepts the whole path or any parent of it
    /// (a prefix ending just before a `/`).
    fn matches_or_parent(&self, path: &str) -> bool {
        let mut states = self.start();
        for c in path.chars() {
            if c == '/' && states[self.toks.len()] {
                return true;
            }
            states = self.step(&states, c);
            if !states.iter().any(|&s| s) {
                return false;
            }
        }
        states[self.toks.len()]
    }

    /// Whether some path starting with `prefix` (which ends in `/`) could match.
    fn may_match_below(&self, prefix: &str) -> bool {
        let mut states = self.start();
        for c in prefix.chars() {
            if c == '/' && states[self.toks.len()] {
                return true;
            }
            states = self.step(&states, c);
        }
        states.iter().any(|&s| s)
    }

    fn start(&self) -> Vec<bool> {
        let mut states = vec![false; self.toks.len() + 1];
        self.add(&mut states, 0);
        states
    }

    /// Adds state `p` and everything reachable from it without consuming a character.
    fn add(&self, states: &mut [bool], p: usize) {
        let mut todo = vec![p];
        while let Some(p) = todo.pop() {
            if states[p] {
                continue;
            }
            states[p] = true;
            match self.toks.get(p) {
                Some(Tok::Star | Tok::All) => todo.push(p + 1),
                Some(Tok::DirsStart) => todo.extend([p + 1, p + 2]),
                _ => {}
            }
        }
    }

    fn step(&self, states: &[bool], c: char) -> Vec<bool> {
        let mut next = vec![false; states.len()];
        for (p, _) in states.iter().enumerate().filter(|(_, &on)| on) {
            let Some(tok) = self.toks.get(p) else {
                continue;
            };
            match tok {
                Tok::Lit(l) if *l == c => self.add(&mut next, p + 1),
                Tok::One if c != '/' => self.add(&mut next, p + 1),
                Tok::Star if c != '/' => self.add(&mut next, p),
                Tok::All => self.add(&mut next, p),
                Tok::DirsBody => {
                    self.add(&mut next, p);
                    if c == '/' {
                        self.add(&mut next, p + 1);
                    }
                }
                Tok::Class { negated, ranges } => {
                    let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                    if inside != *negated {
                        self.add(&mut next, p + 1);
                    }
                }
                _ => {}
            }
        }
        next
    }
}

/// Turns a cleaned pattern into tokens, as patternmatcher turns it into a regexp.
/// None for a malformed character class.
fn compile(pattern: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    toks.push(Tok::All);
                } else {
                    toks.push(Tok::DirsStart);
                    toks.push(Tok::DirsBody);
                }
            }
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::One),
            '\\' => match chars.get(i) {
                Some(&n) => {
                    toks.push(Tok::Lit(n));
                    i += 1;
                }
                None => toks.push(Tok::Lit('\\')),
            },
            '[' => {
                let negated = chars.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    let mut lo = *chars.get(i)?;
                    i += 1;
                    if lo == ']' {
                        break;
                    }
                    if lo == '\\' {
                        lo = *chars.get(i)?;
                        i += 1;
                    }
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']') {
                        hi = chars[i + 1];
                        i += 2;
                        if hi == '\\' {
                            hi = *chars.get(i)?;
                            i += 1;
                        }
                        if hi < lo {
                            return None;
                        }
                    }
                    ranges.push((lo, hi));
                }
                toks.push(Tok::Class { negated, ranges });
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    Some(toks)
}

/// Go's `path.Clean`: no empty or `.` elements, `..` resolved lexically.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_table() {
        // (dockerignore, path, excluded)
        let cases: &[(&str, &str, bool)] = &[
            ("*.md", "README.md", true),
            ("*.md", "docs/README.md", false),
            ("**/*.md", "docs/README.md", true),
            ("**/*.md", "README.md", true),
            ("**/*.md", "a/b/c/x.md", true),
            ("docs", "docs", true),
            ("docs", "docs/a/b.txt", true),
            ("docs", "docsx", false),
            ("/docs", "docs/a", true),
            ("./docs/", "docs/a", true),
            ("docs/**", "docs", false),
            ("docs/**", "docs/a/b", true),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "a/x/yb", false),
            ("**", "anything/at/all", true),
            ("?.txt", "a.txt", true),
            ("?.txt", "ab.txt", false),
            ("[abc].txt", "b.txt", true),
            ("[^abc].txt", "b.txt", false),
            ("[a-c].txt", "d.txt", false),
            ("\\*.txt", "*.txt", true),
            ("\\*.txt", "a.txt", false),
            ("*", "a/b", true),
            ("a/*", "a/b/c", true),
            ("a/*/c", "a/b/c", true),
            ("a/*/c", "a/b/x/c", false),
            ("# comment\n  x  \n\n", "x", true),
            ("#x", "#x", false),
            ("*\n!keep", "keep", false),
            ("*\n!keep", "other", true),
            ("*.go\n!main.go", "main.go", false),
            ("!main.go\n*.go", "main.go", true),
            ("dir\n!dir/keep", "dir/keep", false),
            ("dir\n!dir/keep", "dir/keep/inner", false),
            ("dir\n!dir/keep", "dir/other", true),
            ("dir\n!dir/keep\ndir/keep/no", "dir/keep/no/x", true),
            ("a/../b", "b", true),
            ("x", "./x", true),
            ("", "x", false),
            ("a.b", "axb", false),
        ];
        for (text, path, want) in cases {
            let ig = Ignore::new(text).unwrap();
            assert_eq!(ig.matches(path), *want, "patterns {text:?} path {path:?}");
        }
    }

    #[test]
    fn can_skip_dir_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("dir", "dir", true),
            ("dir\n!dir/keep", "dir", false),
            ("dir\n!other/keep", "dir", true),
            ("dir\n!**/keep", "dir", false),
            ("dir\n!*/keep", "dir", false),
            ("dir\n!*.txt", "dir", true),
            ("node_modules\n!src", "node_modules", true),
            ("x", "dir", false),
        ];
        for (text, dir, want) in cases {
            let ig = Ignore::new(text).unwrap();
            assert_eq!(ig.can_skip_dir(dir), *want, "patterns {text:?} dir {dir:?}");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            Ignore::new("a\n!\n").unwrap_err().to_string(),
            ".dockerignore line 2: illegal exclusion pattern: \"!\""
        );
        assert_eq!(
            Ignore::new("[abc").unwrap_err().to_string(),
            ".dockerignore line 1: syntax error in pattern \"[abc\""
        );
    }

    #[test]
    fn patterns_are_cleaned() {
        let ig = Ignore::new("./a/\n/b\n! c/./d\n.").unwrap();
        assert_eq!(ig.patterns(), vec!["a", "b", "!c/d", "."]);
    }

    #[test]
    fn hostile_pattern_is_fast() {
        let pattern = format!("{}b", "*a".repeat(200));
        let path = "a".repeat(20_000);
        let ig = Ignore::new(&format!("{pattern}\n**/**/**/**/**/**/**/**/x")).unwrap();
        let start = std::time::Instant::now();
        assert!(!ig.matches(&path));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
