//! The one wasmtime [`Engine`] of a host: Cranelift, the pooling allocator
//! sized for the manifest, epoch interruption driven by a ticker thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits::EPOCH_TICK;

/// Instances the pool holds at least, whatever the manifest says, so that
/// components added by a later reload still fit.
const MIN_POOL_INSTANCES: u32 = 1000;

/// Instances the pool holds at most. Each of its memory slots reserves about
/// 4 GiB of address space (two per instance): 10,000 instances reserve about
/// 80 TiB of the 128 TiB a 64-bit Linux process has, leaving room for the
/// rest of the host (14,000 could not be reserved here).
const MAX_POOL_INSTANCES: u32 = 10_000;

/// Bytes of each memory, table and stack slot kept resident between instances.
const KEEP_RESIDENT: usize = 1 << 20;

/// Builds the engine. `instances` is the sum of every component's
/// `max_instances`; the pool keeps room for twice that, so a reload can run
/// new instances while old ones drain, within [`MAX_POOL_INSTANCES`].
pub fn build(instances: u32) -> anyhow::Result<Engine> {
    let slots = instances.saturating_mul(2).clamp(MIN_POOL_INSTANCES, MAX_POOL_INSTANCES);
    if instances > slots {
        tracing::warn!(
            max_instances = instances,
            pool = slots,
            "the components' max_instances add up to more than the instance pool holds; \
             past it, requests fail with component_failed until instances end"
        );
    }
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(2))
        .total_memories(slots.saturating_mul(2))
        .total_tables(slots.saturating_mul(2))
        .total_stacks(slots)
        .max_memories_per_component(4)
        .max_tables_per_component(4)
        .max_core_instances_per_component(16)
        .max_memory_size(wharf_spec::manifest::MAX_MEMORY_LIMIT as usize)
        // Instances are created per request: keep the first pages of each
        // slot resident and reset them with memset instead of returning them
        // to the kernel, so the next instance does not page-fault them back.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .async_stack_keep_resident(KEEP_RESIDENT)
        // Reset only the pages an instance really touched (Linux 6.7+);
        // elsewhere the whole kept-resident prefix is reset as before.
        .pagemap_scan(Enabled::Auto)
        .decommit_batch_size(16);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        // WASIp3 (`wasi:http/service@0.3.0`): async exports and streams.
        .wasm_component_model_async(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(anyhow::Error::from).context("failed to configure the wasmtime engine")
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Starts the ticker thread for `engine`.
    pub fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("wharf-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map(drop)
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the epoch ticker; deadlines will not interrupt running guests"));
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_asking_for_more_instances_than_the_address_space_holds_still_gets_an_engine() {
        // 20,000 × 2 slots would need more address space than a process has.
        build(20_000).expect("the pool should be capped, not fail");
    }
}
