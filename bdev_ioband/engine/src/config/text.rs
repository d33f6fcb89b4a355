//! Typed values of the `devices` and `settings` write languages, their parsers and their
//! canonical text; and the read-side listings of those files, parsed back into values.
//!
//! Plain values, made and consumed on the control thread. Parsing checks syntax and the
//! ranges that need no state (a weight is 1..=32767 whatever the device), and touches no
//! engine state; the checks that need state (io_throttle against io_limit, Σmin against
//! capacity, whether a group is attached) happen when a write is applied.

use std::fmt;
use std::num::IntErrorKind;
use std::str::FromStr;

use crate::params::IDLE_GRACE_MAX_US;
use crate::{
    validate_name, EngineError, GroupKey, GroupValue, Policy, RANGE_BW_MAX_KIB_PER_SEC, SHORT_MAX,
    TOKEN_MAX,
};

const DEVICES_USAGE: &str = "expected '<share-or-device> <param> <value>' with <param> one of \
    policy, io_throttle, io_limit, token, carryover, capacity, idle_grace, attach, detach, \
    weight, range-bw; or '<share-or-device> reset'";

const SETTINGS_USAGE: &str =
    "expected '<device>' (detach), '<device> <weight>' or '<device> <min>:<max>' (KiB/s)";

/// One write to the `devices` file: a share or device name and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicesWrite {
    /// Share or device name (see the module documentation for how it is looked up).
    pub target: String,
    /// What to change.
    pub command: DeviceCommand,
}

/// What a `devices` write changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceCommand {
    /// `policy <name>`: the share's policy.
    Policy(Policy),
    /// `io_throttle <n>` (0 = default).
    IoThrottle(u32),
    /// `io_limit <n>` (0 = default).
    IoLimit(u32),
    /// `token <n>`: tokens per epoch (0 = default).
    Token(u32),
    /// `carryover <n>`: epochs of credit (0 = default).
    Carryover(u32),
    /// `capacity <kib/s>`: what the share's device delivers (0 = unknown).
    Capacity(u32),
    /// `idle_grace <us>`: how long a group with nothing queued stays active after its last
    /// submission or completion (0 = auto, derived from the observed completion latency).
    IdleGrace(u32),
    /// `attach <group>`: attach with the default weight and range.
    Attach(GroupKey),
    /// `detach <group>`.
    Detach(GroupKey),
    /// `weight [<group>:]<w>`.
    Weight {
        /// The group ([`GroupKey::None`] for the default group).
        group: GroupKey,
        /// The new weight.
        weight: u32,
    },
    /// `range-bw [<group>:]<min>:<max>`.
    RangeBw {
        /// The group ([`GroupKey::None`] for the default group).
        group: GroupKey,
        /// Reserved KiB/s.
        min_kib_per_sec: u32,
        /// Cap in KiB/s (0 = none).
        max_kib_per_sec: u32,
    },
    /// `reset`: zero the counters of the device's groups.
    Reset,
}

