//! Binding the RPC socket with a chosen mode whatever the umask: bound under a temporary
//! name in the same directory, given its mode, then renamed into place, so that no client
//! ever finds the path with the umask's mode (0777 under umask 000).
//!
//! Runs once, on the main reactor, when the server starts.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

/// Binds a listening socket at `path` with permission bits `mode`.
pub(super) fn bind_with_mode(path: &Path, mode: u32) -> io::Result<UnixListener> {
    let tmp = path.with_file_name(format!(".ioband-rpc-{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    let placed = fs::set_permissions(&tmp, fs::Permissions::from_mode(mode & 0o777))
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}
