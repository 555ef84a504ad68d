//! The repository's own `components.toml`, adapted for tests: each `wasm`
//! path becomes `{wasm:STEM}` (the components this test run built) and the
//! other relative paths `{repo}/…`, for [`crate::support::manifest`].

use crate::support::repo_root;

/// The default manifest as a template for [`crate::support::Wharf::start`].
pub fn default_manifest() -> String {
    let text = std::fs::read_to_string(repo_root().join("components.toml")).unwrap();
    let mut doc: toml::Table = text.parse().unwrap();
    for (name, entry) in doc["components"].as_table_mut().unwrap().iter_mut() {
        let table = entry.as_table_mut().unwrap();
        let wasm = table["wasm"].as_str().unwrap();
        let stem = std::path::Path::new(wasm).file_stem().unwrap().to_str().unwrap().to_owned();
        assert!(wasm.ends_with(&format!("/{stem}.wasm")), "{name}: {wasm}");
        table.insert("wasm".into(), format!("{{wasm:{stem}}}").into());
        let files = table.get_mut("grants").and_then(|g| g.get_mut("files")).and_then(|f| f.as_table_mut());
        for (_, dir) in files.into_iter().flat_map(|f| f.iter_mut()) {
            *dir = format!("{{repo}}/{}", dir.as_str().unwrap()).into();
        }
        for key in ["migrations", "openapi"] {
            if let Some(path) = table.get(key).and_then(|m| m.as_str()).map(str::to_owned) {
                table.insert(key.into(), format!("{{repo}}/{path}").into());
            }
        }
    }
    doc.to_string()
}

/// The names of the components the default manifest loads.
pub fn default_components() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("components.toml")).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    doc["components"].as_table().unwrap().keys().cloned().collect()
}
