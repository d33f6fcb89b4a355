//! The load-time SPDK check without SPDK: the build script's readers of the SPDK version and
//! of a library's soname (`build/abi.rs`, included here), and the shim's registration going
//! only through the check (its source). The check itself runs in the gated tests
//! (`tests/spdk/test_spdk_version.py`).

#[path = "../../build/abi.rs"]
#[allow(dead_code)]
mod abi;

use std::fs;
use std::path::{Path, PathBuf};

use super::ticks::strip_c_comments;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ioband-abi-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("include/spdk")).expect("scratch dir");
    dir
}

#[test]
fn the_version_comes_from_version_h_else_the_version_file() {
    let dir = scratch("version");
    let include = dir.join("include");
    assert_eq!(abi::version(&include, Some(&dir)), None);
    fs::write(dir.join("VERSION"), "26.05.0\n").expect("VERSION");
    assert_eq!(
        abi::version(&include, Some(&dir)).as_deref(),
        Some("26.05.0")
    );
    assert_eq!(abi::version(&include, None), None);
    fs::write(
        include.join("spdk/version.h"),
        "#define SPDK_VERSION_MAJOR\t25\n#define SPDK_VERSION_MAJOR_STRING x\n\
         #define SPDK_VERSION_MINOR\t9\n#define SPDK_VERSION_PATCH\t1\n\
         #define SPDK_VERSION_SUFFIX\t\"-pre\"\n",
    )
    .expect("version.h");
    assert_eq!(
        abi::version(&include, Some(&dir)).as_deref(),
        Some("25.09.1-pre")
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_soname_is_read_from_the_elf_dynamic_section() {
    // libc is loaded into this test: its file name is its soname (libc.so.6).
    let maps = fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let libc = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| Path::new(p).file_name().is_some_and(|f| f == "libc.so.6"))
        .expect("libc.so.6 mapped");
    assert_eq!(abi::soname(Path::new(libc)).as_deref(), Some("libc.so.6"));
    // Not ELF, or no soname (an executable).
    assert_eq!(abi::soname(Path::new("/proc/self/maps")), None);
    let exe = std::env::current_exe().expect("current_exe");
    assert_eq!(abi::soname(&exe), None);
}

#[test]
fn the_shim_registers_nothing_before_the_check() {
    let src = strip_c_comments(include_str!("../shim/ioband_shim.c"));
    for registration in ["SPDK_RPC_REGISTER", "SPDK_BDEV_MODULE_REGISTER"] {
        assert!(
            !src.contains(registration),
            "{registration} bypasses the check"
        );
    }
    assert_eq!(src.matches("constructor").count(), 1, "one ELF constructor");
    let load = &src[src.find("ioband_load(void)\n{").expect("ioband_load")..];
    let load = &load[..load.find("\n}\n").expect("its end")];
    let check = load.find("ioband_check_app_spdk(").expect("the check");
    for call in ["spdk_bdev_module_list_add(", "spdk_rpc_register_method("] {
        assert!(
            load.find(call).is_some_and(|at| at > check),
            "{call} after the check"
        );
    }
    // Every RPC handler the shim defines is in the table ioband_load registers.
    let handlers: Vec<&str> = src
        .match_indices("IOBAND_RPC(rpc_")
        .map(|(at, _)| &src[at + 11..at + 11 + src[at + 11..].find(',').expect(",")])
        .collect();
    assert_eq!(handlers.len(), 7, "{handlers:?}");
    for h in handlers {
        let method = h.trim_start_matches("rpc_");
        assert!(
            src.contains(&format!("{{ \"{method}\", {h} }}")),
            "{method} not in g_rpc_methods"
        );
    }
}
