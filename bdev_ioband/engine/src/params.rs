//! Policies and the numeric knobs of shares and groups, with dm-ioband's defaults and ranges.
//!
//! Plain values owned by whoever holds them (the engine's control plane); validation lives
//! here so that every entry point (typed calls, the text language, JSON-RPC) checks the same
//! way before anything changes.

use serde::{Deserialize, Serialize};

use crate::EngineError;

/// dm-ioband's largest weight, io_throttle and io_limit (SHRT_MAX).
pub const SHORT_MAX: u32 = 32767;
/// Weight given to a new group.
pub const DEFAULT_WEIGHT: u32 = 100;
/// io_throttle when 0 is given.
pub const DEFAULT_IO_THROTTLE: u32 = 4;
/// Longest `idle_grace` a user may set, in µs (one second).
pub const IDLE_GRACE_MAX_US: u32 = 1_000_000;
/// Request-queue depth assumed when the host gives none (Linux's default nr_requests).
pub const DEFAULT_NR_REQUESTS: u32 = 128;
/// Basis of the default carryover (dm-ioband's DEFAULT_TOKENPOOL).
pub const DEFAULT_TOKENPOOL: u64 = 2048;
/// Largest range-bw bound in KiB/s (INT_MAX / 2, as dm-ioband).
pub const RANGE_BW_MAX_KIB_PER_SEC: u32 = (i32::MAX / 2) as u32;
/// Largest token and carryover value (INT_MAX).
pub const TOKEN_MAX: u32 = i32::MAX as u32;
/// Bytes in one sector, the token of `weight-iosize`.
pub const SECTOR_BYTES: u64 = 512;

/// How a share divides its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Policy {
    /// One token per I/O, tokens in proportion to weight (`default` names it too, in JSON
    /// as in text).
    #[serde(rename = "weight", alias = "default")]
    Weight,
    /// One token per 512-byte sector, tokens in proportion to weight.
    #[serde(rename = "weight-iosize")]
    WeightIosize,
    /// Per-group `min:max` KiB/s: min reserved, max a cap, spare shared by weight.
    #[serde(rename = "range-bw")]
    RangeBw,
}

