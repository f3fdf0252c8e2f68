#![no_main]
//! See idlcm::fuzzing::filter.
libfuzzer_sys::fuzz_target!(|data: &[u8]| idlcm::fuzzing::filter(data));
