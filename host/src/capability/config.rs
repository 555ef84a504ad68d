//! `wharf:host/config`: the component's `config` table from the manifest,
//! read-only.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use super::bindings::config::{self, Host};
use crate::state::RequestState;

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

struct Config;

impl HasData for Config {
    type Data<'a> = &'a mut ConfigCtx;
}

pub(super) fn add_to_linker(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    config::add_to_linker::<RequestState, Config>(linker, |state| &mut state.config)?;
    Ok(())
}
