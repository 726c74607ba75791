//! The web console at `/console/`: a page and a script over the HTTP API,
//! built into the binary so weir stays one file with nothing to fetch.
//!
//! The page holds no data of its own: it signs in with an API token (kept
//! in the tab's sessionStorage), calls `/v1/...` with it, and puts every
//! value on the page as text. The strict Content-Security-Policy below is
//! the second line: no inline script or style, nothing from elsewhere, so
//! even markup that slipped through could not run.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// What the console's pages may load: only their own files, and API calls
/// to the same origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

struct Asset {
    body: &'static [u8],
    content_type: &'static str,
}

fn asset(path: &str) -> Option<Asset> {
    let (body, content_type): (&'static [u8], _) = match path {
        "" | "index.html" => (
            include_bytes!("assets/index.html"),
            "text/html; charset=utf-8",
        ),
        "app.js" => (
            include_bytes!("assets/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "style.css" => (
            include_bytes!("assets/style.css"),
            "text/css; charset=utf-8",
        ),
        "favicon.svg" => (include_bytes!("assets/favicon.svg"), "image/svg+xml"),
        _ => return None,
    };
    Some(Asset { body, content_type })
}

/// `/console` (redirected to `/console/`) and the files under it.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(|| async { serve("") }))
        .route(
            "/console/{file}",
            get(|axum::extract::Path(file): axum::extract::Path<String>| async move {
                serve(&file)
            }),
        )
}

fn serve(path: &str) -> Response {
    let Some(a) = asset(path) else {
        return (StatusCode::NOT_FOUND, "no such console file").into_response();
    };
    let mut res = a.body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // A new weir brings a new console: always ask.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_served() {
        let page = std::str::from_utf8(asset("").unwrap().body).unwrap();
        for name in ["app.js", "style.css", "favicon.svg"] {
            assert!(
                page.contains(&format!("\"{name}\"")),
                "{name} not in the page"
            );
            assert!(asset(name).is_some(), "{name} not served");
        }
        assert!(asset("../Cargo.toml").is_none());
    }

    #[test]
    fn the_script_never_parses_markup() {
        let js = std::str::from_utf8(asset("app.js").unwrap().body).unwrap();
        for sink in [
            ".innerHTML",
            ".outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            let code: String = js
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            assert!(!code.contains(sink), "app.js uses {sink}");
        }
    }
}
