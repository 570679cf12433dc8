//! What the awsxray receiver and the awsxray exporter share: the span attributes that carry
//! X-Ray fields through the OTLP model (so a segment received from an X-Ray SDK is written back
//! as it was sent), and the helpers both sides use for ids and attribute lists.

/// The keys of a span's attributes that were X-Ray annotations (the rest become metadata).
pub const ANNOTATIONS_ATTRIBUTE: &str = "aws.xray.annotations";
/// Prefix of attributes holding a metadata namespace as JSON.
pub const METADATA_PREFIX: &str = "aws.xray.metadata.";
/// Set by the receiver for segments still in progress.
pub const IN_PROGRESS_ATTRIBUTE: &str = "aws.xray.inprogress";
/// The document's `error`, `fault` and `throttle` flags, as sent. The receiver sets all three
/// on every span it makes, so their presence also says the span came from an X-Ray document:
/// the exporter then writes the flags as they were instead of deriving them from the status.
pub const ERROR_ATTRIBUTE: &str = "aws.xray.error";
pub const FAULT_ATTRIBUTE: &str = "aws.xray.fault";
pub const THROTTLE_ATTRIBUTE: &str = "aws.xray.throttle";
/// `http.request.x_forwarded_for`, when the document had it.
pub const X_FORWARDED_FOR_ATTRIBUTE: &str = "aws.xray.x_forwarded_for";
/// `cause.working_directory`, when the document had it.
pub const WORKING_DIRECTORY_ATTRIBUTE: &str = "aws.xray.cause.working_directory";
/// Attributes of an exception event holding the exception's X-Ray fields.
pub const EXCEPTION_ID_ATTRIBUTE: &str = "aws.xray.exception.id";
pub const EXCEPTION_REMOTE_ATTRIBUTE: &str = "aws.xray.exception.remote";
pub const EXCEPTION_TRUNCATED_ATTRIBUTE: &str = "aws.xray.exception.truncated";
pub const EXCEPTION_SKIPPED_ATTRIBUTE: &str = "aws.xray.exception.skipped";
pub const EXCEPTION_CAUSE_ATTRIBUTE: &str = "aws.xray.exception.cause";

/// Sorts by key, keeping only the last of entries with equal keys, in place: what a map built
/// from the list would hold. (Reversed, a stable sort puts the last-written first in each run.)
pub fn sort_keeping_last<T>(entries: &mut Vec<T>, key: impl Fn(&T) -> &str) {
    entries.reverse();
    entries.sort_by(|a, b| key(a).cmp(key(b)));
    entries.dedup_by(|later, kept| key(later) == key(kept));
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
