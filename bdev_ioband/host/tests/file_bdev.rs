//! The file bdev over io_uring: real data through files on disk (O_DIRECT) and on
//! /dev/shm (O_DIRECT where the kernel's tmpfs takes it, buffered otherwise), error messages,
//! queue-full back-pressure, the RPC methods and the config round trip, and an ioband bdev
//! stacked over it. Reactors are stepped by hand; a test that waits on the kernel polls in a
//! bounded loop. Every test skips, saying why, where io_uring cannot be set up.

mod common;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bdev_ioband_engine::GroupKey;
use bdev_ioband_host::app::App;
use bdev_ioband_host::bdev::file::{io_uring_available, FileBdev, FileOptions};
use bdev_ioband_host::bdev::{
    Bdev, BdevError, BdevIo, BdevRef, IoCallback, IoChannel, IoStatus, IoType, SubmitError,
};
use bdev_ioband_host::rpc::config::load_config;
use bdev_ioband_host::rpc::{process, Methods};
use common::{Client, Rig};
use serde_json::{json, Value};

/// Longest a test waits for the kernel to complete its I/O.
const IO_DEADLINE: Duration = Duration::from_secs(20);

/// `true` (after printing why) when io_uring cannot be used here.
fn skip() -> bool {
    match io_uring_available() {
        Ok(()) => false,
        Err(e) => {
            eprintln!("skipping: {e}");
            true
        }
    }
}

/// A fresh file of `size` zero bytes under `dir`.
fn make_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let path = dir.join(format!("{name}-{}", std::process::id()));
    let f = std::fs::File::create(&path).expect("create");
    f.set_len(size).expect("size");
    path
}

fn disk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("file_bdev")
}

/// /dev/shm, or `IOBAND_TEST_SHM_DIR` (e.g. a ramfs mount, which refuses O_DIRECT on every
/// kernel, to see the fallback path on a machine whose tmpfs takes O_DIRECT).
fn shm_dir() -> Option<PathBuf> {
    let d =
        std::env::var_os("IOBAND_TEST_SHM_DIR").map_or_else(|| "/dev/shm".into(), PathBuf::from);
    d.is_dir().then_some(d)
}

fn opts(path: &Path) -> FileOptions {
    FileOptions::new(path.to_str().expect("utf-8 path"))
}

/// Collects completions of one channel (descriptors stay the `Box`es the API hands out).
#[allow(clippy::vec_box)]
struct Sink {
    done: Rc<RefCell<Vec<Box<BdevIo>>>>,
    cb: IoCallback,
}

impl Sink {
    fn new() -> Sink {
        let done: Rc<RefCell<Vec<Box<BdevIo>>>> = Rc::default();
        let d = done.clone();
        Sink {
            done,
            cb: Rc::new(move |io| d.borrow_mut().push(io)),
        }
    }

    /// Polls every reactor until `n` completions are in (bounded by [`IO_DEADLINE`]).
    #[allow(clippy::vec_box)]
    fn wait(&self, rig: &mut Rig, n: usize) -> Vec<Box<BdevIo>> {
        let start = Instant::now();
        while self.done.borrow().len() < n {
            assert!(
                start.elapsed() < IO_DEADLINE,
                "I/O did not complete in time"
            );
            rig.poll_all();
        }
        std::mem::take(&mut *self.done.borrow_mut())
    }
}

fn io(io_type: IoType, offset_blocks: u64, num_blocks: u64, buf: Vec<u8>) -> Box<BdevIo> {
    let mut io = Box::<BdevIo>::default();
    io.io_type = io_type;
    io.offset_blocks = offset_blocks;
    io.num_blocks = num_blocks;
    io.buf = buf;
    io
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add(u8::try_from(i % 251).unwrap_or(0)))
        .collect()
}

