//! Replays every committed fuzz input (fuzz/corpus) and every crash the
//! fuzzer found (fuzz/regressions) through the host's checks, on stable Rust.

#[test]
fn every_committed_fuzz_input_passes_its_checks() {
    let mut replayed = 0;
    for (target, check) in wharf_fuzz_checks::TARGETS {
        replayed += wharf_fuzz_replay::replay(target, *check);
    }
    assert!(replayed >= 20, "only {replayed} inputs were found under {}", wharf_fuzz_replay::fuzz_dir().display());
}
