//! Bytes a client writes to the RPC socket, through the embedded host's processor.
//! The body is `bdev_ioband_fuzz::rpc_wire` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bdev_ioband_fuzz::rpc_wire(data));
