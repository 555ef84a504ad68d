//! Compiled components cached on disk under the data dir, keyed by the
//! `.wasm`'s content hash and the engine's compatibility hash (wasmtime
//! version and settings), so a restart with unchanged components compiles
//! nothing.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a load compiled or reused a cached artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Found on disk, deserialized.
    Hit,
    /// Compiled now (and written to the cache).
    Miss,
}

impl CacheOutcome {
    /// `hit` or `miss`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
        }
    }
}

/// The on-disk cache of one host.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    /// A cache in `dir` for artifacts of `engine`.
    pub fn new(engine: &Engine, dir: PathBuf) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self { dir, engine_key: format!("{:016x}", hasher.finish()) }
    }

    /// Compiles `wasm` (whose content hash is `digest`), or loads the artifact
    /// cached by an earlier run.
    pub fn load(
        &self,
        engine: &Engine,
        name: &str,
        digest: &str,
        wasm: &[u8],
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let path = self.dir.join(format!("{name}-{digest}-{}.cwasm", self.engine_key));
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(component) => return Ok((component, CacheOutcome::Hit)),
                // A truncated or foreign file is not fatal: recompile over it.
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compile cache entry"),
            }
        }
        let artifact = engine.precompile_component(wasm).map_err(anyhow::Error::from).context("failed to compile")?;
        self.store(&path, &artifact)?;
        let component = deserialize(engine, &path)?;
        Ok((component, CacheOutcome::Miss))
    }

    fn store(&self, path: &Path, artifact: &[u8]) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("failed to create `{}`", self.dir.display()))?;
        // Write beside, then rename: a crash never leaves a half-written entry.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, artifact).with_context(|| format!("failed to write `{}`", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("failed to move `{}` into place", tmp.display()))?;
        Ok(())
    }
}

/// Loads an artifact this cache wrote.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    // SAFETY: wasmtime requires the bytes to come from `precompile_component`
    // of a compatible engine. The file sits in the host's own data dir and was
    // written by `CompileCache::store`; its name carries the engine's
    // compatibility hash, and wasmtime checks the header again.
    let component = unsafe { Component::deserialize_file(engine, path) };
    component.map_err(anyhow::Error::from).with_context(|| format!("failed to load cached `{}`", path.display()))
}

/// The content hash of a `.wasm`, as lowercase hex.
pub fn digest(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}
