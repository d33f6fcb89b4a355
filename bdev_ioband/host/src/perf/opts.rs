//! The values `ioband_perf` takes on its command line and in jobs files: sizes (`4096`,
//! `4k`, `128K`, `1m`), core masks (`0x3`), workloads (`randread`, `rw`, `flush`...),
//! durations and delays, and the job description they combine into.
//!
//! Pure parsing: nothing here touches a reactor.

use bdev_ioband_engine::GroupKey;

/// Parses a byte count: a number with an optional `k`/`K`, `m`/`M` or `g`/`G` suffix
/// (powers of 1024; a trailing `b`/`B` or `iB` is accepted: `4KiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .map(|s| s.to_owned())
        .or_else(|| {
            lower
                .strip_suffix('b')
                .filter(|s| s.ends_with(['k', 'm', 'g']))
                .map(str::to_owned)
        })
        .unwrap_or(lower);
    let (digits, shift) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 10),
        Some('m') => (&lower[..lower.len() - 1], 20),
        Some('g') => (&lower[..lower.len() - 1], 30),
        _ => (lower.as_str(), 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size (examples: 4096, 4k, 128K, 1M)"))?;
    n.checked_mul(1u64 << shift)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("size '{text}' is zero or too large"))
}

/// Parses a hexadecimal core mask into the lcore ids it selects, lowest first.
pub fn parse_mask(mask: &str) -> Result<Vec<u32>, String> {
    let m = mask.trim();
    let digits = m
        .strip_prefix("0x")
        .or_else(|| m.strip_prefix("0X"))
        .unwrap_or(m);
    let bits = u64::from_str_radix(digits, 16)
        .map_err(|_| format!("core mask '{mask}' is not hexadecimal (example: 0x3)"))?;
    if bits == 0 {
        return Err(format!("core mask '{mask}' selects no core"));
    }
    Ok((0..64).filter(|b| bits & (1u64 << b) != 0).collect())
}

/// Formats lcore ids as a mask.
pub fn format_mask(lcores: &[u32]) -> String {
    let bits = lcores
        .iter()
        .filter(|&&c| c < 64)
        .fold(0u64, |acc, &c| acc | (1u64 << c));
    format!("0x{bits:x}")
}

/// The access pattern of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Random offsets (else sequential, wrapping at the end of the bdev).
    pub random: bool,
    /// Percentage of reads, 0..=100 (read: 100, write: 0, rw/randrw: `-M`).
    pub read_pct: u8,
    /// Whether the workload is a mix (rw, randrw), as it was named.
    pub mixed: bool,
    /// Every I/O is a FLUSH of 0 bytes (`flush`; `random`, `read_pct`, `mixed` unused).
    pub flush: bool,
}

/// The workload names [`Workload::parse`] knows.
pub const WORKLOADS: &str = "read, write, randread, randwrite, rw, randrw or flush";

impl Workload {
    /// 100% random reads.
    pub const RANDREAD: Workload = Workload {
        random: true,
        read_pct: 100,
        mixed: false,
        flush: false,
    };

    /// Only FLUSHes, of 0 bytes each.
    pub const FLUSH: Workload = Workload {
        random: false,
        read_pct: 0,
        mixed: false,
        flush: true,
    };

    /// Parses `read`, `write`, `randread`, `randwrite`, `rw`, `randrw` or `flush`; `mix` is
    /// the read percentage of the mixed ones.
    pub fn parse(name: &str, mix: u8) -> Result<Workload, String> {
        let (random, read_pct, mixed) = match name {
            "read" => (false, 100, false),
            "write" => (false, 0, false),
            "randread" => (true, 100, false),
            "randwrite" => (true, 0, false),
            "rw" => (false, mix, true),
            "randrw" => (true, mix, true),
            "flush" => return Ok(Workload::FLUSH),
            other => return Err(format!("unknown workload '{other}' (expected {WORKLOADS})")),
        };
        Ok(Workload {
            random,
            read_pct,
            mixed,
            flush: false,
        })
    }

    /// Its name as bdevperf prints it.
    pub fn name(&self) -> &'static str {
        if self.flush {
            return "flush";
        }
        match (self.random, self.mixed, self.read_pct) {
            (false, true, _) => "rw",
            (true, true, _) => "randrw",
            (false, false, 0) => "write",
            (true, false, 0) => "randwrite",
            (false, false, _) => "read",
            (true, false, _) => "randread",
        }
    }
}

