//! Trace and segment ids and times as X-Ray writes them, into OTLP's bytes and nanoseconds.

use super::error::DatagramError;

/// `1-5f84c7a1-e71b2a063150523ede000199` → 16 bytes.
pub fn parse_trace_id(text: &str) -> Result<Vec<u8>, DatagramError> {
    if text.len() < 35 {
        return Err(DatagramError::BadId);
    }
    let rest = text.strip_prefix("1-").ok_or(DatagramError::BadId)?;
    // `<8 hex digits of time>-<24 hex digits>`, decoded in place: one allocation per id.
    match rest.split_once('-') {
        Some((time, random)) if time.len() == 8 && random.len() == 24 => {
            let mut id = [0u8; 16];
            decode_hex_into(time, &mut id[..4])?;
            decode_hex_into(random, &mut id[4..])?;
            Ok(id.to_vec())
        }
        _ => Err(DatagramError::BadId),
    }
}

pub(super) fn decode_hex(text: &str, bytes: usize) -> Result<Vec<u8>, DatagramError> {
    let mut out = vec![0u8; bytes];
    decode_hex_into(text, &mut out)?;
    Ok(out)
}

pub(super) fn decode_hex_into(text: &str, out: &mut [u8]) -> Result<(), DatagramError> {
    if text.len() != out.len() * 2 {
        return Err(DatagramError::BadId);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(DatagramError::BadId),
    };
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(())
}

/// Float seconds → nanoseconds, rounded to the microsecond: an f64 holds epoch seconds to about
/// a quarter of a microsecond, so finer digits are noise, and rounding makes the exporter write
/// back the same float the SDK sent.
pub(super) fn nanos(seconds: f64) -> u64 {
    // Saturating: a time past 2554 (or an absurd one in a bad datagram) must not overflow.
    ((seconds * 1e6).round().max(0.0) as u64).saturating_mul(1000)
}
