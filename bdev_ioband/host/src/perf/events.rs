//! The control schedule of a run (`ioband_perf --events FILE`): JSON-RPC calls made at set
//! times while the jobs run, as an operator would make them, through the host's in-process
//! method table on the main reactor.
//!
//! ```json
//! [
//!   {"at_s": 2.0, "method": "bdev_ioband_set_settings",
//!    "params": {"name": "band0", "group": "tag:2", "value": 400}},
//!   {"at_s": 5, "method": "bdev_ioband_set_device",
//!    "params": {"name": "band0", "io_throttle": 8}}
//! ]
//! ```
//!
//! `at_s` is seconds after the run's start (0 or more); `params` is an object (absent:
//! none). Events run in `at_s` order (file order among equal times). Parsing is pure and
//! every error names `file:line` of the event; the method names are checked against the
//! host's table, and the times against the run's end, before any I/O starts.
//!
//! Threading: parsed on any thread; [`run`](super::run::run) calls the methods on the main
//! reactor, which owns the host's control plane.

use serde_json::{Map, Value};

use crate::rpc::Methods;

/// One timed call.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlEvent {
    /// Seconds after the run's start.
    pub at_s: f64,
    /// A JSON-RPC method of the host (`bdev_ioband_set_settings`, ...).
    pub method: String,
    /// Its params.
    pub params: Map<String, Value>,
    /// Where it was defined, `file:line` (or a label), for messages.
    pub origin: String,
}

impl ControlEvent {
    /// An event made in code (`origin` names it in messages).
    pub fn new(at_s: f64, method: &str, params: Value, origin: &str) -> ControlEvent {
        ControlEvent {
            at_s,
            method: method.to_owned(),
            params: match params {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            origin: origin.to_owned(),
        }
    }
}

/// What an event did, for the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EventReport {
    /// When it was due, seconds after the run's start.
    pub at_s: f64,
    /// When it ran.
    pub ran_at_s: f64,
    /// The method.
    pub method: String,
    /// The params it was called with.
    pub params: Value,
    /// What the call returned (a soak reads counters through `bdev_ioband_get_iostat`).
    pub result: Value,
}

/// The keys an event may have.
pub const EVENT_KEYS: &[&str] = &["at_s", "method", "params"];

/// Line (1-based) of each element of the top-level JSON array in `text`; `None` if the
/// text is not an array (the caller has parsed it already, so it is valid JSON).
fn element_lines(text: &str) -> Option<Vec<usize>> {
    let mut lines = Vec::new();
    let (mut line, mut depth) = (1usize, 0usize);
    let (mut in_string, mut escaped, mut expect_element) = (false, false, false);
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if c.is_whitespace() {
            continue;
        }
        if depth == 1 && expect_element && c != ']' {
            lines.push(line);
            expect_element = false;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                if depth == 1 {
                    if c != '[' {
                        return None;
                    }
                    expect_element = true;
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => expect_element = true,
            _ if depth == 0 => return None,
            _ => {}
        }
    }
    Some(lines)
}

/// Parses an events file's text; `file` names it in messages.
pub fn parse_events(text: &str, file: &str) -> Result<Vec<ControlEvent>, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("{file}:{}: not JSON: {e}", e.line()))?;
    let Value::Array(items) = value else {
        return Err(format!(
            "{file}:1: an events file is a JSON array of {{\"at_s\", \"method\", \"params\"}} objects"
        ));
    };
    let lines = element_lines(text).unwrap_or_default();
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let origin = format!("{file}:{}", lines.get(i).copied().unwrap_or(1));
        events.push(parse_event(item, &origin).map_err(|e| format!("{origin}: {e}"))?);
    }
    Ok(events)
}

fn parse_event(item: Value, origin: &str) -> Result<ControlEvent, String> {
    let Value::Object(mut obj) = item else {
        return Err(format!(
            "an event is an object with keys {}",
            EVENT_KEYS.join(", ")
        ));
    };
    if let Some(k) = obj.keys().find(|k| !EVENT_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key '{k}' (expected one of: {})",
            EVENT_KEYS.join(", ")
        ));
    }
    let at_s = match obj.get("at_s") {
        None => return Err("at_s is missing (seconds after the run's start)".into()),
        Some(v) => match v.as_f64() {
            Some(t) if t.is_finite() && t >= 0.0 => t,
            _ => return Err(format!("at_s: {v} is not a time in seconds >= 0")),
        },
    };
    let method = match obj.get("method") {
        None => return Err("method is missing".into()),
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(v) => return Err(format!("method: {v} is not a method name")),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(v) => return Err(format!("params: {v} is not an object")),
    };
    Ok(ControlEvent {
        at_s,
        method,
        params,
        origin: origin.to_owned(),
    })
}

