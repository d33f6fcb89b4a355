//! One client connection: its input and output buffers and the stream parser that cuts
//! the input into JSON values (SPDK's framing: none).
//!
//! Owned by the server on the main reactor.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;

use jsonrpc_core::{Call, Error, ErrorCode, Id, Output, Version};
use serde_json::Value;

use super::dispatch::Methods;
use super::MAX_REQUEST_BYTES;
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
}

impl Conn {
    pub(crate) fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            closing: false,
            dead: false,
        }
    }

    pub(crate) fn finished(&self) -> bool {
        self.dead || (self.closing && self.outbuf.is_empty())
    }

    /// Reads, handles and writes what it can; returns whether anything happened.
    pub(crate) fn poll(&mut self, methods: &Methods, app: &App) -> bool {
        let mut busy = false;
        if !self.closing {
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

/// Handles every complete JSON value at the front of `inbuf` (consuming it) and appends
/// the responses to `out`, each followed by a newline.
pub fn process(methods: &Methods, app: &App, inbuf: &mut Vec<u8>, out: &mut Vec<u8>) -> Flow {
    let mut consumed = 0;
    let mut flow = Flow::Continue;
    {
        let mut stream = serde_json::Deserializer::from_slice(inbuf).into_iter::<Value>();
        loop {
            match stream.next() {
                Some(Ok(value)) => {
                    consumed = stream.byte_offset();
                    if let Some(response) = handle_value(methods, app, value) {
                        push(out, &response);
                    }
                }
                None => {
                    consumed = stream.byte_offset();
                    break;
                }
                Some(Err(e)) if e.is_eof() => {
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

fn failure(error: Error, id: Id) -> Value {
    serde_json::to_value(Output::from(Err(error), id, Some(Version::V2))).unwrap_or(Value::Null)
}

fn handle_value(methods: &Methods, app: &App, value: Value) -> Option<Value> {
    match value {
        Value::Array(items) if items.is_empty() => {
            Some(failure(Error::new(ErrorCode::InvalidRequest), Id::Null))
        }
        Value::Array(items) => {
            let outs: Vec<Value> = items
                .into_iter()
                .filter_map(|i| handle_single(methods, app, i))
                .collect();
            (!outs.is_empty()).then_some(Value::Array(outs))
        }
        single => handle_single(methods, app, single),
    }
}

fn handle_single(methods: &Methods, app: &App, value: Value) -> Option<Value> {
    let Ok(call) = serde_json::from_value::<Call>(value) else {
        return Some(failure(Error::new(ErrorCode::InvalidRequest), Id::Null));
    };
    match call {
        Call::MethodCall(c) => {
            let result = methods.call(app, &c.method, c.params);
            serde_json::to_value(Output::from(result, c.id, Some(Version::V2))).ok()
        }
        // SPDK answers a notification only when it fails, with id null.
        Call::Notification(n) => match methods.call(app, &n.method, n.params) {
            Ok(_) => None,
            Err(e) => Some(failure(e, Id::Null)),
        },
        Call::Invalid { id } => Some(failure(Error::new(ErrorCode::InvalidRequest), id)),
    }
}
