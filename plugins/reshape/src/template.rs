//! Templates: a JSON value whose strings may hold `{path}` placeholders.
//!
//! A template is compiled from the config before any event is looked at, so
//! a mistake in any of its strings is an error even when the event at hand
//! would not reach it. Rendering never fails: what is missing renders as the
//! placeholder's fallback, or as nothing.

use serde_json::{Map, Value};

use crate::path::Path;

/// Checks a placeholder's path when the template is compiled (unknown roots).
pub type PathCheck<'a> = &'a dyn Fn(&Path) -> Result<(), String>;

/// One `{path}` or `{path|fallback}`.
#[derive(Debug)]
pub struct Field {
    path: Path,
    /// Used when the path is missing or null.
    fallback: Option<String>,
}

#[derive(Debug)]
pub enum Piece {
    Text(String),
    Field(Field),
}

/// A compiled template value.
#[derive(Debug)]
pub enum Node {
    /// Holds no placeholder: copied as is.
    Const(Value),
    /// A string that is exactly one placeholder: the value it names, with
    /// its JSON type (a number stays a number).
    Whole(Field),
    /// A string mixing text and placeholders: always renders as a string.
    Text(Vec<Piece>),
    List(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Node {
    /// Compiles `value`; `at` names it in error messages (`template.text`).
    pub fn compile(value: Value, at: &str, check: PathCheck) -> Result<Node, String> {
        let node = match value {
            Value::String(s) => compile_string(&s, at, check)?,
            Value::Array(items) => {
                let nodes = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Node::compile(v, &format!("{at}[{i}]"), check))
                    .collect::<Result<Vec<_>, _>>()?;
                Node::List(nodes)
            }
            Value::Object(map) => {
                let mut entries = Vec::with_capacity(map.len());
                for (key, v) in map {
                    let node = Node::compile(v, &format!("{at}.{key}"), check)?;
                    entries.push((key, node));
                }
                Node::Object(entries)
            }
            other => Node::Const(other),
        };
        Ok(node.fold())
    }

    /// Whether this renders as a JSON object.
    pub fn is_object(&self) -> bool {
        matches!(self, Node::Object(_) | Node::Const(Value::Object(_)))
    }

    pub fn render(&self, envelope: &Value) -> Value {
        match self {
            Node::Const(v) => v.clone(),
            Node::Whole(field) => match field.path.get(envelope) {
                Some(v) if !v.is_null() => v.clone(),
                _ => field.fallback.clone().map_or(Value::Null, Value::String),
            },
            Node::Text(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Field(f) => write_field(f, envelope, &mut out),
                    }
                }
                Value::String(out)
            }
            Node::List(nodes) => Value::Array(nodes.iter().map(|n| n.render(envelope)).collect()),
            Node::Object(entries) => {
                let map: Map<String, Value> = entries.iter().map(|(k, n)| (k.clone(), n.render(envelope))).collect();
                Value::Object(map)
            }
        }
    }

    /// Turns a list or object without placeholders into one constant.
    fn fold(self) -> Node {
        match self {
            Node::List(nodes) if nodes.iter().all(|n| matches!(n, Node::Const(_))) => {
                Node::Const(Value::Array(nodes.into_iter().map(Node::into_const).collect()))
            }
            Node::Object(entries) if entries.iter().all(|(_, n)| matches!(n, Node::Const(_))) => {
                Node::Const(Value::Object(entries.into_iter().map(|(k, n)| (k, n.into_const())).collect()))
            }
            node => node,
        }
    }

    fn into_const(self) -> Value {
        match self {
            Node::Const(v) => v,
            _ => unreachable!("only called on constants"),
        }
    }
}

/// Text for a placeholder inside a longer string: strings as they are,
/// other values as compact JSON, missing or null as the fallback or nothing.
fn write_field(field: &Field, envelope: &Value, out: &mut String) {
    match field.path.get(envelope) {
        Some(Value::String(s)) => out.push_str(s),
        Some(Value::Null) | None => out.push_str(field.fallback.as_deref().unwrap_or("")),
        Some(other) => out.push_str(&other.to_string()),
    }
}

