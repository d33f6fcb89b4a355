//! The jobs file (`ioband_perf -j FILE`): bdevperf's INI format.
//!
//! ```ini
//! # comments start with '#' or ';'
//! [global]            ; defaults for the job sections after it
//! bs=4k
//! iodepth=32
//! rw=randread
//!
//! [tenant-a]
//! filename=band0      ; the target bdev (bdevperf: a colon list makes one job per bdev)
//! group=tag:1         ; ours: initiator:<nqn> | cgroup:<id> | tag:<n> | none
//! cpumask=0x1
//!
//! [tenant-b]
//! filename=band0
//! group=initiator:nqn.2014-08.org.example:host-b
//! rw=randrw
//! rwmixread=70
//! runtime=5           ; seconds (default: -t)
//! startdelay=2        ; seconds after the run starts before its first I/O (default 0)
//!
//! [syncer]
//! filename=band0
//! rw=flush            ; every I/O a FLUSH of 0 bytes
//! iodepth=1
//! ```
//!
//! Keys: `filename`, `bs`, `iodepth`, `rw`, `rwmixread`, `cpumask`, `runtime`,
//! `startdelay`, `group`.
//! Every error names `file:line` and is reported before any I/O starts; unknown bdevs are
//! checked (with the line of their `filename`) once the bdevs exist.

use super::opts::{
    parse_delay, parse_depth, parse_group, parse_mask, parse_pct, parse_seconds, parse_size,
    JobSpec, Origin, Workload,
};
use bdev_ioband_engine::GroupKey;

/// The keys a section may hold.
pub const KEYS: &[&str] = &[
    "filename",
    "bs",
    "iodepth",
    "rw",
    "rwmixread",
    "cpumask",
    "runtime",
    "startdelay",
    "group",
];

/// What the command line sets, as the base of every job.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// `-q`.
    pub queue_depth: u32,
    /// `-o`.
    pub io_size: u64,
    /// `-w`.
    pub workload: String,
    /// `-M`.
    pub read_pct: u8,
}

#[derive(Debug, Clone, Default)]
struct Section {
    filename: Option<(String, usize)>,
    bs: Option<(u64, usize)>,
    iodepth: Option<u32>,
    rw: Option<(String, usize)>,
    rwmixread: Option<u8>,
    cpumask: Option<Vec<u32>>,
    runtime: Option<f64>,
    startdelay: Option<f64>,
    group: Option<GroupKey>,
}

impl Section {
    /// `self` over `base`: what `self` sets wins.
    fn over(&self, base: &Section) -> Section {
        Section {
            filename: self.filename.clone().or_else(|| base.filename.clone()),
            bs: self.bs.or(base.bs),
            iodepth: self.iodepth.or(base.iodepth),
            rw: self.rw.clone().or_else(|| base.rw.clone()),
            rwmixread: self.rwmixread.or(base.rwmixread),
            cpumask: self.cpumask.clone().or_else(|| base.cpumask.clone()),
            runtime: self.runtime.or(base.runtime),
            startdelay: self.startdelay.or(base.startdelay),
            group: self.group.clone().or_else(|| base.group.clone()),
        }
    }

    fn set(&mut self, key: &str, value: &str, line: usize) -> Result<(), String> {
        match key {
            "filename" => {
                if value.is_empty() {
                    return Err("filename is empty".into());
                }
                self.filename = Some((value.to_owned(), line));
            }
            "bs" => self.bs = Some((parse_size(value)?, line)),
            "iodepth" => self.iodepth = Some(parse_depth(value)?),
            "rw" => {
                Workload::parse(value, 50)?;
                self.rw = Some((value.to_owned(), line));
            }
            "rwmixread" => self.rwmixread = Some(parse_pct(value)?),
            "cpumask" => self.cpumask = Some(parse_mask(value)?),
            "runtime" => self.runtime = Some(parse_seconds(value)?),
            "startdelay" => self.startdelay = Some(parse_delay(value)?),
            "group" => self.group = Some(parse_group(value)?),
            other => {
                return Err(format!(
                    "unknown key '{other}' (expected one of: {})",
                    KEYS.join(", ")
                ))
            }
        }
        Ok(())
    }
}