/// Writes, flushes and reads back through `bdev` on core 1; checks the file's bytes too.
fn round_trip(bdev: &BdevRef, path: &Path) {
    let mut rig = Rig::new(2);
    let bs = bdev.block_size() as usize;
    let ch: Rc<dyn IoChannel> = rig.on(1, || bdev.get_io_channel()).expect("channel");
    let sink = Sink::new();
    // A batch of writes (1 and 4 blocks, odd offsets) then a flush.
    let writes = [(0u64, 1u64, 7u8), (3, 4, 9), (9, 1, 11)];
    rig.on(1, || {
        for &(off, n, seed) in &writes {
            let buf = pattern(seed, bs * usize::try_from(n).expect("small"));
            assert!(ch.submit(io(IoType::Write, off, n, buf), &sink.cb).is_ok());
        }
    });
    for done in sink.wait(&mut rig, writes.len()) {
        assert_eq!(
            done.status,
            IoStatus::Success,
            "write {:?}",
            done.offset_blocks
        );
    }
    rig.on(1, || {
        assert!(ch
            .submit(io(IoType::Flush, 0, 0, Vec::new()), &sink.cb)
            .is_ok())
    });
    assert_eq!(sink.wait(&mut rig, 1)[0].status, IoStatus::Success);
    // Read back, and one read that straddles written and unwritten blocks.
    rig.on(1, || {
        for &(off, n, _) in &writes {
            assert!(ch
                .submit(
                    io(
                        IoType::Read,
                        off,
                        n,
                        vec![0xee; bs * usize::try_from(n).expect("small")]
                    ),
                    &sink.cb
                )
                .is_ok());
        }
        assert!(ch
            .submit(io(IoType::Read, 1, 3, vec![0xee; bs * 3]), &sink.cb)
            .is_ok());
    });
    let mut reads = sink.wait(&mut rig, writes.len() + 1);
    reads.sort_by_key(|r| (r.offset_blocks, r.num_blocks));
    let straddle = reads.remove(1);
    assert_eq!(straddle.status, IoStatus::Success);
    assert_eq!(&straddle.buf[..2 * bs], &vec![0u8; 2 * bs][..]);
    assert_eq!(&straddle.buf[2 * bs..], &pattern(9, bs)[..]);
    for (r, &(off, n, seed)) in reads.iter().zip(&writes) {
        assert_eq!(r.status, IoStatus::Success);
        assert_eq!(r.offset_blocks, off);
        assert!(
            r.buf == pattern(seed, bs * usize::try_from(n).expect("small")),
            "block {off} reads back"
        );
    }
    // The bytes are really in the file.
    let on_disk = std::fs::read(path).expect("read file");
    assert_eq!(&on_disk[3 * bs..7 * bs], &pattern(9, 4 * bs)[..]);
    // Past the end fails, exactly once, at a later pass (never inside submit).
    rig.on(1, || {
        let n = bdev.num_blocks();
        assert!(ch
            .submit(io(IoType::Read, n, 1, vec![0; bs]), &sink.cb)
            .is_ok());
        assert!(sink.done.borrow().is_empty());
    });
    assert_eq!(sink.wait(&mut rig, 1)[0].status, IoStatus::Failed);
    let s = bdev.stats().snapshot();
    assert_eq!(
        (
            s.num_write_ops,
            s.num_read_ops,
            s.num_other_ops,
            s.num_failed_ops
        ),
        (3, 4, 1, 1),
        "{s:?}"
    );
}

#[test]
fn direct_io_round_trip_on_disk() {
    if skip() {
        return;
    }
    let path = make_file(&disk_dir(), "direct", 64 * 4096);
    let mut o = opts(&path);
    o.direct = Some(true);
    o.block_size = Some(4096);
    let rig = Rig::new(1);
    let bdev = rig
        .on(0, || FileBdev::open("Uring0", o))
        .expect("O_DIRECT open on the target dir");
    assert!(bdev.is_direct());
    assert_eq!(bdev.num_blocks(), 64);
    let info = bdev.driver_specific();
    assert_eq!(info["uring"]["direct_io"], true, "{info}");
    assert!(info["uring"].get("warning").is_none());
    let bdev: BdevRef = std::sync::Arc::new(bdev);
    round_trip(&bdev, &path);
    let _ = std::fs::remove_file(path);
}

