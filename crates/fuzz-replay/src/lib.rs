//! Replays what the fuzzer keeps for a target: every input under
//! `fuzz/corpus/TARGET` and every crash under `fuzz/regressions/TARGET`,
//! through the same check the fuzz target runs. The host's checks
//! (`wharf-fuzz-checks`) and the components' own (`components/*/src/fuzzing.rs`)
//! call it from their tests, so a crash found once stays fixed.

#![deny(missing_docs)]

use std::panic::{UnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The repository's `fuzz/` directory.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Runs `check` on each kept input of `target`; panics naming the first
/// one that fails its check again. Returns how many inputs were replayed.
pub fn replay(target: &str, check: impl Fn(&[u8]) + Copy + UnwindSafe) -> usize {
    let mut replayed = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else { continue };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = catch_unwind(move || check(&data));
            assert!(outcome.is_ok(), "{target}: {} fails its check again", path.display());
            replayed += 1;
        }
    }
    replayed
}
