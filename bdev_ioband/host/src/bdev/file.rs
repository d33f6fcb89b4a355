//! The file bdev: a regular file or a block device served through io_uring, with real data.
//! SPDK's `bdev_uring_create` makes one (and `bdev_aio_create`, the same device under
//! SPDK's older name).
//!
//! Threading: the bdev object (the open file, its geometry) is shared read-only by every
//! reactor. Each I/O channel owns one io_uring and a fixed table of slots, on the reactor
//! that made it, and never leaves it. `submit` only fills a submission queue entry; the
//! channel's poller hands every queued entry to the kernel in one `io_uring_enter` (no wait)
//! and peeks the completion queue, so the reactor never blocks and no thread is started.
//!
//! O_DIRECT is tried first. Where the file system refuses it (`EINVAL`: some file systems,
//! tmpfs before Linux 6.6) the bdev falls back to buffered I/O with a warning on stderr and in
//! `bdev_get_bdevs`' `driver_specific`, unless the caller asked for `direct: true`, which then
//! fails with an error saying so. Under O_DIRECT the block size must be a multiple of the
//! device's logical block size and buffers must be aligned: a descriptor whose buffer is
//! aligned is used as it is, any other goes through its slot's aligned bounce buffer (kept
//! for the channel's life, so the steady-state path allocates nothing).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use io_uring::{opcode, types, IoUring};
use serde_json::json;

use super::deferred::Deferred;
use super::{
    check_geometry, Bdev, BdevError, BdevIo, IoCallback, IoChannel, IoStats, IoStatus, IoType,
    SubmitError,
};
use crate::reactor::{self, PollerStatus};

/// I/Os one channel keeps in flight (slots, and submission queue entries).
pub const CHANNEL_DEPTH: u32 = 128;
/// Alignment of bounce buffers (covers every DMA and logical-block alignment in practice).
const BOUNCE_ALIGN: usize = 4096;
/// Bounce room each slot starts with; a larger I/O grows that slot's buffer once.
const INITIAL_BOUNCE: usize = 4096;
/// Times a channel being dropped waits for the kernel to finish its in-flight I/O.
const DRAIN_WAITS: usize = 1024;

/// Which RPC made the bdev (decides its product name and its config entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFlavor {
    /// `bdev_uring_create`.
    Uring,
    /// `bdev_aio_create` (served by io_uring all the same).
    Aio,
}

impl FileFlavor {
    /// The product name `bdev_get_bdevs` shows (SPDK's).
    pub fn product_name(self) -> &'static str {
        match self {
            FileFlavor::Uring => "URING bdev",
            FileFlavor::Aio => "AIO disk",
        }
    }

    /// The create method that recreates it.
    pub fn create_method(self) -> &'static str {
        match self {
            FileFlavor::Uring => "bdev_uring_create",
            FileFlavor::Aio => "bdev_aio_create",
        }
    }

    fn key(self) -> &'static str {
        match self {
            FileFlavor::Uring => "uring",
            FileFlavor::Aio => "aio",
        }
    }
}

/// What to open and how.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// Path of a regular file or a block device.
    pub filename: String,
    /// Bytes per block; `None` or 0: the device's logical block size (512 at least).
    pub block_size: Option<u32>,
    /// `Some(true)`: O_DIRECT or fail; `Some(false)`: buffered; `None`: O_DIRECT where the
    /// file allows it, buffered (with a warning) where not.
    pub direct: Option<bool>,
    /// Its UUID; made from the name when absent.
    pub uuid: Option<String>,
    /// Which RPC made it.
    pub flavor: FileFlavor,
}

impl FileOptions {
    /// Options for `filename` with every default.
    pub fn new(filename: &str) -> FileOptions {
        FileOptions {
            filename: filename.to_owned(),
            block_size: None,
            direct: None,
            uuid: None,
            flavor: FileFlavor::Uring,
        }
    }
}

#[derive(Debug)]
struct Inner {
    name: String,
    uuid: String,
    opts: FileOptions,
    file: File,
    block_device: bool,
    direct: bool,
    /// Why O_DIRECT is not used although it was not turned off.
    fallback: Option<String>,
    logical_block_size: u32,
    mem_align: usize,
    block_size: u32,
    num_blocks: u64,
    stats: IoStats,
}