impl Policy {
    /// The name used in text and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Weight => "weight",
            Policy::WeightIosize => "weight-iosize",
            Policy::RangeBw => "range-bw",
        }
    }

    /// Parses a policy name; `default` means `weight`, as in dm-ioband.
    pub fn parse(name: &str) -> Result<Policy, EngineError> {
        match name {
            "weight" | "default" => Ok(Policy::Weight),
            "weight-iosize" => Ok(Policy::WeightIosize),
            "range-bw" => Ok(Policy::RangeBw),
            other => Err(EngineError::Parse(format!(
                "unknown policy '{other}' (expected weight, weight-iosize or range-bw)"
            ))),
        }
    }

    /// log2 of sectors per token unit: 0 for `weight`, 3 (4 KiB pages) otherwise.
    pub fn token_unit_shift(self) -> u32 {
        match self {
            Policy::Weight => 0,
            Policy::WeightIosize | Policy::RangeBw => 3,
        }
    }

    /// Whether groups are configured by weight (as opposed to range-bw).
    #[inline]
    pub fn is_weight(self) -> bool {
        !matches!(self, Policy::RangeBw)
    }

    /// Scheduling cost of one I/O of `bytes` bytes under this policy.
    ///
    /// `weight` charges 1 per I/O; the others charge 512-byte sectors (at least 1, so that
    /// a flush or a zero-length I/O is not free).
    #[inline]
    pub fn cost(self, bytes: u64) -> u64 {
        match self {
            Policy::Weight => 1,
            Policy::WeightIosize | Policy::RangeBw => (bytes / SECTOR_BYTES).max(1),
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The share-level knobs, as the user set them (0 keeps dm-ioband's "use the default").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareParams {
    /// The policy of every group in the share.
    pub policy: Policy,
    /// The window of the weight policies: most I/Os in flight while two or more groups are
    /// active (0 = auto: adapted to the base's latency, from dm-ioband's 4 and never below
    /// it; see the share's module documentation).
    pub io_throttle: u32,
    /// Most I/Os in flight for the whole share (0 = 3/2 of the base's queue depth).
    pub io_limit: u32,
    /// Tokens per epoch, the bucket `B` (0 = `io_limit·4 << unit`).
    pub token: u32,
    /// Epochs of credit an idle group may bank (0 = `max(1, (2048 << unit) / B)`).
    pub carryover: u32,
    /// What the share's device can deliver, in KiB/s; Σmin of range-bw is checked against
    /// it (0 = unknown: only dm-ioband's INT_MAX/2 bound applies).
    pub capacity_kib_per_sec: u32,
    /// How long, in µs, a group stays active after its last submission or completion
    /// when nothing of it is queued (0 = derived from the observed completion latency).
    pub idle_grace_us: u32,
    /// Queue depth of the base device, from which the default io_limit derives.
    pub nr_requests: u32,
}

impl Default for ShareParams {
    fn default() -> Self {
        ShareParams {
            policy: Policy::Weight,
            io_throttle: 0,
            io_limit: 0,
            token: 0,
            carryover: 0,
            capacity_kib_per_sec: 0,
            idle_grace_us: 0,
            nr_requests: DEFAULT_NR_REQUESTS,
        }
    }
}

impl ShareParams {
    /// The io_throttle a share starts with: the set one, or (auto) dm-ioband's 4, from
    /// which the share adapts it ([`crate::Share::io_throttle_in_force`]).
    pub fn effective_io_throttle(&self) -> u32 {
        if self.io_throttle == 0 {
            DEFAULT_IO_THROTTLE.min(self.effective_io_limit())
        } else {
            self.io_throttle
        }
    }

    /// The io_limit in force: ⌊3·nr_requests/2⌋ unless set. A set io_throttle never
    /// exceeds it ([`ShareParams::validate`] refuses that, the default limit included).
    pub fn effective_io_limit(&self) -> u32 {
        if self.io_limit == 0 {
            (self.nr_requests.max(1) * 3 / 2).clamp(1, SHORT_MAX)
        } else {
            self.io_limit
        }
    }

    /// The per-epoch bucket `B` in tokens.
    pub fn effective_token(&self) -> u64 {
        if self.token == 0 {
            (u64::from(self.effective_io_limit()) * 4) << self.policy.token_unit_shift()
        } else {
            u64::from(self.token)
        }
    }

    /// Epochs of credit an idle group may bank.
    pub fn effective_carryover(&self) -> u64 {
        if self.carryover == 0 {
            ((DEFAULT_TOKENPOOL << self.policy.token_unit_shift()) / self.effective_token()).max(1)
        } else {
            u64::from(self.carryover)
        }
    }

    /// Checks every knob's range and their relation; changes nothing.
    pub fn validate(&self) -> Result<(), EngineError> {
        check_range("io_throttle", self.io_throttle, 0, SHORT_MAX)?;
        check_range("io_limit", self.io_limit, 0, SHORT_MAX)?;
        check_range("token", self.token, 0, TOKEN_MAX)?;
        check_range("carryover", self.carryover, 0, TOKEN_MAX)?;
        check_range("nr_requests", self.nr_requests, 1, SHORT_MAX)?;
        check_range("capacity", self.capacity_kib_per_sec, 0, TOKEN_MAX)?;
        check_range("idle_grace", self.idle_grace_us, 0, IDLE_GRACE_MAX_US)?;
        // Against the limit in force: a throttle above the default limit used to raise the
        // limit silently (removing the cap); it is refused like one above a set limit.
        if self.io_throttle > self.effective_io_limit() {
            return Err(EngineError::ThrottleAboveLimit {
                io_throttle: self.io_throttle,
                io_limit: self.effective_io_limit(),
            });
        }
        Ok(())
    }
}

/// A group's settings: its weight, and its range-bw bounds.
///
/// Every group carries both, and either can be set under every policy; the share's policy
/// decides which one schedules. (range-bw shares spare bandwidth by weight.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupParams {
    /// Proportional weight, 1..=32767.
    pub weight: u32,
    /// Reserved bandwidth in KiB/s (0 = none).
    pub min_kib_per_sec: u32,
    /// Bandwidth cap in KiB/s (0 = none).
    pub max_kib_per_sec: u32,
}

impl Default for GroupParams {
    fn default() -> Self {
        GroupParams {
            weight: DEFAULT_WEIGHT,
            min_kib_per_sec: 0,
            max_kib_per_sec: 0,
        }
    }
}

impl GroupParams {
    /// Checks ranges and min ≤ max (max 0 means no cap); changes nothing.
    pub fn validate(&self) -> Result<(), EngineError> {
        check_range("weight", self.weight, 1, SHORT_MAX)?;
        check_range(
            "range-bw min",
            self.min_kib_per_sec,
            0,
            RANGE_BW_MAX_KIB_PER_SEC,
        )?;
        check_range(
            "range-bw max",
            self.max_kib_per_sec,
            0,
            RANGE_BW_MAX_KIB_PER_SEC,
        )?;
        if self.max_kib_per_sec != 0 && self.min_kib_per_sec > self.max_kib_per_sec {
            return Err(EngineError::MinAboveMax {
                min_kib_per_sec: self.min_kib_per_sec,
                max_kib_per_sec: self.max_kib_per_sec,
            });
        }
        Ok(())
    }
}

/// A group's value as written to `settings`: a weight or a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GroupValue {
    /// `weight` and `weight-iosize`.
    Weight(u32),
    /// `range-bw` as `min:max` KiB/s.
    RangeBw {
        /// Reserved KiB/s.
        min_kib_per_sec: u32,
        /// Cap in KiB/s (0 = none).
        max_kib_per_sec: u32,
    },
}

