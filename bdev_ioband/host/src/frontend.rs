//! Plumbing the front ends share (the NBD server and the iSCSI target): non-blocking reads
//! that append to a connection's input buffer, writes that drain its output buffer, and
//! the submission of a connection's I/O that parks what the bdev cannot take now.
//!
//! Reads go through a scratch buffer the connection allocates once. Reading straight into
//! the spare room of the input buffer would need that room initialized first, and a
//! connection polled every pass with nothing to read would zero 256 KiB each time.
//!
//! Threading: plain functions over one connection's buffers, on the reactor that polls it.

use std::io::{ErrorKind, Read, Write};

use crate::bdev::{BdevIo, IoCallback, IoChannel, SubmitError};

/// Bytes a connection asks its socket for per read (its scratch buffer's size).
pub(crate) const READ_CHUNK: usize = 256 * 1024;

/// A connection's scratch buffer for [`read_some`].
pub(crate) fn scratch() -> Box<[u8]> {
    vec![0u8; READ_CHUNK].into_boxed_slice()
}

/// What [`read_some`] found.
#[derive(Debug)]
pub(crate) enum Input {
    /// Read what there was; `true` if that was anything.
    Read(bool),
    /// The peer closed its side (what came before is in the buffer).
    Eof,
    /// The socket failed.
    Failed(std::io::Error),
}

/// Appends what `stream` has to `inbuf` while the input not yet consumed (from `in_pos`)
/// is under `cap` bytes, reading through `scratch`.
pub(crate) fn read_some(
    stream: &mut impl Read,
    scratch: &mut [u8],
    inbuf: &mut Vec<u8>,
    in_pos: usize,
    cap: usize,
) -> Input {
    let mut busy = false;
    while inbuf.len().saturating_sub(in_pos) < cap {
        match stream.read(scratch) {
            Ok(0) => return Input::Eof,
            Ok(n) => {
                inbuf.extend_from_slice(scratch.get(..n).unwrap_or_default());
                busy = true;
                if n < scratch.len() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Input::Failed(e),
        }
    }
    Input::Read(busy)
}

/// What [`write_some`] did.
#[derive(Debug)]
pub(crate) enum Output {
    /// Wrote what the socket took; `true` if that was anything.
    Wrote(bool),
    /// The socket failed (the buffer was dropped).
    Failed(std::io::Error),
}

/// Writes `outbuf` from `out_pos` until it is all gone or the socket takes no more; a
/// buffer written out (or dropped on failure) is emptied for reuse.
pub(crate) fn write_some(
    stream: &mut impl Write,
    outbuf: &mut Vec<u8>,
    out_pos: &mut usize,
) -> Output {
    let mut busy = false;
    let mut failed = None;
    while *out_pos < outbuf.len() {
        match stream.write(outbuf.get(*out_pos..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => {
                *out_pos += n;
                busy = true;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    if *out_pos >= outbuf.len() || failed.is_some() {
        outbuf.clear();
        *out_pos = 0;
    }
    match failed {
        Some(e) => Output::Failed(e),
        None => Output::Wrote(busy),
    }
}

/// Submits a connection's `io`, counting it in `outstanding` until its callback; one the
/// bdev refuses for lack of resources goes to the back of `parked`, to be tried again in
/// order. Returns whether it was submitted.
// Boxes on purpose: descriptors move between layers as `Box`es without reallocating.
#[allow(clippy::vec_box)]
pub(crate) fn submit_or_park(
    ch: &dyn IoChannel,
    io: Box<BdevIo>,
    cb: &IoCallback,
    outstanding: &mut u32,
    parked: &mut Vec<Box<BdevIo>>,
) -> bool {
    *outstanding += 1;
    match ch.submit(io, cb) {
        Ok(()) => true,
        Err(SubmitError::NoMem(io)) => {
            *outstanding -= 1;
            parked.push(io);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A socket that hands out its data in pieces, then would block (or ends).
    struct Pieces {
        pieces: Vec<Vec<u8>>,
        then_eof: bool,
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.pieces.is_empty() {
                return if self.then_eof {
                    Ok(0)
                } else {
                    Err(ErrorKind::WouldBlock.into())
                };
            }
            let p = self.pieces.remove(0);
            buf[..p.len()].copy_from_slice(&p);
            Ok(p.len())
        }
    }

    #[test]
    fn reads_append_until_the_socket_would_block_or_ends() {
        let mut scratch = vec![0u8; 8];
        let mut inbuf = b"old".to_vec();
        let mut s = Pieces {
            pieces: vec![b"abcdefgh".to_vec(), b"ij".to_vec(), b"kl".to_vec()],
            then_eof: false,
        };
        // A short read ends the call: the rest waits for the next poll.
        assert!(matches!(
            read_some(&mut s, &mut scratch, &mut inbuf, 0, 1 << 20),
            Input::Read(true)
        ));
        assert_eq!(inbuf, b"oldabcdefghij");
        assert!(matches!(
            read_some(&mut s, &mut scratch, &mut inbuf, 0, 1 << 20),
            Input::Read(true)
        ));
        assert!(matches!(
            read_some(&mut s, &mut scratch, &mut inbuf, 0, 1 << 20),
            Input::Read(false)
        ));
        s.then_eof = true;
        assert!(matches!(
            read_some(&mut s, &mut scratch, &mut inbuf, 0, 1 << 20),
            Input::Eof
        ));
        assert_eq!(inbuf, b"oldabcdefghijkl");
    }

    #[test]
    fn reading_stops_at_the_cap_of_unconsumed_input() {
        let mut scratch = vec![0u8; 4];
        let mut inbuf = vec![1u8; 10];
        let mut s = Pieces {
            pieces: vec![b"abcd".to_vec()],
            then_eof: false,
        };
        // 10 unconsumed >= cap 8: nothing is read.
        assert!(matches!(
            read_some(&mut s, &mut scratch, &mut inbuf, 0, 8),
            Input::Read(false)
        ));
        // Consumed up to 6: 4 unconsumed, room for one read.
        assert!(matches!(
            read_some(&mut s, &mut scratch, &mut inbuf, 6, 8),
            Input::Read(true)
        ));
        assert_eq!(inbuf.len(), 14);
    }

    #[test]
    fn writes_drain_the_buffer_and_reset_it() {
        let mut out = Cursor::new(Vec::new());
        let mut outbuf = b"hello".to_vec();
        let mut pos = 2;
        assert!(matches!(
            write_some(&mut out, &mut outbuf, &mut pos),
            Output::Wrote(true)
        ));
        assert_eq!(out.into_inner(), b"llo");
        assert!(outbuf.is_empty());
        assert_eq!(pos, 0);
    }
}
