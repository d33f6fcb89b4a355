//! CDBs, data-out and geometry through the SCSI task against a disk in memory.
//! The body is `bdev_ioband_fuzz::scsi_cdb` (fuzz/src/scsi_cdb.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bdev_ioband_fuzz::scsi_cdb(data));
