#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kinglet_fuzz::compile::run(data));