/// A file bdev.
#[derive(Debug)]
pub struct FileBdev {
    inner: Arc<Inner>,
}

fn os_error(message: String, e: &io::Error) -> BdevError {
    BdevError::System {
        message: format!("{message}: {e}"),
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    }
}

/// Whether io_uring can be set up in this process; the error says why not, naming
/// io_uring (kernel without it, `kernel.io_uring_disabled`, a seccomp filter, memlock).
pub fn io_uring_available() -> Result<(), BdevError> {
    IoUring::new(2).map(drop).map_err(|e| ring_error(&e))
}

fn ring_error(e: &io::Error) -> BdevError {
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring",
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "io_uring is disabled (sysctl kernel.io_uring_disabled) or blocked by seccomp"
        }
        Some(libc::ENOMEM) => "out of locked memory for the ring (RLIMIT_MEMLOCK)",
        _ => "io_uring_setup failed",
    };
    os_error(
        format!("io_uring is unavailable: {why} (io_uring_setup)"),
        e,
    )
}

/// Direct-I/O alignment a file reports: (memory, offset), or `None` if the kernel does not
/// say; (0, 0) means the file does not support direct I/O.
fn dio_alignment(file: &File) -> Option<(u32, u32)> {
    // SAFETY: `statx` is plain old data (integers and padding); all-zero is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is open for the call; the empty path with AT_EMPTY_PATH names the fd
    // itself; `stx` is a valid, writable statx.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    (rc == 0 && stx.stx_mask & libc::STATX_DIOALIGN != 0)
        .then_some((stx.stx_dio_mem_align, stx.stx_dio_offset_align))
}

/// The logical block size of a block device (BLKSSZGET).
fn logical_block_size(file: &File) -> io::Result<u32> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which points at `size`; the fd
    // is open for the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::BLKSSZGET, &mut size) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn open(path: &str, direct: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path)
}

/// Opens `path` as `want` asks (see [`FileOptions::direct`]) with `open(path, direct)`:
/// the file, whether it is in O_DIRECT mode, and why not if O_DIRECT was wanted but refused.
fn open_mode(
    path: &str,
    want: Option<bool>,
    open: fn(&str, bool) -> io::Result<File>,
) -> Result<(File, bool, Option<String>), BdevError> {
    let open_error = |e: io::Error| os_error(format!("cannot open '{path}'"), &e);
    if want == Some(false) {
        return Ok((open(path, false).map_err(open_error)?, false, None));
    }
    let why = match open(path, true) {
        Ok(f) if dio_alignment(&f) == Some((0, 0)) => {
            // Opened, but the file says it cannot do direct I/O.
            format!("'{path}' does not support direct I/O (statx reports no DIO alignment)")
        }
        Ok(f) => return Ok((f, true, None)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            format!("the file system of '{path}' refuses O_DIRECT ({e})")
        }
        Err(e) => return Err(open_error(e)),
    };
    if want == Some(true) {
        return Err(BdevError::Invalid {
            param: "direct",
            reason: format!("{why}; omit `direct` (or set it false) for buffered I/O"),
        });
    }
    Ok((open(path, false).map_err(open_error)?, false, Some(why)))
}

/// Checks that O_DIRECT I/O of `block_size` blocks is possible on a device whose logical
/// block size is `logical`.
pub fn check_direct_alignment(block_size: u32, logical: u32) -> Result<(), BdevError> {
    if logical == 0 || block_size % logical != 0 {
        return Err(BdevError::Invalid {
            param: "block_size",
            reason: format!(
                "{block_size} is not a multiple of the device's logical block size {logical} \
                 (O_DIRECT needs it)"
            ),
        });
    }
    Ok(())
}