/// Parses a read percentage (`-M`, `rwmixread`).
pub fn parse_pct(text: &str) -> Result<u8, String> {
    match text.trim().parse::<u8>() {
        Ok(p) if p <= 100 => Ok(p),
        _ => Err(format!("'{text}' is not a percentage from 0 to 100")),
    }
}

/// Parses a group (`initiator:<nqn>`, `cgroup:<id>`, `tag:<n>`, or `none`).
pub fn parse_group(text: &str) -> Result<GroupKey, String> {
    GroupKey::parse(text.trim()).map_err(|e| e.to_string())
}

/// Parses a duration in seconds (fractions allowed: `0.2`).
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(s),
        _ => Err(format!(
            "'{text}' is not a duration in seconds (0 < t <= 86400)"
        )),
    }
}

/// Parses a delay in seconds (fio's `startdelay`): 0 or more, fractions allowed.
pub fn parse_delay(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "'{text}' is not a delay in seconds (0 <= t <= 86400)"
        )),
    }
}

/// Parses a queue depth.
pub fn parse_depth(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(q) if (1..=65_536).contains(&q) => Ok(q),
        _ => Err(format!("'{text}' is not a queue depth (1..=65536)")),
    }
}

/// Where a job's setting came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The jobs file, if any.
    pub file: Option<String>,
    /// Line of the section header.
    pub section_line: usize,
    /// Line of the `filename` key.
    pub filename_line: usize,
    /// Line of the `bs` key (or of the section, if inherited).
    pub bs_line: usize,
}

impl Origin {
    /// `file:line: ` for a message, or nothing for a job from the command line.
    pub fn at(&self, line: usize) -> String {
        match &self.file {
            Some(f) => format!("{f}:{line}: "),
            None => String::new(),
        }
    }
}

/// One job: a closed loop of `queue_depth` I/Os of `io_size` bytes on one bdev, from one
/// reactor, tagged with one group, from `start_delay_s` for its runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// Its name (the jobs-file section, or the bdev's name).
    pub name: String,
    /// Target bdev.
    pub bdev: String,
    /// I/Os kept outstanding.
    pub queue_depth: u32,
    /// Bytes per I/O.
    pub io_size: u64,
    /// Access pattern.
    pub workload: Workload,
    /// Lcores it may run on (`None`: chosen round-robin over the reactors).
    pub cpumask: Option<Vec<u32>>,
    /// Seconds it runs (`None`: the run's `-t`), counted from its start.
    pub runtime_s: Option<f64>,
    /// Seconds after the run's start before it submits its first I/O (fio's
    /// `startdelay`); it submits only in `[start_delay_s, start_delay_s + runtime)`.
    pub start_delay_s: f64,
    /// Group tag carried by each I/O (`None`: untagged, the default group).
    pub group: Option<GroupKey>,
    /// Where it was defined.
    pub origin: Origin,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("128K"), Ok(128 << 10));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("4kb"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("four").is_err());
        assert!(parse_size("4x").is_err());
    }

    #[test]
    fn masks() {
        assert_eq!(parse_mask("0x1"), Ok(vec![0]));
        assert_eq!(parse_mask("0x5"), Ok(vec![0, 2]));
        assert_eq!(parse_mask("3"), Ok(vec![0, 1]));
        assert!(parse_mask("0x0").is_err());
        assert!(parse_mask("zz").is_err());
        assert_eq!(format_mask(&[0, 2]), "0x5");
    }

    #[test]
    fn workloads() {
        let w = Workload::parse("randrw", 70).expect("ok");
        assert_eq!((w.random, w.read_pct, w.name()), (true, 70, "randrw"));
        assert_eq!(Workload::parse("read", 0).expect("ok").read_pct, 100);
        assert_eq!(
            Workload::parse("randwrite", 50).expect("ok").name(),
            "randwrite"
        );
        assert!(Workload::parse("verify", 50).is_err());
        let f = Workload::parse("flush", 70).expect("ok");
        assert_eq!((f, f.name()), (Workload::FLUSH, "flush"));
        assert_eq!(Workload::RANDREAD.name(), "randread");
        assert!(parse_pct("101").is_err());
        assert_eq!(parse_delay("0"), Ok(0.0));
        assert_eq!(parse_delay("2.5"), Ok(2.5));
        assert!(parse_delay("-1").is_err() && parse_delay("soon").is_err());
    }
}
