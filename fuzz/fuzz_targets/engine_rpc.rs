//! Sequences of bdev_ioband_* calls decoded as the SPDK host decodes them, on one engine.
//! The body is `bdev_ioband_fuzz::engine_rpc` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bdev_ioband_fuzz::engine_rpc(data));