impl FileBdev {
    /// Opens `opts.filename` (not yet registered).
    pub fn open(name: &str, opts: FileOptions) -> Result<FileBdev, BdevError> {
        let path = opts.filename.as_str();
        if path.is_empty() {
            return Err(BdevError::Invalid {
                param: "filename",
                reason: "it is empty".into(),
            });
        }
        let meta =
            std::fs::metadata(path).map_err(|e| os_error(format!("cannot stat '{path}'"), &e))?;
        let block_device = meta.file_type().is_block_device();
        if !block_device && !meta.is_file() {
            return Err(BdevError::Invalid {
                param: "filename",
                reason: format!("'{path}' is neither a regular file nor a block device"),
            });
        }
        io_uring_available()?;

        let (file, direct, fallback) = open_mode(path, opts.direct, open)?;
        if let Some(why) = &fallback {
            eprintln!("bdev_uring: warning: {name}: {why}; using buffered I/O (page cache)");
        }

        let (mem_align, logical) = if block_device {
            let logical = logical_block_size(&file)
                .map_err(|e| os_error(format!("BLKSSZGET on '{path}'"), &e))?;
            (logical.max(512), logical)
        } else {
            match dio_alignment(&file) {
                Some((mem, off)) if direct && off > 0 => (mem.max(1), off),
                _ => (512, 512),
            }
        };
        let mem_align = usize::try_from(mem_align)
            .unwrap_or(BOUNCE_ALIGN)
            .next_power_of_two();
        let block_size = match opts.block_size {
            Some(bs) if bs > 0 => bs,
            _ => logical.max(512),
        };
        check_geometry(block_size, 1)?;
        if direct {
            check_direct_alignment(block_size, logical)?;
        }

        let size = if block_device {
            (&file)
                .seek(SeekFrom::End(0))
                .map_err(|e| os_error(format!("cannot size '{path}'"), &e))?
        } else {
            meta.len()
        };
        let bs = u64::from(block_size);
        if size == 0 {
            return Err(BdevError::Invalid {
                param: "filename",
                reason: format!("'{path}' is empty"),
            });
        }
        if !block_device && size % bs != 0 {
            return Err(BdevError::Invalid {
                param: "block_size",
                reason: format!(
                    "the size of '{path}' ({size} bytes) is not a multiple of block_size {block_size}"
                ),
            });
        }
        let num_blocks = size / bs;
        check_geometry(block_size, num_blocks)?;
        Ok(FileBdev {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                uuid: opts.uuid.clone().unwrap_or_else(|| super::make_uuid(name)),
                opts,
                file,
                block_device,
                direct,
                fallback,
                logical_block_size: logical,
                mem_align,
                block_size,
                num_blocks,
                stats: IoStats::default(),
            }),
        })
    }

    /// Whether I/O bypasses the page cache.
    pub fn is_direct(&self) -> bool {
        self.inner.direct
    }

    /// Why O_DIRECT is not in use although it was not turned off, if so.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.inner.fallback.as_deref()
    }
}

/// One in-flight (or free) I/O of a channel.
struct Slot {
    io: Option<Box<BdevIo>>,
    done: Option<IoCallback>,
    /// Raw storage of the aligned bounce buffer (aligned window found by [`window`]).
    bounce: Vec<u8>,
    bounced: bool,
    /// Bytes moved so far (short transfers are continued).
    progress: u64,
}

/// Offset of the first `align`-aligned byte of `buf`.
fn align_offset(buf: &[u8], align: usize) -> usize {
    let addr = buf.as_ptr() as usize;
    (align - addr % align) % align
}

struct Ring {
    ring: IoUring,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Slots whose op must be queued again (EAGAIN, short transfer).
    again: Vec<u32>,
    /// Completed I/Os of one pass (capacity kept).
    batch: Vec<(Box<BdevIo>, IoCallback)>,
    cqes: Vec<(u64, i32)>,
    enter_error_logged: bool,
}

struct FileChannel {
    inner: Arc<Inner>,
    core: u32,
    state: RefCell<Ring>,
    deferred: Rc<Deferred>,
}

