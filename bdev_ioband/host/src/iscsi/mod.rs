//! The iSCSI target front end (RFC 7143, the subset Linux and libiscsi initiators use):
//! portal groups listen on TCP; a login (security stage with AuthMethod=None, operational
//! negotiation) opens a discovery session (SendTargets) or a normal session on a target
//! node, whose LUNs are bdevs; in full feature phase SCSI commands run through the SCSI
//! layer ([`crate::scsi`]) as bdev I/O tagged with the group `initiator:<initiator IQN>`.
//!
//! Configured with SPDK's own methods (`iscsi_create_portal_group`,
//! `iscsi_create_initiator_group`, `iscsi_create_target_node`, ...). One connection per
//! session (MaxConnections=1), ErrorRecoveryLevel=0, no CHAP.
//!
//! Malformed input (a bad header or data digest, a data segment longer than declared, a
//! PDU that breaks the protocol) closes that connection with a logged reason; a well-formed
//! but unsupported PDU gets a Reject. I/O submitted before a connection goes completes and
//! is counted (see [`conn`]).
//!
//! Threading: the registry ([`Iscsi`]), portal listeners and connections belong to the
//! main reactor, which polls them (one poller, every pass); the registry lives in the
//! [`crate::app::App`].

mod cmd;
pub mod conn;
mod crc32c;
mod login;
pub mod pdu;
mod server;
pub mod text;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crc32c::crc32c;
pub use server::{Iscsi, Lun, Target};

use crate::bdev::BdevError;
use crate::reactor::ReactorError;

/// One portal: an address to listen on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Portal {
    /// IP address (or host name) to listen on.
    pub host: String,
    /// TCP port, as a string (SPDK's type).
    pub port: String,
}

/// The params of `iscsi_create_portal_group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalGroupConfig {
    /// Tag, 1..=65535.
    pub tag: i32,
    /// Where to listen.
    pub portals: Vec<Portal>,
    /// Not reported by discovery.
    #[serde(default)]
    pub private: bool,
    /// Accepted as SPDK does; this host always listens at once.
    #[serde(default, skip_serializing)]
    pub wait: bool,
}

/// The params of `iscsi_create_initiator_group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitiatorGroupConfig {
    /// Tag, 1..=65535.
    pub tag: i32,
    /// Initiator names allowed (`ANY`, or names; a leading `!` denies).
    pub initiators: Vec<String>,
    /// Netmasks allowed (`ANY`, `a.b.c.d/len`, `a.b.c.d`).
    pub netmasks: Vec<String>,
}

/// One LUN of a target node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LunConfig {
    /// The bdev.
    pub bdev_name: String,
    /// Its LUN number.
    pub lun_id: i32,
}

/// A portal group and an initiator group a target is reachable through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgIgMap {
    /// Portal group tag.
    pub pg_tag: i32,
    /// Initiator group tag.
    pub ig_tag: i32,
}

/// The params of `iscsi_create_target_node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetNodeConfig {
    /// Name; without an `iqn.`/`eui.`/`naa.` prefix, the node base is prepended.
    pub name: String,
    /// Alias (TargetAlias).
    pub alias_name: String,
    /// Portal and initiator groups.
    pub pg_ig_maps: Vec<PgIgMap>,
    /// LUNs.
    pub luns: Vec<LunConfig>,
    /// Commands in flight per session (the CmdSN window).
    pub queue_depth: i32,
    /// CHAP off (the only mode here).
    #[serde(default)]
    pub disable_chap: bool,
    /// CHAP required: refused, CHAP is not implemented.
    #[serde(default)]
    pub require_chap: bool,
    /// Mutual CHAP: refused likewise.
    #[serde(default)]
    pub mutual_chap: bool,
    /// CHAP group: only 0.
    #[serde(default)]
    pub chap_group: i32,
    /// Require CRC32C header digests.
    #[serde(default)]
    pub header_digest: bool,
    /// Require CRC32C data digests.
    #[serde(default)]
    pub data_digest: bool,
}

