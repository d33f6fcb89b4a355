//! One client connection: its input and output buffers and the stream parser that cuts
//! the input into JSON values (SPDK's framing: none).
//!
//! Owned by the server on the main reactor.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;

use bdev_ioband_engine::config::decode::{bound_message, check_text, ParamsError};
use jsonrpc_core::{Call, Error, ErrorCode, Id, Output, Version};
use serde_json::value::RawValue;
use serde_json::Value;

use super::dispatch::{params_error, Methods};
use super::{MAX_OUTPUT_BYTES, MAX_REQUEST_BYTES};
use crate::app::App;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;

/// What the connection does after a pass of [`process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Send what is queued, then close (after a parse error).
    Close,
}

#[derive(Debug)]
pub(crate) struct Conn {
    stream: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    closing: bool,
    dead: bool,
    /// When a byte last moved either way (ticks).
    last_active: u64,
}

impl Conn {
    pub(crate) fn new(stream: UnixStream, now: u64) -> Conn {
        Conn {
            stream,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            closing: false,
            dead: false,
            last_active: now,
        }
    }

    pub(crate) fn finished(&self) -> bool {
        self.dead || (self.closing && self.outbuf.is_empty())
    }

    /// Whether no byte moved either way for more than `timeout` ticks up to `now`.
    pub(crate) fn idle_for(&self, now: u64, timeout: u64) -> bool {
        now.saturating_sub(self.last_active) > timeout
    }

    /// Reads, handles and writes what it can; returns whether anything happened. Input is
    /// not read while more than [`MAX_OUTPUT_BYTES`] of replies wait to be sent.
    pub(crate) fn poll(&mut self, methods: &Methods, app: &App, now: u64) -> bool {
        let busy = self.pass(methods, app);
        if busy {
            self.last_active = now;
        }
        busy
    }

    fn pass(&mut self, methods: &Methods, app: &App) -> bool {
        let mut busy = false;
        if !self.closing && self.outbuf.len() <= MAX_OUTPUT_BYTES {
            let mut chunk = [0u8; 4096];
            let mut read_now = 0;
            while read_now < READ_CHUNK {
                match self.stream.read(&mut chunk) {
                    Ok(0) => {
                        self.closing = true;
                        break;
                    }
                    Ok(n) => {
                        busy = true;
                        read_now += n;
                        self.inbuf.extend_from_slice(&chunk[..n]);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        self.dead = true;
                        return true;
                    }
                }
            }
            if !self.inbuf.is_empty()
                && process(methods, app, &mut self.inbuf, &mut self.outbuf) == Flow::Close
            {
                self.closing = true;
            }
        }
        while !self.outbuf.is_empty() {
            match self.stream.write(&self.outbuf) {
                Ok(0) => {
                    self.dead = true;
                    break;
                }
                Ok(n) => {
                    busy = true;
                    self.outbuf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.dead = true;
                    break;
                }
            }
        }
        busy
    }
}

/// Handles the complete JSON values at the front of `inbuf` (consuming them) and appends
/// the responses to `out`, each followed by a newline; stops while `out` holds more than
/// [`MAX_OUTPUT_BYTES`] (what is left stays in `inbuf`).
///
/// Values are cut out as raw text (a syntax check only), so that each request's params
/// reach the strict check ([`check_text`]: duplicate keys, `null`, numbers out of range)
/// as the client wrote them: a bad params value is -32602 for that request, never a parse
/// error for the connection.
pub fn process(methods: &Methods, app: &App, inbuf: &mut Vec<u8>, out: &mut Vec<u8>) -> Flow {
    let mut consumed = 0;
    let mut flow = Flow::Continue;
    {
        let mut stream = serde_json::Deserializer::from_slice(inbuf).into_iter::<&RawValue>();
        // Replies past the output bound wait: the rest of the input stays buffered.
        while out.len() <= MAX_OUTPUT_BYTES {
            match stream.next() {
                // A number (or `true`, `false`, `null`) that ends where the input ends may
                // go on in the next read (`12` then `34` is one value, `true` then `x` is
                // one error): it waits for more, as an incomplete value does, so the replies
                // do not depend on the reads. (SPDK's parser takes such a value as complete;
                // no valid request is a bare scalar, so only invalid input sees the
                // difference.)
                Some(Ok(raw)) if stream.byte_offset() == inbuf.len() && open_ended(raw) => {
                    if inbuf.len() - consumed > MAX_REQUEST_BYTES {
                        push(out, &failure(parse_error("request too large"), Id::Null));
                        flow = Flow::Close;
                    }
                    break;
                }
                Some(Ok(raw)) => {
                    consumed = stream.byte_offset();
                    if let Some(response) = handle_value(methods, app, raw) {
                        push(out, &response);
                    }
                }
                None => {
                    consumed = stream.byte_offset();
                    break;
                }
                // serde_json calls a number cut after `-`, `.`, `e` or an exponent's sign a
                // syntax error, not an end of input: more input may complete it (SPDK's
                // parser says incomplete there too).
                Some(Err(e)) if e.is_eof() || is_cut_number(&inbuf[consumed..]) => {
                    if inbuf.len() - consumed > MAX_REQUEST_BYTES {
                        push(out, &failure(parse_error("request too large"), Id::Null));
                        flow = Flow::Close;
                    }
                    break;
                }
                Some(Err(e)) => {
                    push(out, &failure(parse_error(&e.to_string()), Id::Null));
                    flow = Flow::Close;
                    break;
                }
            }
        }
    }
    inbuf.drain(..consumed);
    if flow == Flow::Close {
        inbuf.clear();
    }
    flow
}