impl Ring {
    fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Queues the (rest of the) op of slot `idx`; false if the submission queue is full.
    fn queue(&mut self, inner: &Inner, idx: u32) -> bool {
        let fd = types::Fd(inner.file.as_raw_fd());
        let slot = &mut self.slots[idx as usize];
        let Some(io) = slot.io.as_mut() else {
            return true;
        };
        let total = io.len_bytes(inner.block_size);
        let done = usize::try_from(slot.progress).unwrap_or(usize::MAX);
        let rest = u32::try_from(total - slot.progress).unwrap_or(u32::MAX);
        let offset = io.offset_blocks * u64::from(inner.block_size) + slot.progress;
        let buf: &mut [u8] = if slot.bounced {
            let start = align_offset(&slot.bounce, BOUNCE_ALIGN);
            &mut slot.bounce[start..]
        } else {
            &mut io.buf[..]
        };
        let ptr = buf[done..].as_mut_ptr();
        let entry = match io.io_type {
            IoType::Read => opcode::Read::new(fd, ptr, rest).offset(offset).build(),
            IoType::Write => opcode::Write::new(fd, ptr, rest).offset(offset).build(),
            IoType::Flush => opcode::Fsync::new(fd).build(),
        }
        .user_data(u64::from(idx));
        // SAFETY: the entry points into memory the slot keeps unmoved and alive until its
        // completion is reaped: either the slot's bounce Vec (not resized while the slot is
        // busy) or the heap buffer of the descriptor the slot holds (nobody touches it until
        // the completion hands it back). The fd is the bdev's file, which the channel's `Arc`
        // keeps open; and the channel's drop waits for (or leaks) whatever is still in flight.
        unsafe { self.ring.submission().push(&entry).is_ok() }
    }

    /// Hands queued entries to the kernel without waiting; true if any went.
    fn enter(&mut self) -> bool {
        if self.ring.submission().is_empty() {
            return false;
        }
        match self.ring.submit() {
            Ok(n) => n > 0,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAGAIN | libc::EBUSY | libc::EINTR)
                ) =>
            {
                false
            }
            Err(e) => {
                if !self.enter_error_logged {
                    eprintln!("bdev_uring: io_uring_enter failed: {e}; retrying");
                    self.enter_error_logged = true;
                }
                false
            }
        }
    }
}

impl FileChannel {
    fn poll(&self) -> PollerStatus {
        let inner = &*self.inner;
        let mut batch = {
            let mut st = self.state.borrow_mut();
            let st = &mut *st;
            let mut again = std::mem::take(&mut st.again);
            again.retain(|&idx| !st.queue(inner, idx));
            st.again = again;
            let entered = st.enter();
            let mut cqes = std::mem::take(&mut st.cqes);
            cqes.extend(st.ring.completion().map(|c| (c.user_data(), c.result())));
            for &(user_data, res) in &cqes {
                let Ok(idx) = u32::try_from(user_data) else {
                    continue;
                };
                if let Some(finished) = self.reap(st, idx, res) {
                    st.batch.push(finished);
                }
            }
            let busy = entered || !cqes.is_empty();
            cqes.clear();
            st.cqes = cqes;
            if !busy && st.batch.is_empty() {
                return PollerStatus::Idle;
            }
            std::mem::take(&mut st.batch)
        };
        for (io, done) in batch.drain(..) {
            let ok = io.status == IoStatus::Success;
            inner
                .stats
                .record(self.core, io.io_type, io.len_bytes(inner.block_size), ok);
            done(io);
        }
        // Keep the capacity (a callback may have queued nothing into `batch` meanwhile: it
        // is only filled here).
        self.state.borrow_mut().batch = batch;
        PollerStatus::Busy
    }