fn compile_string(s: &str, at: &str, check: PathCheck) -> Result<Node, String> {
    let mut pieces = parse_pieces(s, check).map_err(|e| format!("{at}: {e} in {s:?}"))?;
    Ok(match pieces.as_slice() {
        [] => Node::Const(Value::String(String::new())),
        [Piece::Text(_)] => match pieces.pop() {
            Some(Piece::Text(t)) => Node::Const(Value::String(t)),
            _ => unreachable!(),
        },
        [Piece::Field(_)] => match pieces.pop() {
            Some(Piece::Field(f)) => Node::Whole(f),
            _ => unreachable!(),
        },
        _ => Node::Text(pieces),
    })
}

/// Splits a string into text and placeholders. `{{` and `}}` are literal
/// braces; a lone `}`, an unclosed `{` or a `{` inside a placeholder is an
/// error.
fn parse_pieces(s: &str, check: PathCheck) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find(['{', '}']) {
        text.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{{").or_else(|| tail.strip_prefix("}}")) {
            text.push_str(&tail[..1]);
            rest = after;
            continue;
        }
        if tail.starts_with('}') {
            return Err("unmatched \"}\" (write \"}}\" for a literal brace)".into());
        }
        let close = tail.find('}').ok_or("unclosed \"{\" (write \"{{\" for a literal brace)")?;
        let inner = &tail[1..close];
        if inner.contains('{') {
            return Err("\"{\" inside a placeholder".into());
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Field(parse_field(inner, check)?));
        rest = &tail[close + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn parse_field(inner: &str, check: PathCheck) -> Result<Field, String> {
    let (path, fallback) = match inner.split_once('|') {
        Some((path, fallback)) => (path, Some(fallback.to_owned())),
        None => (inner, None),
    };
    let path = Path::parse(path)?;
    check(&path)?;
    Ok(Field { path, fallback })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(template: Value, envelope: &Value) -> Result<Value, String> {
        Ok(Node::compile(template, "template", &|_| Ok(()))?.render(envelope))
    }

    #[test]
    fn interpolates_text_and_keeps_whole_values_typed() {
        let env = json!({"type": "record.create", "data": {"n": 3, "who": "Dana", "tags": ["a"]}});
        let out = render(json!({"t": "{type} by {data.who}: {data.n} {data.tags}", "n": "{data.n}", "k": 1}), &env);
        assert_eq!(out.unwrap(), json!({"t": "record.create by Dana: 3 [\"a\"]", "n": 3, "k": 1}));
    }

    #[test]
    fn missing_values_use_the_fallback_or_nothing() {
        let env = json!({"data": {"gone": null}});
        let out = render(json!(["<{data.x}>", "{data.x|someone}", "{data.gone}", "{data.gone|0}"]), &env);
        assert_eq!(out.unwrap(), json!(["<>", "someone", null, "0"]));
    }

    #[test]
    fn doubled_braces_are_literal() {
        let out = render(json!("{{not {type}}}"), &json!({"type": "form.create"}));
        assert_eq!(out.unwrap(), json!("{not form.create}"));
    }

    #[test]
    fn malformed_strings_are_errors_naming_the_place() {
        for bad in ["{type", "type}", "{a{b}}", "{}", "{data..x}"] {
            let err = render(json!({"text": bad}), &json!({})).unwrap_err();
            assert!(err.starts_with("template.text: "), "{bad}: {err}");
        }
    }

    #[test]
    fn constant_subtrees_fold() {
        let node = Node::compile(json!({"a": [1, "x"], "b": {"c": "{{"}}), "t", &|_| Ok(())).unwrap();
        assert!(matches!(node, Node::Const(_)));
    }
}