impl DeviceCommand {
    /// The parameter word of this command.
    pub fn param(&self) -> &'static str {
        match self {
            DeviceCommand::Policy(_) => "policy",
            DeviceCommand::IoThrottle(_) => "io_throttle",
            DeviceCommand::IoLimit(_) => "io_limit",
            DeviceCommand::Token(_) => "token",
            DeviceCommand::Carryover(_) => "carryover",
            DeviceCommand::Capacity(_) => "capacity",
            DeviceCommand::IdleGrace(_) => "idle_grace",
            DeviceCommand::Attach(_) => "attach",
            DeviceCommand::Detach(_) => "detach",
            DeviceCommand::Weight { .. } => "weight",
            DeviceCommand::RangeBw { .. } => "range-bw",
            DeviceCommand::Reset => "reset",
        }
    }

    /// Whether this command changes the share's knobs (as opposed to one device's groups).
    pub fn is_share_knob(&self) -> bool {
        matches!(
            self,
            DeviceCommand::Policy(_)
                | DeviceCommand::IoThrottle(_)
                | DeviceCommand::IoLimit(_)
                | DeviceCommand::Token(_)
                | DeviceCommand::Carryover(_)
                | DeviceCommand::Capacity(_)
                | DeviceCommand::IdleGrace(_)
        )
    }

    /// Parses the words after the target: `<param> <value>`, or `reset` alone.
    pub fn parse_words(param: &str, value: Option<&str>) -> Result<DeviceCommand, EngineError> {
        let Some(value) = value else {
            return match param {
                "reset" => Ok(DeviceCommand::Reset),
                p if is_known_param(p) => Err(EngineError::Parse(format!(
                    "'{p}' needs a value; {DEVICES_USAGE}"
                ))),
                p => Err(unknown_param(p)),
            };
        };
        Ok(match param {
            "policy" => DeviceCommand::Policy(Policy::parse(value)?),
            "io_throttle" => {
                DeviceCommand::IoThrottle(parse_u32("io_throttle", value, 0, SHORT_MAX)?)
            }
            "io_limit" => DeviceCommand::IoLimit(parse_u32("io_limit", value, 0, SHORT_MAX)?),
            "token" => DeviceCommand::Token(parse_u32("token", value, 0, TOKEN_MAX)?),
            "carryover" => DeviceCommand::Carryover(parse_u32("carryover", value, 0, TOKEN_MAX)?),
            "capacity" => DeviceCommand::Capacity(parse_u32("capacity", value, 0, TOKEN_MAX)?),
            "idle_grace" => {
                DeviceCommand::IdleGrace(parse_u32("idle_grace", value, 0, IDLE_GRACE_MAX_US)?)
            }
            "attach" => DeviceCommand::Attach(parse_message_group(value)?),
            "detach" => DeviceCommand::Detach(parse_message_group(value)?),
            "weight" => {
                let (group, weight) = match value.rsplit_once(':') {
                    Some((group, weight)) => (parse_message_group(group)?, weight),
                    None => (GroupKey::None, value),
                };
                DeviceCommand::Weight {
                    group,
                    weight: parse_u32("weight", weight, 1, SHORT_MAX)?,
                }
            }
            "range-bw" => {
                let Some((rest, max)) = value.rsplit_once(':') else {
                    return Err(EngineError::Parse(format!(
                        "range-bw '{value}' is not of the form [<group>:]<min>:<max> (KiB/s)"
                    )));
                };
                let (group, min) = match rest.rsplit_once(':') {
                    Some((group, min)) => (parse_message_group(group)?, min),
                    None => (GroupKey::None, rest),
                };
                let (min_kib_per_sec, max_kib_per_sec) = parse_range(min, max)?;
                DeviceCommand::RangeBw {
                    group,
                    min_kib_per_sec,
                    max_kib_per_sec,
                }
            }
            "reset" => {
                return Err(EngineError::Parse(format!(
                    "'reset' takes no value (got '{value}')"
                )))
            }
            other => return Err(unknown_param(other)),
        })
    }
}

impl fmt::Display for DeviceCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let param = self.param();
        match self {
            DeviceCommand::Policy(p) => write!(f, "{param} {p}"),
            DeviceCommand::IoThrottle(n)
            | DeviceCommand::IoLimit(n)
            | DeviceCommand::Token(n)
            | DeviceCommand::Carryover(n)
            | DeviceCommand::Capacity(n)
            | DeviceCommand::IdleGrace(n) => write!(f, "{param} {n}"),
            DeviceCommand::Attach(g) | DeviceCommand::Detach(g) => write!(f, "{param} {g}"),
            DeviceCommand::Weight {
                group: GroupKey::None,
                weight,
            } => {
                write!(f, "{param} {weight}")
            }
            DeviceCommand::Weight { group, weight } => write!(f, "{param} {group}:{weight}"),
            DeviceCommand::RangeBw {
                group,
                min_kib_per_sec,
                max_kib_per_sec,
            } => {
                write!(f, "{param} {group}:{min_kib_per_sec}:{max_kib_per_sec}")
            }
            DeviceCommand::Reset => f.write_str(param),
        }
    }
}

impl DevicesWrite {
    /// Parses one write: `<share-or-device> <param> <value>` or `<share-or-device> reset`.
    pub fn parse(line: &str) -> Result<DevicesWrite, EngineError> {
        let words = words(line);
        let (target, param, value) = match words.as_slice() {
            [] => {
                return Err(EngineError::Parse(format!(
                    "empty devices write; {DEVICES_USAGE}"
                )))
            }
            [target] => {
                return Err(EngineError::Parse(format!(
                    "'{target}' alone says nothing to change; {DEVICES_USAGE}"
                )))
            }
            [target, param] => (*target, *param, None),
            [target, param, value] => (*target, *param, Some(*value)),
            [_, _, _, extra, ..] => {
                return Err(EngineError::Parse(format!(
                    "too many words in devices write (unexpected '{extra}'); {DEVICES_USAGE}"
                )))
            }
        };
        validate_name(target)?;
        let command = DeviceCommand::parse_words(param, value)?;
        Ok(DevicesWrite {
            target: target.to_owned(),
            command,
        })
    }
}

