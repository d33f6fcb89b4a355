//! The devices/settings write languages, group and value text, listings, message bound.
//! The body is `bdev_ioband_fuzz::text_grammar` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bdev_ioband_fuzz::text_grammar(data));
