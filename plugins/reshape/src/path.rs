//! Dotted paths into JSON values: `data.form_id`, `data.choices.0.label`.
//!
//! Reading, a segment names an object key, or an array index when it is a
//! number. Writing, every segment is an object key: intermediate objects are
//! created, and a non-object in the way is replaced by one.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    segments: Vec<String>,
}

impl Path {
    /// Parses `a.b.c`; whitespace around the path is ignored, empty
    /// segments are not allowed.
    pub fn parse(text: &str) -> Result<Path, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty path".into());
        }
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("path {text:?} has an empty segment"));
        }
        Ok(Path { segments })
    }

    /// The first segment: which part of the envelope the path reads.
    pub fn root(&self) -> &str {
        &self.segments[0]
    }

    /// The value at this path under `root`, if there is one.
    pub fn get<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.segments.iter().try_fold(root, |value, segment| match value {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
    }

    /// Puts `value` at this path under `root`, replacing what was there.
    pub fn set(&self, root: &mut Map<String, Value>, value: Value) {
        let (last, parents) = self.segments.split_last().expect("a path has a segment");
        let mut map = root;
        for segment in parents {
            let slot = map.entry(segment.clone()).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            map = slot.as_object_mut().expect("made an object just above");
        }
        map.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_keys_and_indexes() {
        let v = json!({"data": {"choices": [{"label": "Black bear"}], "1": "key"}});
        assert_eq!(Path::parse("data.choices.0.label").unwrap().get(&v), Some(&json!("Black bear")));
        assert_eq!(Path::parse("data.1").unwrap().get(&v), Some(&json!("key")));
        assert_eq!(Path::parse("data.choices.1").unwrap().get(&v), None);
        assert_eq!(Path::parse("data.choices.x").unwrap().get(&v), None);
    }

    #[test]
    fn rejects_empty_segments() {
        assert!(Path::parse("").is_err());
        assert!(Path::parse("data..id").is_err());
        assert!(Path::parse("data.").is_err());
    }

    #[test]
    fn writes_through_missing_and_scalar_parents() {
        let mut out = Map::new();
        out.insert("a".into(), json!(1));
        Path::parse("a.b").unwrap().set(&mut out, json!(2));
        Path::parse("c.d.e").unwrap().set(&mut out, json!(3));
        assert_eq!(Value::Object(out), json!({"a": {"b": 2}, "c": {"d": {"e": 3}}}));
    }
}
