//! How OTLP values read as text, JSON and hex, the way the Go collector renders them
//! (`pcommon.Value.AsString()`, `AsRaw()`): shared by the processors that match on attributes and
//! the exporters that write them.

use super::view::ValueView;
use serde_json::Value;
use std::borrow::Cow;

/// The value as Go's `Value.AsString()` renders it.
pub fn value_string<'a>(value: impl Into<ValueView<'a>>) -> String {
    match value.into() {
        ValueView::Str(s) => s.to_string(),
        ValueView::Int(i) => i.to_string(),
        ValueView::Double(d) => d.to_string(),
        ValueView::Bool(b) => b.to_string(),
        ValueView::Empty => String::new(),
        other => value_json(other).to_string(),
    }
}

/// [`value_string`], borrowed when the value is a string (most are).
pub fn value_str<'a>(value: impl Into<ValueView<'a>>) -> Cow<'a, str> {
    match value.into() {
        ValueView::Str(s) => Cow::Borrowed(s),
        other => Cow::Owned(value_string(other)),
    }
}

/// The value as plain JSON (`Value.AsRaw()`).
pub fn value_json<'a>(value: impl Into<ValueView<'a>>) -> Value {
    match value.into() {
        ValueView::Str(s) => Value::String(s.to_string()),
        ValueView::Int(i) => Value::from(i),
        // Integral doubles print as `3`, as Go's encoder writes them, not `3.0`.
        ValueView::Double(d) if d.fract() == 0.0 && d.abs() < 1e15 => Value::from(d as i64),
        ValueView::Double(d) => serde_json::Number::from_f64(d)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        ValueView::Bool(b) => Value::Bool(b),
        ValueView::Array(values) => Value::Array(values.iter().map(value_json).collect()),
        ValueView::Kvlist(list) => Value::Object(
            list.iter()
                .map(|(key, value)| (key.to_string(), value_json(value)))
                .collect(),
        ),
        ValueView::Bytes(b) => Value::String(hex(b)),
        // Dictionary-encoded strings only occur in profiles, which never reach this exporter.
        ValueView::StringIndex(_) | ValueView::Empty => Value::Null,
    }
}

/// Lower-case hex of ids; on the per-span path, so no `format!` per byte.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    out
}

/// Appends the lower-case hex of `bytes`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Digits written into a buffer and appended as one string: pushing them a char at a time
    // cost more than the rest of an id's translation.
    let mut digits = [0u8; 64];
    for chunk in bytes.chunks(digits.len() / 2) {
        for (pair, b) in digits.chunks_exact_mut(2).zip(chunk) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0x0f)];
        }
        let written = &digits[..chunk.len() * 2];
        out.push_str(std::str::from_utf8(written).expect("hex digits are ASCII"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lower_case_digits_per_byte_however_long() {
        let bytes: Vec<u8> = (0..=255).collect();
        for len in [0, 1, 8, 16, 31, 32, 33, 256] {
            let expected: String = bytes[..len].iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex(&bytes[..len]), expected);
            let mut appended = String::from("1-");
            push_hex(&mut appended, &bytes[..len]);
            assert_eq!(appended, format!("1-{expected}"));
        }
    }
}