impl FromStr for DevicesWrite {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DevicesWrite::parse(s)
    }
}

impl fmt::Display for DevicesWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.target, self.command)
    }
}

/// One write to the `settings` file, for a group that the caller names apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsWrite {
    /// The ioband device.
    pub device: String,
    /// The group's new value; `None` detaches the group.
    pub value: Option<GroupValue>,
}

impl SettingsWrite {
    /// Parses `<device>`, `<device> <weight>` or `<device> <min>:<max>`.
    pub fn parse(line: &str) -> Result<SettingsWrite, EngineError> {
        let words = words(line);
        let (device, value) = match words.as_slice() {
            [] => {
                return Err(EngineError::Parse(format!(
                    "empty settings write; {SETTINGS_USAGE}"
                )))
            }
            [device] => (*device, None),
            [device, value] => (*device, Some(parse_group_value(value)?)),
            [_, _, extra, ..] => {
                return Err(EngineError::Parse(format!(
                    "too many words in settings write (unexpected '{extra}'); {SETTINGS_USAGE}"
                )))
            }
        };
        validate_name(device)?;
        Ok(SettingsWrite {
            device: device.to_owned(),
            value,
        })
    }
}

impl FromStr for SettingsWrite {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SettingsWrite::parse(s)
    }
}

impl fmt::Display for SettingsWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{} {value}", self.device),
            None => f.write_str(&self.device),
        }
    }
}

/// Parses a group value as `settings` writes it: a weight `W` (1..=32767) or a range
/// `MIN:MAX` in KiB/s (each 0..=1073741823; min ≤ max unless max is 0, which means no cap).
pub fn parse_group_value(text: &str) -> Result<GroupValue, EngineError> {
    match text.split_once(':') {
        None => Ok(GroupValue::Weight(parse_u32("weight", text, 1, SHORT_MAX)?)),
        Some((min, max)) => {
            let (min_kib_per_sec, max_kib_per_sec) = parse_range(min, max)?;
            Ok(GroupValue::RangeBw {
                min_kib_per_sec,
                max_kib_per_sec,
            })
        }
    }
}

/// One share's block of the `devices` listing (the read side).
///
/// Its text is `<share> policy=<p> io_throttle=<n> io_limit=<n>`, then ` token=<B>
/// carryover=<C>` for the weight policies, then ` capacity=<kib/s>` when one is set, then
/// ` idle_grace=<us>` when one is set (not shown when auto), then one line `  <device>` per
/// member device; every line ends with a newline. The numbers are the values in force
/// (defaults resolved), as dm-ioband showed them; an automatic idle grace has no fixed value
/// (it follows the observed completion latency), so it is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareListing {
    /// Share name.
    pub share: String,
    /// Policy.
    pub policy: Policy,
    /// io_throttle in force.
    pub io_throttle: u32,
    /// io_limit in force.
    pub io_limit: u32,
    /// Tokens per epoch in force (weight policies only).
    pub token: Option<u32>,
    /// Carryover in force (weight policies only).
    pub carryover: Option<u32>,
    /// Capacity in KiB/s (0 = unknown, and not shown).
    pub capacity_kib_per_sec: u32,
    /// Idle grace in µs as set (0 = auto, and not shown).
    pub idle_grace_us: u32,
    /// Member devices, in the share's order.
    pub devices: Vec<String>,
}

impl ShareListing {
    /// The `devices` writes that give a fresh share with these devices the same listing.
    ///
    /// Values in force become explicit settings (an io_limit that was derived from the
    /// base's queue depth is written as a number), so the listing is reproduced but the
    /// "0 = default" of the original is not: use [`dump_writes`](super::dump_writes) for
    /// that. Writes are ordered for a fresh share (io_limit before io_throttle, which must
    /// fit under it).
    pub fn writes(&self) -> Vec<DevicesWrite> {
        let mut commands = vec![
            DeviceCommand::Policy(self.policy),
            DeviceCommand::IoLimit(self.io_limit),
            DeviceCommand::IoThrottle(self.io_throttle),
        ];
        commands.extend(self.token.map(DeviceCommand::Token));
        commands.extend(self.carryover.map(DeviceCommand::Carryover));
        commands.push(DeviceCommand::Capacity(self.capacity_kib_per_sec));
        commands.push(DeviceCommand::IdleGrace(self.idle_grace_us));
        commands
            .into_iter()
            .map(|command| DevicesWrite {
                target: self.share.clone(),
                command,
            })
            .collect()
    }
}

