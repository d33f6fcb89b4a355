//! Tests of the strict params decoding and the message bound.

use serde_json::{json, Value};

use super::*;
use crate::config::rpc::{CreateParams, SetSettingsParams};

fn check(text: &str) -> Result<(), String> {
    check_text(text).map_err(|e| e.to_string())
}

#[test]
fn duplicate_keys_are_refused_naming_the_key() {
    assert_eq!(
        check(r#"{"name": "io0", "value": 3, "name": "io1"}"#),
        Err("duplicate field `name`".to_owned())
    );
    assert_eq!(
        check(r#"{"a": {"b": 1, "b": 2}}"#),
        Err("a: duplicate field `b`".to_owned())
    );
    assert_eq!(
        check(r#"{"a": [1, {"b": 1, "b": 1}]}"#),
        Err("a[1]: duplicate field `b`".to_owned())
    );
    assert_eq!(check(r#"{"name": "io0", "value": 3}"#), Ok(()));
}

#[test]
fn null_is_refused_naming_the_field_but_null_params_are_absent() {
    let err = check(r#"{"name": "io0", "value": null}"#).expect_err("null");
    assert!(err.starts_with("value: null is not a value"), "{err}");
    let err = check(r#"{"x": [1, null]}"#).expect_err("null");
    assert!(err.starts_with("x[1]: null"), "{err}");
    assert_eq!(check("null"), Ok(()));
    assert_eq!(check(" null "), Ok(()));

    let err = decode_value::<SetSettingsParams>(Some(json!({"name": "io0", "value": null})))
        .expect_err("null");
    assert_eq!(
        err,
        ParamsError::Null {
            path: "value".into()
        }
    );
    let err = decode_value::<CreateParams>(Some(json!({"name": "a", "base_bdev_name": "b",
        "share": null})))
    .expect_err("null");
    assert!(err.to_string().starts_with("share: null"), "{err}");
    assert_eq!(
        decode_value::<SetSettingsParams>(Some(Value::Null)),
        Ok(SetSettingsParams::default())
    );
}

#[test]
fn numbers_out_of_range_name_the_field() {
    let err = check(r#"{"name": "s", "io_limit": 1e309}"#).expect_err("1e309");
    assert!(err.starts_with("io_limit: number out of range"), "{err}");
    // 2^64 parses (as a double); the typed decode names the field.
    assert_eq!(check(r#"{"io_limit": 18446744073709551616}"#), Ok(()));
    let v: Value = serde_json::from_str(
        r#"{"name": "a", "base_bdev_name": "b",
        "io_limit": 18446744073709551616}"#,
    )
    .expect("parses");
    let err = decode_value::<CreateParams>(Some(v)).expect_err("2^64");
    assert!(err.to_string().starts_with("io_limit: "), "{err}");
}

#[test]
fn syntax_size_and_shape() {
    assert!(check(r#"{"name":"#).is_err());
    assert!(check(r#"{"name": "a"} x"#).is_err());
    let big = format!(r#"{{"name": "{}"}}"#, "a".repeat(MAX_REQUEST_BYTES));
    assert!(matches!(
        check_text(&big),
        Err(ParamsError::TooLarge { .. })
    ));
    assert_eq!(
        decode_value::<CreateParams>(Some(json!([1]))),
        Err(ParamsError::NotObject)
    );
    let err = decode_value::<CreateParams>(Some(json!({"name": "a"}))).expect_err("missing");
    assert!(
        err.to_string().contains("missing field `base_bdev_name`"),
        "{err}"
    );
}

#[test]
fn long_words_are_cut_and_messages_bounded() {
    let name = "A".repeat(1 << 20);
    let msg = bound_message(&format!("no ioband device named '{name}' here"));
    assert_eq!(
        msg,
        format!(
            "no ioband device named '{}…' here",
            "A".repeat(MAX_ECHO_CHARS)
        )
    );
    // A valid name (255 bytes) is echoed whole.
    let ok = format!("no ioband device named '{}'", "b".repeat(255));
    assert_eq!(bound_message(&ok), ok);
    let spaced = "A ".repeat(1 << 19);
    let msg = bound_message(&spaced);
    assert!(
        msg.len() <= MAX_MESSAGE_BYTES + 4 && msg.ends_with('…'),
        "{}",
        msg.len()
    );
    let multibyte = "é".repeat(1000);
    assert_eq!(
        bound_message(&multibyte).chars().count(),
        MAX_ECHO_CHARS + 1
    );
}

/// Found by the fuzzer (fuzz/regressions/text_grammar): the white space after the last word
/// that fitted was not counted, so a message could end 1 to 3 bytes past the bound.
#[test]
fn the_bound_counts_the_space_after_a_word() {
    let bound = MAX_MESSAGE_BYTES + '…'.len_utf8();
    // 204 words of "aaaa " fill 1020 bytes; the 205th word ends at exactly 1024.
    for space in [" ", "\u{3000}", "\u{a0}"] {
        let message = format!("aaaa{space}").repeat(300);
        let msg = bound_message(&message);
        assert!(msg.len() <= bound, "{space:?}: {} bytes", msg.len());
        assert!(msg.ends_with('…'), "{space:?}");
        assert!(message.starts_with(msg.trim_end_matches('…')), "{space:?}");
    }
    // A message of exactly the bound is sent as it is.
    let exact = "aaaa ".repeat(204) + "aaaa";
    assert_eq!(exact.len(), MAX_MESSAGE_BYTES);
    assert_eq!(bound_message(&exact), exact);
}
