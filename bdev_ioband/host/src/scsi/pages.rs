//! The data-in of the commands that answer from the unit's geometry alone: INQUIRY
//! (standard data and VPD pages), READ CAPACITY 10/16, MODE SENSE 6/10 and REPORT LUNS.
//! Each returns the whole page (or the sense to report); the task truncates it to the
//! allocation length.
//!
//! Threading: plain functions.

use super::{
    encode_lun, LunInfo, Sense, CHUNK_BYTES, MAX_COMPARE_AND_WRITE_BLOCKS, MAX_TRANSFER_BYTES,
    MAX_UNMAP_DESCRIPTORS,
};

const VENDOR: &[u8; 8] = b"IOBAND  ";
const PRODUCT: &[u8; 16] = b"ioband disk     ";
const REVISION: &[u8; 4] = b"0001";

/// Peripheral byte of a LUN that exists: qualifier 0, direct-access block device.
const PERIPHERAL_DISK: u8 = 0x00;
/// Peripheral byte for a LUN that is not there: qualifier 3, type 0x1f.
pub(super) const PERIPHERAL_NONE: u8 = 0x7f;

/// Standard INQUIRY data (96 bytes, with version descriptors).
pub(super) fn standard_inquiry(lun: Option<&LunInfo>) -> Vec<u8> {
    let mut d = vec![0u8; 96];
    d[0] = if lun.is_some() {
        PERIPHERAL_DISK
    } else {
        PERIPHERAL_NONE
    };
    d[2] = 0x06; // SPC-4
    d[3] = 0x02 | 0x10; // response data format 2, HISUP
    d[4] = 96 - 5;
    d[7] = 0x02; // CMDQUE
    d[8..16].copy_from_slice(VENDOR);
    d[16..32].copy_from_slice(PRODUCT);
    d[32..36].copy_from_slice(REVISION);
    // Version descriptors: SAM-5, iSCSI, SPC-4, SBC-3.
    for (i, v) in [0x00a0u16, 0x0960, 0x0460, 0x04c0].iter().enumerate() {
        let at = 58 + 2 * i;
        d[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    d
}

fn vpd(page: u8, body: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(4 + body.len());
    d.push(PERIPHERAL_DISK);
    d.push(page);
    d.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
    d.extend_from_slice(body);
    d
}

/// The VPD pages supported.
pub(super) const VPD_PAGES: [u8; 6] = [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];

/// A VPD page, or INVALID FIELD IN CDB for one not supported.
pub(super) fn vpd_page(lun: &LunInfo, page: u8) -> Result<Vec<u8>, Sense> {
    match page {
        0x00 => Ok(vpd(page, &VPD_PAGES)),
        0x80 => Ok(vpd(page, serial(lun).as_bytes())),
        0x83 => Ok(vpd(page, &device_identification(lun))),
        0xb0 => Ok(vpd(page, &block_limits(lun))),
        0xb1 => {
            let mut b = vec![0u8; 0x3c];
            b[1] = 0x01; // medium rotation rate: non-rotating
            Ok(vpd(page, &b))
        }
        0xb2 => {
            // Threshold exponent 0; LBPU, LBPWS, LBPWS10; LBPRZ (001b); provisioning
            // type 1: resource provisioned (an unmap writes zeros).
            Ok(vpd(page, &[0, 0x80 | 0x40 | 0x20 | 0x04, 0x01, 0]))
        }
        _ => Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(2)),
    }
}

fn serial(lun: &LunInfo) -> String {
    let s: String = lun
        .bdev_name
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect();
    if s.is_empty() {
        "ioband".to_owned()
    } else {
        s
    }
}

/// FNV-1a, for a stable 64-bit identifier from the unit's UUID and LUN.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn device_identification(lun: &LunInfo) -> Vec<u8> {
    let mut d = Vec::new();
    // NAA 6 (IEEE registered extended), binary, associated with the LUN: a locally
    // administered id derived from the bdev's UUID.
    let id = fnv1a(lun.uuid.as_bytes());
    let mut naa = [0u8; 16];
    naa[0] = 0x60 | 0x02; // NAA 6, OUI 0x02_xxxx (locally administered)
    naa[1..8].copy_from_slice(&id.to_be_bytes()[1..8]);
    naa[8..16].copy_from_slice(&fnv1a(lun.bdev_name.as_bytes()).to_be_bytes());
    d.extend_from_slice(&[0x01, 0x03, 0x00, 16]);
    d.extend_from_slice(&naa);
    // T10 vendor id, ASCII: vendor then the serial.
    let mut t10 = VENDOR.to_vec();
    t10.extend_from_slice(serial(lun).as_bytes());
    d.extend_from_slice(&[0x02, 0x01, 0x00, u8::try_from(t10.len()).unwrap_or(0)]);
    d.extend_from_slice(&t10);
    // SCSI name string of the target device, UTF-8, NUL-terminated, a multiple of 4.
    let mut name: Vec<u8> = lun.target_name.bytes().take(220).collect();
    name.push(0);
    while name.len() % 4 != 0 {
        name.push(0);
    }
    d.extend_from_slice(&[0x53, 0x28, 0x00, u8::try_from(name.len()).unwrap_or(0)]);
    d.extend_from_slice(&name);
    // Relative target port 1, target port group 1 (associated with the port).
    d.extend_from_slice(&[0x61, 0x94, 0x00, 4, 0, 0, 0, 1]);
    d.extend_from_slice(&[0x61, 0x95, 0x00, 4, 0, 0, 0, 1]);
    d
}

