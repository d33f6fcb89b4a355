//! `ioband_perf`: bdevperf-style load on the embedded host, in-process. See PERF.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bdev_ioband_host::perf::events::parse_events;
use bdev_ioband_host::perf::jobs::{parse_jobs, Defaults};
use bdev_ioband_host::perf::opts::{
    parse_depth, parse_group, parse_mask, parse_pct, parse_seconds, parse_size, JobSpec, Origin,
    Workload,
};
use bdev_ioband_host::perf::report::render_text;
use bdev_ioband_host::perf::run::{run, RunConfig, ALL_BDEVS};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// bdevperf's table and the share tables.
    Table,
    /// One JSON document (schema in PERF.md).
    Json,
}

/// bdevperf-style load generator for bdev_ioband's embedded host: runs jobs on the host's
/// reactors in this process and reports IOPS, MiB/s, latency (avg/min/max/p50/p99/p99.9, µs)
/// per job, and configured versus achieved shares for ioband targets.
#[derive(Debug, Parser)]
#[command(
    name = "ioband_perf",
    version,
    after_help = "Examples:\n  ioband_perf --json bdevs.json -q 128 -o 4096 -w randread -t 5 -T band0\n  \
                  ioband_perf --json bdevs.json -j tenants.ini -t 10 --output json\n  \
                  ioband_perf --json bdevs.json -j tenants.ini -t 10 --events events.json\n\n\
                  Jobs-file keys: filename, bs, iodepth, rw, rwmixread, cpumask, runtime, \
                  startdelay, group.\n\
                  Events file: a JSON array of {\"at_s\": SECONDS, \"method\": NAME, \
                  \"params\": {..}}; each is called at its time on the main reactor, and a \
                  failing call aborts the run."
)]
struct Args {
    /// Queue depth: I/Os each job keeps outstanding (required without -j).
    #[arg(short = 'q', value_name = "DEPTH", value_parser = parse_depth)]
    queue_depth: Option<u32>,
    /// I/O size in bytes: 4096, 4k, 128K, 1M (required without -j).
    #[arg(short = 'o', value_name = "SIZE", value_parser = parse_size)]
    io_size: Option<u64>,
    /// Workload: read, write, randread, randwrite, rw, randrw, or flush (every I/O a FLUSH
    /// of 0 bytes) (required without -j).
    #[arg(short = 'w', value_name = "PATTERN")]
    workload: Option<String>,
    /// Read percentage of rw and randrw.
    #[arg(short = 'M', value_name = "PCT", default_value = "50", value_parser = parse_pct)]
    read_pct: u8,
    /// Run time in seconds (fractions allowed).
    #[arg(short = 't', value_name = "SEC", value_parser = parse_seconds)]
    time: f64,
    /// Core mask in hex: one reactor per set bit; the lowest is the main reactor.
    #[arg(short = 'm', value_name = "MASK", default_value = "0x1")]
    cpumask: String,
    /// SPDK JSON config that creates the bdevs: its `bdev` subsystem, as ioband_tgt --json
    /// loads it (the front ends' `nbd` and `iscsi` subsystems are skipped).
    #[arg(long = "json", value_name = "FILE")]
    json: Option<PathBuf>,
    /// Run only on this bdev (default: every bdev no vbdev claims).
    #[arg(short = 'T', value_name = "BDEV")]
    target: Option<String>,
    /// Group tag of the I/O of the jobs made from the command line.
    #[arg(short = 'g', long = "group", value_name = "GROUP", value_parser = parse_group)]
    group: Option<bdev_ioband_engine::GroupKey>,
    /// Jobs file (bdevperf's INI format plus `group=`); see PERF.md.
    #[arg(short = 'j', long = "jobs", value_name = "FILE")]
    jobs: Option<PathBuf>,
    /// Control schedule: a JSON array of {"at_s", "method", "params"}: JSON-RPC calls made
    /// at those times (seconds after the start) while the jobs run; see PERF.md.
    #[arg(long = "events", value_name = "FILE")]
    events: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    /// Length of the share windows, in milliseconds.
    #[arg(long, value_name = "MS", default_value = "1000")]
    window_ms: u64,
    /// Seed of the random offsets.
    #[arg(long, default_value = "305419896")]
    seed: u64,
}

