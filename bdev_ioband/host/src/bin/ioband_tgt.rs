//! `ioband_tgt`: the embedded polled-mode target. One reactor thread per core of the mask
//! (the main reactor on the calling thread runs the RPC server and the control plane), the
//! bdev layer and the ioband vbdev, configured by JSON-RPC or a JSON config file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bdev_ioband_host::app::App;
use bdev_ioband_host::reactor::{self, PollerStatus, ReactorSet};
use bdev_ioband_host::rpc::config::load_config;
use bdev_ioband_host::rpc::{
    Methods, RpcOptions, RpcServer, DEFAULT_IDLE_TIMEOUT_SECS, DEFAULT_RPC_SOCKET,
};
use bdev_ioband_host::ticks::Clock;
use clap::Parser;

/// SPDK-like target serving bdev_ioband (dm-ioband-style QoS) over JSON-RPC.
#[derive(Debug, Parser)]
#[command(name = "ioband_tgt", version)]
struct Args {
    /// Core mask in hex (one reactor per set bit; the lowest is the main reactor).
    #[arg(short = 'm', long = "cpumask", default_value = "0x1")]
    cpumask: String,
    /// Unix socket path of the JSON-RPC server.
    #[arg(short = 'r', long = "rpc-socket", default_value = DEFAULT_RPC_SOCKET)]
    rpc_socket: PathBuf,
    /// Permission bits of the RPC socket, in octal (whatever the umask).
    #[arg(long = "rpc-socket-mode", default_value = "600", value_parser = parse_mode)]
    rpc_socket_mode: u32,
    /// Seconds without a byte either way after which an RPC client is disconnected
    /// (0 = never).
    #[arg(long = "rpc-idle-timeout", default_value_t = DEFAULT_IDLE_TIMEOUT_SECS)]
    rpc_idle_timeout: u64,
    /// JSON config file to load at start-up (SPDK's format; the "bdev", "nbd" and "iscsi" subsystems).
    #[arg(short = 'c', long = "json", alias = "config")]
    json: Option<PathBuf>,
    /// Let idle reactors sleep briefly instead of spinning.
    #[arg(long)]
    idle_backoff: bool,
}

fn parse_mode(mode: &str) -> Result<u32, String> {
    match u32::from_str_radix(mode, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("'{mode}' is not an octal mode from 0 to 777")),
    }
}

fn parse_mask(mask: &str) -> Result<Vec<u32>, String> {
    let digits = mask
        .strip_prefix("0x")
        .or_else(|| mask.strip_prefix("0X"))
        .unwrap_or(mask);
    let bits = u64::from_str_radix(digits, 16)
        .map_err(|e| format!("core mask '{mask}' is not hexadecimal: {e}"))?;
    if bits == 0 {
        return Err(format!("core mask '{mask}' selects no core"));
    }
    Ok((0..64).filter(|b| bits & (1u64 << b) != 0).collect())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let lcores = match parse_mask(&args.cpumask) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ioband_tgt: {e}");
            return ExitCode::from(2);
        }
    };
    let signalled = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, signalled.clone()) {
            eprintln!("ioband_tgt: cannot install signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }

    let mut set = ReactorSet::new(&lcores, Clock::monotonic(), args.idle_backoff);
    let Some(main_seed) = set.take_seed(0) else {
        eprintln!("ioband_tgt: no main reactor");
        return ExitCode::FAILURE;
    };
    let threads = match set.spawn_secondaries() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ioband_tgt: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut main_reactor = main_seed.build();

    let started = main_reactor.enter(|| -> Result<Rc<std::cell::RefCell<RpcServer>>, String> {
        let app = Rc::new(App::new().map_err(|e| e.to_string())?);
        if let Some(path) = &args.json {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let n = load_config(&app, &Methods::new(), &text).map_err(|e| e.to_string())?;
            println!(
                "ioband_tgt: loaded {n} config entries from {}",
                path.display()
            );
        }
        let options = RpcOptions {
            socket_mode: args.rpc_socket_mode,
            idle_timeout_secs: args.rpc_idle_timeout,
        };
        let server =
            RpcServer::start_with(&args.rpc_socket, app, options).map_err(|e| e.to_string())?;
        let flag = signalled.clone();
        reactor::register_poller("signals", 10_000_000, move |_| {
            if flag.load(Ordering::Relaxed) {
                let _ = reactor::request_stop();
                return PollerStatus::Done;
            }
            PollerStatus::Idle
        })
        .map_err(|e| e.to_string())?;
        Ok(server)
    });
    let code = match started {
        Ok(server) => {
            println!(
                "ioband_tgt: reactors on cores {:?}; JSON-RPC listening on {}",
                lcores,
                server.borrow().path().display()
            );
            main_reactor.run();
            drop(server);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ioband_tgt: {e}");
            main_reactor.enter(|| {
                let _ = reactor::request_stop();
            });
            ExitCode::FAILURE
        }
    };
    for t in threads {
        let _ = t.join();
    }
    println!("ioband_tgt: stopped");
    code
}