/// Parses a jobs file's text; `file` names it in messages. Returns the jobs in file order.
pub fn parse_jobs(text: &str, file: &str, defaults: &Defaults) -> Result<Vec<JobSpec>, String> {
    let at = |line: usize, msg: String| format!("{file}:{line}: {msg}");
    let mut global = Section::default();
    // (name, header line, section, inherited global)
    let mut current: Option<(String, usize, Section)> = None;
    let mut in_global = false;
    let mut jobs = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let finish = |name: String,
                  line: usize,
                  s: Section,
                  global: &Section,
                  jobs: &mut Vec<JobSpec>|
     -> Result<(), String> {
        let s = s.over(global);
        let Some((filename, filename_line)) = s.filename else {
            return Err(at(
                line,
                format!("job [{name}] has no filename (the bdev it drives)"),
            ));
        };
        let (rw, rw_line) = s.rw.unwrap_or_else(|| (defaults.workload.clone(), line));
        let workload = Workload::parse(&rw, s.rwmixread.unwrap_or(defaults.read_pct))
            .map_err(|e| at(rw_line, e))?;
        let (io_size, bs_line) = s.bs.unwrap_or((defaults.io_size, line));
        jobs.push(JobSpec {
            name,
            bdev: filename,
            queue_depth: s.iodepth.unwrap_or(defaults.queue_depth),
            io_size,
            workload,
            cpumask: s.cpumask,
            runtime_s: s.runtime,
            start_delay_s: s.startdelay.unwrap_or(0.0),
            group: s.group,
            origin: Origin {
                file: Some(file.to_owned()),
                section_line: line,
                filename_line,
                bs_line,
            },
        });
        Ok(())
    };
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(at(
                    line_no,
                    format!("section header '{line}' lacks its ']'"),
                ));
            };
            let name = name.trim();
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                return Err(at(
                    line_no,
                    format!("section name '{name}' is empty or has white space"),
                ));
            }
            if let Some((n, l, s)) = current.take() {
                finish(n, l, s, &global, &mut jobs)?;
            }
            if name == "global" {
                in_global = true;
            } else {
                if names.iter().any(|n| n == name) {
                    return Err(at(line_no, format!("job [{name}] is defined twice")));
                }
                names.push(name.to_owned());
                in_global = false;
                current = Some((name.to_owned(), line_no, Section::default()));
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(at(
                line_no,
                format!("expected 'key=value' or '[section]', got '{line}'"),
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        let target = if in_global {
            &mut global
        } else if let Some((_, _, s)) = current.as_mut() {
            s
        } else {
            return Err(at(line_no, format!("key '{key}' outside of any [section]")));
        };
        target
            .set(key, value, line_no)
            .map_err(|e| at(line_no, format!("{key}: {e}")))?;
    }
    if let Some((n, l, s)) = current.take() {
        finish(n, l, s, &global, &mut jobs)?;
    }
    if jobs.is_empty() {
        return Err(format!("{file}: no job sections (only [global], or empty)"));
    }
    Ok(jobs)
}

fn strip_comment(line: &str) -> &str {
    // A comment starts a line or follows white space, so values may contain '#' or ';'.
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if (b == b'#' || b == b';') && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            queue_depth: 8,
            io_size: 4096,
            workload: "randread".into(),
            read_pct: 50,
        }
    }

    #[test]
    fn global_and_jobs() {
        let text = "# demo\n[global]\nbs=4k\niodepth=32\n\n[a]\nfilename=band0\ngroup=tag:1 ; a\n\
                    cpumask=0x2\n[b]\nfilename=band0\nrw=randrw\nrwmixread=70\nbs=128K\n\
                    group=initiator:nqn.2014-08.org.example:host-b\nruntime=0.5\n\
                    startdelay=1.5\n[c]\nfilename=band0\nrw=flush\n";
        let jobs = parse_jobs(text, "j.ini", &defaults()).expect("parses");
        assert_eq!(jobs.len(), 3);
        let (a, b) = (&jobs[0], &jobs[1]);
        assert_eq!((a.name.as_str(), a.bdev.as_str()), ("a", "band0"));
        assert_eq!((a.queue_depth, a.io_size), (32, 4096));
        assert_eq!(a.group, Some(GroupKey::Tag(1)));
        assert_eq!(a.cpumask, Some(vec![1]));
        assert_eq!(a.workload.name(), "randread");
        assert_eq!(a.origin.filename_line, 7);
        assert_eq!(b.io_size, 128 << 10);
        assert_eq!((b.workload.name(), b.workload.read_pct), ("randrw", 70));
        assert_eq!(
            b.group,
            Some(GroupKey::Initiator("nqn.2014-08.org.example:host-b".into()))
        );
        assert_eq!(b.runtime_s, Some(0.5));
        assert_eq!((a.start_delay_s, b.start_delay_s), (0.0, 1.5));
        assert_eq!(jobs[2].workload, Workload::FLUSH);
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases: &[(&str, &str)] = &[
            (
                "[a]\nfilename=x\nspeed=9\n",
                "j.ini:3: speed: unknown key 'speed'",
            ),
            (
                "[a]\nfilename=x\nbs=4q\n",
                "j.ini:3: bs: '4q' is not a size",
            ),
            ("[a]\nfilename=x\niodepth=0\n", "j.ini:3: iodepth:"),
            (
                "[a]\nfilename=x\nrw=verify\n",
                "j.ini:3: rw: unknown workload 'verify'",
            ),
            (
                "[a]\nfilename=x\ngroup=uid:3\n",
                "j.ini:3: group: parse error: unknown group type 'uid'",
            ),
            (
                "[global]\nbs=4k\n[a]\niodepth=4\n",
                "j.ini:3: job [a] has no filename",
            ),
            ("bs=4k\n", "j.ini:1: key 'bs' outside of any [section]"),
            ("[a\n", "j.ini:1: section header '[a' lacks its ']'"),
            (
                "[a]\nfilename=x\n[a]\nfilename=y\n",
                "j.ini:3: job [a] is defined twice",
            ),
            ("[a]\nfilename x\n", "j.ini:2: expected 'key=value'"),
            ("[global]\nbs=4k\n", "j.ini: no job sections"),
            (
                "[a]\nfilename=x\ncpumask=0x0\n",
                "j.ini:3: cpumask: core mask '0x0' selects no core",
            ),
            ("[a]\nfilename=x\nrwmixread=120\n", "j.ini:3: rwmixread:"),
            (
                "[a]\nfilename=x\nstartdelay=-2\n",
                "j.ini:3: startdelay: '-2' is not a delay",
            ),
        ];
        for (text, want) in cases {
            let err = parse_jobs(text, "j.ini", &defaults()).expect_err(text);
            assert!(
                err.starts_with(want),
                "{text:?}: got {err:?}, want {want:?}"
            );
        }
    }
}
