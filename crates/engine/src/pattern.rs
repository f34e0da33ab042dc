//! The small part of Go's regular expressions that Docker's `name=` filters are used with:
//! literals, `.`, `[a-z0-9_]`/`[^...]` classes, `*`, `+`, `?`, the anchors `^` and `$`, and `\`
//! escapes. dockerd compiles the
//! filter value as a regexp and matches it anywhere in the name (unanchored), so scripts write
//! `name=^web$` or `name=^/web$`; a full regex engine would be a large dependency for that.

/// One element of a pattern: what it matches and how often.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Atom {
    Any,
    Char(char),
    /// An index into `Pattern::classes`.
    Class(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Repeat {
    One,
    ZeroOrMore,
    OneOrMore,
    ZeroOrOne,
}

/// A compiled pattern: anchors and a sequence of repeated atoms.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pattern {
    start: bool,
    end: bool,
    items: Vec<(Atom, Repeat)>,
    /// Bracket classes: negated, and the inclusive ranges they list.
    classes: Vec<(bool, Vec<(char, char)>)>,
}

impl Pattern {
    /// Compiles `s`; `None` when it uses syntax outside the supported part (then callers fall
    /// back to a plain substring match, which is what such a value most likely meant).
    pub(crate) fn parse(s: &str) -> Option<Pattern> {
        let mut chars: Vec<char> = s.chars().collect();
        let start = chars.first() == Some(&'^');
        if start {
            chars.remove(0);
        }
        let end = chars.last() == Some(&'$') && !(chars.len() >= 2 && chars[chars.len() - 2] == '\\');
        if end {
            chars.pop();
        }
        let mut items: Vec<(Atom, Repeat)> = Vec::new();
        let mut classes = Vec::new();
        let mut it = chars.into_iter();
        while let Some(c) = it.next() {
            let atom = match c {
                '.' => Atom::Any,
                '\\' => Atom::Char(it.next()?),
                '*' | '+' | '?' => {
                    let last = items.last_mut()?;
                    if last.1 != Repeat::One {
                        return None;
                    }
                    last.1 = match c {
                        '*' => Repeat::ZeroOrMore,
                        '+' => Repeat::OneOrMore,
                        _ => Repeat::ZeroOrOne,
                    };
                    continue;
                }
                '[' => {
                    let mut negated = false;
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let c = it.next()?;
                        match c {
                            '^' if first => negated = true,
                            ']' if !first || negated => break,
                            '\\' => {
                                let e = it.next()?;
                                ranges.push((e, e));
                            }
                            '-' if !ranges.is_empty() => {
                                let hi = it.next()?;
                                if hi == ']' {
                                    ranges.push(('-', '-'));
                                    break;
                                }
                                let (lo, _) = ranges.pop()?;
                                if lo > hi {
                                    return None;
                                }
                                ranges.push((lo, hi));
                            }
                            c => ranges.push((c, c)),
                        }
                        first = false;
                    }
                    classes.push((negated, ranges));
                    Atom::Class(classes.len() - 1)
                }
                ']' | '(' | ')' | '{' | '}' | '|' | '^' | '$' => return None,
                c => Atom::Char(c),
            };
            items.push((atom, Repeat::One));
        }
        Some(Pattern { start, end, items, classes })
    }

    /// Whether the pattern matches somewhere in `text` (respecting its anchors).
    pub(crate) fn is_match(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let last = if self.start { 0 } else { text.len() };
        (0..=last).any(|i| self.match_here(&self.items, &text[i..]))
    }

    fn match_here(&self, items: &[(Atom, Repeat)], text: &[char]) -> bool {
        let Some(&(atom, repeat)) = items.first() else {
            return !self.end || text.is_empty();
        };
        let fits = |c: &char| match atom {
            Atom::Any => true,
            Atom::Char(x) => x == *c,
            Atom::Class(i) => {
                let (negated, ranges) = &self.classes[i];
                ranges.iter().any(|(lo, hi)| (lo..=hi).contains(&c)) != *negated
            }
        };
        let rest = &items[1..];
        let (min, max) = match repeat {
            Repeat::One => (1, 1),
            Repeat::ZeroOrOne => (0, 1),
            Repeat::ZeroOrMore => (0, usize::MAX),
            Repeat::OneOrMore => (1, usize::MAX),
        };
        let run = text.iter().take_while(|c| fits(c)).count().min(max);
        // Longest first, as a backtracking matcher would; any success is a match.
        (min..=run).rev().any(|n| self.match_here(rest, &text[n..]))
    }
}

/// Docker's `name=` filter: the value matched as a pattern against the name with and without
/// its leading `/`.
pub(crate) fn name_filter_matches(value: &str, name: &str) -> bool {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let slashed = format!("/{bare}");
    match Pattern::parse(value) {
        Some(p) => p.is_match(bare) || p.is_match(&slashed),
        None => bare.contains(value) || slashed.contains(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_filters_as_dockerd_matches_them() {
        let cases = [
            ("web", "web", true),
            ("web", "myweb1", true),
            ("^web$", "web", true),
            ("^web$", "web1", false),
            ("^/web$", "web", true),
            ("^web", "webapp", true),
            ("^web", "oldweb", false),
            ("app$", "webapp", true),
            ("app$", "apple", false),
            ("^w.b$", "wab", true),
            ("^w.*b$", "wxxxb", true),
            ("^w.*b$", "wxxxbc", false),
            ("^we+b$", "weeeb", true),
            ("^we+b$", "wb", false),
            ("^we?b$", "wb", true),
            ("^proj_web_[0-9]$", "proj_web_1", true),
            ("^proj_web_[0-9]$", "proj_web_x", false),
            ("^[^0-9]+$", "web", true),
            ("^[^0-9]+$", "web1", false),
            ("^[a-c-]+$", "ab-c", true),
            ("(a|b)", "x(a|b)y", true), // outside the subset: a substring match
            ("a\\.b", "a.b", true),
            ("a\\.b", "axb", false),
            ("", "anything", true),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(name_filter_matches(pattern, name), want, "{pattern:?} on {name:?}");
        }
    }

    #[test]
    fn unsupported_syntax_is_not_compiled() {
        for p in ["(a|b)", "a{2}", "**", "a^b", "[z-a]", "[abc"] {
            assert!(Pattern::parse(p).is_none(), "{p}");
        }
    }
}
