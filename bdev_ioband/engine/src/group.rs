//! Group identity and per-group statistics.
//!
//! A group is keyed by `(type, id)`. Keys are values owned by the control plane; the I/O
//! path uses the compact [`GroupId`] handle that the engine hands out, and each dispatched
//! I/O carries a [`Ticket`] back to its completion.

use serde::{Deserialize, Serialize};

use crate::EngineError;

/// Longest initiator name accepted (NVMe NQNs are at most 223 bytes; iSCSI names 223).
pub const MAX_INITIATOR_LEN: usize = 223;

/// Which kind of identity a group is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupType {
    /// The default group: untagged I/O and I/O whose tag has no group.
    None,
    /// NVMe-oF host NQN or iSCSI initiator IQN.
    Initiator,
    /// cgroup v2 id.
    Cgroup,
    /// A number the submitter sets.
    Tag,
}

impl GroupType {
    /// The name used in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::None => "none",
            GroupType::Initiator => "initiator",
            GroupType::Cgroup => "cgroup",
            GroupType::Tag => "tag",
        }
    }
}

/// The identity of a group: its type and id. `None` is the device's default group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKey {
    /// The default group.
    None,
    /// An initiator name (host NQN or IQN).
    Initiator(String),
    /// A cgroup id.
    Cgroup(u64),
    /// A submitter's tag.
    Tag(u32),
}

impl GroupKey {
    /// The key's type.
    pub fn group_type(&self) -> GroupType {
        match self {
            GroupKey::None => GroupType::None,
            GroupKey::Initiator(_) => GroupType::Initiator,
            GroupKey::Cgroup(_) => GroupType::Cgroup,
            GroupKey::Tag(_) => GroupType::Tag,
        }
    }

    /// Builds a key from a type and the id's text, checking the id.
    pub fn from_parts(group_type: GroupType, id: &str) -> Result<GroupKey, EngineError> {
        let number_err = |what: &str| {
            EngineError::Parse(format!("{} id '{id}' is not {what}", group_type.as_str()))
        };
        match group_type {
            GroupType::None if id.is_empty() => Ok(GroupKey::None),
            GroupType::None => Err(EngineError::Parse(format!(
                "group type none takes no id (got '{id}')"
            ))),
            GroupType::Initiator => {
                validate_initiator(id)?;
                Ok(GroupKey::Initiator(id.to_owned()))
            }
            GroupType::Cgroup => id
                .parse()
                .map(GroupKey::Cgroup)
                .map_err(|_| number_err("an unsigned 64-bit number")),
            GroupType::Tag => id
                .parse()
                .map(GroupKey::Tag)
                .map_err(|_| number_err("an unsigned 32-bit number")),
        }
    }

    /// Parses `none`, `default`, `initiator:<name>`, `cgroup:<n>` or `tag:<n>`.
    ///
    /// The split is at the first `:`, so an NQN's own colons stay in the id.
    pub fn parse(text: &str) -> Result<GroupKey, EngineError> {
        if text == "none" || text == "default" {
            return Ok(GroupKey::None);
        }
        let (kind, id) = text.split_once(':').ok_or_else(|| {
            EngineError::Parse(format!(
                "group '{text}' is not of the form none, initiator:<name>, cgroup:<id> or tag:<id>"
            ))
        })?;
        let group_type = match kind {
            "initiator" => GroupType::Initiator,
            "cgroup" => GroupType::Cgroup,
            "tag" => GroupType::Tag,
            other => {
                return Err(EngineError::Parse(format!(
                    "unknown group type '{other}' (expected initiator, cgroup or tag)"
                )))
            }
        };
        GroupKey::from_parts(group_type, id)
    }

    /// The id part as text (empty for the default group).
    pub fn id_string(&self) -> String {
        match self {
            GroupKey::None => String::new(),
            GroupKey::Initiator(name) => name.clone(),
            GroupKey::Cgroup(id) => id.to_string(),
            GroupKey::Tag(id) => id.to_string(),
        }
    }
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupKey::None => f.write_str("none"),
            GroupKey::Initiator(name) => write!(f, "initiator:{name}"),
            GroupKey::Cgroup(id) => write!(f, "cgroup:{id}"),
            GroupKey::Tag(id) => write!(f, "tag:{id}"),
        }
    }
}

