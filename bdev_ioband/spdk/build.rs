//! Compiles the C shim against an SPDK tree or install, and records which SPDK that was.
//!
//! SPDK is found through `SPDK_DIR` (a built source tree, using `include/` and `build/lib/`,
//! or an install prefix, using `include/` and `lib/`), else through pkg-config's
//! `spdk_bdev`. Nothing of SPDK is copied, generated or committed: the shim includes the
//! headers where they are, and the Rust side declares only the shim's own API.
//!
//! The SPDK libraries are not linked: the library takes SPDK's symbols from the app it is
//! loaded into (lazily bound), so that a library built for another SPDK is refused by its
//! own check, with one line, instead of by the dynamic loader (a missing soname stops the
//! app) or not at all (a second SPDK loaded beside the app's). The check compares the
//! sonames recorded here (`IOBAND_SPDK_SONAMES`) with the app's; the version
//! (`IOBAND_SPDK_VERSION`, also given to Rust with `rustc-env`) names the SPDK in messages.
//!
//! Without SPDK (or with the `mock-shim` feature) nothing is compiled or linked here: the
//! Rust layer's unit tests run against the mock of the shim's API (`src/mock.rs`). A build
//! script cannot tell `cargo test` from `cargo build`, so it sets `cfg(ioband_no_spdk)` and
//! the crate itself refuses a non-test build without SPDK (`compile_error!` in `lib.rs`),
//! with the message below.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "build/abi.rs"]
mod abi;

/// The SPDK libraries the module calls into directly (their sonames are checked at load).
const SPDK_LIBS: &[&str] = &[
    "spdk_bdev",
    "spdk_rpc",
    "spdk_jsonrpc",
    "spdk_json",
    "spdk_thread",
    "spdk_log",
    "spdk_util",
    "spdk_env_dpdk",
];

struct Spdk {
    /// The `SPDK_DIR` given (none with pkg-config).
    root: Option<PathBuf>,
    include: PathBuf,
    lib: PathBuf,
}

fn from_dir(dir: &Path) -> Spdk {
    let lib = if dir.join("build/lib").is_dir() {
        dir.join("build/lib")
    } else {
        dir.join("lib")
    };
    Spdk {
        root: Some(dir.to_path_buf()),
        include: dir.join("include"),
        lib,
    }
}

fn from_pkg_config() -> Option<Spdk> {
    let var = |name: &str| -> Option<PathBuf> {
        let out = Command::new("pkg-config")
            .args(["--variable", name, "spdk_bdev"])
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let text = text.trim();
        (out.status.success() && !text.is_empty()).then(|| PathBuf::from(text))
    };
    Some(Spdk {
        root: None,
        include: var("includedir")?,
        lib: var("libdir")?,
    })
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ioband_no_spdk)");
    println!("cargo:rerun-if-env-changed=SPDK_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-changed=src/shim/ioband_shim.c");
    println!("cargo:rerun-if-changed=src/shim/ioband_shim.h");
    println!("cargo:rerun-if-changed=src/shim/ioband_check.c");
    println!("cargo:rerun-if-changed=src/shim/ioband_check.h");

    if env::var_os("CARGO_FEATURE_MOCK_SHIM").is_some() {
        println!("cargo:warning=bdev_ioband_spdk: feature mock-shim: the C shim is not compiled, nothing of SPDK is linked");
        println!("cargo:rustc-cfg=ioband_no_spdk");
        return;
    }
    let spdk = match env::var_os("SPDK_DIR") {
        Some(dir) => from_dir(Path::new(&dir)),
        None => match from_pkg_config() {
            Some(s) => s,
            None => {
                // Unit tests build against the mock; any other build stops in lib.rs with
                // "bdev_ioband_spdk needs SPDK: set SPDK_DIR ...".
                println!("cargo:warning=bdev_ioband_spdk: no SPDK (SPDK_DIR unset): the C shim is not compiled; only `cargo test` (mock shim) builds");
                println!("cargo:rustc-cfg=ioband_no_spdk");
                return;
            }
        },
    };
    if !spdk.include.join("spdk/bdev_module.h").is_file() {
        eprintln!(
            "bdev_ioband_spdk: {} has no spdk/bdev_module.h; SPDK_DIR must point at a built SPDK \
             tree or an install prefix",
            spdk.include.display()
        );
        std::process::exit(1);
    }

    let version = abi::version(&spdk.include, spdk.root.as_deref()).unwrap_or_else(|| {
        println!(
            "cargo:warning=bdev_ioband_spdk: no SPDK version in {}/spdk/version.h: messages will say 'unknown'",
            spdk.include.display()
        );
        "unknown".to_owned()
    });
    let mut sonames = Vec::new();
    for lib in SPDK_LIBS {
        let path = spdk.lib.join(format!("lib{lib}.so"));
        let Some(soname) = abi::soname(&path) else {
            eprintln!(
                "bdev_ioband_spdk: {} is missing or has no soname; SPDK must be built --with-shared",
                path.display()
            );
            std::process::exit(1);
        };
        println!("cargo:rerun-if-changed={}", path.display());
        sonames.push(soname);
    }
    let sonames = sonames.join(" ");
    println!(
        "cargo:rerun-if-changed={}",
        spdk.include.join("spdk/version.h").display()
    );
    println!("cargo:rustc-env=IOBAND_SPDK_VERSION={version}");
    println!("cargo:rustc-env=IOBAND_SPDK_SONAMES={sonames}");

    cc::Build::new()
        .file("src/shim/ioband_shim.c")
        .file("src/shim/ioband_check.c")
        .include(&spdk.include)
        .include("src/shim")
        .define("IOBAND_SPDK_VERSION", format!("\"{version}\"").as_str())
        .define("IOBAND_SPDK_SONAMES", format!("\"{sonames}\"").as_str())
        .flag_if_supported("-std=gnu11")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(true)
        .pic(true)
        .cargo_metadata(false)
        .compile("ioband_shim");

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rustc-link-search=native={}", out.display());
    // Whole archive: the shim's ELF constructor (the check, then module and RPC
    // registration) must stay.
    println!("cargo:rustc-link-lib=static:+whole-archive=ioband_shim");
    // No SPDK library is linked (no DT_NEEDED, no RUNPATH): SPDK's symbols come from the
    // app. Lazy binding, so that a function an app's SPDK lacks cannot stop the load before
    // the shim's check has refused that app (rustc asks for BIND_NOW; this comes later).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,lazy");
}
