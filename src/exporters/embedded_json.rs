//! JSON written already escaped as the contents of a JSON string. PutTraceSegments and
//! PutLogEvents take documents as strings inside a JSON body; writing them escaped in the one
//! serialisation pass spares a second escaping pass over every document, which was the largest
//! single cost of both export paths in the profile.

/// A serde_json formatter that writes JSON already escaped as the contents of a JSON string.
pub struct EmbeddedJson<'a> {
    /// Bytes the embedding added, to know the document's own size.
    added: &'a mut usize,
}

impl serde_json::ser::Formatter for EmbeddedJson<'_> {
    fn begin_string<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        *self.added += 1;
        writer.write_all(b"\\\"")
    }

    fn end_string<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        *self.added += 1;
        writer.write_all(b"\\\"")
    }

    fn write_char_escape<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> std::io::Result<()> {
        use serde_json::ser::CharEscape::*;
        // serde's `\x` becomes `\\x`; an escaped quote or backslash needs its own escaped too.
        let embedded: &[u8] = match escape {
            Quote => b"\\\\\\\"",
            ReverseSolidus => b"\\\\\\\\",
            Solidus => b"\\\\/",
            Backspace => b"\\\\b",
            FormFeed => b"\\\\f",
            LineFeed => b"\\\\n",
            CarriageReturn => b"\\\\r",
            Tab => b"\\\\t",
            AsciiControl(byte) => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                *self.added += 1;
                return writer.write_all(&[
                    b'\\',
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    DIGITS[usize::from(byte >> 4)],
                    DIGITS[usize::from(byte & 0x0f)],
                ]);
            }
        };
        *self.added += embedded.len() - 2;
        writer.write_all(embedded)
    }
}

impl<'a> EmbeddedJson<'a> {
    /// A formatter adding to `added` every byte the escaping adds.
    pub fn new(added: &'a mut usize) -> Self {
        EmbeddedJson { added }
    }
}

/// Appends `value`'s JSON escaped for embedding; returns the bytes the escaping added.
pub fn write<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> usize {
    let mut added = 0;
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut *out, EmbeddedJson::new(&mut added));
    value
        .serialize(&mut serializer)
        .expect("writing JSON into memory cannot fail");
    added
}

/// Appends JSON structure (quotes, no backslashes: keys and punctuation we write ourselves)
/// escaped for embedding; returns the bytes the escaping added.
pub fn write_structure(out: &mut Vec<u8>, text: &str) -> usize {
    debug_assert!(!text.contains('\\'));
    let mut added = 0;
    let mut rest = text.as_bytes();
    // Runs between quotes copied whole: these are short constants written for every event.
    while let Some(quote) = rest.iter().position(|&b| b == b'"') {
        out.extend_from_slice(&rest[..quote]);
        out.extend_from_slice(b"\\\"");
        added += 1;
        rest = &rest[quote + 1..];
    }
    out.extend_from_slice(rest);
    added
}

/// A string as a JSON string, escaped to sit inside another JSON string; what [`write`] writes
/// for it, without going through a serializer when nothing in it needs escaping (names, units,
/// label values usually).
pub fn write_str(out: &mut Vec<u8>, text: &str) -> usize {
    // serde_json escapes control characters, quotes and backslashes, and nothing else.
    if text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return write(out, text);
    }
    out.reserve(text.len() + 4);
    out.extend_from_slice(b"\\\"");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\\\"");
    2
}

pub fn unescape(escaped: &[u8]) -> String {
    let mut quoted = Vec::with_capacity(escaped.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(escaped);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).expect("embedded JSON is a valid JSON string's contents")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_json_unescapes_to_the_plain_json_and_counts_what_it_added() {
        let value = serde_json::json!({"q": "a \"quote\" \\ \u{1} \n é 漢", "n": [1, 2.5]});
        let mut out = Vec::new();
        let mut added = write_structure(&mut out, "{\"v\":");
        added += write(&mut out, &value);
        added += write_structure(&mut out, "}");
        let plain = unescape(&out);
        assert_eq!(plain, format!("{{\"v\":{value}}}"));
        assert_eq!(out.len() - added, plain.len());
    }

    /// The fast path writes exactly what the serializer writes, for strings with and without
    /// characters to escape.
    #[test]
    fn strings_are_written_as_the_serializer_writes_them() {
        for text in [
            "",
            "plain",
            "a/b é 漢 \u{7f}",
            "q\"uote",
            "back\\slash",
            "tab\tnl\n\u{1}",
        ] {
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            let fast_added = write_str(&mut fast, text);
            let slow_added = write(&mut slow, text);
            assert_eq!(fast, slow, "{text:?}");
            assert_eq!(fast_added, slow_added, "{text:?}");
        }
        let mut out = Vec::new();
        let added = write_structure(&mut out, "{\"a\":[\"b\"],\"c\":");
        assert_eq!(out, b"{\\\"a\\\":[\\\"b\\\"],\\\"c\\\":");
        assert_eq!(added, 6);
    }
}
