//! Compiles the C shim against an SPDK tree or install and links the SPDK libraries.
//!
//! SPDK is found through `SPDK_DIR` (a built source tree, using `include/` and `build/lib/`,
//! or an install prefix, using `include/` and `lib/`), else through pkg-config's
//! `spdk_bdev`. Nothing of SPDK is copied, generated or committed: the shim includes the
//! headers where they are, and the Rust side declares only the shim's own API.
//!
//! Without SPDK (or with the `mock-shim` feature) nothing is compiled or linked here: the
//! Rust layer's unit tests run against the mock of the shim's API (`src/mock.rs`). A build
//! script cannot tell `cargo test` from `cargo build`, so it sets `cfg(ioband_no_spdk)` and
//! the crate itself refuses a non-test build without SPDK (`compile_error!` in `lib.rs`),
//! with the message below.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The SPDK libraries the module calls into directly.
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

    cc::Build::new()
        .file("src/shim/ioband_shim.c")
        .include(&spdk.include)
        .include("src/shim")
        .flag_if_supported("-std=gnu11")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(true)
        .pic(true)
        .cargo_metadata(false)
        .compile("ioband_shim");

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rustc-link-search=native={}", out.display());
    // Whole archive: the shim's ELF constructors (module and RPC registration) must stay.
    println!("cargo:rustc-link-lib=static:+whole-archive=ioband_shim");
    println!("cargo:rustc-link-search=native={}", spdk.lib.display());
    for lib in SPDK_LIBS {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    // The preloaded library (and a unit-test binary, which links the shim too) finds the
    // SPDK libraries it was built against.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", spdk.lib.display());
    println!("cargo:rustc-cdylib-link-arg=-Wl,--no-as-needed");
}
