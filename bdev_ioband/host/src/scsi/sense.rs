//! Sense data (SPC-4 fixed format, response code 0x70): the sense keys and additional sense
//! codes the block layer reports.
//!
//! Threading: plain values.

/// A sense key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SenseKey {
    /// NO SENSE.
    NoSense = 0x0,
    /// NOT READY.
    NotReady = 0x2,
    /// MEDIUM ERROR.
    MediumError = 0x3,
    /// HARDWARE ERROR.
    HardwareError = 0x4,
    /// ILLEGAL REQUEST.
    IllegalRequest = 0x5,
    /// UNIT ATTENTION.
    UnitAttention = 0x6,
    /// ABORTED COMMAND.
    AbortedCommand = 0xb,
    /// MISCOMPARE.
    Miscompare = 0xe,
}

/// One sense: key, additional sense code and qualifier, and the INFORMATION field (set:
/// the VALID bit) or a sense-key-specific field pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    /// The sense key.
    pub key: SenseKey,
    /// Additional sense code.
    pub asc: u8,
    /// Its qualifier.
    pub ascq: u8,
    /// INFORMATION (a miscompare's byte offset), with the VALID bit.
    pub information: Option<u32>,
    /// Sense-key specific field pointer: (in the CDB rather than the parameter list, byte).
    pub field: Option<(bool, u16)>,
}

impl Sense {
    const fn new(key: SenseKey, asc: u8, ascq: u8) -> Sense {
        Sense {
            key,
            asc,
            ascq,
            information: None,
            field: None,
        }
    }

    /// ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE.
    pub const INVALID_OPCODE: Sense = Sense::new(SenseKey::IllegalRequest, 0x20, 0x00);
    /// ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE.
    pub const LBA_OUT_OF_RANGE: Sense = Sense::new(SenseKey::IllegalRequest, 0x21, 0x00);
    /// ILLEGAL REQUEST, INVALID FIELD IN CDB.
    pub const INVALID_FIELD_IN_CDB: Sense = Sense::new(SenseKey::IllegalRequest, 0x24, 0x00);
    /// ABORTED COMMAND, PROTOCOL SERVICE CRC ERROR: what iSCSI reports for write data lost
    /// on the way (a digest error, or a DataSN gap that implies one; RFC 7143 7.8.1).
    pub const PROTOCOL_SERVICE_CRC_ERROR: Sense = Sense::new(SenseKey::AbortedCommand, 0x47, 0x05);
    /// ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED.
    pub const LUN_NOT_SUPPORTED: Sense = Sense::new(SenseKey::IllegalRequest, 0x25, 0x00);
    /// ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST.
    pub const INVALID_FIELD_IN_PARAMETER_LIST: Sense =
        Sense::new(SenseKey::IllegalRequest, 0x26, 0x00);
    /// ILLEGAL REQUEST, PARAMETER LIST LENGTH ERROR.
    pub const PARAMETER_LIST_LENGTH_ERROR: Sense = Sense::new(SenseKey::IllegalRequest, 0x1a, 0x00);
    /// ILLEGAL REQUEST, SAVING PARAMETERS NOT SUPPORTED.
    pub const SAVING_NOT_SUPPORTED: Sense = Sense::new(SenseKey::IllegalRequest, 0x39, 0x00);
    /// ILLEGAL REQUEST, INVALID FIELD IN INFORMATION UNIT (transfer lengths disagree).
    pub const INVALID_FIELD_IN_INFORMATION_UNIT: Sense =
        Sense::new(SenseKey::IllegalRequest, 0x0e, 0x03);
    /// MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION.
    pub const MISCOMPARE: Sense = Sense::new(SenseKey::Miscompare, 0x1d, 0x00);
    /// MEDIUM ERROR, WRITE ERROR.
    pub const WRITE_ERROR: Sense = Sense::new(SenseKey::MediumError, 0x0c, 0x00);
    /// MEDIUM ERROR, UNRECOVERED READ ERROR.
    pub const READ_ERROR: Sense = Sense::new(SenseKey::MediumError, 0x11, 0x00);
    /// ABORTED COMMAND, no additional code (the task was aborted).
    pub const ABORTED: Sense = Sense::new(SenseKey::AbortedCommand, 0x00, 0x00);

    /// The same sense with the INFORMATION field set.
    pub fn with_information(mut self, information: u32) -> Sense {
        self.information = Some(information);
        self
    }

    /// The same sense pointing at byte `byte` of the CDB.
    pub fn in_cdb(mut self, byte: u16) -> Sense {
        self.field = Some((true, byte));
        self
    }

    /// Fixed-format sense data (18 bytes).
    pub fn to_fixed(&self) -> [u8; 18] {
        let mut s = [0u8; 18];
        s[0] = 0x70;
        if let Some(info) = self.information {
            s[0] |= 0x80;
            s[3..7].copy_from_slice(&info.to_be_bytes());
        }
        s[2] = self.key as u8;
        s[7] = 10;
        s[12] = self.asc;
        s[13] = self.ascq;
        if let Some((cdb, byte)) = self.field {
            s[15] = 0x80 | if cdb { 0x40 } else { 0 };
            s[16..18].copy_from_slice(&byte.to_be_bytes());
        }
        s
    }

    /// Descriptor-format sense data without descriptors (8 bytes; REQUEST SENSE with DESC).
    pub fn to_descriptor(&self) -> [u8; 8] {
        [0x72, self.key as u8, self.asc, self.ascq, 0, 0, 0, 0]
    }
}
