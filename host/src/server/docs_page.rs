//! `/docs`: the interactive page for `/openapi.json` (Swagger UI), with every
//! asset compiled into the binary so the page loads nothing from elsewhere.
//! The Swagger UI files are vendored, unmodified, in `host/assets/swagger-ui/`
//! (version and checksums in its `VERSION` file; docs/openapi.md).

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::error::full;

/// The page: Swagger UI's stylesheet and script, then ours to start it.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Wharf API</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"#;

/// Starts Swagger UI on `/openapi.json`. `validatorUrl: null` turns off the
/// badge that would send the document to an online validator.
const INIT: &str = r##"window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
});
"##;

/// Only this host's own scripts, styles and requests (Swagger UI sets inline
/// styles and uses `data:` images), so nothing can load from the network.
const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                           script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                           frame-ancestors 'self'";

/// Assets change only with the binary.
const ASSET_CACHE: &str = "public, max-age=3600";

/// The `/docs` page or one of its assets; `None` for any other path.
pub(super) fn answer(path: &str) -> Option<http::Response<HyperOutgoingBody>> {
    let (body, content_type, cache): (&'static [u8], &'static str, &'static str) = match path {
        "/docs" | "/docs/" => (PAGE.as_bytes(), "text/html; charset=utf-8", "no-cache"),
        "/docs/init.js" => (INIT.as_bytes(), "application/javascript; charset=utf-8", ASSET_CACHE),
        "/docs/swagger-ui-bundle.js" => (
            include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js"),
            "application/javascript; charset=utf-8",
            ASSET_CACHE,
        ),
        "/docs/swagger-ui.css" => {
            (include_bytes!("../../assets/swagger-ui/swagger-ui.css"), "text/css; charset=utf-8", ASSET_CACHE)
        }
        // The bundle's first line points here for its third-party licenses.
        "/docs/swagger-ui-bundle.js.LICENSE.txt" => (
            include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js.LICENSE.txt"),
            "text/plain; charset=utf-8",
            ASSET_CACHE,
        ),
        "/docs/LICENSE" => {
            (include_bytes!("../../assets/swagger-ui/LICENSE"), "text/plain; charset=utf-8", ASSET_CACHE)
        }
        _ => return None,
    };
    let mut response = http::Response::new(full(Bytes::from_static(body)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if content_type.starts_with("text/html") {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_page_and_its_assets_and_nothing_else() {
        for path in ["/docs", "/docs/", "/docs/init.js", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"] {
            let response = answer(path).unwrap_or_else(|| panic!("{path} not served"));
            assert_eq!(response.status(), StatusCode::OK, "{path}");
        }
        for path in ["/docs/nope", "/docsx", "/docs/../openapi.json", "/doc"] {
            assert!(answer(path).is_none(), "{path} served");
        }
    }

    #[test]
    fn page_loads_only_local_assets() {
        for url in ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/init.js"] {
            assert!(PAGE.contains(&format!("\"{url}\"")), "{url} not referenced");
        }
        assert!(!PAGE.contains("//"), "the page must not reference another origin");
    }
}
