//! `ioband_bench`: runs the standard benchmark scenarios in-process and writes
//! `report.json`, `report.md` and SVG plots (see PERF.md; `scripts/bench` wraps it).

use std::path::PathBuf;
use std::process::ExitCode;

use bdev_ioband_host::perf::bench::{run_all, BenchOptions, SCENARIO_NAMES};
use clap::Parser;

/// Runs bdev_ioband's standard benchmark scenarios (overhead, fairness, weight_iosize,
/// range_bw, scaling, closed_loop, victim, churn, slow_io, onset) and writes the report.
#[derive(Debug, Parser)]
#[command(
    name = "ioband_bench",
    version,
    after_help = "report.json's keys and targets are described in bdev_ioband/host/PERF.md."
)]
struct Args {
    /// A few minutes in all (default: about a quarter of an hour, longer runs).
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios (comma-separated: overhead, fairness, weight_iosize,
    /// range_bw, scaling, closed_loop, victim, churn, slow_io, onset).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    only: Vec<String>,
    /// Directory for report.json, report.md and the SVG plots.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// No per-run lines on stderr.
    #[arg(long)]
    silent: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(bad) = args
        .only
        .iter()
        .find(|o| !SCENARIO_NAMES.contains(&o.as_str()))
    {
        eprintln!(
            "ioband_bench: unknown scenario '{bad}' in --only (scenarios: {})",
            SCENARIO_NAMES.join(", ")
        );
        return ExitCode::from(2);
    }
    let opts = BenchOptions {
        quick: args.quick,
        verbose: !args.silent,
        only: args.only,
    };
    match run_all(&opts, &args.out) {
        Ok(_) => {
            println!(
                "ioband_bench: wrote {}/report.json, report.md and plots",
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ioband_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
