//! `/openapi.json` checked by a real OpenAPI validator, and the `/docs` page
//! rendering it in a real browser from assets the host serves itself.

use std::path::PathBuf;
use std::process::Command;

use crate::default_manifest::{default_components, default_manifest};
use crate::support::{Wharf, error_code};

const HELLO: &str = r#"
[components.hello]
wasm = "{wasm:hello}"
routes = [{ path = "/hello/*", methods = ["GET"] }]
grants = { interfaces = ["config", "log"] }
"#;

/// One route of each feature, as the page must list it.
const FEATURE_PATHS: &[&str] =
    &["/hello/{name}", "/api/hook/", "/eye/events/", "/api/recent_purchases/{username}", "/api/users/{username}"];

/// A Python with PyPI's `openapi-spec-validator` (scripts/test.sh makes a venv
/// and sets `WHARF_TEST_PYTHON`), or `None` (loudly) when there is none;
/// under `CI=true` that is a failure.
fn validator_python() -> Option<PathBuf> {
    let python = std::env::var_os("WHARF_TEST_PYTHON").map(PathBuf::from).or_else(|| {
        // The venv scripts/test.sh makes, for a plain `cargo test` after it.
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(cache.join("wharf-py/bin/python")).filter(|p| p.exists())
    });
    let usable = python.as_ref().is_some_and(|python| {
        Command::new(python).args(["-c", "import openapi_spec_validator"]).status().is_ok_and(|s| s.success())
    });
    if usable {
        return python;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "no Python with openapi-spec-validator ({python:?}): CI must validate /openapi.json (scripts/test.sh installs it)"
    );
    eprintln!(
        "!!! SKIPPING the OpenAPI validator test: no Python with openapi-spec-validator ({python:?}); \
         scripts/test.sh installs it and sets WHARF_TEST_PYTHON"
    );
    None
}

#[tokio::test]
async fn openapi_document_of_the_default_manifest_passes_a_real_validator() {
    let Some(python) = validator_python() else { return };
    let wharf = Wharf::start(&default_manifest()).await;
    let (status, document) = wharf.get_json("/openapi.json").await;
    assert_eq!(status, 200, "{document}");
    for path in FEATURE_PATHS {
        assert!(document["paths"][path].is_object(), "{path} missing from /openapi.json");
    }
    let tags: Vec<&str> = document["tags"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    for component in default_components() {
        assert!(tags.contains(&component.as_str()), "no tag for component `{component}`: {tags:?}");
    }
    // SPEC §0: WebSocket endpoints are described in text.
    let description = document["info"]["description"].as_str().unwrap();
    assert!(description.contains("`/ws/email/`") && description.contains("?after="), "{description}");

    let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(file.path(), serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    let output = Command::new(&python)
        .args(["-m", "openapi_spec_validator", "--schema", "3.1", "--validation-errors", "all"])
        .arg(file.path())
        .output()
        .expect("run openapi-spec-validator");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "openapi-spec-validator refused /openapi.json:\n{report}");
    assert!(report.contains(": OK"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_lists_every_feature_from_local_assets_only() {
    let wharf = Wharf::start(&default_manifest()).await;
    let Some(mut browser) = crate::browser::Browser::open(&wharf.url("/docs")).await else { return };
    browser
        .wait_for("document.querySelectorAll('#swagger-ui .opblock').length > 0", "Swagger UI to render the routes")
        .await;
    // Swagger UI puts a zero-width space before each `/` of a path.
    let text = browser.eval("document.body.innerText.replaceAll('\\u200b', '')").await;
    let text = text.as_str().unwrap();
    for path in FEATURE_PATHS {
        assert!(text.contains(path), "{path} not on the /docs page");
    }
    assert!(text.contains("WebSocket endpoints") && text.contains("/ws/email/"), "no WebSocket text on the page");

    let origin = format!("http://{}/", wharf.addr);
    let urls = browser.eval("[location.href, ...performance.getEntriesByType('resource').map(e => e.name)]").await;
    let urls: Vec<&str> = urls.as_array().unwrap().iter().filter_map(|u| u.as_str()).collect();
    assert!(urls.iter().any(|u| u.ends_with("/openapi.json")), "the page did not fetch /openapi.json: {urls:?}");
    assert!(urls.iter().any(|u| u.ends_with("/docs/swagger-ui-bundle.js")), "{urls:?}");
    for url in &urls {
        assert!(url.starts_with(&origin), "the page requested {url}, not on this host ({origin})");
    }
}

#[tokio::test]
async fn docs_assets_are_served_from_the_binary_and_unknown_ones_are_json_404() {
    let wharf = Wharf::start(HELLO).await;
    for (path, content_type, cache) in [
        ("/docs", "text/html; charset=utf-8", "no-cache"),
        ("/docs/", "text/html; charset=utf-8", "no-cache"),
        ("/docs/init.js", "application/javascript; charset=utf-8", "public, max-age=3600"),
        ("/docs/swagger-ui-bundle.js", "application/javascript; charset=utf-8", "public, max-age=3600"),
        ("/docs/swagger-ui.css", "text/css; charset=utf-8", "public, max-age=3600"),
    ] {
        let response = wharf.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert_eq!(header("content-type"), content_type, "{path}");
        assert_eq!(header("cache-control"), cache, "{path}");
        assert!(!header("x-request-id").is_empty(), "{path}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{path}");
    }
    let bundle = wharf.get("/docs/swagger-ui-bundle.js").await.text().await.unwrap();
    assert!(bundle.contains("SwaggerUIBundle"));

    let response = wharf.get("/docs/nope").await;
    assert_eq!(response.status(), 404);
    assert_eq!(error_code(response).await, "not_found");
}
