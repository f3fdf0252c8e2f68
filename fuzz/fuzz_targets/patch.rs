#![no_main]
//! See idlcm::fuzzing::patch.
libfuzzer_sys::fuzz_target!(|data: &[u8]| idlcm::fuzzing::patch(data));
