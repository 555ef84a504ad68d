//! See `eye::fuzzing::check` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eye::fuzzing::check(data));