/// The params of `iscsi_set_options` (SPDK's names); those that size SPDK's pools are
/// accepted and kept but change nothing here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Prefix of target names given without one.
    pub node_base: String,
    /// CHAP secrets file (CHAP is not implemented: must stay empty).
    pub auth_file: String,
    /// NOP-In timeout, seconds (kept).
    pub nop_timeout: i32,
    /// NOP-In interval, seconds (kept; the target sends no NOP-In pings).
    pub nop_in_interval: i32,
    /// CHAP off for discovery (the only mode).
    pub disable_chap: bool,
    /// CHAP required for discovery: refused.
    pub require_chap: bool,
    /// Mutual CHAP for discovery: refused.
    pub mutual_chap: bool,
    /// CHAP group for discovery: only 0.
    pub chap_group: i32,
    /// Most sessions at once.
    pub max_sessions: u32,
    /// Most commands in flight per session (caps a node's queue_depth).
    pub max_queue_depth: u32,
    /// MaxConnections offered (only 1 is supported).
    pub max_connections_per_session: u32,
    /// DefaultTime2Wait offered.
    pub default_time2wait: u32,
    /// DefaultTime2Retain offered.
    pub default_time2retain: u32,
    /// FirstBurstLength offered.
    pub first_burst_length: u32,
    /// MaxBurstLength offered (not an SPDK option; this host's own).
    pub max_burst_length: u32,
    /// MaxRecvDataSegmentLength declared (this host's own option).
    pub max_recv_data_segment_length: u32,
    /// InitialR2T offered (this host's own option).
    pub initial_r2t: bool,
    /// ImmediateData offered.
    pub immediate_data: bool,
    /// ErrorRecoveryLevel: only 0.
    pub error_recovery_level: u32,
    /// Accepted and kept.
    pub allow_duplicated_isid: bool,
    /// Accepted and kept.
    pub max_large_datain_per_connection: u32,
    /// MaxOutstandingR2T offered.
    pub max_r2t_per_connection: u32,
    /// Accepted and kept.
    pub pdu_pool_size: u32,
    /// Accepted and kept.
    pub immediate_data_pool_size: u32,
    /// Accepted and kept.
    pub data_out_pool_size: u32,
}

/// SPDK's default node base.
pub const DEFAULT_NODE_BASE: &str = "iqn.2016-06.io.spdk";

impl Default for Options {
    fn default() -> Options {
        let offer = text::Offer::default();
        Options {
            node_base: DEFAULT_NODE_BASE.to_owned(),
            auth_file: String::new(),
            nop_timeout: 60,
            nop_in_interval: 30,
            disable_chap: false,
            require_chap: false,
            mutual_chap: false,
            chap_group: 0,
            max_sessions: 128,
            max_queue_depth: 128,
            max_connections_per_session: offer.max_connections,
            default_time2wait: offer.default_time2wait_secs,
            default_time2retain: offer.default_time2retain_secs,
            first_burst_length: offer.first_burst_length_bytes,
            max_burst_length: offer.max_burst_length_bytes,
            max_recv_data_segment_length: offer.max_recv_data_segment_length_bytes,
            initial_r2t: offer.initial_r2t,
            immediate_data: offer.immediate_data,
            error_recovery_level: 0,
            allow_duplicated_isid: false,
            max_large_datain_per_connection: 64,
            max_r2t_per_connection: offer.max_outstanding_r2t,
            pdu_pool_size: 0,
            immediate_data_pool_size: 0,
            data_out_pool_size: 0,
        }
    }
}

