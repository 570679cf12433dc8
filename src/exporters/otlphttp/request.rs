//! A batch as OTLP/HTTP requests: encoded once (protobuf or OTLP/JSON), split where the
//! destination has per-request limits, compressed; retries send the same bytes again.

use super::config::{Encoding, OtlpHttpConfig};
use crate::exporters::ExportError;
use crate::exporters::client::Compression;
use crate::pipeline::{EncodedEntry, EncodedPayload, Payload};
use bytes::Bytes;
use http_body_util::Full;
use std::io::Write;

/// X-Ray's OTLP endpoint takes at most this many spans per request.
pub const XRAY_MAX_SPANS: usize = 10_000;
/// ... and at most this many bytes, uncompressed.
pub const XRAY_MAX_BYTES: usize = 5 * 1024 * 1024;

/// X-Ray's OTLP endpoint refuses spans that start more than this far ahead...
pub const XRAY_MAX_AHEAD: std::time::Duration = std::time::Duration::from_secs(2 * 3600);
/// ... or ended more than this long ago.
pub const XRAY_MAX_BEHIND: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

/// What one request may hold at most (`usize::MAX`: no limit), and the span times the
/// destination takes (`None`: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub items: usize,
    pub bytes: usize,
    pub window: Option<(std::time::Duration, std::time::Duration)>,
}

impl Limits {
    /// X-Ray's documented limits on its OTLP endpoint (`xray.<region>.amazonaws.com`); none
    /// elsewhere.
    pub fn for_destination(url: &hyper::Uri) -> Self {
        let host = url.host().unwrap_or("");
        if host.starts_with("xray.") && host.ends_with(".amazonaws.com") {
            Limits {
                items: XRAY_MAX_SPANS,
                bytes: XRAY_MAX_BYTES,
                window: Some((XRAY_MAX_BEHIND, XRAY_MAX_AHEAD)),
            }
        } else {
            Limits {
                items: usize::MAX,
                bytes: usize::MAX,
                window: None,
            }
        }
    }
}

/// Removes the spans outside the destination's time window (ended more than `behind` before
/// `now_nanos`, or starting more than `ahead` after it); returns how many it removed.
pub fn drop_outside_window(payload: &mut Payload, limits: Limits, now_nanos: u64) -> u64 {
    let Some((behind, ahead)) = limits.window else {
        return 0;
    };
    let earliest = now_nanos.saturating_sub(behind.as_nanos() as u64);
    let latest = now_nanos.saturating_add(ahead.as_nanos() as u64);
    // Encoded entries whose spans all fit go as they are; otherwise the batch is decoded and
    // filtered span by span.
    if let Payload::Encoded(encoded) = payload {
        let fits = encoded.entries().iter().all(|entry| {
            entry
                .span_times
                .is_none_or(|(end, start)| end >= earliest && start <= latest)
        });
        if fits {
            return 0;
        }
        payload.make_owned();
    }
    let Payload::Traces(resources) = payload else {
        return 0;
    };
    let mut removed = 0;
    for scope in resources.iter_mut().flat_map(|r| &mut r.scope_spans) {
        let before = scope.spans.len();
        scope
            .spans
            .retain(|s| s.start_time_unix_nano <= latest && s.end_time_unix_nano >= earliest);
        removed += (before - scope.spans.len()) as u64;
    }
    removed
}

/// One request's body, compressed as it is sent, and how many items it carries.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    pub body: Bytes,
    pub items: u64,
}

