//! `/openapi.json`: the OpenAPI 3.1 fragments components ship (named by
//! `openapi = "…"` in the manifest), read at load and merged into one
//! document with the host's own paths and a text description of the
//! WebSocket endpoints (OpenAPI has no way to describe those).

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::manifest::WebSocketSpec;
use wharf_runtime::registry::Snapshot;

/// Sections of `components` merged by name.
const COMPONENT_SECTIONS: &[&str] =
    &["schemas", "parameters", "responses", "requestBodies", "headers", "examples", "securitySchemes"];

/// The keys of a path item that are operations.
const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The tag of the paths the host answers itself.
const HOST_TAG: &str = "host";

/// The document `/openapi.json` answers for `snapshot`.
pub fn document(snapshot: &Snapshot) -> Value {
    let fragments = snapshot.components().filter_map(|c| Some((c.spec().name.as_str(), c.openapi()?)));
    let mut document = merge(fragments, snapshot.websockets());
    describe_rate_limits(&mut document, snapshot.routes());
    document
}

/// Adds the host's 429 to every operation on a rate-limited route, since
/// the host answers it before the component (whose fragment cannot know).
fn describe_rate_limits(document: &mut Value, routes: &crate::router::RouteTable) {
    // The SPEC §0 error body, unless a fragment already defines `Error`.
    if let Some(root) = document.as_object_mut() {
        let components = root.entry("components").or_insert_with(|| json!({}));
        if let Some(components) = components.as_object_mut() {
            let schemas = components.entry("schemas").or_insert_with(|| json!({}));
            if let Some(schemas) = schemas.as_object_mut() {
                schemas.entry("Error").or_insert_with(|| {
                    json!({
                        "type": "object",
                        "required": ["error"],
                        "properties": { "error": {
                            "type": "object",
                            "required": ["code", "message", "request_id"],
                            "properties": {
                                "code": { "type": "string" },
                                "message": { "type": "string" },
                                "request_id": { "type": "string" }
                            }
                        } }
                    })
                });
            }
        }
    }
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (template, item) in paths.iter_mut() {
        // A concrete path for the template: every `{param}` becomes `x`.
        let mut path = String::new();
        let mut in_param = false;
        for c in template.chars() {
            match c {
                '{' => in_param = true,
                '}' if in_param => {
                    in_param = false;
                    path.push('x');
                }
                _ if in_param => {}
                _ => path.push(c),
            }
        }
        let Some(operations) = item.as_object_mut() else { continue };
        for (method, operation) in operations.iter_mut() {
            let Ok(method) = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else { continue };
            let crate::router::RouteMatch::Component { rate_limit: Some(limit), .. } = routes.route(&method, &path)
            else {
                continue;
            };
            let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            responses.entry("429").or_insert_with(|| {
                json!({
                    "description": format!(
                        "Too many requests from this address ({} per {}); retry after `Retry-After` seconds.",
                        limit.requests,
                        humantime::format_duration(limit.per)
                    ),
                    "headers": { "Retry-After": { "schema": { "type": "integer" } } },
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
                })
            });
        }
    }
}

/// Merges `(component, fragment)` pairs into one OpenAPI 3.1 document.
///
/// Paths cannot collide (routes do not overlap). Each component becomes a
/// tag (described by its fragment's `info`) on the operations that name no
/// tag of their own, so the `/docs` page groups routes by component.
/// Component entries with the same name are expected to be the same shared
/// definition (e.g. `Error`): the first one wins.
pub fn merge<'a>(fragments: impl Iterator<Item = (&'a str, &'a Value)>, websockets: &[WebSocketSpec]) -> Value {
    let mut paths = host_paths();
    let mut tags = vec![json!({ "name": HOST_TAG, "description": "Answered by the host itself, not a component." })];
    let mut components: Map<String, Value> = Map::new();
    for (component, fragment) in fragments {
        tags.push(component_tag(component, fragment));
        if let Some(fragment_paths) = fragment.get("paths").and_then(Value::as_object) {
            for (path, item) in fragment_paths {
                paths.entry(path.clone()).or_insert_with(|| tagged(item, component));
            }
        }
        for section in COMPONENT_SECTIONS {
            if let Some(entries) = fragment.get("components").and_then(|c| c.get(*section)).and_then(Value::as_object) {
                let target = components.entry(section.to_string()).or_insert_with(|| json!({}));
                if let Some(target) = target.as_object_mut() {
                    for (name, definition) in entries {
                        target.entry(name.clone()).or_insert_with(|| definition.clone());
                    }
                }
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Wharf",
            "version": env!("CARGO_PKG_VERSION"),
            "description": description(websockets),
        },
        "tags": tags,
        "paths": paths,
        "components": components,
    })
}

/// `info.description`: conventions, then the WebSocket endpoints in text.
fn description(websockets: &[WebSocketSpec]) -> String {
    let mut text = String::from(
        "Every JSON route served by this host's components, grouped by component, and the host's own paths. \
         Errors answer `{\"error\": {\"code\", \"message\", \"request_id\"}}`; every response carries `x-request-id`.",
    );
    if websockets.is_empty() {
        return text;
    }
    text.push_str(
        "\n\n## WebSocket endpoints\n\nOpenAPI cannot describe these, so here they are in words. Connect with a \
         WebSocket client (a plain `GET` answers 426 `upgrade_required`). The host sends one text frame (JSON) per \
         message published on the endpoint's topic, in publish order, and ignores what clients send. A client too slow \
         to keep up is closed with 1013 (reconnect, with `?after=` where the endpoint replays); the host pings every \
         30 s and closes a client silent for 75 s with 1001, as it closes every client when it shuts down.\n",
    );
    for ws in websockets {
        let publishers = ws.publishers.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ");
        let _ = write!(
            text,
            "\n- `{path}`: messages on topic `{topic}`, published by {publishers}. At most {clients} clients \
             (more: 503 `too_many_clients`); a client frame over {max} bytes closes the socket with 1009.",
            path = ws.path,
            topic = ws.topic,
            clients = ws.max_clients,
            max = ws.max_client_message,
        );
        if let Some(replay) = &ws.replay {
            let _ = write!(
                text,
                " Reconnect with `?after=<id of the last message received>` to first get what `{component}` stored \
                 after it (in arrival order, at most 1000; more are followed by `{{\"type\": \"replay_truncated\"}}`: \
                 re-list over HTTP), then live messages, with no gap and no duplicate; an unknown id closes the \
                 socket with 1008.",
                component = replay.component,
            );
        }
    }
    text
}

