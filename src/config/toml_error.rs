//! toml's own errors (syntax, wrong types) told like validation problems:
//! file, line and key. toml quotes the offending value (`invalid type:
//! string "whsec_…"`); under a key that may hold a secret the value is left
//! out, since these lines reach the log, `weir check` and the admin API.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::line_of;

/// `file:line: key: message`, the value left out where it may be secret.
pub fn describe(file: &str, text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim();
    let Some(span) = e.span() else {
        return format!("{file}: {}", without_value(message));
    };
    let line = line_of(text, span.start);
    match key_at(text, span.start) {
        Some(path) if path.iter().any(|k| holds_secret(k)) => {
            format!(
                "{file}:{line}: {}: {}",
                render(&path),
                without_value(message)
            )
        }
        Some(path) => format!("{file}:{line}: {}: {message}", render(&path)),
        None => format!("{file}:{line}: {}", without_value(message)),
    }
}

/// Keys whose values may be secret: signing keys, tokens, URLs (userinfo,
/// or a path that is itself the credential) and static header values.
fn holds_secret(key: &str) -> bool {
    matches!(key, "secrets" | "headers" | "url" | "otlp_endpoint") || key.ends_with("_token")
}

/// serde's `invalid type: string "…", expected …` becomes `invalid type:
/// string, expected …`; any other message that quotes something is replaced.
fn without_value(message: &str) -> String {
    if !message.contains(['"', '`']) {
        return message.to_owned();
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        // The expectation comes last and from weir's types, never from input.
        if let Some((found, expected)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once(", expected "))
        {
            let kind = found.split(['"', '`']).next().unwrap_or("").trim();
            let kind = if kind.is_empty() { "a value" } else { kind };
            return format!("{prefix}{kind}, expected {expected} (the value is not shown)");
        }
    }
    "invalid value (not shown: this key may hold a secret)".to_owned()
}

/// The path of the deepest key or value at byte `offset`, as `["webhooks",
/// "[0]", "secrets"]`. Parses what it can of a file that does not parse.
fn key_at(text: &str, offset: usize) -> Option<Vec<String>> {
    let (root, _) = DeTable::parse_recoverable(text);
    let mut path = Vec::new();
    in_table(root.get_ref(), offset, &mut path).then_some(path)
}

fn in_table(table: &DeTable<'_>, at: usize, path: &mut Vec<String>) -> bool {
    for (key, value) in table.iter() {
        path.push(key.get_ref().to_string());
        if key.span().contains(&at) || in_value(value, at, path) {
            return true;
        }
        path.pop();
    }
    false
}

/// Children first: a table's own span is only its `[header]`.
fn in_value(value: &Spanned<DeValue<'_>>, at: usize, path: &mut Vec<String>) -> bool {
    let inside = match value.get_ref() {
        DeValue::Table(table) => in_table(table, at, path),
        DeValue::Array(items) => items.iter().enumerate().any(|(i, item)| {
            path.push(format!("[{i}]"));
            let found = in_value(item, at, path);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    };
    inside || value.span().contains(&at)
}

fn render(path: &[String]) -> String {
    let mut out = String::new();
    for key in path {
        if !out.is_empty() && !key.starts_with('[') {
            out.push('.');
        }
        out.push_str(key);
    }
    out
}
