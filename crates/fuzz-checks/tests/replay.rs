//! Replays every committed fuzz input (fuzz/corpus) and every crash the
//! fuzzer found (fuzz/regressions) through the checks, on stable Rust.

#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn every_committed_fuzz_input_passes_its_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for (target, check) in wharf_fuzz_checks::TARGETS {
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                    continue;
                }
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(outcome.is_ok(), "{target}: {} fails its check again", path.display());
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 20, "only {replayed} inputs were found under {}", root.display());
}