impl PreparedRequest {
    /// The POST to `url`, with the config's encoding, compression and headers.
    pub fn http_request(
        &self,
        url: &hyper::Uri,
        config: &OtlpHttpConfig,
    ) -> Result<hyper::Request<Full<Bytes>>, String> {
        let mut builder = hyper::Request::builder()
            .method("POST")
            .uri(url.clone())
            .header(
                "content-type",
                match config.encoding {
                    Encoding::Proto => "application/x-protobuf",
                    Encoding::Json => "application/json",
                },
            )
            .header(
                "user-agent",
                concat!("otel-sidecar/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(authority) = url.authority() {
            builder = builder.header("host", authority.as_str());
        }
        match config.compression {
            Compression::Gzip => builder = builder.header("content-encoding", "gzip"),
            Compression::Zstd => builder = builder.header("content-encoding", "zstd"),
            Compression::None => {}
        }
        for (name, value) in &config.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .body(Full::new(self.body.clone()))
            .map_err(|e| format!("cannot build the request: {e}"))
    }
}

/// The requests a batch becomes: each within `limits`, encoded and compressed.
pub fn prepare(
    mut payload: Payload,
    config: &OtlpHttpConfig,
    limits: Limits,
) -> Result<Vec<PreparedRequest>, ExportError> {
    let mut requests = Vec::new();
    if let Payload::Encoded(encoded) = payload {
        prepare_entries(encoded, config, limits, &mut requests)?;
        return Ok(requests);
    }
    while !payload.is_empty() {
        let part = if payload.item_count() > limits.items {
            payload.split_off_front(limits.items)
        } else {
            let signal = payload.signal();
            std::mem::replace(&mut payload, Payload::empty(signal))
        };
        prepare_within_bytes(part, config, limits.bytes, &mut requests)?;
    }
    Ok(requests)
}

/// Requests of whole encoded entries, as many per request as the limits allow; an entry over
/// a limit by itself is decoded and split like an owned batch.
fn prepare_entries(
    encoded: EncodedPayload,
    config: &OtlpHttpConfig,
    limits: Limits,
    out: &mut Vec<PreparedRequest>,
) -> Result<(), ExportError> {
    let signal = encoded.signal();
    let mut request: Vec<EncodedEntry> = Vec::new();
    let (mut items, mut bytes) = (0u64, 0usize);
    let send = |request: &mut Vec<EncodedEntry>, items: u64, out: &mut Vec<PreparedRequest>| {
        if request.is_empty() {
            return Ok(());
        }
        let body = compress_parts(
            request.iter().map(|entry| &entry.bytes[..]),
            bytes_of(request),
            config.compression,
        )?;
        request.clear();
        out.push(PreparedRequest { body, items });
        Ok::<(), ExportError>(())
    };
    for entry in encoded.into_entries() {
        let alone_too_big = entry.items > limits.items as u64 || entry.bytes.len() > limits.bytes;
        if alone_too_big {
            send(&mut request, items, out)?;
            (items, bytes) = (0, 0);
            let owned = Payload::Encoded(EncodedPayload::from_entries(signal, vec![entry]));
            out.extend(prepare(owned.decoded(), config, limits)?);
            continue;
        }
        if items + entry.items > limits.items as u64 || bytes + entry.bytes.len() > limits.bytes {
            send(&mut request, items, out)?;
            (items, bytes) = (0, 0);
        }
        items += entry.items;
        bytes += entry.bytes.len();
        request.push(entry);
    }
    send(&mut request, items, out)
}

fn bytes_of(entries: &[EncodedEntry]) -> usize {
    entries.iter().map(|entry| entry.bytes.len()).sum()
}

/// Encodes `payload`; over `max_bytes`, halves it and tries each half.
fn prepare_within_bytes(
    mut payload: Payload,
    config: &OtlpHttpConfig,
    max_bytes: usize,
    out: &mut Vec<PreparedRequest>,
) -> Result<(), ExportError> {
    let items = payload.item_count();
    let encoded = encode(&payload, config.encoding)?;
    if encoded.len() > max_bytes && items > 1 {
        let front = payload.split_off_front(items / 2);
        prepare_within_bytes(front, config, max_bytes, out)?;
        return prepare_within_bytes(payload, config, max_bytes, out);
    }
    out.push(PreparedRequest {
        body: compress(encoded, config.compression)?,
        items: items as u64,
    });
    Ok(())
}

/// The export request of `payload` in `encoding`.
fn encode(payload: &Payload, encoding: Encoding) -> Result<Vec<u8>, ExportError> {
    Ok(match (payload, encoding) {
        (_, Encoding::Proto) => payload.encode_export_request(),
        (_, Encoding::Json) => {
            let mut line = crate::exporters::file::FileExporter::encode_line(payload)?;
            line.pop(); // the file exporter's newline
            line
        }
    })
}

/// The concatenation of `parts` (`length` bytes in all), compressed, without first copying
/// them into one buffer when they are compressed.
fn compress_parts<'p>(
    parts: impl Iterator<Item = &'p [u8]>,
    length: usize,
    compression: Compression,
) -> Result<Bytes, ExportError> {
    let failed = |e: std::io::Error| ExportError::Setup(format!("cannot compress a request: {e}"));
    match compression {
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(length / 4),
                flate2::Compression::fast(),
            );
            for part in parts {
                encoder.write_all(part).map_err(failed)?;
            }
            Ok(Bytes::from(encoder.finish().map_err(failed)?))
        }
        _ => {
            let mut plain = Vec::with_capacity(length);
            for part in parts {
                plain.extend_from_slice(part);
            }
            compress(plain, compression)
        }
    }
}

