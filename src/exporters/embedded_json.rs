//! JSON written already escaped as the contents of a JSON string. PutTraceSegments and
//! PutLogEvents take documents as strings inside a JSON body; writing them escaped in the one
//! serialisation pass spares a second escaping pass over every document, which was the largest
//! single cost of both export paths in the profile.

/// Appends `value`'s JSON escaped for embedding; returns the bytes the escaping added.
pub fn write<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> usize {
    let mut serializer = EmbeddedSerializer { out, added: 0 };
    value
        .serialize(&mut serializer)
        .expect("writing JSON into memory cannot fail");
    serializer.added
}

/// Like [`write`], but nothing is appended when the value cannot be written as JSON (a map
/// with keys that are not strings or numbers); `None` then.
pub fn try_write<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Option<usize> {
    let start = out.len();
    let mut serializer = EmbeddedSerializer { out, added: 0 };
    match value.serialize(&mut serializer) {
        Ok(()) => Some(serializer.added),
        Err(_) => {
            serializer.out.truncate(start);
            None
        }
    }
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

/// A string as a JSON string (escaped as serde_json escapes it: quotes, backslashes and
/// control characters, nothing else), escaped again to sit inside another JSON string; returns
/// the bytes the second escaping added. Text with nothing to escape, most of it, is skipped
/// over eight bytes at a time and copied whole.
#[inline]
pub fn write_str(out: &mut Vec<u8>, text: &str) -> usize {
    let bytes = text.as_bytes();
    match next_to_escape(bytes, 0) {
        None => {
            out.reserve(bytes.len() + 4);
            out.extend_from_slice(b"\\\"");
            out.extend_from_slice(bytes);
            out.extend_from_slice(b"\\\"");
            2
        }
        Some(first) => write_escaping(out, bytes, first),
    }
}

/// [`write_str`] for text with something to escape, `first` the first such byte.
#[inline(never)]
fn write_escaping(out: &mut Vec<u8>, bytes: &[u8], first: usize) -> usize {
    out.reserve(bytes.len() + 16);
    out.extend_from_slice(b"\\\"");
    let mut added = 2;
    let mut copied = 0;
    let mut next = Some(first);
    while let Some(at) = next {
        out.extend_from_slice(&bytes[copied..at]);
        let byte = bytes[at];
        let escaped: &[u8] = match byte {
            b'"' => b"\\\\\\\"",
            b'\\' => b"\\\\\\\\",
            0x08 => b"\\\\b",
            0x0c => b"\\\\f",
            b'\n' => b"\\\\n",
            b'\r' => b"\\\\r",
            b'\t' => b"\\\\t",
            _ => b"\\\\u00",
        };
        out.extend_from_slice(escaped);
        if escaped.len() == 5 {
            // `\u001f`: its two hex digits, and one byte more than its plain six.
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                DIGITS[usize::from(byte >> 4)],
                DIGITS[usize::from(byte & 0x0f)],
            ]);
            added += 1;
        } else {
            // A plain JSON escape is two bytes (`\n`): embedded, each backslash doubles.
            added += escaped.len() - 2;
        }
        copied = at + 1;
        next = next_to_escape(bytes, copied);
    }
    out.extend_from_slice(&bytes[copied..]);
    out.extend_from_slice(b"\\\"");
    added
}

/// Where the first byte at or after `from` that JSON escapes is: a quote, a backslash or a
/// control character (below 0x20). Looks at eight bytes at a time; the last few bytes are read
/// as the string's last eight shifted (copying them into a padded word stalled the load).
#[inline]
fn next_to_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const SPACES: u64 = 0x2020_2020_2020_2020;
    let mut at = from;
    while let Some(word) = bytes.get(at..at + 8) {
        let found = escape_bits(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    if at >= bytes.len() {
        return None;
    }
    let Some(start) = bytes.len().checked_sub(8) else {
        return bytes[at..]
            .iter()
            .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
            .map(|i| at + i);
    };
    // The last eight bytes with those before `at` (1 to 7 of them) shifted out and spaces in
    // their place: bytes already looked at, or an escape already written, are not found again.
    let shift = (at - start) * 8;
    let last = u64::from_le_bytes(bytes[start..].try_into().expect("eight bytes"));
    let found = escape_bits((last >> shift) | (SPACES << (64 - shift)));
    (found != 0).then(|| at + found.trailing_zeros() as usize / 8)
}

/// The high bit of each of eight (little-endian) bytes that is a quote, a backslash or below
/// 0x20; bits above the lowest may be spurious (a borrow from the byte below), the lowest is
/// exact, and that is all [`next_to_escape`] reads.
#[inline]
fn escape_bits(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte's high bit where the byte is below `n` (n <= 128).
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGH;
    below(word, 0x20)
        | below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1)
}

