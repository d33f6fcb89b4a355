//! The SCSI block-command layer of the iSCSI front end, independent of iSCSI: a [`Task`]
//! takes a CDB, the geometry of its logical unit ([`LunInfo`]) and the data-out buffer, and
//! yields block requests (read, write, flush of a range) to submit one at a time, then a
//! [`Response`]: status, sense data, data-in and the transfer length the command asked for
//! (from which a transport computes residuals).
//!
//! Commands: TEST UNIT READY, REQUEST SENSE, INQUIRY (standard and the VPD pages 0x00, 0x80,
//! 0x83, 0xB0, 0xB1, 0xB2), READ CAPACITY 10/16, READ/WRITE 6/10/12/16, WRITE AND VERIFY
//! 10/12/16, VERIFY 10/12/16, SYNCHRONIZE CACHE 10/16, UNMAP, WRITE SAME 10/16 (with UNMAP
//! and NDOB), COMPARE AND WRITE, MODE SENSE 6/10 (caching, control, all pages), START STOP
//! UNIT, PREVENT ALLOW MEDIUM REMOVAL, REPORT LUNS. The block API has only read, write and
//! flush: UNMAP and WRITE SAME are writes (zeros for UNMAP, so LBPRZ is reported and a read
//! after an unmap returns zeros), VERIFY and COMPARE AND WRITE are a read and a compare
//! (and a write). Anything else is CHECK CONDITION, ILLEGAL REQUEST with the sense the
//! standards give (INVALID COMMAND OPERATION CODE, INVALID FIELD IN CDB, LBA OUT OF RANGE).
//!
//! Threading: a task is plain data owned by whoever runs it (an iSCSI connection on the
//! main reactor); nothing here touches a socket, a bdev or a reactor.

mod pages;
pub mod sense;
mod task;

pub use sense::{Sense, SenseKey};
pub use task::{BlockOp, BlockReq, Next, Response, Task};

/// SCSI status GOOD.
pub const STATUS_GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION.
pub const STATUS_CHECK_CONDITION: u8 = 0x02;
/// SCSI status BUSY.
pub const STATUS_BUSY: u8 = 0x08;
/// SCSI status TASK SET FULL.
pub const STATUS_TASK_SET_FULL: u8 = 0x28;

/// Largest READ/WRITE transfer, in bytes (the block limits page reports it in blocks).
pub const MAX_TRANSFER_BYTES: u32 = 32 << 20;
/// Chunk in which WRITE SAME, UNMAP and VERIFY walk their range (one chunk in flight).
pub const CHUNK_BYTES: u64 = 1 << 20;
/// Most blocks of one COMPARE AND WRITE.
pub const MAX_COMPARE_AND_WRITE_BLOCKS: u8 = 128;
/// Most block descriptors in one UNMAP parameter list.
pub const MAX_UNMAP_DESCRIPTORS: u32 = 256;

/// What a task needs to know about its logical unit and target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunInfo {
    /// Bytes per block.
    pub block_size: u32,
    /// Blocks.
    pub num_blocks: u64,
    /// The bdev's name (the unit serial number and the product's vendor-specific id).
    pub bdev_name: String,
    /// The bdev's UUID (the NAA designator is derived from it).
    pub uuid: String,
    /// The target's name (the SCSI name string designator of the target device).
    pub target_name: String,
    /// This LUN's number.
    pub lun_id: u16,
}

/// Decodes the 8-byte LUN field of a transport into a LUN number (peripheral and flat
/// addressing, the two forms [`encode_lun`] writes), or `None` for other forms.
pub fn decode_lun(field: [u8; 8]) -> Option<u16> {
    if field[2..].iter().any(|&b| b != 0) {
        return None;
    }
    match field[0] >> 6 {
        0 if field[0] == 0 => Some(u16::from(field[1])),
        1 => Some((u16::from(field[0] & 0x3f) << 8) | u16::from(field[1])),
        _ => None,
    }
}

/// Encodes a LUN number as REPORT LUNS and transports write it (peripheral addressing
/// below 256, flat space addressing above).
pub fn encode_lun(lun: u16) -> [u8; 8] {
    let mut f = [0u8; 8];
    if lun < 256 {
        f[1] = (lun & 0xff) as u8;
    } else {
        f[0] = 0x40 | ((lun >> 8) as u8 & 0x3f);
        f[1] = (lun & 0xff) as u8;
    }
    f
}

#[cfg(test)]
mod tests;
