//! Bytes an initiator writes, to one connection of a live iSCSI target beside a well-behaved one.
//! The body is `bdev_ioband_fuzz::iscsi_conn` (fuzz/src/iscsi_conn.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bdev_ioband_fuzz::iscsi_conn(data));
