#![no_main]
//! See idlcm::fuzzing::request.
libfuzzer_sys::fuzz_target!(|data: &[u8]| idlcm::fuzzing::request(data));