fn block_limits(lun: &LunInfo) -> Vec<u8> {
    let bs = u64::from(lun.block_size.max(1));
    let max_xfer_blocks = u32::try_from((u64::from(MAX_TRANSFER_BYTES) / bs).max(1)).unwrap_or(1);
    let mut b = vec![0u8; 0x3c];
    b[0] = 0x01; // WSNZ: WRITE SAME with 0 blocks is refused
    b[1] = MAX_COMPARE_AND_WRITE_BLOCKS;
    b[4..8].copy_from_slice(&max_xfer_blocks.to_be_bytes());
    b[8..12].copy_from_slice(
        &u32::try_from((CHUNK_BYTES / bs).max(1))
            .unwrap_or(1)
            .to_be_bytes(),
    );
    // Maximum unmap LBA count and block descriptor count, optimal unmap granularity 1.
    b[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
    b[20..24].copy_from_slice(&MAX_UNMAP_DESCRIPTORS.to_be_bytes());
    b[24..28].copy_from_slice(&1u32.to_be_bytes());
    // Maximum WRITE SAME length: the whole unit.
    b[32..40].copy_from_slice(&lun.num_blocks.to_be_bytes());
    b
}

/// READ CAPACITY (10) data.
pub(super) fn read_capacity10(lun: &LunInfo) -> Vec<u8> {
    let last = lun.num_blocks.saturating_sub(1);
    let last = u32::try_from(last).unwrap_or(u32::MAX);
    let mut d = last.to_be_bytes().to_vec();
    d.extend_from_slice(&lun.block_size.to_be_bytes());
    d
}

/// READ CAPACITY (16) data: LBPME and LBPRZ set.
pub(super) fn read_capacity16(lun: &LunInfo) -> Vec<u8> {
    let mut d = vec![0u8; 32];
    d[0..8].copy_from_slice(&lun.num_blocks.saturating_sub(1).to_be_bytes());
    d[8..12].copy_from_slice(&lun.block_size.to_be_bytes());
    d[14] = 0x80 | 0x40;
    d
}

/// REPORT LUNS data.
pub(super) fn report_luns(luns: &[u16]) -> Vec<u8> {
    let mut d = vec![0u8; 8];
    let len = u32::try_from(luns.len() * 8).unwrap_or(u32::MAX);
    d[0..4].copy_from_slice(&len.to_be_bytes());
    for &l in luns {
        d.extend_from_slice(&encode_lun(l));
    }
    d
}

const CACHING_PAGE: u8 = 0x08;
const CONTROL_PAGE: u8 = 0x0a;
const ALL_PAGES: u8 = 0x3f;

fn caching_page(changeable: bool) -> [u8; 20] {
    let mut p = [0u8; 20];
    p[0] = CACHING_PAGE;
    p[1] = 0x12;
    if !changeable {
        p[2] = 0x04; // WCE: a write cache that SYNCHRONIZE CACHE flushes
    }
    p
}

fn control_page(changeable: bool) -> [u8; 12] {
    let mut p = [0u8; 12];
    p[0] = CONTROL_PAGE;
    p[1] = 0x0a;
    if !changeable {
        p[3] = 0x10; // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering allowed
        p[8] = 0xff; // BUSY TIMEOUT PERIOD: unlimited
        p[9] = 0xff;
    }
    p
}

/// MODE SENSE data: `ten` for the 10-byte form. `cdb_page` is byte 2 (PC and page code),
/// `subpage` byte 3, `dbd` whether block descriptors are disabled.
pub(super) fn mode_sense(
    lun: &LunInfo,
    ten: bool,
    cdb_page: u8,
    subpage: u8,
    dbd: bool,
) -> Result<Vec<u8>, Sense> {
    let pc = cdb_page >> 6;
    let page = cdb_page & 0x3f;
    if pc == 3 {
        return Err(Sense::SAVING_NOT_SUPPORTED);
    }
    let changeable = pc == 1;
    let mut pages = Vec::new();
    match (page, subpage) {
        (CACHING_PAGE, 0) => pages.extend_from_slice(&caching_page(changeable)),
        (CONTROL_PAGE, 0) => pages.extend_from_slice(&control_page(changeable)),
        (ALL_PAGES, 0 | 0xff) => {
            pages.extend_from_slice(&caching_page(changeable));
            pages.extend_from_slice(&control_page(changeable));
        }
        (_, 0) => return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(2)),
        _ => return Err(Sense::INVALID_FIELD_IN_CDB.in_cdb(3)),
    }
    let mut desc = Vec::new();
    if !dbd {
        let blocks = u32::try_from(lun.num_blocks.min(0xff_ffff)).unwrap_or(0xff_ffff);
        desc.extend_from_slice(&blocks.to_be_bytes());
        desc.extend_from_slice(&lun.block_size.to_be_bytes());
        desc[4] = 0; // density code lives in byte 0; byte 4 reserved
        desc[0] = 0;
    }
    let mut d = Vec::with_capacity(8 + desc.len() + pages.len());
    // Device-specific parameter: DPOFUA.
    let dev_specific = 0x10;
    if ten {
        let len = u16::try_from(6 + desc.len() + pages.len()).unwrap_or(u16::MAX);
        d.extend_from_slice(&len.to_be_bytes());
        d.extend_from_slice(&[0, dev_specific, 0, 0]);
        d.extend_from_slice(&u16::try_from(desc.len()).unwrap_or(0).to_be_bytes());
    } else {
        let len = u8::try_from(3 + desc.len() + pages.len()).unwrap_or(u8::MAX);
        d.extend_from_slice(&[len, 0, dev_specific, u8::try_from(desc.len()).unwrap_or(0)]);
    }
    d.extend_from_slice(&desc);
    d.extend_from_slice(&pages);
    Ok(d)
}
