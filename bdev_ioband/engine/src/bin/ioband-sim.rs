//! `ioband-sim`: drives the engine over simulated time with a model device and prints what
//! each tenant achieved against what it was configured for. Single-threaded, deterministic.

use std::process::ExitCode;

use bdev_ioband_engine::sim::{self, Arrival, ModelDevice, SimConfig, Tenant};
use bdev_ioband_engine::{GroupKey, GroupValue, Op, Policy, ShareParams};

const HELP: &str = "\
ioband-sim: simulate tenants sharing one device through a bdev_ioband share

Usage: ioband-sim [OPTIONS]

Options:
  -w, --weights LIST     comma-separated weights, one tenant each   [default: 4,2,1]
  -p, --policy NAME      weight | weight-iosize                     [default: weight]
  -t, --seconds N        simulated seconds                          [default: 5]
  -o, --io-size BYTES    I/O size of every tenant                   [default: 4096]
  -q, --queue-depth N    I/Os each tenant keeps outstanding         [default: 256]
      --iops N           device IOPS                                [default: 100000]
      --io-limit N       the share's io_limit (0 = dm-ioband's 192) [default: 0]
  -h, --help             print this help
";

struct Args {
    weights: Vec<u32>,
    policy: Policy,
    seconds: u64,
    io_bytes: u64,
    queue_depth: u32,
    iops: u64,
    io_limit: u32,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        weights: vec![4, 2, 1],
        policy: Policy::Weight,
        seconds: 5,
        io_bytes: 4096,
        queue_depth: 256,
        iops: 100_000,
        io_limit: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |what: &str| -> Result<u64, String> {
            value
                .parse::<u64>()
                .map_err(|_| format!("{what} must be a whole number, not '{value}'"))
        };
        match flag.as_str() {
            "-w" | "--weights" => {
                args.weights = value
                    .split(',')
                    .map(|w| {
                        w.trim()
                            .parse::<u32>()
                            .map_err(|_| format!("bad weight '{w}'"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "-p" | "--policy" => {
                args.policy = Policy::parse(&value).map_err(|e| e.to_string())?;
                if !args.policy.is_weight() {
                    return Err("ioband-sim takes weight policies only".into());
                }
            }
            "-t" | "--seconds" => args.seconds = num("--seconds")?.clamp(1, 3600),
            "-o" | "--io-size" => args.io_bytes = num("--io-size")?.max(1),
            "-q" | "--queue-depth" => {
                args.queue_depth = u32::try_from(num("--queue-depth")?.clamp(1, 65536))
                    .map_err(|e| e.to_string())?
            }
            "--iops" => args.iops = num("--iops")?.max(1),
            "--io-limit" => {
                args.io_limit = u32::try_from(num("--io-limit")?).map_err(|e| e.to_string())?
            }
            other => return Err(format!("unknown option '{other}' (see --help)")),
        }
    }
    if args.weights.is_empty() {
        return Err("--weights needs at least one weight".into());
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ioband-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let ticks_per_sec = 1_000_000_000;
    let tenants: Vec<Tenant> = args
        .weights
        .iter()
        .enumerate()
        .zip(1u32..)
        .map(|((_, &w), tag)| Tenant {
            key: GroupKey::Tag(tag),
            value: GroupValue::Weight(w),
            device: 0,
            op: Op::Read,
            io_bytes: args.io_bytes,
            arrival: Arrival::Saturating {
                queue_depth: args.queue_depth,
            },
            think_ticks: 0,
            slow_ticks: 0,
        })
        .collect();
    let config = SimConfig {
        params: ShareParams {
            policy: args.policy,
            io_limit: args.io_limit,
            ..Default::default()
        },
        ticks_per_sec,
        device: ModelDevice {
            iops: args.iops,
            bytes_per_sec: u64::MAX,
            latency_ticks: 20_000,
        },
        ioband_devices: 1,
        tenants: tenants.clone(),
        duration_ticks: args.seconds * ticks_per_sec,
        window_ticks: ticks_per_sec,
        actions: Vec::new(),
    };
    let report = match sim::run(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ioband-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let want = sim::weight_shares(&tenants);
    println!(
        "{} tenants, policy {}, {} s on a {} IOPS device, {} B I/O, queue depth {} each",
        tenants.len(),
        args.policy,
        args.seconds,
        args.iops,
        args.io_bytes,
        args.queue_depth
    );
    println!(
        "{:<8} {:>7} {:>10} {:>12} {:>12} {:>10}",
        "tenant", "weight", "configured", "achieved", "IOPS", "max err"
    );
    let windows = report.windows.len();
    let mut totals = vec![0u64; tenants.len()];
    let mut max_err = vec![0f64; tenants.len()];
    for w in 0..windows {
        for (t, s) in report.cost_shares(w).iter().enumerate() {
            max_err[t] = max_err[t].max((s - want[t]).abs());
            totals[t] += report.windows[w][t].cost;
        }
    }
    let all: u64 = totals.iter().sum();
    for (t, tenant) in tenants.iter().enumerate() {
        let ios: u64 = report.windows.iter().map(|w| w[t].ios).sum();
        println!(
            "{:<8} {:>7} {:>9.2}% {:>11.2}% {:>12} {:>9.2}%",
            tenant.key.to_string(),
            tenant.value.to_string(),
            want[t] * 100.0,
            totals[t] as f64 * 100.0 / all.max(1) as f64,
            ios / args.seconds,
            max_err[t] * 100.0
        );
    }
    println!(
        "(achieved = share of dispatched cost over the run; max err = worst 1 s window, absolute)"
    );
    if report.dispatched_twice != 0 || report.never_dispatched != 0 {
        eprintln!(
            "ioband-sim: BUG: {} I/Os dispatched twice, {} never dispatched",
            report.dispatched_twice, report.never_dispatched
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
