//! The control plane's languages: the text of the blkio `devices` and `settings` files
//! (dm-ioband's messages), the renderers of their read side and of `dmsetup status`, and the
//! JSON-RPC types and handlers that both hosts (embedded and SPDK) serve.
//!
//! Everything here runs on the host's **control thread**, which owns the
//! [`Engine`](crate::Engine): parsing touches no state, applying validates first and changes
//! nothing on error, rendering only reads. Nothing here is on the I/O path.
//!
//! # The `devices` write language
//!
//! One write is `<share-or-device> <param> [<value>]`, words separated by white space; a
//! word that starts with `#` begins a comment to the end of the text (in both write
//! languages):
//!
//! | write | effect |
//! |---|---|
//! | `<s> policy <p>` | weight, weight-iosize, range-bw, default (= weight); groups keep values |
//! | `<s> io_throttle <n>` | 0..=32767, 0 = auto (adapted to the base, from 4); must not exceed a set io_limit |
//! | `<s> io_limit <n>` | 0..=32767, 0 = default (⌊3·nr_requests/2⌋) |
//! | `<s> token <n>` | 0..=2147483647 tokens per epoch, 0 = default |
//! | `<s> carryover <n>` | 0..=2147483647 epochs, 0 = default |
//! | `<s> capacity <kib/s>` | 0..=2147483647, 0 = unknown; bounds Σmin of range-bw |
//! | `<s> idle_grace <us>` | 0..=1000000 µs a group stays active after its last I/O; 0 = auto |
//! | `<d> attach <group>` | attaches a group with weight 100 and range 0:0 |
//! | `<d> detach <group>` | detaches a group; its queued I/O moves to the default group |
//! | `<d> weight [<group>:]<w>` | 1..=32767; no group, `-1`, `none`, `default`: default group |
//! | `<d> range-bw [<group>:]<min>:<max>` | KiB/s, each ≤ 1073741823; min ≤ max; max 0 = no cap |
//! | `<d> reset` | zeroes the counters of every group of the device |
//!
//! `idle_grace`: while none of a group's I/O is queued, the group keeps its place in the share
//! (and keeps pacing groups that run ahead) for this long after its last submission or
//! completion; it protects closed-loop tenants at low queue depth and tenants behind a
//! network round trip. 0 = auto: derived from the observed completion latency.
//!
//! Groups are [`GroupKey`](crate::GroupKey) text: `none`, `initiator:<name>`, `cgroup:<u64>`,
//! `tag:<u32>`. Initiator names (NQNs) contain colons, so the value of `weight` is the text
//! after the **last** colon and the bounds of `range-bw` the text after the last two; the
//! group is everything before.
//!
//! Names: share knobs (`policy` … `idle_grace`) look the name up as a share first, then as a
//! device (its share). Group messages (`attach` … `reset`) look it up as a device first, then
//! as a share (its first device, as blkio did). A share and a device of another share may
//! not have the same name ([`EngineError::NameTaken`](crate::EngineError::NameTaken)), so a
//! name that is both is a share and its own device, and the two orders agree.
//!
//! Differences from dm-ioband, on purpose: `io_limit` and `token` do not reset `token` and
//! `carryover` to their defaults (0 already means "derived"); a `policy` change keeps every
//! group's weight and range; `weight` and `range-bw` apply under every policy, since the
//! engine schedules both (weight shares spare bandwidth, range reserves and caps); the `type`
//! message does not exist (every device takes every group type); numbers are decimal only
//! (no octal or hex); the sum of the minimums is checked against `capacity`.
//!
//! # The `settings` write language
//!
//! `<device> [<value>]` for a group that the caller names apart (in blkio, the writing
//! cgroup): `<value>` is a weight `W` or a range `MIN:MAX` (KiB/s). A group that is not
//! attached is attached with that value; an attached one (and the default group,
//! [`GroupKey::None`](crate::GroupKey::None)) gets it set. No value detaches the group
//! (refused for the default group).
//!
//! # One rule for text and JSON
//!
//! The text forms and the JSON forms mean the same. A value says what it sets, under every
//! policy: a weight (`weight 300`, `300`, `"value": 300`) sets the group's weight, a range
//! (`range-bw 0:5000`, `0:5000`, `"value": "0:5000"`) its min and max; the policy decides
//! which one schedules (under the weight policies a range is kept for a later switch to
//! `range-bw`; under `range-bw` the weight shares spare bandwidth). `default` is the policy
//! `weight` in both (`policy default`, `"policy": "default"`), and 0 is a knob's default in
//! both.
//!
//! # Read side
//!
//! See [`render`]: `devices`, `settings` and `iostat` text, byte-compatible in shape with the
//! blkio patch, and parsers that turn the first two back into writes
//! ([`parse_devices_listing`], [`parse_settings_listing`]). [`dump_writes`] gives the exact
//! configured state (raw knobs, weight and range of every group) as `devices` writes.
//!
//! # JSON-RPC
//!
//! See [`rpc`] for the method contract, its serde types and handlers, and [`decode`] for
//! the strict decoding of params (no duplicate key, no `null`) and the bounds on requests
//! and on error messages that both hosts apply.

mod apply;
pub mod decode;
pub mod render;
pub mod rpc;
mod text;

#[cfg(test)]
mod bound_tests;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod one_rule_tests;
#[cfg(test)]
mod rpc_tests;
#[cfg(test)]
mod tests;

pub use apply::{
    apply_devices_text, apply_devices_write, apply_settings_text, apply_settings_write, dump_writes,
};
pub use render::{render_devices, render_iostat, render_settings};
pub use text::{
    parse_devices_listing, parse_group_value, parse_settings_listing, DeviceCommand, DevicesWrite,
    SettingsLine, SettingsWrite, ShareListing,
};
