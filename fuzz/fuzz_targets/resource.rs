#![no_main]
//! See idlcm::fuzzing::resource.
libfuzzer_sys::fuzz_target!(|data: &[u8]| idlcm::fuzzing::resource(data));
