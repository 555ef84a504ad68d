//! `wharf serve --watch`: reloads components when `components.toml` or
//! their `.wasm` files change. Events are debounced (a build writes a file in
//! several steps) and the directories are watched rather than the files, so a
//! file replaced by rename (cargo, editors) is still seen. A changed manifest
//! reloads every component in it; a changed `.wasm` reloads its component.
//! Each reload is the same as `wharf reload`: refused versions are logged and
//! the old one keeps serving.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use wharf_runtime::Runtime;

/// How long the files must be quiet before a reload starts.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Keeps watching while held.
pub struct Watching {
    _debouncer: Debouncer<RecommendedWatcher>,
}

/// Starts watching the manifest and every loaded component's `.wasm`.
pub fn start(runtime: Arc<Runtime>) -> anyhow::Result<Watching> {
    let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut debouncer = new_debouncer(DEBOUNCE, move |events: DebounceEventResult| match events {
        Ok(events) => {
            let _ = changed.send(events.into_iter().map(|e| e.path).collect());
        }
        Err(e) => tracing::warn!(error = %e, "file watch error"),
    })
    .context("cannot start watching files")?;
    let mut dirs = BTreeSet::new();
    dirs.insert(parent(runtime.manifest_path()));
    for component in runtime.snapshot().components() {
        dirs.insert(parent(&component.spec().wasm));
    }
    for dir in &dirs {
        debouncer
            .watcher()
            .watch(dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch `{}`", dir.display()))?;
    }
    tracing::info!(dirs = dirs.len(), "watching components.toml and component files for changes");
    tokio::spawn(async move {
        while let Some(paths) = changes.recv().await {
            for name in affected(&runtime, &paths) {
                let _ = runtime.reload(&name).await;
            }
        }
    });
    Ok(Watching { _debouncer: debouncer })
}

/// The components to reload for changes to `paths`.
fn affected(runtime: &Runtime, paths: &[PathBuf]) -> BTreeSet<String> {
    let manifest = canonical(runtime.manifest_path());
    let mut names = BTreeSet::new();
    let snapshot = runtime.snapshot();
    for path in paths.iter().map(|p| canonical(p)) {
        if path == manifest {
            // Components added to the manifest load too; removed ones stay
            // until restart (a reload never drops a component).
            match crate::manifest::Manifest::load(runtime.manifest_path()) {
                Ok(m) => names.extend(m.components.keys().map(ToString::to_string)),
                Err(e) => tracing::warn!(error = %e, "components.toml changed but does not load; nothing reloaded"),
            }
            continue;
        }
        for component in snapshot.components() {
            if canonical(&component.spec().wasm) == path {
                names.insert(component.spec().name.to_string());
            }
        }
    }
    names
}

fn parent(path: &Path) -> PathBuf {
    canonical(path).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