fn compress(encoded: Vec<u8>, compression: Compression) -> Result<Bytes, ExportError> {
    let failed = |e: std::io::Error| ExportError::Setup(format!("cannot compress a request: {e}"));
    Ok(match compression {
        Compression::None => Bytes::from(encoded),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(encoded.len() / 4),
                flate2::Compression::fast(),
            );
            encoder.write_all(&encoded).map_err(failed)?;
            Bytes::from(encoder.finish().map_err(failed)?)
        }
        Compression::Zstd => Bytes::from(zstd::encode_all(&encoded[..], 1).map_err(failed)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::test_spans;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    fn config(yaml: &str) -> OtlpHttpConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn xray_limits_apply_only_to_xray_hosts() {
        let xray: hyper::Uri = "https://xray.us-east-1.amazonaws.com/v1/traces"
            .parse()
            .unwrap();
        assert_eq!(Limits::for_destination(&xray).items, XRAY_MAX_SPANS);
        let gateway: hyper::Uri = "http://gateway:4318/v1/traces".parse().unwrap();
        assert_eq!(Limits::for_destination(&gateway).items, usize::MAX);
    }

    /// A batch over the item or byte limit becomes several requests, each within both, and
    /// together they carry every span once.
    #[test]
    fn a_batch_is_split_at_the_limits() {
        let none = config("{endpoint: 'http://x', compression: none}");
        let by_items = prepare(
            test_spans(25),
            &none,
            Limits {
                items: 10,
                bytes: usize::MAX,
                window: None,
            },
        )
        .unwrap();
        assert_eq!(
            by_items.iter().map(|r| r.items).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        let whole = prepare(
            test_spans(25),
            &none,
            Limits {
                items: usize::MAX,
                bytes: usize::MAX,
                window: None,
            },
        )
        .unwrap();
        let max_bytes = whole[0].body.len() / 3;
        let by_bytes = prepare(
            test_spans(25),
            &none,
            Limits {
                items: usize::MAX,
                bytes: max_bytes,
                window: None,
            },
        )
        .unwrap();
        assert!(by_bytes.len() >= 3, "{}", by_bytes.len());
        assert!(by_bytes.iter().all(|r| r.body.len() <= max_bytes));
        assert_eq!(by_bytes.iter().map(|r| r.items).sum::<u64>(), 25);
        assert_eq!(span_ids(&by_bytes), span_ids(&whole));
    }

    /// The span ids the requests carry, in order.
    fn span_ids(requests: &[PreparedRequest]) -> Vec<Vec<u8>> {
        requests
            .iter()
            .flat_map(|r| {
                ExportTraceServiceRequest::decode(&r.body[..])
                    .unwrap()
                    .resource_spans
                    .into_iter()
                    .flat_map(|rs| rs.scope_spans)
                    .flat_map(|ss| ss.spans)
                    .map(|s| s.span_id)
            })
            .collect()
    }

    /// Requests as they arrived, each `n` spans in one resource entry.
    fn encoded(sizes: &[usize]) -> Payload {
        let mut all: Option<EncodedPayload> = None;
        for &n in sizes {
            let body = Bytes::from(test_spans(n).encode_export_request());
            let scanned = EncodedPayload::scan(crate::pipeline::Signal::Traces, body).unwrap();
            match &mut all {
                Some(all) => all.append(scanned),
                None => all = Some(scanned),
            }
        }
        Payload::Encoded(all.unwrap())
    }

    /// A batch forwarded as bytes is cut between resource entries at the limits, an entry over
    /// a limit by itself is split span by span, and every span goes once, in order.
    #[test]
    fn encoded_batches_are_cut_between_entries() {
        let none = config("{endpoint: 'http://x', compression: none}");
        let limits = |items| Limits {
            items,
            bytes: usize::MAX,
            window: None,
        };
        let requests = prepare(encoded(&[4, 4, 3, 12, 1]), &none, limits(10)).unwrap();
        assert_eq!(
            requests.iter().map(|r| r.items).collect::<Vec<_>>(),
            [8, 3, 10, 2, 1]
        );
        let whole = prepare(encoded(&[4, 4, 3, 12, 1]), &none, limits(usize::MAX)).unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(span_ids(&requests), span_ids(&whole));
        assert_eq!(span_ids(&whole).len(), 24);
        // The one request is the entries as they arrived, byte for byte.
        let Payload::Encoded(arrived) = encoded(&[4, 4, 3, 12, 1]) else {
            unreachable!()
        };
        assert_eq!(&whole[0].body[..], &arrived.encode()[..]);
        let by_bytes = prepare(
            encoded(&[4, 4, 3]),
            &none,
            Limits {
                items: usize::MAX,
                bytes: arrived.entries()[0].bytes.len() + 1,
                window: None,
            },
        )
        .unwrap();
        assert_eq!(
            by_bytes.iter().map(|r| r.items).collect::<Vec<_>>(),
            [4, 4, 3]
        );
    }

    /// Encoded spans inside X-Ray's window go as they are; a batch with one outside is decoded
    /// and filtered span by span.
    #[test]
    fn encoded_spans_outside_xrays_window_are_removed() {
        let xray = Limits::for_destination(
            &"https://xray.eu-west-1.amazonaws.com/v1/traces"
                .parse()
                .unwrap(),
        );
        let mut inside = encoded(&[3]);
        let Payload::Encoded(entries) = &inside else {
            unreachable!()
        };
        let (end, start) = entries.entries()[0].span_times.unwrap();
        let now = end.max(start);
        assert_eq!(drop_outside_window(&mut inside, xray, now), 0);
        assert!(matches!(inside, Payload::Encoded(_)), "left as it arrived");
        let far_later = now + XRAY_MAX_BEHIND.as_nanos() as u64 + 1;
        let mut outside = encoded(&[3]);
        assert_eq!(drop_outside_window(&mut outside, xray, far_later), 3);
        assert_eq!(outside.item_count(), 0);
    }

    /// Spans X-Ray's endpoint would refuse for their times are taken out and counted; the
    /// window's edges are inside it.
    #[test]
    fn spans_outside_xrays_window_are_removed_and_counted() {
        let xray = Limits::for_destination(
            &"https://xray.eu-west-1.amazonaws.com/v1/traces"
                .parse()
                .unwrap(),
        );
        let now: u64 = 1_800_000_000_000_000_000;
        let mut payload = test_spans(5);
        let Payload::Traces(resources) = &mut payload else {
            unreachable!()
        };
        let spans = &mut resources[0].scope_spans[0].spans;
        let ahead = XRAY_MAX_AHEAD.as_nanos() as u64;
        let behind = XRAY_MAX_BEHIND.as_nanos() as u64;
        let times = [
            (now - 1, now),                       // now: kept
            (now + ahead, now + ahead + 1),       // starts at the edge ahead: kept
            (now + ahead + 1, now + ahead + 2),   // beyond it: removed
            (now - behind - 5, now - behind),     // ends at the edge behind: kept
            (now - behind - 5, now - behind - 1), // before it: removed
        ];
        for (span, (start, end)) in spans.iter_mut().zip(times) {
            span.start_time_unix_nano = start;
            span.end_time_unix_nano = end;
        }
        assert_eq!(drop_outside_window(&mut payload, xray, now), 2);
        assert_eq!(payload.item_count(), 3);
        let mut elsewhere = test_spans(2);
        let gateway = Limits::for_destination(&"http://gw:4318/v1/traces".parse().unwrap());
        assert_eq!(drop_outside_window(&mut elsewhere, gateway, now), 0);
    }

    #[test]
    fn gzip_bodies_decompress_to_the_request() {
        let requests = prepare(
            test_spans(3),
            &config("{endpoint: 'http://x'}"),
            Limits {
                items: usize::MAX,
                bytes: usize::MAX,
                window: None,
            },
        )
        .unwrap();
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&requests[0].body[..]),
            &mut decoded,
        )
        .unwrap();
        let request = ExportTraceServiceRequest::decode(&decoded[..]).unwrap();
        assert_eq!(request.resource_spans[0].scope_spans[0].spans.len(), 3);
    }
}
