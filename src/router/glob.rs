//! Event-type globs: `*` matches any run of characters (dots included), every
//! other character matches itself. `record.*`, `*.delete`, `*` are typical.
//! Patterns are checked against the event-type alphabet when configured, so a
//! typo such as `Record.*` is a config error rather than a silent non-match.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() || pattern.len() > 128 {
            return Err(format!("glob {pattern:?} must be 1..=128 characters"));
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-' | '*'))
        {
            return Err(format!(
                "glob {pattern:?} has {c:?}; use [a-z0-9_.-] and `*`"
            ));
        }
        Ok(Glob {
            pattern: pattern.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    pub fn matches(&self, text: &str) -> bool {
        let mut parts = self.pattern.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = text.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            // No `*` at all: an exact match.
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(i) => rest = &rest[i + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(p: &str, t: &str) -> bool {
        Glob::new(p).unwrap().matches(t)
    }

    #[test]
    fn exact_and_star() {
        assert!(m("record.create", "record.create"));
        assert!(!m("record.create", "record.created"));
        assert!(!m("record.create", "record.creat"));
        assert!(m("*", "anything.at.all"));
        assert!(m("*", ""));
    }

    #[test]
    fn prefix_suffix_middle() {
        assert!(m("record.*", "record.create"));
        assert!(m("record.*", "record."));
        assert!(!m("record.*", "records.create"));
        assert!(!m("record.*", "form.create"));
        assert!(m("*.delete", "classification_set.delete"));
        assert!(!m("*.delete", "record.deleted"));
        assert!(m("rec*.up*e", "record.update"));
        assert!(!m("rec*.up*e", "record.updated"));
        // The suffix must not overlap the part the prefix consumed.
        assert!(!m("ab*ba", "aba"));
        assert!(m("a*a", "aa"));
        assert!(!m("a*a", "a"));
        assert!(m("**", "x"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(Glob::new("").is_err());
        assert!(Glob::new("Record.*").unwrap_err().contains("'R'"));
        assert!(Glob::new("record create").is_err());
        assert!(Glob::new(&"a".repeat(129)).is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::Glob;

        /// The textbook dynamic-programming wildcard matcher, as the oracle.
        fn oracle(pattern: &[u8], text: &[u8]) -> bool {
            let mut row = vec![false; text.len() + 1];
            row[0] = true;
            for &p in pattern {
                let mut next = vec![false; text.len() + 1];
                if p == b'*' {
                    let mut any = false;
                    for j in 0..=text.len() {
                        any |= row[j];
                        next[j] = any;
                    }
                } else {
                    for j in 1..=text.len() {
                        next[j] = row[j - 1] && text[j - 1] == p;
                    }
                }
                row = next;
            }
            row[text.len()]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            // A small alphabet so stars, repeats and overlaps happen often.
            #[test]
            fn agrees_with_the_oracle(pattern in "[ab.*]{1,10}", text in "[ab.]{0,12}") {
                let glob = Glob::new(&pattern).unwrap();
                prop_assert_eq!(glob.matches(&text), oracle(pattern.as_bytes(), text.as_bytes()));
            }

            #[test]
            fn starring_any_slice_of_a_type_still_matches_it(
                text in "[a-z.]{1,20}",
                a in 0usize..20,
                b in 0usize..20,
            ) {
                let (a, b) = (a.min(text.len()), b.min(text.len()));
                let (lo, hi) = (a.min(b), a.max(b));
                let pattern = format!("{}*{}", &text[..lo], &text[hi..]);
                prop_assert!(Glob::new(&pattern).unwrap().matches(&text));
            }

            #[test]
            fn without_a_star_only_the_type_itself_matches(
                pattern in "[a-z._-]{1,16}",
                text in "[a-z._-]{0,16}",
            ) {
                let glob = Glob::new(&pattern).unwrap();
                prop_assert_eq!(glob.matches(&text), pattern == text);
            }
        }
    }
}