    /// Accounts one completion of slot `idx`; returns the I/O if it is finished.
    fn reap(&self, st: &mut Ring, idx: u32, res: i32) -> Option<(Box<BdevIo>, IoCallback)> {
        let bs = self.inner.block_size;
        let slot = st.slots.get_mut(idx as usize)?;
        let io = slot.io.as_ref()?;
        let total = io.len_bytes(bs);
        let status = if res == -libc::EAGAIN || res == -libc::EINTR {
            None
        } else if res < 0 {
            Some(IoStatus::Failed)
        } else if io.io_type == IoType::Flush {
            Some(IoStatus::Success)
        } else if res == 0 {
            // End of file inside the device's range: the file shrank under us.
            Some(IoStatus::Failed)
        } else {
            slot.progress += u64::from(res.unsigned_abs());
            (slot.progress >= total).then_some(IoStatus::Success)
        };
        let Some(status) = status else {
            if !st.queue(&self.inner, idx) {
                st.again.push(idx);
            }
            return None;
        };
        let mut io = slot.io.take()?;
        let done = slot.done.take()?;
        if status == IoStatus::Success && slot.bounced && io.io_type == IoType::Read {
            let start = align_offset(&slot.bounce, BOUNCE_ALIGN);
            let len = io.buf.len();
            io.buf.copy_from_slice(&slot.bounce[start..start + len]);
        }
        slot.bounced = false;
        slot.progress = 0;
        io.status = status;
        st.free.push(idx);
        Some((io, done))
    }
}

