//! *Whether* an attempt worked: turns what came back (a status and headers, or
//! a transport error) into a verdict. Timing lives in [`super::schedule`].

use std::ops::RangeInclusive;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::{HeaderMap, RETRY_AFTER};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    /// Try again later; `retry_after` is the subscriber's wish, if it gave one.
    Retry {
        retry_after: Option<Duration>,
    },
    /// 410 Gone: the subscriber asks never to be called again.
    Gone,
}

/// Classifies an answer with `status`. Transport errors are always `Retry`.
pub fn classify(status: u16, headers: &HeaderMap, success: &RangeInclusive<u16>) -> Verdict {
    if success.contains(&status) {
        return Verdict::Success;
    }
    match status {
        410 => Verdict::Gone,
        429 | 503 => Verdict::Retry {
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after),
        },
        _ => Verdict::Retry { retry_after: None },
    }
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = (when.with_timezone(&Utc) - Utc::now()).num_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn with_retry_after(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn success_range_is_inclusive_and_configurable() {
        let none = HeaderMap::new();
        let default = 200..=207;
        assert_eq!(classify(200, &none, &default), Verdict::Success);
        assert_eq!(classify(207, &none, &default), Verdict::Success);
        assert_eq!(
            classify(208, &none, &default),
            Verdict::Retry { retry_after: None }
        );
        assert_eq!(
            classify(199, &none, &default),
            Verdict::Retry { retry_after: None }
        );
        assert_eq!(
            classify(302, &none, &default),
            Verdict::Retry { retry_after: None }
        );
        assert_eq!(
            classify(204, &none, &(200..=200)),
            Verdict::Retry { retry_after: None }
        );
        assert_eq!(classify(299, &none, &(200..=299)), Verdict::Success);
    }

    #[test]
    fn gone_and_server_errors() {
        let none = HeaderMap::new();
        assert_eq!(classify(410, &none, &(200..=207)), Verdict::Gone);
        assert_eq!(
            classify(500, &none, &(200..=207)),
            Verdict::Retry { retry_after: None }
        );
        assert_eq!(
            classify(404, &none, &(200..=207)),
            Verdict::Retry { retry_after: None }
        );
    }

    #[test]
    fn retry_after_only_on_429_and_503() {
        let h = with_retry_after("120");
        let two_min = Some(Duration::from_secs(120));
        assert_eq!(
            classify(429, &h, &(200..=207)),
            Verdict::Retry {
                retry_after: two_min
            }
        );
        assert_eq!(
            classify(503, &h, &(200..=207)),
            Verdict::Retry {
                retry_after: two_min
            }
        );
        assert_eq!(
            classify(500, &h, &(200..=207)),
            Verdict::Retry { retry_after: None }
        );
        let garbage = with_retry_after("soon");
        assert_eq!(
            classify(429, &garbage, &(200..=207)),
            Verdict::Retry { retry_after: None }
        );
    }

    #[test]
    fn retry_after_http_date() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let future = (Utc::now() + chrono::Duration::seconds(3600)).to_rfc2822();
        let d = parse_retry_after(&future).unwrap();
        assert!((3590..=3600).contains(&d.as_secs()), "{d:?}");
    }
}
