//! Tag immutability rules, as Harbor has them: per project, a repository selector and a tag
//! selector (doublestar patterns, each "matches" or "excludes"); a tag that an enabled rule
//! selects cannot be moved to another manifest or deleted, through the registry protocol or
//! the REST API.

use serde::{Deserialize, Serialize};

use super::project_of;
use crate::meta::{Metadata, Result};

/// Longest pattern accepted, and most alternatives a `{a,b}` pattern may expand to: matching
/// stays cheap whatever a client sends.
const MAX_PATTERN: usize = 256;
const MAX_ALTERNATIVES: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImmutableRule {
    pub disabled: bool,
    pub priority: i64,
    /// Matched against the repository's name inside its project (`app`, `team/app`).
    pub repo_pattern: String,
    /// `repoExcludes`: the rule is for repositories the pattern does not match.
    pub repo_excludes: bool,
    pub tag_pattern: String,
    /// `excludes`: the rule is for tags the pattern does not match.
    pub tag_excludes: bool,
}

impl ImmutableRule {
    /// Whether the rule protects `tag` of repository `repo` (inside its project).
    pub fn selects(&self, repo: &str, tag: &str) -> bool {
        !self.disabled
            && glob_match(&self.repo_pattern, repo) != self.repo_excludes
            && glob_match(&self.tag_pattern, tag) != self.tag_excludes
    }
}

/// A pattern is accepted when it is short enough and its braces expand to few alternatives.
pub fn check_pattern(p: &str) -> std::result::Result<(), String> {
    if p.is_empty() || p.len() > MAX_PATTERN {
        return Err(format!("pattern {p:?} must have 1 to {MAX_PATTERN} characters"));
    }
    expand(p).map(|_| ())
}

/// `{a,b}x` → `ax`, `bx` (no nesting).
fn expand(p: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = vec![String::new()];
    let mut rest = p;
    while let Some(open) = rest.find('{') {
        let (head, tail) = rest.split_at(open);
        let Some(close) = tail.find('}') else {
            return Err(format!("pattern {p:?} has a '{{' without its '}}'"));
        };
        let inner = tail.get(1..close).unwrap_or("");
        if inner.contains('{') {
            return Err(format!("pattern {p:?} nests braces"));
        }
        let alts: Vec<&str> = inner.split(',').collect();
        let mut next = Vec::new();
        for o in &out {
            for a in &alts {
                next.push(format!("{o}{head}{a}"));
            }
        }
        if next.len() > MAX_ALTERNATIVES {
            return Err(format!("pattern {p:?} expands to more than {MAX_ALTERNATIVES} alternatives"));
        }
        out = next;
        rest = tail.get(close + 1..).unwrap_or("");
    }
    if rest.contains('}') {
        return Err(format!("pattern {p:?} has a '}}' without its '{{'"));
    }
    Ok(out.into_iter().map(|o| o + rest).collect())
}

/// Doublestar matching: `**` any characters, `*` any but `/`, `?` one but `/`, `{a,b}`
/// alternatives, everything else itself. A pattern that does not expand matches nothing.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let Ok(alternatives) = expand(pattern) else {
        return false;
    };
    let t: Vec<char> = text.chars().collect();
    alternatives.iter().any(|a| match_one(&a.chars().collect::<Vec<_>>(), &t))
}

#[derive(Clone, Copy, PartialEq)]
enum Tok {
    Lit(char),
    One,
    Star,
    DoubleStar,
}

/// Dynamic programming over (pattern token, text position): linear in their product.
fn match_one(p: &[char], t: &[char]) -> bool {
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&c) = p.get(i) {
        match c {
            '*' if p.get(i + 1) == Some(&'*') => {
                toks.push(Tok::DoubleStar);
                i += 2;
            }
            '*' => {
                toks.push(Tok::Star);
                i += 1;
            }
            '?' => {
                toks.push(Tok::One);
                i += 1;
            }
            c => {
                toks.push(Tok::Lit(c));
                i += 1;
            }
        }
    }
    // reach[j]: the tokens so far can consume exactly t[..j].
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    for tok in toks {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            if !reach[j] {
                continue;
            }
            match tok {
                Tok::Lit(c) => {
                    if t.get(j) == Some(&c) {
                        next[j + 1] = true;
                    }
                }
                Tok::One => {
                    if t.get(j).is_some_and(|&c| c != '/') {
                        next[j + 1] = true;
                    }
                }
                Tok::Star | Tok::DoubleStar => {
                    next[j] = true;
                    let mut k = j;
                    while let Some(&c) = t.get(k) {
                        if tok == Tok::Star && c == '/' {
                            break;
                        }
                        k += 1;
                        next[k] = true;
                    }
                }
            }
        }
        reach = next;
    }
    reach[t.len()]
}

/// Why `tag` of `repo` may not be moved or deleted, when an enabled rule of its project
/// selects it.
pub fn protected(meta: &dyn Metadata, repo: &str, tag: &str) -> Result<Option<String>> {
    let Some(project) = project_of(repo) else {
        return Ok(None);
    };
    let inside = repo.get(project.len() + 1..).unwrap_or("");
    for (id, rule) in meta.immutable_rules(project)? {
        if rule.selects(inside, tag) {
            return Ok(Some(format!(
                "tag {repo}:{tag} is immutable (rule {id} of project {project:?}): it cannot be overwritten or deleted"
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doublestar_patterns() {
        for (p, t, want) in [
            ("**", "a/b/c", true),
            ("*", "a", true),
            ("*", "a/b", false),
            ("v*", "v1.2", true),
            ("v*", "latest", false),
            ("release-?", "release-1", true),
            ("release-?", "release-10", false),
            ("{dev,prod}-*", "prod-3", true),
            ("{dev,prod}-*", "test-3", false),
            ("team/**", "team/a/b", true),
            ("team/*", "team/a/b", false),
            ("1.0", "1.0", true),
            ("1.0", "1x0", false),
            ("{a", "a", false),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
        assert!(check_pattern("{a,b}{c,d}").is_ok());
        assert!(check_pattern(&"{a,b}".repeat(7)).unwrap_err().contains("more than 64"));
        assert!(check_pattern("{a{b}}").is_err());
        assert!(check_pattern("").is_err());
    }

    #[test]
    fn rules_select_with_excludes() {
        let rule = ImmutableRule {
            disabled: false,
            priority: 0,
            repo_pattern: "**".into(),
            repo_excludes: false,
            tag_pattern: "latest".into(),
            tag_excludes: true,
        };
        assert!(rule.selects("app", "v1") && !rule.selects("app", "latest"));
        assert!(!ImmutableRule { disabled: true, ..rule.clone() }.selects("app", "v1"));
        let only_app =
            ImmutableRule { repo_pattern: "app".into(), tag_excludes: false, tag_pattern: "**".into(), ..rule };
        assert!(only_app.selects("app", "x") && !only_app.selects("other", "x"));
    }
}