impl IoChannel for FileChannel {
    fn submit(&self, io: Box<BdevIo>, done: &IoCallback) -> Result<(), SubmitError> {
        let inner = &*self.inner;
        let bytes = io.len_bytes(inner.block_size);
        if !io.fits(inner.block_size, inner.num_blocks) || u32::try_from(bytes).is_err() {
            self.deferred.push(io, IoStatus::Failed, done);
            return Ok(());
        }
        let mut st = self.state.borrow_mut();
        let Some(idx) = st.free.pop() else {
            return Err(SubmitError::NoMem(io));
        };
        let len = io.buf.len();
        let slot = &mut st.slots[idx as usize];
        let aligned = io.buf.as_ptr() as usize % inner.mem_align == 0;
        slot.bounced = inner.direct && io.io_type != IoType::Flush && !aligned;
        slot.progress = 0;
        if slot.bounced {
            if slot.bounce.len() < len + BOUNCE_ALIGN {
                slot.bounce.resize(len + BOUNCE_ALIGN, 0);
            }
            if io.io_type == IoType::Write {
                let start = align_offset(&slot.bounce, BOUNCE_ALIGN);
                slot.bounce[start..start + len].copy_from_slice(&io.buf);
            }
        }
        slot.io = Some(io);
        slot.done = Some(done.clone());
        if st.queue(inner, idx) {
            return Ok(());
        }
        // The submission queue is full: pass what it holds to the kernel, then try again.
        st.enter();
        if st.queue(inner, idx) {
            return Ok(());
        }
        let slot = &mut st.slots[idx as usize];
        slot.done = None;
        slot.bounced = false;
        let io = slot.io.take();
        st.free.push(idx);
        match io {
            Some(io) => Err(SubmitError::NoMem(io)),
            None => Ok(()),
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // The kernel may still write into slot buffers: wait for it before they go.
        let mut waits = 0;
        while self.in_flight() > 0 && waits < DRAIN_WAITS {
            waits += 1;
            if self.ring.submit_and_wait(1).is_err() {
                break;
            }
            let cqes: Vec<u64> = self.ring.completion().map(|c| c.user_data()).collect();
            for user_data in cqes {
                let Ok(idx) = u32::try_from(user_data) else {
                    continue;
                };
                if let Some(slot) = self.slots.get_mut(idx as usize) {
                    if slot.io.take().is_some() {
                        slot.done = None;
                        self.free.push(idx);
                    }
                }
            }
        }
        if self.in_flight() > 0 {
            // Never reaped: leak the buffers rather than free memory the kernel may write.
            std::mem::forget(std::mem::take(&mut self.slots));
        }
    }
}

impl Bdev for FileBdev {
    fn name(&self) -> &str {
        &self.inner.name
    }
    fn product_name(&self) -> &'static str {
        self.inner.opts.flavor.product_name()
    }
    fn block_size(&self) -> u32 {
        self.inner.block_size
    }
    fn num_blocks(&self) -> u64 {
        self.inner.num_blocks
    }
    fn uuid(&self) -> &str {
        &self.inner.uuid
    }
    fn stats(&self) -> &IoStats {
        &self.inner.stats
    }
    fn queue_depth(&self) -> u32 {
        CHANNEL_DEPTH
    }
    fn get_io_channel(&self) -> Result<Rc<dyn IoChannel>, BdevError> {
        let core = reactor::current_core()?;
        let ring = IoUring::new(CHANNEL_DEPTH).map_err(|e| ring_error(&e))?;
        let slots = (0..CHANNEL_DEPTH)
            .map(|_| Slot {
                io: None,
                done: None,
                bounce: if self.inner.direct {
                    vec![0; INITIAL_BOUNCE + BOUNCE_ALIGN]
                } else {
                    Vec::new()
                },
                bounced: false,
                progress: 0,
            })
            .collect();
        let deferred = Deferred::new(
            self.inner.clone(),
            |i: &Inner| &i.stats,
            self.inner.block_size,
        )?;
        let depth = CHANNEL_DEPTH as usize;
        let ch = Rc::new(FileChannel {
            inner: self.inner.clone(),
            core,
            state: RefCell::new(Ring {
                ring,
                slots,
                free: (0..CHANNEL_DEPTH).rev().collect(),
                again: Vec::with_capacity(depth),
                batch: Vec::with_capacity(depth),
                cqes: Vec::with_capacity(depth * 2),
                enter_error_logged: false,
            }),
            deferred,
        });
        let weak: Weak<FileChannel> = Rc::downgrade(&ch);
        reactor::register_poller("bdev_uring", 0, move |_now| match weak.upgrade() {
            Some(ch) => ch.poll(),
            None => PollerStatus::Done,
        })?;
        Ok(ch)
    }
    fn driver_specific(&self) -> serde_json::Value {
        let i = &self.inner;
        let mut info = json!({
            "filename": i.opts.filename,
            "block_device": i.block_device,
            "direct_io": i.direct,
            "logical_block_size": i.logical_block_size,
            "dio_mem_align": if i.direct { i.mem_align } else { 1 },
        });
        if let Some(why) = &i.fallback {
            info["warning"] = json!(format!("{why}; using buffered I/O (page cache)"));
        }
        json!({ i.opts.flavor.key(): info })
    }
    fn config_entry(&self) -> Option<serde_json::Value> {
        let i = &self.inner;
        let mut params = json!({
            "name": i.name, "filename": i.opts.filename, "block_size": i.block_size,
            "uuid": i.uuid,
        });
        if let Some(direct) = i.opts.direct {
            params["direct"] = json!(direct);
        }
        Some(json!({"method": i.opts.flavor.create_method(), "params": params}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_alignment_needs_a_multiple_of_the_logical_block() {
        assert!(check_direct_alignment(4096, 512).is_ok());
        assert!(check_direct_alignment(4096, 4096).is_ok());
        let e = check_direct_alignment(512, 4096).expect_err("misaligned");
        assert!(e.to_string().contains("logical block size 4096"), "{e}");
        assert_eq!(e.errno(), 22);
    }

    /// Opens like a file system without O_DIRECT (ramfs; tmpfs before Linux 6.6).
    fn no_direct(path: &str, direct: bool) -> io::Result<File> {
        if direct {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        open(path, false)
    }

    #[test]
    fn refused_o_direct_falls_back_unless_insisted_on() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("ioband-no-direct-{}", std::process::id()));
        std::fs::write(&path, [0u8; 512]).expect("file");
        let p = path.to_str().expect("utf-8");
        let (_, direct, why) = open_mode(p, None, no_direct).expect("falls back");
        assert!(!direct);
        let why = why.expect("a reason");
        assert!(why.contains("refuses O_DIRECT") && why.contains(p), "{why}");
        let e = open_mode(p, Some(true), no_direct).expect_err("insisted");
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
        assert!(e.to_string().contains("refuses O_DIRECT"), "{e}");
        let (_, direct, why) = open_mode(p, Some(false), no_direct).expect("buffered");
        assert!(!direct && why.is_none());
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn align_offset_finds_the_aligned_window() {
        let v = vec![0u8; 3 * BOUNCE_ALIGN];
        let off = align_offset(&v, BOUNCE_ALIGN);
        assert!(off < BOUNCE_ALIGN);
        assert_eq!((v.as_ptr() as usize + off) % BOUNCE_ALIGN, 0);
    }
}