type Error = serde_json::Error;

/// A serializer writing what serde_json writes, escaped to sit inside a JSON string: the X-Ray
/// documents and the EMF events' values. Its own rather than serde_json's with a formatter so
/// that strings, most of what a document is, go through [`write_str`]'s word-at-a-time scan.
pub struct EmbeddedSerializer<'o> {
    out: &'o mut Vec<u8>,
    /// Bytes the embedding added, to know the document's own size.
    added: usize,
}

impl EmbeddedSerializer<'_> {
    fn number(&mut self, write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) {
        write(self.out).expect("writing JSON into memory cannot fail");
    }
}

/// Elements or entries of a sequence, map or struct being written.
pub struct Compound<'s, 'o> {
    serializer: &'s mut EmbeddedSerializer<'o>,
    first: bool,
    /// What closes it: `]`, `}`, or `]}` / `}}` for an enum variant's contents.
    close: &'static [u8],
}

impl Compound<'_, '_> {
    fn separate(&mut self) {
        if !self.first {
            self.serializer.out.push(b',');
        }
        self.first = false;
    }

    fn end(self) -> Result<(), Error> {
        self.serializer.out.extend_from_slice(self.close);
        Ok(())
    }
}

macro_rules! numbers {
    ($($method:ident: $type:ty => $write:ident),* $(,)?) => {
        $(fn $method(self, v: $type) -> Result<(), Error> {
            use serde_json::ser::Formatter;
            self.number(|out| serde_json::ser::CompactFormatter.$write(out, v));
            Ok(())
        })*
    };
}

impl<'s, 'o> serde::Serializer for &'s mut EmbeddedSerializer<'o> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'s, 'o>;
    type SerializeTuple = Compound<'s, 'o>;
    type SerializeTupleStruct = Compound<'s, 'o>;
    type SerializeTupleVariant = Compound<'s, 'o>;
    type SerializeMap = Compound<'s, 'o>;
    type SerializeStruct = Compound<'s, 'o>;
    type SerializeStructVariant = Compound<'s, 'o>;

    numbers! {
        serialize_i8: i8 => write_i8,
        serialize_i16: i16 => write_i16,
        serialize_i32: i32 => write_i32,
        serialize_i64: i64 => write_i64,
        serialize_i128: i128 => write_i128,
        serialize_u8: u8 => write_u8,
        serialize_u16: u16 => write_u16,
        serialize_u32: u32 => write_u32,
        serialize_u64: u64 => write_u64,
        serialize_u128: u128 => write_u128,
    }

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    /// Non-finite numbers are `null`, as serde_json writes them.
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        use serde_json::ser::Formatter;
        if !v.is_finite() {
            return self.serialize_unit();
        }
        self.number(|out| serde_json::ser::CompactFormatter.write_f32(out, v));
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        use serde_json::ser::Formatter;
        if !v.is_finite() {
            return self.serialize_unit();
        }
        self.number(|out| serde_json::ser::CompactFormatter.write_f64(out, v));
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.added += write_str(self.out, v);
        Ok(())
    }

    /// An array of numbers, as serde_json writes bytes.
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        use serde::ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for byte in v {
            seq.serialize_element(byte)?;
        }
        seq.end()
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }

    fn serialize_some<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: serde::Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: serde::Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push(b'{');
        self.serialize_str(variant)?;
        self.out.push(b':');
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'s, 'o>, Error> {
        self.out.push(b'[');
        Ok(Compound {
            serializer: self,
            first: true,
            close: b"]",
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'s, 'o>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'s, 'o>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'s, 'o>, Error> {
        self.out.push(b'{');
        self.serialize_str(variant)?;
        self.out.extend_from_slice(b":[");
        Ok(Compound {
            serializer: self,
            first: true,
            close: b"]}",
        })
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'s, 'o>, Error> {
        self.out.push(b'{');
        Ok(Compound {
            serializer: self,
            first: true,
            close: b"}",
        })
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'s, 'o>, Error> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'s, 'o>, Error> {
        self.out.push(b'{');
        self.serialize_str(variant)?;
        self.out.extend_from_slice(b":{");
        Ok(Compound {
            serializer: self,
            first: true,
            close: b"}}",
        })
    }
}

impl serde::ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.separate();
        value.serialize(&mut *self.serializer)
    }

    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

/// Tuples, tuple structs and tuple variants are written as sequences.
macro_rules! written_as_sequence {
    ($($trait:ident :: $method:ident),*) => {
        $(impl serde::ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;

            fn $method<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                serde::ser::SerializeSeq::serialize_element(self, value)
            }

            fn end(self) -> Result<(), Error> {
                Compound::end(self)
            }
        })*
    };
}

written_as_sequence!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl serde::ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    /// Keys are strings; a number or boolean key is quoted, as serde_json writes it, and any
    /// other key is an error.
    fn serialize_key<T: serde::Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.separate();
        let start = self.serializer.out.len();
        key.serialize(&mut *self.serializer)?;
        let written = &self.serializer.out[start..];
        if written.starts_with(b"\\\"") {
            return Ok(());
        }
        let bare = matches!(written.first(), Some(b'-' | b'0'..=b'9'))
            || written == b"true"
            || written == b"false";
        if !bare {
            return Err(serde::ser::Error::custom("key must be a string"));
        }
        self.serializer.out.splice(start..start, *b"\\\"");
        self.serializer.out.extend_from_slice(b"\\\"");
        self.serializer.added += 2;
        Ok(())
    }

    fn serialize_value<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.serializer.out.push(b':');
        value.serialize(&mut *self.serializer)
    }

    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl serde::ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: serde::Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.separate();
        self.serializer.added += write_str(self.serializer.out, key);
        self.serializer.out.push(b':');
        value.serialize(&mut *self.serializer)
    }

    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