#[test]
fn buffered_io_round_trip_on_disk() {
    if skip() {
        return;
    }
    let path = make_file(&disk_dir(), "buffered", 32 * 512);
    let mut o = opts(&path);
    o.direct = Some(false);
    let bdev = FileBdev::open("Uring1", o).expect("buffered open");
    assert!(!bdev.is_direct());
    assert!(bdev.fallback_reason().is_none(), "no warning when asked");
    assert_eq!((bdev.block_size(), bdev.num_blocks()), (512, 32));
    let bdev: BdevRef = std::sync::Arc::new(bdev);
    round_trip(&bdev, &path);
    let _ = std::fs::remove_file(path);
}

/// tmpfs refused O_DIRECT before Linux 6.6 and takes it since: either way the default
/// (`direct` absent) works, and says which mode it is in.
#[test]
fn shm_round_trip_in_whatever_mode_tmpfs_allows() {
    if skip() {
        return;
    }
    let Some(dir) = shm_dir() else {
        eprintln!("skipping: no /dev/shm");
        return;
    };
    let path = make_file(&dir, "ioband-file-bdev", 16 * 4096);
    let bdev = FileBdev::open("Uring2", opts(&path)).expect("open on tmpfs");
    let info = bdev.driver_specific();
    assert_eq!(info["uring"]["direct_io"], bdev.is_direct(), "{info}");
    match bdev.fallback_reason() {
        Some(why) => {
            assert!(!bdev.is_direct());
            assert!(
                why.contains("O_DIRECT") || why.contains("direct I/O"),
                "{why}"
            );
            assert!(info["uring"]["warning"]
                .as_str()
                .unwrap_or("")
                .contains("buffered"));
            // Asking for O_DIRECT explicitly is then an error that says so.
            let mut o = opts(&path);
            o.direct = Some(true);
            let e = FileBdev::open("Uring3", o).expect_err("direct refused");
            assert!(
                matches!(
                    e,
                    BdevError::Invalid {
                        param: "direct",
                        ..
                    }
                ),
                "{e}"
            );
        }
        None => assert!(bdev.is_direct(), "tmpfs took O_DIRECT"),
    }
    let bdev: BdevRef = std::sync::Arc::new(bdev);
    round_trip(&bdev, &path);
    let _ = std::fs::remove_file(path);
}