/// Checks events against the host's methods and the run's end (`end_s`, the latest end of
/// any job): an event after it would never run.
pub fn check_events(events: &[ControlEvent], methods: &Methods, end_s: f64) -> Result<(), String> {
    for e in events {
        if !methods.names().any(|m| m == e.method) {
            return Err(format!(
                "{}: unknown method '{}' (see ioband_tgt's rpc_get_methods)",
                e.origin, e.method
            ));
        }
        if e.at_s > end_s {
            return Err(format!(
                "{}: at_s {} is after the run's end ({end_s} s): the event would never run",
                e.origin, e.at_s
            ));
        }
    }
    Ok(())
}

/// The events in the order they run: by time, file order among equal times.
pub fn in_time_order(events: &[ControlEvent]) -> Vec<ControlEvent> {
    let mut out = events.to_vec();
    out.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_lines() {
        let text = "[\n  {\"at_s\": 2, \"method\": \"m\",\n   \"params\": {\"a\": \"[,{\"}},\n\n  {\"at_s\": 0.5, \"method\": \"n\"}\n]\n";
        let ev = parse_events(text, "e.json").expect("parses");
        assert_eq!(ev.len(), 2);
        assert_eq!((ev[0].at_s, ev[0].method.as_str()), (2.0, "m"));
        assert_eq!(ev[0].params["a"], "[,{");
        assert_eq!(ev[0].origin, "e.json:2");
        assert_eq!(ev[1].origin, "e.json:5");
        assert!(ev[1].params.is_empty());
        let order = in_time_order(&ev);
        assert_eq!(order[0].method, "n");
        assert_eq!(parse_events("[]", "e.json"), Ok(Vec::new()));
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases: &[(&str, &str)] = &[
            ("{\"at_s\": 1}", "e.json:1: an events file is a JSON array"),
            ("[\n{\"at_s\": 1,\n", "e.json:3: not JSON"),
            (
                "[\n{\"at_s\": 1, \"method\": \"m\", \"when\": 2}]",
                "e.json:2: unknown key 'when'",
            ),
            (
                "[{\"at_s\": 0, \"method\": \"m\"},\n {\"method\": \"m\"}]",
                "e.json:2: at_s is missing",
            ),
            (
                "[{\"at_s\": -1, \"method\": \"m\"}]",
                "e.json:1: at_s: -1 is not a time",
            ),
            (
                "[{\"at_s\": \"1\", \"method\": \"m\"}]",
                "e.json:1: at_s: \"1\" is not a time",
            ),
            ("[{\"at_s\": 1}]", "e.json:1: method is missing"),
            (
                "[{\"at_s\": 1, \"method\": 3}]",
                "e.json:1: method: 3 is not a method name",
            ),
            (
                "[{\"at_s\": 1, \"method\": \"m\", \"params\": [1]}]",
                "e.json:1: params: [1] is not an object",
            ),
            ("[\n\n 7]", "e.json:3: an event is an object"),
        ];
        for (text, want) in cases {
            let err = parse_events(text, "e.json").expect_err(text);
            assert!(
                err.starts_with(want),
                "{text:?}: got {err:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn checked_against_methods_and_run_end() {
        let methods = Methods::new();
        let ok = ControlEvent::new(1.0, "bdev_ioband_set_settings", Value::Null, "e.json:2");
        assert_eq!(
            check_events(std::slice::from_ref(&ok), &methods, 1.0),
            Ok(())
        );
        let late = ControlEvent {
            at_s: 3.0,
            ..ok.clone()
        };
        let err = check_events(&[late], &methods, 2.0).expect_err("late");
        assert!(
            err.starts_with("e.json:2: at_s 3 is after the run's end"),
            "{err}"
        );
        let bad = ControlEvent {
            method: "bdev_nope".into(),
            ..ok
        };
        let err = check_events(&[bad], &methods, 2.0).expect_err("unknown");
        assert!(
            err.starts_with("e.json:2: unknown method 'bdev_nope'"),
            "{err}"
        );
    }
}