/// A tag named after `component`, described by its fragment's `info` (the
/// title without a leading "NAME — ", which the tag already shows).
fn component_tag(component: &str, fragment: &Value) -> Value {
    let text = |key: &str| fragment.get("info")?.get(key)?.as_str();
    let title = text("title").map(|t| t.strip_prefix(component).and_then(|t| t.strip_prefix(" — ")).unwrap_or(t));
    let parts: Vec<&str> =
        [title, text("description")].into_iter().flatten().filter(|s| !s.is_empty() && *s != component).collect();
    if parts.is_empty() {
        return json!({ "name": component });
    }
    json!({ "name": component, "description": parts.join(". ") })
}

/// `item` with `component` as the tag of every operation that has none.
fn tagged(item: &Value, component: &str) -> Value {
    let mut item = item.clone();
    if let Some(operations) = item.as_object_mut() {
        for (method, operation) in operations.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            if let Some(operation) = operation.as_object_mut() {
                operation.entry("tags").or_insert_with(|| json!([component]));
            }
        }
    }
    item
}

/// `/healthz`, `/readyz` and `/openapi.json`.
fn host_paths() -> Map<String, Value> {
    let object = json!({ "type": "object" });
    let answer = |description: &str, schema: &Value| json!({ "description": description, "content": { "application/json": { "schema": schema } } });
    let status = json!({ "type": "object", "required": ["status"], "properties": { "status": { "type": "string" } } });
    let paths = json!({
        "/healthz": { "get": {
            "tags": [HOST_TAG], "operationId": "hostHealth", "summary": "The process is up",
            "responses": { "200": answer("Up: `{\"status\": \"ok\"}`", &status) },
        } },
        "/readyz": { "get": {
            "tags": [HOST_TAG], "operationId": "hostReady",
            "summary": "The database, every component and its queue are ready",
            "responses": {
                "200": answer("Ready, with the state of the database and of each component", &status),
                "503": answer("Not ready: the body says what is unavailable", &status),
            },
        } },
        "/openapi.json": { "get": {
            "tags": [HOST_TAG], "operationId": "hostOpenApi", "summary": "This document (the /docs page renders it)",
            "responses": { "200": answer("An OpenAPI 3.1 document", &object) },
        } },
    });
    match paths {
        Value::Object(paths) => paths,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::manifest::{ComponentName, ReplaySpec};

    #[test]
    fn merges_paths_and_shared_components() {
        let a =
            json!({"paths": {"/a": {"get": {}}}, "components": {"schemas": {"Error": {"type": "object"}, "A": {}}}});
        let b =
            json!({"paths": {"/b": {"get": {}}}, "components": {"schemas": {"Error": {"type": "object"}, "B": {}}}});
        let merged = merge([("a", &a), ("b", &b)].into_iter(), &[]);
        assert_eq!(merged["openapi"], "3.1.0");
        assert!(merged["paths"]["/a"].is_object() && merged["paths"]["/b"].is_object());
        assert!(merged["paths"]["/healthz"]["get"].is_object());
        let schemas = merged["components"]["schemas"].as_object().unwrap();
        let bearer =
            json!({"paths": {}, "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}});
        let with_security = merge([("c", &bearer)].into_iter(), &[]);
        assert_eq!(with_security["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        assert_eq!(schemas.keys().collect::<Vec<_>>(), ["A", "B", "Error"]);
    }

    #[test]
    fn tags_operations_with_their_component_unless_tagged() {
        let a = json!({
            "info": {"title": "a — the first", "description": "Does things"},
            "paths": {"/a": {"parameters": [], "get": {}, "post": {"tags": ["own"]}}},
        });
        let merged = merge([("a", &a)].into_iter(), &[]);
        assert_eq!(merged["paths"]["/a"]["get"]["tags"], json!(["a"]));
        assert_eq!(merged["paths"]["/a"]["post"]["tags"], json!(["own"]));
        assert_eq!(merged["paths"]["/a"]["parameters"], json!([]));
        let tags = merged["tags"].as_array().unwrap();
        assert!(tags.contains(&json!({"name": "a", "description": "the first. Does things"})), "{tags:?}");
    }

    #[test]
    fn describes_websocket_endpoints_in_text() {
        let ws = WebSocketSpec {
            name: "email".into(),
            path: "/ws/email/".into(),
            topic: "email".into(),
            publishers: BTreeSet::from([ComponentName::parse("mandrill").unwrap()]),
            replay: Some(ReplaySpec {
                component: ComponentName::parse("mandrill").unwrap(),
                path: "/api/events/_replay".into(),
            }),
            max_clients: 10,
            buffer: 4,
            max_client_message: 64,
        };
        let merged = merge(std::iter::empty(), &[ws]);
        let description = merged["info"]["description"].as_str().unwrap();
        for needle in ["## WebSocket endpoints", "`/ws/email/`", "topic `email`", "`?after=", "1008"] {
            assert!(description.contains(needle), "{needle} missing from {description}");
        }
    }
}
