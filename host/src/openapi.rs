//! `/openapi.json`: the OpenAPI 3.1 fragments components ship (named by
//! `openapi = "…"` in the manifest), read at load and merged into one document.

use std::path::Path;

use anyhow::Context;
use serde_json::{Map, Value, json};

/// Sections of `components` merged by name.
const COMPONENT_SECTIONS: &[&str] = &["schemas", "parameters", "responses", "requestBodies", "headers", "examples"];

/// Reads and checks a fragment: a JSON object with a `paths` object.
pub fn read_fragment(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read OpenAPI fragment `{}`", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("OpenAPI fragment `{}` is not valid JSON", path.display()))?;
    if !value.get("paths").is_some_and(Value::is_object) {
        anyhow::bail!("OpenAPI fragment `{}` has no `paths` object", path.display());
    }
    Ok(value)
}

/// Merges fragments into one OpenAPI 3.1 document. Paths cannot collide
/// (routes do not overlap); component entries with the same name are
/// expected to be the same shared definition (e.g. `Error`), first one wins.
pub fn merge<'a>(fragments: impl Iterator<Item = &'a Value>) -> Value {
    let mut paths = Map::new();
    let mut components: Map<String, Value> = Map::new();
    for fragment in fragments {
        if let Some(fragment_paths) = fragment.get("paths").and_then(Value::as_object) {
            for (path, item) in fragment_paths {
                paths.entry(path.clone()).or_insert_with(|| item.clone());
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
            "description": "Every JSON route served by this host's components. WebSocket endpoints (e.g. /ws/email/) are described in docs/hub.md.",
        },
        "paths": paths,
        "components": components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_paths_and_shared_components() {
        let a =
            json!({"paths": {"/a": {"get": {}}}, "components": {"schemas": {"Error": {"type": "object"}, "A": {}}}});
        let b =
            json!({"paths": {"/b": {"get": {}}}, "components": {"schemas": {"Error": {"type": "object"}, "B": {}}}});
        let merged = merge([&a, &b].into_iter());
        assert_eq!(merged["openapi"], "3.1.0");
        assert!(merged["paths"]["/a"].is_object() && merged["paths"]["/b"].is_object());
        let schemas = merged["components"]["schemas"].as_object().unwrap();
        assert_eq!(schemas.keys().collect::<Vec<_>>(), ["A", "B", "Error"]);
    }
}