impl Options {
    /// What a login offers.
    pub fn offer(&self) -> text::Offer {
        text::Offer {
            max_recv_data_segment_length_bytes: self.max_recv_data_segment_length,
            max_burst_length_bytes: self.max_burst_length,
            first_burst_length_bytes: self.first_burst_length,
            immediate_data: self.immediate_data,
            initial_r2t: self.initial_r2t,
            max_outstanding_r2t: self.max_r2t_per_connection,
            max_connections: self.max_connections_per_session,
            default_time2wait_secs: self.default_time2wait,
            default_time2retain_secs: self.default_time2retain,
        }
    }

    /// Checks the values this host supports; the error names the field.
    pub fn validate(&self) -> Result<(), IscsiError> {
        let bad = |param: &'static str, reason: &str| {
            Err(IscsiError::Invalid {
                param,
                reason: reason.to_owned(),
            })
        };
        if validate_iscsi_name(&self.node_base).is_err() || self.node_base.is_empty() {
            return bad("node_base", "not a valid iSCSI name prefix");
        }
        if !self.auth_file.is_empty()
            || self.require_chap
            || self.mutual_chap
            || self.chap_group != 0
        {
            return bad("require_chap", "CHAP is not supported by this host");
        }
        if self.max_connections_per_session != 1 {
            return bad("max_connections_per_session", "only 1 is supported");
        }
        if self.error_recovery_level != 0 {
            return bad("error_recovery_level", "only 0 is supported");
        }
        if !(512..=16_777_215).contains(&self.max_recv_data_segment_length) {
            return bad("max_recv_data_segment_length", "must be 512..=16777215");
        }
        if !(512..=16_777_215).contains(&self.max_burst_length) {
            return bad("max_burst_length", "must be 512..=16777215");
        }
        if !(512..=self.max_burst_length).contains(&self.first_burst_length) {
            return bad("first_burst_length", "must be 512..=max_burst_length");
        }
        if !(1..=65535).contains(&self.max_r2t_per_connection) {
            return bad("max_r2t_per_connection", "must be 1..=65535");
        }
        if !(1..=4096).contains(&self.max_queue_depth) {
            return bad("max_queue_depth", "must be 1..=4096");
        }
        if self.default_time2wait > 3600 || self.default_time2retain > 3600 {
            return bad("default_time2wait", "must be 0..=3600");
        }
        if self.max_sessions == 0 {
            return bad("max_sessions", "must be at least 1");
        }
        Ok(())
    }
}

/// Checks an iSCSI name (RFC 3722 characters, at most 223 bytes).
pub fn validate_iscsi_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 223 {
        return Err("an iSCSI name is 1 to 223 bytes");
    }
    if name
        .chars()
        .any(|c| !(c.is_alphanumeric() || matches!(c, '-' | '.' | ':')))
    {
        return Err("an iSCSI name has only letters, digits, '-', '.' and ':'");
    }
    Ok(())
}

/// Errors of the iSCSI control path.
#[derive(Debug, Error)]
pub enum IscsiError {
    /// No such portal group, initiator group or target node.
    #[error("{0} not found")]
    NotFound(String),
    /// It exists already.
    #[error("{0} exists already")]
    Exists(String),
    /// In use by a target node.
    #[error("{0}")]
    Busy(String),
    /// A parameter is not acceptable.
    #[error("invalid {param}: {reason}")]
    Invalid {
        /// The parameter.
        param: &'static str,
        /// Why.
        reason: String,
    },
    /// The bdev could not be used.
    #[error(transparent)]
    Bdev(#[from] BdevError),
    /// A listening socket could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not on a reactor.
    #[error(transparent)]
    Reactor(#[from] ReactorError),
}

impl IscsiError {
    /// The errno a host reports for this error (positive).
    pub fn errno(&self) -> i32 {
        match self {
            IscsiError::NotFound(_) => 19,
            IscsiError::Exists(_) => 17,
            IscsiError::Busy(_) => 16,
            IscsiError::Invalid { .. } => 22,
            IscsiError::Bdev(e) => e.errno(),
            IscsiError::Io { source, .. } => source.raw_os_error().unwrap_or(5),
            IscsiError::Reactor(_) => 5,
        }
    }
}