#[test]
fn bad_geometry_and_paths_give_clear_errors() {
    if skip() {
        return;
    }
    let path = make_file(&disk_dir(), "odd", 1000);
    let e = FileBdev::open("Bad0", opts(&path)).expect_err("size not a multiple");
    let msg = e.to_string();
    assert!(
        msg.contains("1000 bytes") && msg.contains("not a multiple of block_size 512"),
        "{msg}"
    );
    assert_eq!(e.errno(), 22);

    let path2 = make_file(&disk_dir(), "ok", 8192);
    let mut o = opts(&path2);
    o.block_size = Some(520);
    let e = FileBdev::open("Bad1", o).expect_err("block size");
    assert!(e.to_string().contains("520"), "{e}");
    let mut o = opts(&path2);
    o.block_size = Some(16384);
    let e = FileBdev::open("Bad2", o).expect_err("bigger than the file");
    assert!(
        e.to_string().contains("not a multiple of block_size 16384"),
        "{e}"
    );

    let e =
        FileBdev::open("Bad3", FileOptions::new("/nonexistent/ioband/file")).expect_err("missing");
    assert_eq!(e.errno(), 2, "{e}");
    assert!(e.to_string().contains("/nonexistent/ioband/file"), "{e}");
    let e = FileBdev::open("Bad4", opts(&disk_dir())).expect_err("a directory");
    assert!(
        e.to_string()
            .contains("neither a regular file nor a block device"),
        "{e}"
    );
    let empty = make_file(&disk_dir(), "empty", 0);
    let e = FileBdev::open("Bad5", opts(&empty)).expect_err("empty");
    assert!(e.to_string().contains("empty"), "{e}");
    for p in [path, path2, empty] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn full_channel_answers_nomem_and_drains() {
    if skip() {
        return;
    }
    let path = make_file(&disk_dir(), "full", 256 * 512);
    let mut rig = Rig::new(1);
    let bdev = FileBdev::open("Uring4", opts(&path)).expect("open");
    let depth = bdev.queue_depth();
    let ch = rig.on(0, || bdev.get_io_channel()).expect("channel");
    let sink = Sink::new();
    let parked = rig.on(0, || {
        for i in 0..depth {
            let r = ch.submit(io(IoType::Read, u64::from(i), 1, vec![0; 512]), &sink.cb);
            assert!(r.is_ok(), "slot {i}");
        }
        match ch.submit(io(IoType::Read, 0, 1, vec![0; 512]), &sink.cb) {
            Err(SubmitError::NoMem(io)) => io,
            Ok(()) => panic!("a full channel took one more"),
        }
    });
    let done = sink.wait(&mut rig, depth as usize);
    assert!(done.iter().all(|d| d.status == IoStatus::Success));
    // The parked I/O goes through once slots are free again.
    rig.on(0, || assert!(ch.submit(parked, &sink.cb).is_ok()));
    assert_eq!(sink.wait(&mut rig, 1)[0].status, IoStatus::Success);
    // Dropping a channel with I/O in flight waits for the kernel (no use after free).
    rig.on(0, || {
        for i in 0..8 {
            assert!(ch
                .submit(io(IoType::Write, i, 1, vec![1; 512]), &sink.cb)
                .is_ok());
        }
    });
    rig.reactors[0].poll_once();
    drop(ch);
    rig.poll_all();
    let _ = std::fs::remove_file(path);
}

fn call(rig: &Rig, app: &App, method: &str, params: Value) -> Value {
    let req = json!({"jsonrpc": "2.0", "method": method, "id": 1, "params": params});
    let methods = Methods::new();
    let mut inbuf = req.to_string().into_bytes();
    let mut out = Vec::new();
    rig.on(0, || process(&methods, app, &mut inbuf, &mut out));
    serde_json::from_slice(&out).expect("one JSON reply")
}

#[test]
fn rpc_create_get_delete_and_config_round_trip() {
    if skip() {
        return;
    }
    let path = make_file(&disk_dir(), "rpc", 128 * 512);
    let file = path.to_str().expect("utf-8").to_owned();
    let rig = Rig::new(1);
    let app = rig.on(0, App::new).expect("app");
    let r = call(
        &rig,
        &app,
        "bdev_uring_create",
        json!({"name": "Uring0", "filename": file}),
    );
    assert_eq!(r["result"], "Uring0", "{r}");
    let r = call(
        &rig,
        &app,
        "bdev_aio_create",
        json!({"name": "Aio0", "filename": file, "block_size": 4096, "readonly": false}),
    );
    assert_eq!(r["result"], "Aio0", "{r}");
    let r = call(
        &rig,
        &app,
        "bdev_uring_create",
        json!({"name": "Uring0", "filename": file}),
    );
    assert_eq!(r["error"]["code"], -17, "{r}");
    let r = call(
        &rig,
        &app,
        "bdev_uring_create",
        json!({"name": "U9", "filename": file, "block_size": 384}),
    );
    assert_eq!(r["error"]["code"], -22, "{r}");
    let r = call(
        &rig,
        &app,
        "bdev_uring_create",
        json!({"name": "U9", "filename": "/nonexistent/x"}),
    );
    assert_eq!(r["error"]["code"], -2, "{r}");
    let r = call(&rig, &app, "bdev_uring_create", json!({"name": "U9"}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(app.bdev("U9").is_err(), "bad input changes no state");

    let r = call(&rig, &app, "bdev_get_bdevs", json!({"name": "Uring0"}));
    let b = &r["result"][0];
    assert_eq!(b["product_name"], "URING bdev", "{r}");
    assert_eq!(b["block_size"], 512);
    assert_eq!(b["num_blocks"], 128);
    assert_eq!(b["driver_specific"]["uring"]["filename"], file.as_str());
    let r = call(&rig, &app, "bdev_get_bdevs", json!({"name": "Aio0"}));
    assert_eq!(r["result"][0]["product_name"], "AIO disk", "{r}");
    assert_eq!(r["result"][0]["num_blocks"], 16, "{r}");

    let config =
        call(&rig, &app, "framework_get_config", json!({"name": "bdev"}))["result"].clone();
    let methods: Vec<&str> = config
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["method"].as_str())
        .collect();
    assert_eq!(
        methods,
        ["bdev_uring_create", "bdev_aio_create"],
        "{config}"
    );

    // Wrong flavor: not found; right one: gone.
    let r = call(&rig, &app, "bdev_aio_delete", json!({"name": "Uring0"}));
    assert_eq!(r["error"]["code"], -19, "{r}");
    let r = call(&rig, &app, "bdev_uring_delete", json!({"name": "Uring0"}));
    assert_eq!(r["result"], true, "{r}");
    let r = call(&rig, &app, "bdev_aio_delete", json!({"name": "Aio0"}));
    assert_eq!(r["result"], true, "{r}");

    // save_config → load_config → the same config.
    let text = json!({"subsystems": [{"subsystem": "bdev", "config": config}]}).to_string();
    let app2 = rig.on(0, App::new).expect("app");
    let n = rig
        .on(0, || load_config(&app2, &Methods::new(), &text))
        .expect("replay");
    assert_eq!(n, 2);
    let again =
        call(&rig, &app2, "framework_get_config", json!({"name": "bdev"}))["result"].clone();
    assert_eq!(again, config);
    let _ = std::fs::remove_file(path);
}

#[test]
fn ioband_over_a_file_bdev_moves_real_data() {
    if skip() {
        return;
    }
    let path = make_file(&disk_dir(), "band", 64 * 512);
    let mut rig = Rig::new(2);
    let app = rig.on(0, App::new).expect("app");
    let band: BdevRef = rig.on(0, || {
        let bdev = FileBdev::open("Uring0", opts(&path)).expect("open");
        app.bdevs
            .borrow_mut()
            .register(std::sync::Arc::new(bdev))
            .expect("register");
        app.create_ioband("band0", "Uring0", "s0", None)
            .expect("ioband");
        app.bdev("band0").expect("registered")
    });
    let c = Client::new(&rig, 1, &band, Some(GroupKey::Tag(1)));
    c.closed_loop.set(false);
    let data = pattern(42, 512);
    rig.on(1, || c.submit(IoType::Write, 5, Some(&data)));
    let start = Instant::now();
    while c.completed() < 1 {
        assert!(start.elapsed() < IO_DEADLINE, "write through ioband");
        rig.poll_all();
    }
    rig.on(1, || c.submit(IoType::Read, 5, None));
    while c.completed() < 2 {
        assert!(start.elapsed() < IO_DEADLINE, "read through ioband");
        rig.poll_all();
    }
    assert_eq!(c.success.get(), 2);
    assert!(*c.last_read.borrow() == data);
    let _ = std::fs::remove_file(path);
}

/// A block device named by `IOBAND_TEST_BLOCK_DEVICE` (its data is overwritten: use a loop
/// device, e.g. `losetup --sector-size 4096 -f --show IMG`). Skipped when unset.
#[test]
fn block_device_round_trip() {
    if skip() {
        return;
    }
    let Some(dev) = std::env::var_os("IOBAND_TEST_BLOCK_DEVICE") else {
        eprintln!("skipping: IOBAND_TEST_BLOCK_DEVICE is not set (a scratch block device)");
        return;
    };
    let path = PathBuf::from(dev);
    let bdev = FileBdev::open("Dev0", opts(&path)).expect("open the block device");
    let info = bdev.driver_specific();
    assert_eq!(info["uring"]["block_device"], true, "{info}");
    let logical = bdev.block_size();
    assert_eq!(info["uring"]["logical_block_size"], logical, "{info}");
    if logical > 512 && bdev.is_direct() {
        let mut o = opts(&path);
        o.block_size = Some(512);
        let e = FileBdev::open("Dev1", o).expect_err("below the logical block size");
        assert!(e.to_string().contains("logical block size"), "{e}");
    }
    let bdev: BdevRef = std::sync::Arc::new(bdev);
    round_trip(&bdev, &path);
}
