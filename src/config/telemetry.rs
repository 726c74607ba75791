//! `[telemetry]`: where OpenTelemetry traces go. Off unless `otlp_endpoint`
//! is set. The endpoint may carry `user:password@` for a collector behind
//! basic auth, so it is only ever shown with its userinfo masked.

use std::fmt;

use serde::Deserialize;

/// `[telemetry]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTelemetry {
    pub otlp_endpoint: String,
    pub service_name: String,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            otlp_endpoint: String::new(),
            service_name: "weir".into(),
        }
    }
}

/// `[telemetry]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// `None`: no traces are made at all.
    pub otlp_endpoint: Option<OtlpEndpoint>,
    /// The `service.name` every span's resource carries.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: "weir".into(),
        }
    }
}

/// The base URL of an OTLP/HTTP receiver (`http://collector:4318`).
/// `Display` and `Debug` mask its userinfo.
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpEndpoint(url::Url);

impl OtlpEndpoint {
    /// Where spans are POSTed: the base with `/v1/traces` appended (as
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is read), or the URL as given when it
    /// already names that path. Without userinfo: see [`Self::basic_auth`].
    pub fn traces_url(&self) -> String {
        let mut u = self.0.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        if !u.path().ends_with("/v1/traces") {
            let path = format!("{}/v1/traces", u.path().trim_end_matches('/'));
            u.set_path(&path);
        }
        u.to_string()
    }

    /// The `Authorization` value for the userinfo in the URL, if any.
    pub fn basic_auth(&self) -> Option<String> {
        use base64::Engine as _;
        if self.0.username().is_empty() && self.0.password().is_none() {
            return None;
        }
        let decode = |s: &str| percent_decode(s).unwrap_or_else(|| s.to_owned());
        let user = decode(self.0.username());
        let password = decode(self.0.password().unwrap_or(""));
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Some(format!("Basic {token}"))
    }
}

/// `%XX` decoding of URL userinfo; `None` when it is not valid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

impl fmt::Display for OtlpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut u = self.0.clone();
        if !u.username().is_empty() || u.password().is_some() {
            let _ = u.set_username("***");
            let _ = u.set_password(None);
        }
        f.write_str(u.as_str())
    }
}

impl fmt::Debug for OtlpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OtlpEndpoint({self})")
    }
}

/// Resolves `[telemetry]`. Problems come back as `(key, message)`, and
/// never quote the endpoint's userinfo.
pub fn resolve(raw: RawTelemetry) -> Result<TelemetryConfig, Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    if raw.service_name.trim().is_empty() {
        problems.push((
            "telemetry.service_name",
            "must not be empty (leave it out for \"weir\")".to_owned(),
        ));
    }
    let endpoint = match raw.otlp_endpoint.trim() {
        "" => None,
        text => match parse_endpoint(text) {
            Ok(e) => Some(e),
            Err(message) => {
                problems.push(("telemetry.otlp_endpoint", message));
                None
            }
        },
    };
    if problems.is_empty() {
        Ok(TelemetryConfig {
            otlp_endpoint: endpoint,
            service_name: raw.service_name,
        })
    } else {
        Err(problems)
    }
}

fn parse_endpoint(text: &str) -> Result<OtlpEndpoint, String> {
    const SHAPE: &str =
        "an http:// or https:// URL of an OTLP/HTTP receiver, such as \"http://localhost:4318\"";
    let url = url::Url::parse(text).map_err(|e| format!("is not {SHAPE} ({e})"))?;
    let shown = OtlpEndpoint(url.clone()).to_string();
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown} is not {SHAPE}"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{shown}: leave out the query and fragment"));
    }
    Ok(OtlpEndpoint(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(endpoint: &str) -> RawTelemetry {
        RawTelemetry {
            otlp_endpoint: endpoint.into(),
            ..RawTelemetry::default()
        }
    }

    fn endpoint(text: &str) -> OtlpEndpoint {
        resolve(raw(text)).unwrap().otlp_endpoint.unwrap()
    }

    #[test]
    fn absent_or_empty_is_off() {
        assert_eq!(resolve(raw("")).unwrap(), TelemetryConfig::default());
        assert_eq!(resolve(raw("  ")).unwrap().otlp_endpoint, None);
    }

    #[test]
    fn the_traces_path_is_appended_once() {
        let cases = [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            (
                "https://otel.example.com/ingest/",
                "https://otel.example.com/ingest/v1/traces",
            ),
            ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
        ];
        for (given, url) in cases {
            assert_eq!(endpoint(given).traces_url(), url, "{given}");
        }
    }

    #[test]
    fn userinfo_becomes_basic_auth_and_is_never_shown() {
        let e = endpoint("https://weir:hunter%202@otel.example.com");
        assert_eq!(e.traces_url(), "https://otel.example.com/v1/traces");
        // base64("weir:hunter 2")
        assert_eq!(
            e.basic_auth().as_deref(),
            Some("Basic d2VpcjpodW50ZXIgMg==")
        );
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains("hunter"), "{shown}");
            assert!(!shown.contains("weir:"), "{shown}");
        }
        assert_eq!(endpoint("http://c:4318").basic_auth(), None);
        let (_, message) = &resolve(raw("ftp://weir:hunter2@c/")).unwrap_err()[0];
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn bad_endpoints_and_names_are_refused() {
        for bad in [
            "collector:4318",
            "ftp://c/",
            "http://c:4318/?x=1",
            "not a url",
        ] {
            let problems = resolve(raw(bad)).unwrap_err();
            assert_eq!(problems[0].0, "telemetry.otlp_endpoint", "{bad}");
        }
        let problems = resolve(RawTelemetry {
            otlp_endpoint: String::new(),
            service_name: " ".into(),
        })
        .unwrap_err();
        assert_eq!(problems[0].0, "telemetry.service_name");
    }
}