impl GroupValue {
    /// Applies this value to `params` under `policy`, validating the result.
    pub fn apply(self, policy: Policy, params: GroupParams) -> Result<GroupParams, EngineError> {
        let next = match (self, policy.is_weight()) {
            (GroupValue::Weight(weight), true) => GroupParams { weight, ..params },
            (
                GroupValue::RangeBw {
                    min_kib_per_sec,
                    max_kib_per_sec,
                },
                false,
            ) => GroupParams {
                min_kib_per_sec,
                max_kib_per_sec,
                ..params
            },
            (GroupValue::Weight(_), false) => {
                return Err(EngineError::WrongPolicy {
                    what: "a weight",
                    policy: policy.as_str(),
                })
            }
            (GroupValue::RangeBw { .. }, true) => {
                return Err(EngineError::WrongPolicy {
                    what: "a min:max range",
                    policy: policy.as_str(),
                })
            }
        };
        next.validate()?;
        Ok(next)
    }

    /// `params` with this value set, whatever the policy: a weight sets the weight, a range
    /// sets min and max (not validated). This is what `settings` writes and JSON-RPC's
    /// `set_settings` do, the same as the `devices` messages `weight` and `range-bw`.
    /// ([`GroupValue::apply`] is the share API's policy-checked form.)
    pub fn set_in(self, params: GroupParams) -> GroupParams {
        match self {
            GroupValue::Weight(weight) => GroupParams { weight, ..params },
            GroupValue::RangeBw {
                min_kib_per_sec,
                max_kib_per_sec,
            } => GroupParams {
                min_kib_per_sec,
                max_kib_per_sec,
                ..params
            },
        }
    }

    /// The value that `params` shows under `policy`.
    pub fn of(policy: Policy, params: &GroupParams) -> GroupValue {
        if policy.is_weight() {
            GroupValue::Weight(params.weight)
        } else {
            GroupValue::RangeBw {
                min_kib_per_sec: params.min_kib_per_sec,
                max_kib_per_sec: params.max_kib_per_sec,
            }
        }
    }
}

impl std::fmt::Display for GroupValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupValue::Weight(w) => write!(f, "{w}"),
            GroupValue::RangeBw {
                min_kib_per_sec,
                max_kib_per_sec,
            } => {
                write!(f, "{min_kib_per_sec}:{max_kib_per_sec}")
            }
        }
    }
}

pub(crate) fn check_range(
    param: &'static str,
    value: u32,
    min: u32,
    max: u32,
) -> Result<(), EngineError> {
    if value < min || value > max {
        return Err(EngineError::OutOfRange {
            param,
            value: i64::from(value),
            min: i64::from(min),
            max: i64::from(max),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_dm_ioband() {
        let p = ShareParams::default();
        assert_eq!(p.effective_io_throttle(), 4);
        assert_eq!(p.effective_io_limit(), 192);
        assert_eq!(p.effective_token(), 768);
        assert_eq!(p.effective_carryover(), 2);
        let iosize = ShareParams {
            policy: Policy::WeightIosize,
            ..p
        };
        assert_eq!(iosize.effective_token(), 6144);
        assert_eq!(iosize.effective_carryover(), 2);
    }

    #[test]
    fn ranges_are_checked() {
        let bad = GroupParams {
            weight: 0,
            ..GroupParams::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(EngineError::OutOfRange {
                param: "weight",
                ..
            })
        ));
        let bad = GroupParams {
            weight: 40000,
            ..GroupParams::default()
        };
        assert!(bad.validate().is_err());
        let bad = GroupParams {
            min_kib_per_sec: 10,
            max_kib_per_sec: 5,
            weight: 1,
        };
        assert!(matches!(
            bad.validate(),
            Err(EngineError::MinAboveMax { .. })
        ));
        let ok = GroupParams {
            min_kib_per_sec: 10,
            max_kib_per_sec: 0,
            weight: 1,
        };
        assert!(ok.validate().is_ok());
        let bad = ShareParams {
            io_throttle: 10,
            io_limit: 5,
            ..ShareParams::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(EngineError::ThrottleAboveLimit { .. })
        ));
    }

    #[test]
    fn policy_names_round_trip() {
        for p in [Policy::Weight, Policy::WeightIosize, Policy::RangeBw] {
            assert_eq!(Policy::parse(p.as_str()), Ok(p));
        }
        assert_eq!(Policy::parse("default"), Ok(Policy::Weight));
        assert!(Policy::parse("fifo").is_err());
    }
}