/// Whether a top-level value needs the byte after it to be complete: anything but an
/// object, an array or a string (which end with their closing byte) — a number or a literal,
/// which the parser accepts only before white space or punctuation.
fn open_ended(raw: &RawValue) -> bool {
    !raw.get().starts_with(['{', '[', '"'])
}

/// Whether `input` (from the start of a value) fails only because it ends inside a number
/// where a digit must follow (`-`, `1.`, `1e`, `1e+`): it ends with one of those bytes, and
/// with a digit after it the value parses or merely runs out.
fn is_cut_number(input: &[u8]) -> bool {
    if !matches!(input.last(), Some(b'-' | b'+' | b'.' | b'e' | b'E')) {
        return false;
    }
    let mut probe = input.to_vec();
    probe.push(b'0');
    let first = serde_json::Deserializer::from_slice(&probe)
        .into_iter::<&RawValue>()
        .next();
    match first {
        Some(Ok(_)) | None => true,
        Some(Err(e)) => e.is_eof(),
    }
}

fn push(out: &mut Vec<u8>, value: &Value) {
    // Serializing a Value cannot fail.
    if serde_json::to_writer(&mut *out, value).is_ok() {
        out.push(b'\n');
    }
}

fn parse_error(detail: &str) -> Error {
    Error {
        code: ErrorCode::ParseError,
        message: format!("Parse error: {detail}"),
        data: None,
    }
}

fn invalid_request() -> Error {
    Error::new(ErrorCode::InvalidRequest)
}

/// The response for `result`, its error message bounded ([`bound_message`]).
fn output(result: Result<Value, Error>, id: Id) -> Value {
    let result = result.map_err(|e| Error {
        message: bound_message(&e.message),
        ..e
    });
    serde_json::to_value(Output::from(result, id, Some(Version::V2))).unwrap_or(Value::Null)
}

fn failure(error: Error, id: Id) -> Value {
    output(Err(error), id)
}

fn handle_value(methods: &Methods, app: &App, raw: &RawValue) -> Option<Value> {
    if !raw.get().starts_with('[') {
        return handle_single(methods, app, raw);
    }
    let items: Vec<&RawValue> = match serde_json::from_str(raw.get()) {
        Ok(items) => items,
        Err(_) => return Some(failure(invalid_request(), Id::Null)),
    };
    if items.is_empty() {
        return Some(failure(invalid_request(), Id::Null));
    }
    let outs: Vec<Value> = items
        .into_iter()
        .filter_map(|i| handle_single(methods, app, i))
        .collect();
    (!outs.is_empty()).then_some(Value::Array(outs))
}

fn handle_single(methods: &Methods, app: &App, raw: &RawValue) -> Option<Value> {
    // The envelope's members as raw text: `params` goes through the strict check, the rest
    // (jsonrpc, method, id) is parsed as jsonrpc_core expects it.
    let Ok(mut members) = serde_json::from_str::<BTreeMap<String, &RawValue>>(raw.get()) else {
        return Some(failure(invalid_request(), Id::Null));
    };
    let params = members.remove("params");
    let mut envelope = serde_json::Map::new();
    for (key, value) in members {
        let Ok(value) = serde_json::from_str::<Value>(value.get()) else {
            return Some(failure(invalid_request(), Id::Null));
        };
        envelope.insert(key, value);
    }
    let mut refused = None;
    if let Some(params) = params {
        let parsed = check_text(params.get()).and_then(|()| {
            serde_json::from_str::<Value>(params.get()).map_err(|e| ParamsError::Invalid {
                path: String::new(),
                message: e.to_string(),
            })
        });
        match parsed {
            Ok(value) => {
                envelope.insert("params".to_owned(), value);
            }
            Err(e) => refused = Some(e),
        }
    }
    let Ok(call) = serde_json::from_value::<Call>(Value::Object(envelope)) else {
        return Some(failure(invalid_request(), Id::Null));
    };
    let run = |method: &str, params| match &refused {
        Some(e) if methods.has(method) => Err(params_error(e)),
        _ => methods.call(app, method, params),
    };
    match call {
        Call::MethodCall(c) => Some(output(run(&c.method, c.params), c.id)),
        // SPDK answers a notification only when it fails, with id null.
        Call::Notification(n) => match run(&n.method, n.params) {
            Ok(_) => None,
            Err(e) => Some(failure(e, Id::Null)),
        },
        Call::Invalid { id } => Some(failure(invalid_request(), id)),
    }
}
