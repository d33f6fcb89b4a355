//! Strict decoding of JSON-RPC `params`, the one path both hosts take, and the bounds on
//! what a request may be and on how much of it an error message echoes.
//!
//! SPDK's own decoders (`spdk_json_decode_object`) refuse a key given twice and a `null`
//! where a value is expected; serde would keep the last duplicate and read `null` as an
//! absent optional field. So a host checks the params' **text** with [`check_text`]
//! (duplicate keys, `null`, numbers that do not fit a double such as `1e309`, the size
//! bound), then decodes the parsed value with [`decode_value`] (an object, no `null`, then
//! the method's serde type). Every failure is a [`ParamsError`] naming the field, which the
//! host answers with -32602 ([`super::rpc::INVALID_PARAMS`]).
//!
//! Error messages go to the wire through [`bound_message`]: any one word longer than
//! [`MAX_ECHO_CHARS`] (a 1 MiB name, say) is cut to its first [`MAX_ECHO_CHARS`]
//! characters and `…`, and the whole message to [`MAX_MESSAGE_BYTES`].
//!
//! Pure functions on the host's control thread; nothing here touches engine state.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use thiserror::Error;

/// The one bound on a request: the largest JSON-RPC request (or, inside SPDK, `params`)
/// accepted, in bytes (1 MiB).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Most characters of one word of input an error message echoes. Every valid name
/// ([`crate::MAX_NAME_LEN`] bytes) and group text fits whole.
pub const MAX_ECHO_CHARS: usize = 256;

/// Longest error message sent, in bytes (before the final `…`).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Why params were refused; the host answers -32602 with "Invalid params: " and this.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParamsError {
    /// The params text is above [`MAX_REQUEST_BYTES`].
    #[error("params are {bytes} bytes, above the limit of {MAX_REQUEST_BYTES} bytes")]
    TooLarge {
        /// Size of the params text.
        bytes: usize,
    },
    /// The params are not a JSON object (an array or a scalar).
    #[error("params must be an object")]
    NotObject,
    /// A key appears twice in one object.
    #[error("{}duplicate field `{key}`", at(.path))]
    Duplicate {
        /// Path of the object ("" for params itself).
        path: String,
        /// The repeated key.
        key: String,
    },
    /// `null` where a value is expected.
    #[error("{path}: null is not a value (leave the field out instead)")]
    Null {
        /// Path of the field.
        path: String,
    },
    /// The text is not JSON, or a number in it is out of range, or the value does not fit
    /// the method's type (missing, unknown or ill-typed field).
    #[error("{}{message}", at(.path))]
    Invalid {
        /// Path of the field ("" when the failure is not inside one).
        path: String,
        /// serde's message.
        message: String,
    },
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// Checks params text: at most [`MAX_REQUEST_BYTES`], well-formed JSON, no key twice in
/// one object, no `null`, every number representable. Does not decode.
pub fn check_text(text: &str) -> Result<(), ParamsError> {
    if text.len() > MAX_REQUEST_BYTES {
        return Err(ParamsError::TooLarge { bytes: text.len() });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Strict>(&mut de) {
        // `null` params as a whole mean "absent", as in both hosts' decoding.
        Ok(Strict(None)) | Ok(Strict(Some(ParamsError::Null { path: _ })))
            if text.trim() == "null" => {}
        Ok(Strict(None)) => {}
        Ok(Strict(Some(err))) => return Err(err),
        Err(e) => {
            let path = path_text(&e);
            return Err(ParamsError::Invalid {
                path,
                message: e.into_inner().to_string(),
            });
        }
    }
    de.end().map_err(|e| ParamsError::Invalid {
        path: String::new(),
        message: e.to_string(),
    })
}

/// Decodes parsed params into `T`: absent or `null` params are `{}` (so an all-optional
/// type gets its defaults and a missing required field is named), anything but an object
/// is refused, as is a `null` anywhere inside; serde's failures name the field's path.
pub fn decode_value<T: DeserializeOwned>(params: Option<Value>) -> Result<T, ParamsError> {
    let value = match params {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(ParamsError::NotObject),
    };
    find_null(&value, &mut String::new())?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = path_text(&e);
        ParamsError::Invalid {
            path,
            message: e.into_inner().to_string(),
        }
    })
}

/// An error message fit for the wire: each word longer than [`MAX_ECHO_CHARS`] (not
/// counting the quotes around it) cut to that many characters and `…`, the whole cut at
/// [`MAX_MESSAGE_BYTES`] with `…`.
pub fn bound_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_BYTES + 8));
    for word in message.split_inclusive(char::is_whitespace) {
        let body = word.trim_end_matches(char::is_whitespace);
        let space = &word[body.len()..];
        // Quotes and punctuation around the echoed text stay; the text itself is cut.
        let quotes: &[char] = &['\'', '"', '`', ',', '.', ':', ';', '(', ')'];
        let core = body.trim_start_matches(quotes).trim_end_matches(quotes);
        let lead = body.len() - body.trim_start_matches(quotes).len();
        let piece = match core.char_indices().nth(MAX_ECHO_CHARS) {
            None => body.to_owned(),
            Some((cut, _)) => format!(
                "{}{}…{}",
                &body[..lead],
                &core[..cut],
                &body[lead + core.len()..]
            ),
        };
        // The white space after a word counts too (up to 3 bytes of it: U+3000 and others).
        if out.len() + piece.len() + space.len() > MAX_MESSAGE_BYTES {
            if out.len() + piece.len() <= MAX_MESSAGE_BYTES {
                out.push_str(&piece);
            }
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        out.push_str(space);
    }
    out
}

fn path_text<E>(e: &serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    if path == "." {
        String::new()
    } else {
        path
    }
}

fn find_null(value: &Value, path: &mut String) -> Result<(), ParamsError> {
    match value {
        Value::Null => Err(ParamsError::Null { path: path.clone() }),
        Value::Object(map) => {
            for (key, v) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                find_null(v, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                find_null(v, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Any JSON value, walked and dropped; the first refusal found (a duplicate or a `null`)
/// is kept, with its path, so that parsing still runs to the end and syntax errors win.
struct Strict(Option<ParamsError>);

struct StrictVisitor;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        // The path is not known here: the caller (a map or a seq) fills it in.
        Ok(Strict(Some(ParamsError::Null {
            path: String::new(),
        })))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut first = None;
        let mut index = 0usize;
        while let Some(Strict(err)) = seq.next_element::<Strict>()? {
            if first.is_none() {
                first = err.map(|e| nested(e, &format!("[{index}]")));
            }
            index += 1;
        }
        Ok(Strict(first))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut seen = BTreeSet::new();
        let mut first = None;
        while let Some(key) = map.next_key::<String>()? {
            let Strict(err) = map.next_value::<Strict>()?;
            if first.is_none() {
                first = err.map(|e| nested(e, &key));
            }
            if !seen.insert(key.clone()) && first.is_none() {
                first = Some(ParamsError::Duplicate {
                    path: String::new(),
                    key,
                });
            }
        }
        Ok(Strict(first))
    }
}

/// `err`, found inside the field or element `step`, with `step` put in front of its path.
fn nested(err: ParamsError, step: &str) -> ParamsError {
    let join = |path: String| {
        if path.is_empty() {
            step.to_owned()
        } else if path.starts_with('[') {
            format!("{step}{path}")
        } else {
            format!("{step}.{path}")
        }
    };
    match err {
        ParamsError::Null { path } => ParamsError::Null { path: join(path) },
        ParamsError::Duplicate { path, key } => ParamsError::Duplicate {
            path: join(path),
            key,
        },
        other => other,
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