impl serde::ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: serde::Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        serde::ser::SerializeStruct::serialize_field(self, key, value)
    }

    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

/// serde_json's own serializer with a formatter that escapes for embedding: what
/// [`EmbeddedSerializer`] must write byte for byte, for its tests and the fuzz target to check.
pub mod reference {
    /// A serde_json formatter that writes JSON already escaped as the contents of a JSON string.
    pub struct EmbeddedJson<'a> {
        added: &'a mut usize,
    }

    impl serde_json::ser::Formatter for EmbeddedJson<'_> {
        fn begin_string<W: ?Sized + std::io::Write>(
            &mut self,
            writer: &mut W,
        ) -> std::io::Result<()> {
            *self.added += 1;
            writer.write_all(b"\\\"")
        }

        fn end_string<W: ?Sized + std::io::Write>(
            &mut self,
            writer: &mut W,
        ) -> std::io::Result<()> {
            *self.added += 1;
            writer.write_all(b"\\\"")
        }

        fn write_char_escape<W: ?Sized + std::io::Write>(
            &mut self,
            writer: &mut W,
            escape: serde_json::ser::CharEscape,
        ) -> std::io::Result<()> {
            use serde_json::ser::CharEscape::*;
            // serde's `\x` becomes `\\x`; an escaped quote or backslash needs its own escaped.
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

    /// The value's JSON escaped for embedding and the bytes the escaping added, or `None` when
    /// serde_json refuses the value.
    pub fn write<T: serde::Serialize + ?Sized>(value: &T) -> Option<(Vec<u8>, usize)> {
        let mut out = Vec::new();
        let mut added = 0;
        let mut serializer =
            serde_json::Serializer::with_formatter(&mut out, EmbeddedJson { added: &mut added });
        value.serialize(&mut serializer).ok()?;
        Some((out, added))
    }

    /// Panics unless [`super::try_write`] writes what serde_json writes.
    pub fn check<T: serde::Serialize + ?Sized + std::fmt::Debug>(value: &T) {
        let mut fast = Vec::new();
        let fast_added = super::try_write(&mut fast, value);
        match write(value) {
            Some((slow, slow_added)) => {
                assert_eq!(
                    String::from_utf8_lossy(&fast),
                    String::from_utf8_lossy(&slow),
                    "{value:?}"
                );
                assert_eq!(fast_added, Some(slow_added), "{value:?}");
            }
            None => assert_eq!(fast_added, None, "{value:?}"),
        }
    }
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

    /// Strings are escaped as serde_json escapes them, wherever in an eight-byte word the
    /// character to escape falls.
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for text in [
            "",
            "plain",
            "a/b é 漢 \u{7f}",
            "q\"uote",
            "back\\slash",
            "tab\tnl\n\u{1}",
            "\u{8}\u{c}\r\u{1f}\u{0}",
            "exactly8",
            "sixteen bytes ok",
        ] {
            reference::check(text);
        }
        for special in (0u8..0x80).map(char::from).chain(['é', '漢', '😀']) {
            for before in 0..17 {
                for after in [0, 1, 7, 8, 9] {
                    let text = format!("{}{special}{}", "a".repeat(before), "b".repeat(after));
                    reference::check(text.as_str());
                }
            }
        }
    }

    /// Two characters to escape anywhere in strings of up to 18 bytes, between bytes that
    /// follow them in the alphabet (a space after a control character, `#` after a quote, `]`
    /// after a backslash): the word-at-a-time scan must find each, and nothing else.
    #[test]
    fn every_pair_of_escapes_is_found_wherever_they_fall() {
        let fillers = [' ', '#', ']', 'a'];
        for len in 2..=18 {
            for first in 0..len {
                for second in first + 1..len {
                    for (a, b) in [
                        ('"', '\n'),
                        ('\\', '"'),
                        ('\u{0}', '\\'),
                        ('\u{1f}', '\u{1}'),
                    ] {
                        let text: String = (0..len)
                            .map(|i| match i {
                                _ if i == first => a,
                                _ if i == second => b,
                                _ => fillers[(i + first) % fillers.len()],
                            })
                            .collect();
                        reference::check(text.as_str());
                    }
                }
            }
        }
    }

    #[derive(serde::Serialize, Debug)]
    enum Variant {
        Unit,
        Newtype(i32),
        Tuple(u8, String),
        Struct { a: Option<bool>, b: f32 },
    }

    #[derive(serde::Serialize, Debug)]
    struct Shapes<'a> {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<i64>,
        none: Option<i64>,
        numbers: (i8, i16, i32, i64, i128, u8, u16, u32, u64, u128),
        floats: [f64; 8],
        single: f32,
        character: char,
        #[serde(with = "serde_bytes_like")]
        bytes: &'a [u8],
        unit: (),
        variants: Vec<Variant>,
        by_number: std::collections::BTreeMap<i64, &'a str>,
        by_bool: std::collections::BTreeMap<bool, u8>,
        empty: Vec<u8>,
        nested: serde_json::Value,
    }

    /// `serialize_bytes`, which derive never calls on its own.
    mod serde_bytes_like {
        pub fn serialize<S: serde::Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(bytes)
        }
    }

    /// Every shape serde can hand a serializer comes out as serde_json writes it.
    #[test]
    fn values_of_every_shape_are_written_as_serde_json_writes_them() {
        let shapes = Shapes {
            text: "a \"b\"\n",
            skipped: None,
            none: None,
            numbers: (
                -8,
                -16,
                -32,
                i64::MIN,
                i128::MIN,
                8,
                16,
                32,
                u64::MAX,
                u128::MAX,
            ),
            floats: [
                0.0,
                -0.0,
                1.0,
                2.5e-300,
                1e300,
                f64::NAN,
                f64::INFINITY,
                0.1 + 0.2,
            ],
            single: 3.3,
            character: '"',
            bytes: &[0, 1, 255],
            unit: (),
            variants: vec![
                Variant::Unit,
                Variant::Newtype(-1),
                Variant::Tuple(7, "t\\".into()),
                Variant::Struct {
                    a: Some(true),
                    b: f32::NAN,
                },
            ],
            by_number: [(-3, "minus"), (4, "four")].into(),
            by_bool: [(false, 0), (true, 1)].into(),
            empty: vec![],
            nested: serde_json::json!({
                "k\u{1}": [1, -2, 3.5, null, true, "s", {"": []}, {}],
                "é": {"deep": {"deeper": ["\u{7f}"]}},
            }),
        };
        reference::check(&shapes);
        reference::check(&shapes.nested);
    }

    /// Keys serde_json refuses (here an array) are refused, with nothing written.
    #[test]
    fn a_map_with_keys_that_are_not_strings_is_refused_and_nothing_written() {
        let map: std::collections::BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        reference::check(&map);
        let mut out = b"kept".to_vec();
        assert_eq!(try_write(&mut out, &map), None);
        assert_eq!(out, b"kept");
    }

    #[test]
    fn structure_is_written_with_its_quotes_escaped() {
        let mut out = Vec::new();
        let added = write_structure(&mut out, "{\"a\":[\"b\"],\"c\":");
        assert_eq!(out, b"{\\\"a\\\":[\\\"b\\\"],\\\"c\\\":");
        assert_eq!(added, 6);
    }
}
