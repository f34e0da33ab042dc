//! The small part of Go's regular expressions that Docker's `name=` filters are used with:
//! literals, `.`, `[a-z0-9_]`/`[^...]` classes, `*`, `+`, `?`, the anchors `^` and `$`, and `\`
//! escapes. dockerd compiles the
//! filter value as a regexp and matches it anywhere in the name (unanchored), so scripts write
//! `name=^web$` or `name=^/web$`; a full regex engine would be a large dependency for that.

#![warn(clippy::indexing_slicing)]

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
pub struct Pattern {
    start: bool,
    end: bool,
    items: Vec<(Atom, Repeat)>,
    /// Bracket classes: negated, and the inclusive ranges they list.
    classes: Vec<(bool, Vec<(char, char)>)>,
}

impl Pattern {
    /// Compiles `s`; `None` when it uses syntax outside the supported part (then callers fall
    /// back to a plain substring match, which is what such a value most likely meant).
    pub fn parse(s: &str) -> Option<Pattern> {
        let mut chars: Vec<char> = s.chars().collect();
        let start = chars.first() == Some(&'^');
        if start {
            chars.remove(0);
        }
        // A trailing `$` anchors the end unless it is escaped (`\$`).
        let end = chars.last() == Some(&'$') && chars.iter().rev().nth(1) != Some(&'\\');
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
    ///
    /// A simulation of the pattern's automaton, one set of positions per character, so the
    /// time is `O(text × pattern)` whatever the pattern: dockerd's RE2 guarantees the same, and
    /// a backtracking matcher took a minute on `.*.*.*.*.*.*.*.*.*.*!` (issue 13).
    pub fn is_match(&self, text: &str) -> bool {
        // `x+` is `x x*`, so each step below knows only One, ZeroOrOne and ZeroOrMore.
        let mut steps: Vec<(Atom, Repeat)> = Vec::with_capacity(self.items.len() * 2);
        for &(atom, repeat) in &self.items {
            if repeat == Repeat::OneOrMore {
                steps.push((atom, Repeat::One));
                steps.push((atom, Repeat::ZeroOrMore));
            } else {
                steps.push((atom, repeat));
            }
        }
        let accept = steps.len();
        let mut current = vec![false; accept + 1];
        let mut next = vec![false; accept + 1];
        // Adds `at` and every position reachable from it without consuming a character.
        let add = |set: &mut Vec<bool>, mut at: usize| {
            while let Some(slot) = set.get_mut(at) {
                *slot = true;
                match steps.get(at) {
                    Some((_, Repeat::ZeroOrOne | Repeat::ZeroOrMore)) => at += 1,
                    _ => break,
                }
            }
        };
        add(&mut current, 0);
        // The accepting position is the last of `current`, after every step.
        for c in text.chars() {
            if current.last() == Some(&true) && !self.end {
                return true;
            }
            next.iter_mut().for_each(|s| *s = false);
            for (at, (&(atom, repeat), &live)) in steps.iter().zip(&current).enumerate() {
                if live && self.fits(atom, c) {
                    add(&mut next, if repeat == Repeat::ZeroOrMore { at } else { at + 1 });
                }
            }
            if !self.start {
                add(&mut next, 0);
            }
            std::mem::swap(&mut current, &mut next);
        }
        current.last() == Some(&true)
    }

    fn fits(&self, atom: Atom, c: char) -> bool {
        match atom {
            Atom::Any => true,
            Atom::Char(x) => x == c,
            Atom::Class(i) => self
                .classes
                .get(i)
                .is_some_and(|(negated, ranges)| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated),
        }
    }
}

/// Docker's `name=` filter: the value matched as a pattern against the name with and without
/// its leading `/`.
pub fn name_filter_matches(value: &str, name: &str) -> bool {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let slashed = format!("/{bare}");
    match Pattern::parse(value) {
        Some(p) => p.is_match(bare) || p.is_match(&slashed),
        None => bare.contains(value) || slashed.contains(value),
    }
}

/// Go's `path.Match` (and `filepath.Match` on Linux): `*` and `?` never cross a `/`, `[...]`
/// sets with ranges and `^`/`!` negation, `\` escapes. Used by `.dockerignore` and `COPY`
/// wildcards and by the images `reference=` filter. Greedy with one remembered `*` per path
/// component, so time is O(pattern × name) however many stars a hostile pattern has.
pub fn path_match(pattern: &str, name: &str) -> bool {
    let pp: Vec<&str> = pattern.split('/').collect();
    let np: Vec<&str> = name.split('/').collect();
    pp.len() == np.len() && pp.iter().zip(np.iter()).all(|(p, n)| match_component(&chars(p), &chars(n)))
}

fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

fn match_component(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` is in the pattern, and how much of the name it took so far.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = n.get(ni) {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match match_class(p.get(pi..).unwrap_or_default(), c) {
                Some((true, len)) => Some(len),
                _ => None,
            },
            Some('\\') => match p.get(pi + 1) {
                Some(&e) if e == c => Some(2),
                _ => None,
            },
            Some(&l) if l == c => Some(1),
            _ => None,
        };
        match (step, star) {
            (Some(len), _) => {
                pi += len;
                ni += 1;
            }
            (None, Some((sp, taken))) => {
                pi = sp + 1;
                ni = taken + 1;
                star = Some((sp, taken + 1));
            }
            (None, None) => return false,
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|c| *c == '*')
}

/// Matches one character against the `[...]` class that starts `p`: whether it matched, and the
/// class's length. `None` for a class with no closing `]`.
fn match_class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('^' | '!'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *p.get(i)?;
        if lo == ']' && !first {
            break;
        }
        first = false;
        if lo == '\\' {
            i += 1;
            lo = *p.get(i)?;
        }
        match (p.get(i + 1), p.get(i + 2)) {
            (Some('-'), Some(&hi)) if hi != ']' => {
                matched |= lo <= c && c <= hi;
                i += 3;
            }
            _ => {
                matched |= lo == c;
                i += 1;
            }
        }
    }
    Some((matched != negate, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_as_go_path_match() {
        for (p, n, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "dir/a.txt", false),
            ("dir/*.txt", "dir/a.txt", true),
            ("a?c", "abc", true),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[!a-c]x", "dx", true),
            ("[\\]]", "]", true),
            ("[a-", "a", false),
            ("*", "anything", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("busybox*", "busybox:1.36", true),
            ("*/*", "library/busybox:1", true),
            ("*", "library/busybox", false),
            ("?", "é", true),
            ("[à-ü]", "é", true),
        ] {
            assert_eq!(path_match(p, n), want, "{p} vs {n}");
        }
    }

    #[test]
    fn path_match_is_linear_on_hostile_patterns() {
        // A backtracking matcher makes C(240, 50) attempts here; this one about 12,000.
        let p = "*a".repeat(50) + "b";
        assert!(!path_match(&p, &"a".repeat(240)));
        assert!(path_match(&p, &("a".repeat(240) + "b")));
    }

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

    // Regression: issue 13, "A filter stalls the daemon". Ten `.*` and no match took a minute
    // with backtracking; forty over 255 characters would not end within a test run at all.
    #[test]
    fn many_stars_that_do_not_match_take_linear_time() {
        let pattern = ".*".repeat(40) + "!";
        let name = "a".repeat(255);
        assert!(!name_filter_matches(&pattern, &name));
        assert!(name_filter_matches(&pattern, &(name.clone() + "!")));
        assert!(!name_filter_matches(&format!("^{pattern}$"), &(name + "!x")));
    }

    #[test]
    fn anchors_and_repeats_match_as_a_regexp_does() {
        for (pattern, name, want) in [
            ("^a*$", "", true),
            ("^a+$", "", false),
            ("a*", "", true),
            ("^.*x.*$", "abxcd", true),
            ("b$", "abab", true),
            ("^ab?c$", "ac", true),
            ("^ab?c$", "abbc", false),
            ("x+y", "xxxxz xy", true),
            ("^[a-z]+[0-9]+$", "web12", true),
            ("^[a-z]+[0-9]+$", "web12a", false),
        ] {
            let p = Pattern::parse(pattern).unwrap();
            assert_eq!(p.is_match(name), want, "{pattern:?} on {name:?}");
        }
    }
}
