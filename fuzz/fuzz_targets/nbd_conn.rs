//! Bytes an NBD client writes, to one connection of a live NBD export beside a well-behaved one.
//! The body is `bdev_ioband_fuzz::nbd_conn` (fuzz/src/nbd_conn.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bdev_ioband_fuzz::nbd_conn(data));