impl fmt::Display for ShareListing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} policy={} io_throttle={} io_limit={}",
            self.share, self.policy, self.io_throttle, self.io_limit
        )?;
        if let Some(token) = self.token {
            write!(f, " token={token}")?;
        }
        if let Some(carryover) = self.carryover {
            write!(f, " carryover={carryover}")?;
        }
        if self.capacity_kib_per_sec != 0 {
            write!(f, " capacity={}", self.capacity_kib_per_sec)?;
        }
        if self.idle_grace_us != 0 {
            write!(f, " idle_grace={}", self.idle_grace_us)?;
        }
        writeln!(f)?;
        for device in &self.devices {
            writeln!(f, "  {device}")?;
        }
        Ok(())
    }
}

/// Parses a `devices` listing (what [`render_devices`](super::render_devices) prints) back
/// into values. Blank lines are ignored.
pub fn parse_devices_listing(text: &str) -> Result<Vec<ShareListing>, EngineError> {
    let mut out: Vec<ShareListing> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let device = line.trim();
            validate_name(device)?;
            let Some(share) = out.last_mut() else {
                return Err(EngineError::Parse(format!(
                    "line {number}: device '{device}' comes before any share line"
                )));
            };
            share.devices.push(device.to_owned());
        } else {
            out.push(parse_share_line(line).map_err(|e| at_line(number, e))?);
        }
    }
    Ok(out)
}

fn parse_share_line(line: &str) -> Result<ShareListing, EngineError> {
    let mut words = line.split_whitespace();
    let share = words.next().unwrap_or_default();
    validate_name(share)?;
    let (mut policy, mut io_throttle, mut io_limit) = (None, None, None);
    let (mut token, mut carryover, mut capacity) = (None, None, None);
    let mut idle_grace = None;
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(EngineError::Parse(format!(
                "'{word}' is not of the form <key>=<value>"
            )));
        };
        let slot_is_free = match key {
            "policy" => policy.replace(Policy::parse(value)?).is_none(),
            "io_throttle" => io_throttle
                .replace(parse_u32("io_throttle", value, 0, SHORT_MAX)?)
                .is_none(),
            "io_limit" => io_limit
                .replace(parse_u32("io_limit", value, 0, SHORT_MAX)?)
                .is_none(),
            "token" => token
                .replace(parse_u32("token", value, 0, TOKEN_MAX)?)
                .is_none(),
            "carryover" => carryover
                .replace(parse_u32("carryover", value, 0, TOKEN_MAX)?)
                .is_none(),
            "capacity" => capacity
                .replace(parse_u32("capacity", value, 0, TOKEN_MAX)?)
                .is_none(),
            "idle_grace" => idle_grace
                .replace(parse_u32("idle_grace", value, 0, IDLE_GRACE_MAX_US)?)
                .is_none(),
            other => {
                return Err(EngineError::Parse(format!(
                    "unknown key '{other}' (expected policy, io_throttle, io_limit, token, \
                     carryover, capacity or idle_grace)"
                )))
            }
        };
        if !slot_is_free {
            return Err(EngineError::Parse(format!("'{key}' appears twice")));
        }
    }
    let missing = |key: &str| EngineError::Parse(format!("share '{share}' has no {key}="));
    Ok(ShareListing {
        share: share.to_owned(),
        policy: policy.ok_or_else(|| missing("policy"))?,
        io_throttle: io_throttle.ok_or_else(|| missing("io_throttle"))?,
        io_limit: io_limit.ok_or_else(|| missing("io_limit"))?,
        token,
        carryover,
        capacity_kib_per_sec: capacity.unwrap_or(0),
        idle_grace_us: idle_grace.unwrap_or(0),
        devices: Vec::new(),
    })
}

/// One line of the `settings` listing: `<device> weight=<w>` or `<device>
/// range-bw=<min>:<max>` (no newline in the value's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsLine {
    /// The ioband device.
    pub device: String,
    /// The group's value under the device's policy.
    pub value: GroupValue,
}

impl SettingsLine {
    /// The `settings` write that sets this value.
    pub fn to_write(&self) -> SettingsWrite {
        SettingsWrite {
            device: self.device.clone(),
            value: Some(self.value),
        }
    }
}

impl fmt::Display for SettingsLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            GroupValue::Weight(weight) => write!(f, "{} weight={weight}", self.device),
            GroupValue::RangeBw {
                min_kib_per_sec,
                max_kib_per_sec,
            } => {
                write!(
                    f,
                    "{} range-bw={min_kib_per_sec}:{max_kib_per_sec}",
                    self.device
                )
            }
        }
    }
}

