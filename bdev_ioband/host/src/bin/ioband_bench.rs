//! `ioband_bench`: runs the standard benchmark scenarios in-process and writes
//! `report.json`, `report.md` and SVG plots (see PERF.md; `scripts/bench` wraps it).

use std::path::PathBuf;
use std::process::ExitCode;

use bdev_ioband_host::perf::bench::{run_all, BenchOptions};
use clap::Parser;

/// Runs bdev_ioband's standard benchmark scenarios (overhead, fairness, weight-iosize,
/// range-bw, scaling) and writes the report.
#[derive(Debug, Parser)]
#[command(name = "ioband_bench", version)]
struct Args {
    /// About a minute in all (default: a few minutes, longer windows of evidence).
    #[arg(long)]
    quick: bool,
    /// Directory for report.json, report.md and the SVG plots.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// No per-run lines on stderr.
    #[arg(long)]
    silent: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = BenchOptions {
        quick: args.quick,
        verbose: !args.silent,
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
