//! The one JSON rule weir adds to the RFC: numbers must fit an IEEE 754
//! double (I-JSON, RFC 7493). `1e999` is valid JSON text, but most parsers
//! (serde_json among them, and so plugins built on it) refuse or mangle it,
//! so weir turns it away at its door instead of handing it on.

use serde::Deserializer;
use serde::de::{self, Deserialize, MapAccess, SeqAccess, Visitor};

/// Checks that `text` is one JSON value whose every number is representable.
/// Nothing is built: values are walked and dropped.
pub fn check_interoperable(text: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<Walk>(text).map(|_| ())
}

/// A value walked through `deserialize_any`, which, unlike `IgnoredAny`,
/// makes serde_json convert every number.
struct Walk;

impl<'de> Deserialize<'de> for Walk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Walk, D::Error> {
        d.deserialize_any(WalkVisitor)
    }
}

struct WalkVisitor;

impl<'de> Visitor<'de> for WalkVisitor {
    type Value = Walk;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Walk, A::Error> {
        while seq.next_element::<Walk>()?.is_some() {}
        Ok(Walk)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Walk, A::Error> {
        while map.next_entry::<de::IgnoredAny, Walk>()?.is_some() {}
        Ok(Walk)
    }
}

#[cfg(test)]
mod tests {
    use super::check_interoperable as check;

    #[test]
    fn ordinary_json_passes() {
        for ok in [
            "1",
            "-0.5e-300",
            "1.7976931348623157e308",
            r#"{"a":[1,2,{"b":null,"c":"\u00e9"}],"d":true}"#,
            "18446744073709551615",
            "123456789012345678901234567890",
        ] {
            check(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn numbers_beyond_a_double_are_refused_wherever_they_hide() {
        for bad in ["1e999", "[1, -1e400]", r#"{"a":{"b":[{"c":2e308}]}}"#] {
            let e = check(bad).unwrap_err();
            assert!(e.to_string().contains("number out of range"), "{bad}: {e}");
        }
    }

    #[test]
    fn invalid_json_is_refused() {
        assert!(check("{").is_err());
        assert!(check("[1,]").is_err());
        assert!(check("1 2").is_err());
    }
}