fn jobs_of(args: &Args) -> Result<Vec<JobSpec>, String> {
    let workload_name = args.workload.clone();
    if let Some(path) = &args.jobs {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: {e}"))?;
        let defaults = Defaults {
            queue_depth: args.queue_depth.unwrap_or(32),
            io_size: args.io_size.unwrap_or(4096),
            workload: workload_name.unwrap_or_else(|| "randread".into()),
            read_pct: args.read_pct,
        };
        let mut jobs = parse_jobs(&text, &file, &defaults)?;
        if let Some(t) = &args.target {
            jobs.retain(|j| &j.bdev == t);
            if jobs.is_empty() {
                return Err(format!("{file}: no job runs on -T {t}"));
            }
        }
        return Ok(jobs);
    }
    let missing: Vec<&str> = [
        ("-q", args.queue_depth.is_none()),
        ("-o", args.io_size.is_none()),
        ("-w", args.workload.is_none()),
    ]
    .iter()
    .filter(|(_, m)| *m)
    .map(|(o, _)| *o)
    .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing {} (required unless a jobs file is given with -j)",
            missing.join(", ")
        ));
    }
    let workload = Workload::parse(workload_name.as_deref().unwrap_or_default(), args.read_pct)?;
    let bdev = args.target.clone().unwrap_or_else(|| ALL_BDEVS.to_owned());
    Ok(vec![JobSpec {
        name: bdev.clone(),
        bdev,
        queue_depth: args.queue_depth.unwrap_or(1),
        io_size: args.io_size.unwrap_or(4096),
        workload,
        cpumask: None,
        runtime_s: None,
        start_delay_s: 0.0,
        group: args.group.clone(),
        origin: Origin::default(),
    }])
}

fn main() -> ExitCode {
    let args = Args::parse();
    let fail = |msg: String| {
        eprintln!("ioband_perf: {msg}");
        ExitCode::from(2)
    };
    let lcores = match parse_mask(&args.cpumask) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    if args.window_ms == 0 {
        return fail("--window-ms must be positive".into());
    }
    let jobs = match jobs_of(&args) {
        Ok(j) => j,
        Err(e) => return fail(e),
    };
    let config_json = match &args.json {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => Some(t),
            Err(e) => return fail(format!("{}: {e}", p.display())),
        },
        None => None,
    };
    let events = match &args.events {
        Some(p) => {
            let file = p.display().to_string();
            match std::fs::read_to_string(p) {
                Ok(text) => match parse_events(&text, &file) {
                    Ok(e) => e,
                    Err(e) => return fail(e),
                },
                Err(e) => return fail(format!("{file}: {e}")),
            }
        }
        None => Vec::new(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            return fail(format!("cannot install signal handler: {e}"));
        }
    }
    let cfg = RunConfig {
        config_json,
        window_s: args.window_ms as f64 / 1000.0,
        progress: args.output == Output::Table,
        stop,
        seed: args.seed,
        events,
        ..RunConfig::new(lcores, jobs, args.time)
    };
    if args.output == Output::Table {
        println!(
            "Running I/O for {} seconds on {} job(s), core mask {}...",
            cfg.duration_s(),
            cfg.jobs.len(),
            args.cpumask
        );
    }
    match run(&cfg) {
        Ok(report) => {
            match args.output {
                Output::Table => print!("{}", render_text(&report)),
                Output::Json => match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => return fail(e.to_string()),
                },
            }
            if report.results.iter().any(|r| r.status == "failed") {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(e),
    }
}
