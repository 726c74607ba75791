//! Line numbers for config keys: `webhooks[1].plugins[0].name` → the line it
//! was written on, from toml's spanned document, so validation can work on
//! plain serde types and still point at the line.

use toml::de::{DeTable, DeValue};

/// The parsed document, kept for looking keys up.
pub struct Lines<'a> {
    text: &'a str,
    doc: Option<toml::Spanned<DeTable<'a>>>,
}

enum Step<'k> {
    Key(&'k str),
    Index(usize),
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Self {
        Lines {
            text,
            doc: DeTable::parse(text).ok(),
        }
    }

    /// The line `key` was written on; for a key left out, the line of the
    /// nearest enclosing table that was written; 1 when nothing matches.
    pub fn of(&self, key: &str) -> usize {
        let Some(doc) = &self.doc else { return 1 };
        let mut at = doc.span().start;
        let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
        let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
        for step in steps(key) {
            let found = match step {
                Step::Key(k) => table.and_then(|t| {
                    t.iter()
                        .find(|(name, _)| name.get_ref().as_ref() == k)
                        .map(|(name, value)| (name.span().start, value))
                }),
                Step::Index(i) => array.and_then(|a| a.get(i)).map(|v| (v.span().start, v)),
            };
            let Some((start, value)) = found else { break };
            at = start;
            (table, array) = match value.get_ref() {
                DeValue::Table(t) => (Some(t), None),
                DeValue::Array(a) => (None, Some(a.as_ref())),
                _ => (None, None),
            };
        }
        line_of(self.text, at)
    }
}

fn steps(key: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(Step::Key(name));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Step::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::Lines;

    #[test]
    fn finds_nested_keys_and_falls_back_to_the_enclosing_table() {
        let text = "[server]\nlisten = \"x\"\n\n[[webhooks]]\nid = \"a\"\n\n[[webhooks]]\nid = \"b\"\nurl = \"u\"\n  [[webhooks.plugins]]\n  name = \"p\"\n";
        let lines = Lines::new(text);
        assert_eq!(lines.of("server.listen"), 2);
        assert_eq!(lines.of("webhooks[0].id"), 5);
        assert_eq!(lines.of("webhooks[1].url"), 9);
        assert_eq!(lines.of("webhooks[1].plugins[0].name"), 11);
        // Not written: the webhook's own table.
        assert_eq!(lines.of("webhooks[1].timeout_secs"), 7);
    }
}
