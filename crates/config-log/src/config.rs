//! `wharf:host/config`: the component's `config` table from the manifest,
//! read-only.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use wharf_bindings::config::{self, Host};

/// Per-request state: a shared handle to the component's config.
#[derive(Debug, Clone, Default)]
pub struct ConfigCtx {
    values: Arc<BTreeMap<String, String>>,
}

impl ConfigCtx {
    /// A context serving `values`.
    pub fn new(values: Arc<BTreeMap<String, String>>) -> Self {
        Self { values }
    }
}

impl Host for ConfigCtx {
    fn get(&mut self, key: String) -> Option<String> {
        self.values.get(&key).cloned()
    }

    fn get_all(&mut self) -> Vec<(String, String)> {
        self.values.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// What a host call borrows: the request's context.
pub type ConfigView<'a> = &'a mut ConfigCtx;

struct HasConfig;

impl HasData for HasConfig {
    type Data<'a> = ConfigView<'a>;
}

/// Adds `wharf:host/config` to `linker`, reaching each store's context
/// through `get`.
pub fn add_to_linker<T: 'static>(linker: &mut Linker<T>, get: fn(&mut T) -> ConfigView<'_>) -> wasmtime::Result<()> {
    config::add_to_linker::<T, HasConfig>(linker, get)
}
