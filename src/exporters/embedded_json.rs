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
    for &byte in text.as_bytes() {
        if byte == b'"' {
            out.push(b'\\');
            added += 1;
        }
        out.push(byte);
    }
    added
}

/// The plain JSON of an embedded (escaped) document.
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
}