/// Parses a `settings` listing (what [`render_settings`](super::render_settings) prints)
/// back into values. Blank lines are ignored.
pub fn parse_settings_listing(text: &str) -> Result<Vec<SettingsLine>, EngineError> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_settings_line(line).map_err(|e| at_line(index + 1, e))?);
    }
    Ok(out)
}

fn parse_settings_line(line: &str) -> Result<SettingsLine, EngineError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [device, setting] = words.as_slice() else {
        return Err(EngineError::Parse(format!(
            "'{line}' is not '<device> weight=<w>' or '<device> range-bw=<min>:<max>'"
        )));
    };
    validate_name(device)?;
    let value = match setting.split_once('=') {
        Some(("weight", w)) => GroupValue::Weight(parse_u32("weight", w, 1, SHORT_MAX)?),
        Some(("range-bw", range)) => {
            let Some((min, max)) = range.split_once(':') else {
                return Err(EngineError::Parse(format!(
                    "range-bw '{range}' is not of the form <min>:<max>"
                )));
            };
            let (min_kib_per_sec, max_kib_per_sec) = parse_range(min, max)?;
            GroupValue::RangeBw {
                min_kib_per_sec,
                max_kib_per_sec,
            }
        }
        _ => {
            return Err(EngineError::Parse(format!(
                "'{setting}' is not weight=<w> or range-bw=<min>:<max>"
            )))
        }
    };
    Ok(SettingsLine {
        device: (*device).to_owned(),
        value,
    })
}

/// The words of a write: split at white space, up to a word that starts with `#` (a
/// comment to the end of the text, as in the README's examples).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .collect()
}

/// Parses a decimal number for `param` and checks it against `min..=max`.
///
/// Not a number (or too long to be one) is [`EngineError::Parse`]; a number outside the
/// range, negative ones included, is [`EngineError::OutOfRange`].
pub(crate) fn parse_u32(
    param: &'static str,
    text: &str,
    min: u32,
    max: u32,
) -> Result<u32, EngineError> {
    let value = match text.parse::<i64>() {
        Ok(value) => value,
        Err(e) => {
            let why = match e.kind() {
                IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => "is far out of range",
                IntErrorKind::Empty => "is empty",
                _ => "is not a decimal number",
            };
            return Err(EngineError::Parse(format!(
                "{param} '{text}' {why} (expected {min}..={max})"
            )));
        }
    };
    let out_of_range = || EngineError::OutOfRange {
        param,
        value,
        min: i64::from(min),
        max: i64::from(max),
    };
    let value = u32::try_from(value).map_err(|_| out_of_range())?;
    if value < min || value > max {
        return Err(out_of_range());
    }
    Ok(value)
}

/// Parses `min` and `max` KiB/s and checks min ≤ max (max 0 = no cap).
fn parse_range(min: &str, max: &str) -> Result<(u32, u32), EngineError> {
    if max.contains(':') {
        return Err(EngineError::Parse(format!(
            "range '{min}:{max}' has too many ':' (expected <min>:<max>)"
        )));
    }
    let min_kib_per_sec = parse_u32("range-bw min", min, 0, RANGE_BW_MAX_KIB_PER_SEC)?;
    let max_kib_per_sec = parse_u32("range-bw max", max, 0, RANGE_BW_MAX_KIB_PER_SEC)?;
    if max_kib_per_sec != 0 && min_kib_per_sec > max_kib_per_sec {
        return Err(EngineError::MinAboveMax {
            min_kib_per_sec,
            max_kib_per_sec,
        });
    }
    Ok((min_kib_per_sec, max_kib_per_sec))
}

/// A group as `devices` messages write it: [`GroupKey`] text, or `-1` (dm-ioband's id of the
/// default group) or nothing for the default group.
fn parse_message_group(text: &str) -> Result<GroupKey, EngineError> {
    match text {
        "" | "-1" => Ok(GroupKey::None),
        _ => GroupKey::parse(text),
    }
}

fn is_known_param(param: &str) -> bool {
    matches!(
        param,
        "policy"
            | "io_throttle"
            | "io_limit"
            | "token"
            | "carryover"
            | "capacity"
            | "idle_grace"
            | "attach"
            | "detach"
            | "weight"
            | "range-bw"
    )
}

fn unknown_param(param: &str) -> EngineError {
    EngineError::Parse(format!("unknown parameter '{param}'; {DEVICES_USAGE}"))
}

fn at_line(number: usize, error: EngineError) -> EngineError {
    match error {
        EngineError::Parse(message) => EngineError::Parse(format!("line {number}: {message}")),
        other => other,
    }
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
