//! Who is on the other end of a connection: the process behind a Unix socket
//! (`SO_PEERCRED`) and its cgroup v2 id (the inode number of its cgroup's directory in the
//! cgroup2 mount, the id the kernel itself uses), or a TCP peer's address.
//!
//! Runs when a connection is accepted, on the reactor of its server; reads `/proc`.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a peer's cgroup could not be found.
#[derive(Debug, Error)]
pub enum PeerError {
    /// `getsockopt(SO_PEERCRED)` failed.
    #[error("SO_PEERCRED: {0}")]
    PeerCred(std::io::Error),
    /// The host has no cgroup2 mount.
    #[error("no cgroup2 file system is mounted")]
    NoCgroup2,
    /// `/proc/<pid>/cgroup` could not be read or has no `0::` line.
    #[error("cgroup of pid {pid}: {reason}")]
    ProcCgroup {
        /// The process.
        pid: i32,
        /// What went wrong.
        reason: String,
    },
    /// The cgroup's directory could not be looked at.
    #[error("{path}: {source}")]
    Stat {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The pid of the process that connected a Unix socket.
pub fn peer_pid(stream: &UnixStream) -> Result<i32, PeerError> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>()).unwrap_or(0);
    // SAFETY: `cred` and `len` are valid for writes of a `ucred` and a `socklen_t`; the fd
    // is open for the duration of the call (borrowed from `stream`).
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(PeerError::PeerCred(std::io::Error::last_os_error()));
    }
    Ok(cred.pid)
}

/// The cgroup2 mount point and the cgroup path it shows as its root, from
/// `/proc/self/mountinfo`.
pub fn cgroup2_mount() -> Option<(PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse_mountinfo(&text)
}

/// The first cgroup2 entry of a mountinfo text: (mount point, root).
pub fn parse_mountinfo(text: &str) -> Option<(PathBuf, String)> {
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mut f = left.split_whitespace();
        let root = f.nth(3)?;
        let mount = f.next()?;
        Some((PathBuf::from(mount), root.to_owned()))
    })
}

/// The cgroup v2 path in a `/proc/<pid>/cgroup` text (the `0::` line).
pub fn parse_proc_cgroup(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// The directory of cgroup `path` under a cgroup2 mount at `mount` whose root is `root`.
pub fn cgroup_dir(mount: &Path, root: &str, path: &str) -> PathBuf {
    let rel = if root != "/" {
        path.strip_prefix(root).unwrap_or(path)
    } else {
        path
    };
    mount.join(rel.trim_start_matches('/'))
}

/// The cgroup id of process `pid`.
pub fn cgroup_id_of_pid(pid: i32, mount: &(PathBuf, String)) -> Result<u64, PeerError> {
    let proc_err = |reason: String| PeerError::ProcCgroup { pid, reason };
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| proc_err(e.to_string()))?;
    let path = parse_proc_cgroup(&text).ok_or_else(|| proc_err("no 0:: line".into()))?;
    let dir = cgroup_dir(&mount.0, &mount.1, path);
    std::fs::metadata(&dir)
        .map(|m| m.ino())
        .map_err(|source| PeerError::Stat { path: dir, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount() {
        let text = "24 30 0:21 / /proc rw - proc proc rw\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let (mount, root) = parse_mountinfo(text).unwrap();
        assert_eq!(mount, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(root, "/");
        assert!(parse_mountinfo("24 30 0:21 / /proc rw - proc proc rw\n").is_none());
    }

    #[test]
    fn reads_the_v2_line() {
        let text = "4:memory:/x\n0::/user.slice/a b\n";
        assert_eq!(parse_proc_cgroup(text), Some("/user.slice/a b"));
        assert_eq!(parse_proc_cgroup("1:cpu:/\n"), None);
        let dir = cgroup_dir(Path::new("/sys/fs/cgroup"), "/", "/a/b");
        assert_eq!(dir, PathBuf::from("/sys/fs/cgroup/a/b"));
        let dir = cgroup_dir(Path::new("/cg"), "/ns", "/ns/a");
        assert_eq!(dir, PathBuf::from("/cg/a"));
    }

    #[test]
    fn own_cgroup_id_is_the_directory_inode() {
        let Some(mount) = cgroup2_mount() else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        let (a, b) = UnixStream::pair().unwrap();
        let pid = peer_pid(&a).unwrap();
        assert_eq!(pid, i32::try_from(std::process::id()).unwrap());
        drop(b);
        let id = cgroup_id_of_pid(pid, &mount).unwrap();
        assert!(id > 0);
    }
}
