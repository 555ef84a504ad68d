//! See `wharf_fuzz_checks::manifest` for what this target checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| wharf_fuzz_checks::manifest(data));