impl Serialize for GroupKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GroupKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        GroupKey::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn validate_initiator(id: &str) -> Result<(), EngineError> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_INITIATOR_LEN {
        "it is longer than 223 bytes"
    } else if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "it contains white space or control characters"
    } else {
        return Ok(());
    };
    Err(EngineError::InvalidName {
        name: id.to_owned(),
        reason,
    })
}

/// Handle of an attached group, valid until the group is detached.
///
/// The generation makes a handle that outlives its group harmless: the engine treats it
/// as the device's default group on submit and ignores it (but for share counters) on
/// completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

/// Direction of an I/O, for statistics (and, later, for the cost model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Read.
    Read,
    /// Write, or anything that changes data (unmap, write-zeroes).
    Write,
    /// No data moved (flush, reset): scheduled, counted apart.
    Other,
}

// Hosts keep a ticket in each I/O's context (the SPDK host in 48 bytes of driver_ctx).
const _: () = assert!(std::mem::size_of::<Ticket>() <= 32);

/// What a dispatched I/O carries back to [`crate::Share::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub(crate) group: GroupId,
    pub(crate) op: Op,
    pub(crate) bytes: u64,
    /// Tick of its dispatch, for the share's completion latency.
    pub(crate) dispatched_ticks: u64,
    /// Scheduling cost charged for it (tokens: 1, or sectors), returned on completion
    /// (u32 keeps the ticket within 32 bytes; one I/O's sectors fit).
    pub(crate) cost: u32,
}

impl Ticket {
    /// Bytes of the I/O.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Direction of the I/O.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The group it was charged to.
    pub fn group(&self) -> GroupId {
        self.group
    }
}

/// Where a share hands each I/O it releases, with its ticket: the sink of
/// [`crate::Share::submit`], [`crate::Share::complete`] and [`crate::Share::poll`].
///
/// Any `FnMut(T, Ticket)` closure is one. A host's dispatcher may implement it on a type
/// of its own with an `#[inline(always)]` method, so that the release is compiled into
/// the share's dispatch and the ticket goes from registers into the I/O's context without
/// a round trip through the stack (a closure call is the compiler's choice to inline).
pub trait Release<T> {
    /// Takes one released I/O and its ticket.
    fn release(&mut self, io: T, ticket: Ticket);
}

impl<T, F: FnMut(T, Ticket)> Release<T> for F {
    #[inline(always)]
    fn release(&mut self, io: T, ticket: Ticket) {
        self(io, ticket);
    }
}

/// Counters of one group. Counted at submit (ios/bytes), dispatch and completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStats {
    /// Read I/Os submitted.
    pub read_ios: u64,
    /// Read bytes submitted.
    pub read_bytes: u64,
    /// Write I/Os submitted.
    pub write_ios: u64,
    /// Write bytes submitted.
    pub write_bytes: u64,
    /// Other I/Os (flush, reset) submitted.
    pub other_ios: u64,
    /// I/Os dispatched to the base.
    pub dispatched_ios: u64,
    /// Bytes dispatched to the base.
    pub dispatched_bytes: u64,
    /// Scheduling cost dispatched (tokens: I/Os or sectors, by policy).
    pub dispatched_cost: u64,
    /// I/Os that had to wait in the queue before dispatch.
    pub throttled_ios: u64,
    /// Total ticks those I/Os waited.
    pub throttled_ticks: u64,
    /// I/Os completed.
    pub completed_ios: u64,
    /// I/Os waiting in the queue now.
    pub queue_depth: u64,
    /// I/Os dispatched and not yet completed.
    pub in_flight: u64,
}

impl GroupStats {
    /// Adds `other` into this one, field by field (counters and gauges alike).
    pub fn accumulate(&mut self, other: &GroupStats) {
        self.read_ios += other.read_ios;
        self.read_bytes += other.read_bytes;
        self.write_ios += other.write_ios;
        self.write_bytes += other.write_bytes;
        self.other_ios += other.other_ios;
        self.dispatched_ios += other.dispatched_ios;
        self.dispatched_bytes += other.dispatched_bytes;
        self.dispatched_cost += other.dispatched_cost;
        self.throttled_ios += other.throttled_ios;
        self.throttled_ticks += other.throttled_ticks;
        self.completed_ios += other.completed_ios;
        self.queue_depth += other.queue_depth;
        self.in_flight += other.in_flight;
    }
}
