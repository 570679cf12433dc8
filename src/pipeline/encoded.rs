//! OTLP export requests kept as they arrived, for pipelines that only batch and forward them.
//!
//! An export request is one repeated field (field 1: `ResourceSpans`, `ResourceMetrics` or
//! `ResourceLogs`), so a batch of requests is the concatenation of their entries and a request
//! can be split between entries. Nothing is decoded into the owned model: one walk over the
//! bytes checks them as strictly as decoding would (wire types of every known field, UTF-8 of
//! every string, lengths, the nesting limit), counts the items of each entry and, for spans,
//! notes the earliest end and latest start, which is all batching and the destinations' limits
//! need.

use crate::config::Signal;
use bytes::Bytes;

/// How deep messages may nest below the request, as in prost's decoder (so both accept the
/// same requests).
pub(super) const NESTING_LIMIT: u32 = 100;

/// One resource entry of a request: the field's bytes as written (tag and length included).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedEntry {
    pub bytes: Bytes,
    pub items: u64,
    /// Spans only: the earliest end and the latest start among them (`None` without spans).
    pub span_times: Option<(u64, u64)>,
    /// A singular message field is written twice somewhere in the entry: a decoder merges the
    /// two, so views, which borrow one, read such an entry through the owned model instead.
    pub merges: bool,
}

/// Resource entries of one signal, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPayload {
    signal: Signal,
    entries: Vec<EncodedEntry>,
    items: u64,
}

impl EncodedPayload {
    /// Checks an export request body of `signal` and notes its entries; the error says what is
    /// wrong, as a decoder would.
    pub fn scan(signal: Signal, body: Bytes) -> Result<Self, String> {
        let root = match signal {
            Signal::Traces => M::ResourceSpans,
            Signal::Metrics => M::ResourceMetrics,
            Signal::Logs => M::ResourceLogs,
        };
        let mut entries = Vec::new();
        let mut items = 0;
        let mut reader = Reader {
            bytes: &body,
            at: 0,
        };
        while !reader.done() {
            let start = reader.at;
            let (field, wire) = reader.key()?;
            if field == 1 {
                if wire != WIRE_LEN {
                    return Err(wire_error("request", field, wire));
                }
                let inner = reader.length_delimited()?;
                let mut notes = EntryNotes::default();
                // The request is one level: its entries are decoded one below the limit.
                let count = walk(root, inner, NESTING_LIMIT - 1, &mut notes)?;
                items += count;
                entries.push(EncodedEntry {
                    bytes: body.slice(start..reader.at),
                    items: count,
                    span_times: notes
                        .seen
                        .then_some((notes.earliest_end, notes.latest_start)),
                    merges: notes.merges,
                });
            } else {
                reader.skip(field, wire, NESTING_LIMIT)?;
            }
        }
        Ok(EncodedPayload {
            signal,
            entries,
            items,
        })
    }

    pub fn signal(&self) -> Signal {
        self.signal
    }

    pub fn item_count(&self) -> usize {
        self.items as usize
    }

    pub fn entries(&self) -> &[EncodedEntry] {
        &self.entries
    }

    /// A payload of these entries (of this payload's signal).
    pub fn from_entries(signal: Signal, entries: Vec<EncodedEntry>) -> Self {
        let items = entries.iter().map(|e| e.items).sum();
        EncodedPayload {
            signal,
            entries,
            items,
        }
    }

    pub fn into_entries(self) -> Vec<EncodedEntry> {
        self.entries
    }

    /// Moves the entries of `other` after these.
    pub fn append(&mut self, other: EncodedPayload) {
        self.items += other.items;
        self.entries.extend(other.entries);
    }

    /// The bytes of the export request these entries make.
    pub fn encoded_len(&self) -> usize {
        self.entries.iter().map(|e| e.bytes.len()).sum()
    }

    /// The export request, protobuf-encoded: the entries one after another.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        for entry in &self.entries {
            out.extend_from_slice(&entry.bytes);
        }
        out
    }
}

pub(super) const WIRE_VARINT: u8 = 0;
pub(super) const WIRE_FIXED64: u8 = 1;
pub(super) const WIRE_LEN: u8 = 2;
const WIRE_START_GROUP: u8 = 3;
const WIRE_END_GROUP: u8 = 4;
pub(super) const WIRE_FIXED32: u8 = 5;

/// The OTLP messages below an export request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum M {
    Resource,
    EntityRef,
    Scope,
    KeyValue,
    AnyValue,
    ArrayValue,
    KeyValueList,
    ResourceSpans,
    ScopeSpans,
    Span,
    Event,
    Link,
    Status,
    ResourceMetrics,
    ScopeMetrics,
    Metric,
    /// Gauge, Sum, Histogram, ExponentialHistogram and Summary: field 1 holds the points.
    Points(P),
    NumberPoint,
    HistogramPoint,
    ExponentialPoint,
    Buckets,
    SummaryPoint,
    Quantile,
    Exemplar,
    ResourceLogs,
    ScopeLogs,
    LogRecord,
}

/// The type of a metric's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    Gauge,
    Sum,
    Histogram,
    Exponential,
    Summary,
}

/// How a known field is written.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Varint,
    Fixed64,
    Fixed32,
    Bytes,
    Str,
    Message(M),
    /// A repeated number: packed in one length-delimited field, or one field per value.
    RepeatedVarint,
    RepeatedFixed64,
}

/// The kind of field `number` of `message`; `None` for fields OTLP does not define (skipped,
/// as a decoder skips them).
fn field(message: M, number: u32) -> Option<Kind> {
    use Kind::*;
    Some(match (message, number) {
        (M::Resource, 1) => Message(M::KeyValue),
        (M::Resource, 2) => Varint,
        (M::Resource, 3) => Message(M::EntityRef),
        (M::EntityRef, 1..=4) => Str,
        (M::Scope, 1 | 2) => Str,
        (M::Scope, 3) => Message(M::KeyValue),
        (M::Scope, 4) => Varint,
        (M::KeyValue, 1) => Str,
        (M::KeyValue, 2) => Message(M::AnyValue),
        (M::KeyValue, 3) => Varint,
        (M::AnyValue, 1) => Str,
        (M::AnyValue, 2 | 3 | 8) => Varint,
        (M::AnyValue, 4) => Fixed64,
        (M::AnyValue, 5) => Message(M::ArrayValue),
        (M::AnyValue, 6) => Message(M::KeyValueList),
        (M::AnyValue, 7) => Bytes,
        (M::ArrayValue, 1) => Message(M::AnyValue),
        (M::KeyValueList, 1) => Message(M::KeyValue),

        (M::ResourceSpans, 1) => Message(M::Resource),
        (M::ResourceSpans, 2) => Message(M::ScopeSpans),
        (M::ResourceSpans, 3) => Str,
        (M::ScopeSpans, 1) => Message(M::Scope),
        (M::ScopeSpans, 2) => Message(M::Span),
        (M::ScopeSpans, 3) => Str,
        (M::Span, 1 | 2 | 4) => Bytes,
        (M::Span, 3 | 5) => Str,
        (M::Span, 6 | 10 | 12 | 14) => Varint,
        (M::Span, 7 | 8) => Fixed64,
        (M::Span, 9) => Message(M::KeyValue),
        (M::Span, 11) => Message(M::Event),
        (M::Span, 13) => Message(M::Link),
        (M::Span, 15) => Message(M::Status),
        (M::Span, 16) => Fixed32,
        (M::Event, 1) => Fixed64,
        (M::Event, 2) => Str,
        (M::Event, 3) => Message(M::KeyValue),
        (M::Event, 4) => Varint,
        (M::Link, 1 | 2) => Bytes,
        (M::Link, 3) => Str,
        (M::Link, 4) => Message(M::KeyValue),
        (M::Link, 5) => Varint,
        (M::Link, 6) => Fixed32,
        (M::Status, 2) => Str,
        (M::Status, 3) => Varint,

        (M::ResourceMetrics, 1) => Message(M::Resource),
        (M::ResourceMetrics, 2) => Message(M::ScopeMetrics),
        (M::ResourceMetrics, 3) => Str,
        (M::ScopeMetrics, 1) => Message(M::Scope),
        (M::ScopeMetrics, 2) => Message(M::Metric),
        (M::ScopeMetrics, 3) => Str,
        (M::Metric, 1..=3) => Str,
        (M::Metric, 5) => Message(M::Points(P::Gauge)),
        (M::Metric, 7) => Message(M::Points(P::Sum)),
        (M::Metric, 9) => Message(M::Points(P::Histogram)),
        (M::Metric, 10) => Message(M::Points(P::Exponential)),
        (M::Metric, 11) => Message(M::Points(P::Summary)),
        (M::Metric, 12) => Message(M::KeyValue),
        (M::Points(p), 1) => Message(match p {
            P::Gauge | P::Sum => M::NumberPoint,
            P::Histogram => M::HistogramPoint,
            P::Exponential => M::ExponentialPoint,
            P::Summary => M::SummaryPoint,
        }),
        // Sum's and the histograms' temporality, Sum's monotonicity.
        (M::Points(P::Sum), 2 | 3) => Varint,
        (M::Points(P::Histogram | P::Exponential), 2) => Varint,
        (M::NumberPoint, 2..=4 | 6) => Fixed64,
        (M::NumberPoint, 5) => Message(M::Exemplar),
        (M::NumberPoint, 7) => Message(M::KeyValue),
        (M::NumberPoint, 8) => Varint,
        (M::HistogramPoint, 2..=5 | 11 | 12) => Fixed64,
        (M::HistogramPoint, 6 | 7) => RepeatedFixed64,
        (M::HistogramPoint, 8) => Message(M::Exemplar),
        (M::HistogramPoint, 9) => Message(M::KeyValue),
        (M::HistogramPoint, 10) => Varint,
        (M::ExponentialPoint, 1) => Message(M::KeyValue),
        (M::ExponentialPoint, 2..=5 | 7 | 12..=14) => Fixed64,
        (M::ExponentialPoint, 6 | 10) => Varint,
        (M::ExponentialPoint, 8 | 9) => Message(M::Buckets),
        (M::ExponentialPoint, 11) => Message(M::Exemplar),
        (M::Buckets, 1) => Varint,
        (M::Buckets, 2) => RepeatedVarint,
        (M::SummaryPoint, 2..=5) => Fixed64,
        (M::SummaryPoint, 6) => Message(M::Quantile),
        (M::SummaryPoint, 7) => Message(M::KeyValue),
        (M::SummaryPoint, 8) => Varint,
        (M::Quantile, 1 | 2) => Fixed64,
        (M::Exemplar, 2 | 3 | 6) => Fixed64,
        (M::Exemplar, 4 | 5) => Bytes,
        (M::Exemplar, 7) => Message(M::KeyValue),

        (M::ResourceLogs, 1) => Message(M::Resource),
        (M::ResourceLogs, 2) => Message(M::ScopeLogs),
        (M::ResourceLogs, 3) => Str,
        (M::ScopeLogs, 1) => Message(M::Scope),
        (M::ScopeLogs, 2) => Message(M::LogRecord),
        (M::ScopeLogs, 3) => Str,
        (M::LogRecord, 1 | 11) => Fixed64,
        (M::LogRecord, 2 | 7) => Varint,
        (M::LogRecord, 3 | 12) => Str,
        (M::LogRecord, 5) => Message(M::AnyValue),
        (M::LogRecord, 6) => Message(M::KeyValue),
        (M::LogRecord, 8) => Fixed32,
        (M::LogRecord, 9 | 10) => Bytes,
        _ => return None,
    })
}

/// What the walk has noted of one entry so far: its spans' times, and whether a singular
/// message field was written twice.
#[derive(Default)]
struct EntryNotes {
    seen: bool,
    earliest_end: u64,
    latest_start: u64,
    merges: bool,
}

/// Message fields that are not repeated: written twice, decoders merge them.
fn singular_message(message: M, number: u32) -> bool {
    matches!(
        (message, number),
        (
            M::ResourceSpans
                | M::ResourceMetrics
                | M::ResourceLogs
                | M::ScopeSpans
                | M::ScopeMetrics
                | M::ScopeLogs,
            1
        ) | (M::KeyValue, 2)
            | (M::AnyValue, 5 | 6)
            | (M::Span, 15)
            | (M::LogRecord, 5)
            | (M::ExponentialPoint, 8 | 9)
            | (M::Metric, 5 | 7 | 9 | 10 | 11)
    )
}

/// Checks one message and returns its items as the owned model counts them: a scope's spans,
/// log records or (through its metrics) data points; 0 for messages below those.
fn walk(message: M, bytes: &[u8], depth: u32, notes: &mut EntryNotes) -> Result<u64, String> {
    let mut reader = Reader { bytes, at: 0 };
    let mut items = 0u64;
    // Singular message fields seen in this message, by number (all are below 16).
    let mut singular_seen = 0u32;
    // A metric's data is a oneof: a later field of another type replaces the earlier one, a
    // later one of the same type merges into it.
    let mut data: Option<u32> = None;
    let (mut start, mut end) = (0u64, 0u64);
    while !reader.done() {
        let (number, wire) = reader.key()?;
        let Some(kind) = field(message, number) else {
            reader.skip(number, wire, depth)?;
            continue;
        };
        match kind {
            Kind::Varint => {
                expect_wire(message, number, wire, WIRE_VARINT)?;
                reader.varint()?;
            }
            Kind::Fixed64 => {
                expect_wire(message, number, wire, WIRE_FIXED64)?;
                let value = reader.fixed64()?;
                if message == M::Span {
                    match number {
                        7 => start = value,
                        _ => end = value,
                    }
                }
            }
            Kind::Fixed32 => {
                expect_wire(message, number, wire, WIRE_FIXED32)?;
                reader.fixed(4)?;
            }
            Kind::Bytes => {
                expect_wire(message, number, wire, WIRE_LEN)?;
                reader.length_delimited()?;
            }
            Kind::Str => {
                expect_wire(message, number, wire, WIRE_LEN)?;
                let text = reader.length_delimited()?;
                if std::str::from_utf8(text).is_err() {
                    return Err(format!(
                        "failed to decode Protobuf message: {message:?}.{number}: invalid string value: data is not UTF-8 encoded"
                    ));
                }
            }
            Kind::RepeatedVarint => match wire {
                WIRE_VARINT => {
                    reader.varint()?;
                }
                WIRE_LEN => {
                    let mut packed = Reader {
                        bytes: reader.length_delimited()?,
                        at: 0,
                    };
                    while !packed.done() {
                        packed.varint()?;
                    }
                }
                _ => return Err(wire_error(&format!("{message:?}"), number, wire)),
            },
            Kind::RepeatedFixed64 => match wire {
                WIRE_FIXED64 => {
                    reader.fixed(8)?;
                }
                WIRE_LEN => {
                    if reader.length_delimited()?.len() % 8 != 0 {
                        return Err(truncated());
                    }
                }
                _ => return Err(wire_error(&format!("{message:?}"), number, wire)),
            },
            Kind::Message(inner) => {
                expect_wire(message, number, wire, WIRE_LEN)?;
                if depth == 0 {
                    return Err("failed to decode Protobuf message: recursion limit reached".into());
                }
                let body = reader.length_delimited()?;
                if singular_message(message, number) {
                    let bit = 1 << number;
                    notes.merges |= singular_seen & bit != 0;
                    singular_seen |= bit;
                }
                let count = walk(inner, body, depth - 1, notes)?;
                match (message, inner) {
                    (M::ScopeSpans, M::Span) | (M::ScopeLogs, M::LogRecord) => items += 1,
                    (M::Points(_), _) => items += 1,
                    (M::Metric, M::Points(_)) => {
                        items = if data == Some(number) {
                            items + count
                        } else {
                            count
                        };
                        data = Some(number);
                    }
                    _ => items += count,
                }
            }
        }
    }
    if message == M::Span {
        if !notes.seen {
            notes.seen = true;
            notes.earliest_end = end;
            notes.latest_start = start;
        } else {
            notes.earliest_end = notes.earliest_end.min(end);
            notes.latest_start = notes.latest_start.max(start);
        }
    }
    Ok(items)
}

#[inline]
fn expect_wire(message: M, number: u32, wire: u8, expected: u8) -> Result<(), String> {
    if wire == expected {
        Ok(())
    } else {
        Err(field_wire_error(message, number, wire))
    }
}

#[cold]
fn field_wire_error(message: M, number: u32, wire: u8) -> String {
    wire_error(&format!("{message:?}"), number, wire)
}

#[cold]
fn wire_error(message: &str, number: u32, wire: u8) -> String {
    format!("failed to decode Protobuf message: {message}.{number}: invalid wire type {wire}")
}

#[cold]
fn truncated() -> String {
    "failed to decode Protobuf message: buffer underflow".into()
}

/// A cursor over protobuf bytes.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    #[inline]
    pub(super) fn varint(&mut self) -> Result<u64, String> {
        // Field keys and most lengths and values fit in one byte.
        if let Some(&byte) = self.bytes.get(self.at)
            && byte < 0x80
        {
            self.at += 1;
            return Ok(u64::from(byte));
        }
        self.long_varint()
    }

    fn long_varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.bytes.get(self.at) else {
                return Err(truncated());
            };
            self.at += 1;
            if i == 9 && byte > 1 {
                return Err("failed to decode Protobuf message: invalid varint".into());
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err("failed to decode Protobuf message: invalid varint".into())
    }

    /// A field's number and wire type.
    #[inline]
    pub(super) fn key(&mut self) -> Result<(u32, u8), String> {
        // Fields 1 to 15, as almost every OTLP field is: one byte.
        if let Some(&byte) = self.bytes.get(self.at)
            && byte < 0x80
            && byte & 7 <= WIRE_FIXED32
            && byte >> 3 != 0
        {
            self.at += 1;
            return Ok((u32::from(byte >> 3), byte & 7));
        }
        self.long_key()
    }

    fn long_key(&mut self) -> Result<(u32, u8), String> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(format!(
                "failed to decode Protobuf message: invalid key value: {key}"
            ));
        }
        let wire = (key & 7) as u8;
        if wire > WIRE_FIXED32 {
            return Err(format!(
                "failed to decode Protobuf message: invalid wire type value: {wire}"
            ));
        }
        let number = (key >> 3) as u32;
        if number == 0 {
            return Err("failed to decode Protobuf message: invalid tag value: 0".into());
        }
        Ok((number, wire))
    }

    pub(super) fn fixed(&mut self, width: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(width).ok_or_else(truncated)?;
        let bytes = self.bytes.get(self.at..end).ok_or_else(truncated)?;
        self.at = end;
        Ok(bytes)
    }

    pub(super) fn fixed64(&mut self) -> Result<u64, String> {
        let bytes = self.fixed(8)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(word))
    }

    pub(super) fn length_delimited(&mut self) -> Result<&'a [u8], String> {
        let length = self.varint()?;
        let length = usize::try_from(length).map_err(|_| truncated())?;
        self.fixed(length)
    }

    /// Skips a field nobody reads, as a decoder does (groups included, within the nesting
    /// limit).
    pub(super) fn skip(&mut self, number: u32, wire: u8, depth: u32) -> Result<(), String> {
        match wire {
            WIRE_VARINT => {
                self.varint()?;
            }
            WIRE_FIXED64 => {
                self.fixed(8)?;
            }
            WIRE_FIXED32 => {
                self.fixed(4)?;
            }
            WIRE_LEN => {
                self.length_delimited()?;
            }
            WIRE_START_GROUP => {
                if depth == 0 {
                    return Err("failed to decode Protobuf message: recursion limit reached".into());
                }
                loop {
                    if self.done() {
                        return Err(truncated());
                    }
                    let (inner, inner_wire) = self.key()?;
                    if inner_wire == WIRE_END_GROUP {
                        if inner != number {
                            return Err(
                                "failed to decode Protobuf message: unexpected end group tag"
                                    .into(),
                            );
                        }
                        break;
                    }
                    self.skip(inner, inner_wire, depth - 1)?;
                }
            }
            _ => {
                return Err("failed to decode Protobuf message: unexpected end group tag".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Payload;
    use opentelemetry_proto::tonic::collector::{
        logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
        trace::v1::ExportTraceServiceRequest,
    };
    use prost::Message;

    const TRACES: &[u8] = include_bytes!("../../benches/workload/traces.pb");
    const METRICS: &[u8] = include_bytes!("../../benches/workload/metrics.pb");

    /// Whether prost decodes `body` as a request of `signal`, and how many items it holds.
    fn decoded(signal: Signal, body: &[u8]) -> Option<usize> {
        let payload = match signal {
            Signal::Traces => {
                Payload::Traces(ExportTraceServiceRequest::decode(body).ok()?.resource_spans)
            }
            Signal::Metrics => Payload::Metrics(
                ExportMetricsServiceRequest::decode(body)
                    .ok()?
                    .resource_metrics,
            ),
            Signal::Logs => {
                Payload::Logs(ExportLogsServiceRequest::decode(body).ok()?.resource_logs)
            }
        };
        Some(payload.item_count())
    }

    fn scanned(signal: Signal, body: &[u8]) -> Option<usize> {
        EncodedPayload::scan(signal, Bytes::copy_from_slice(body))
            .ok()
            .map(|p| p.item_count())
    }

    #[test]
    fn the_workload_scans_as_it_decodes_and_round_trips() {
        for (signal, body) in [(Signal::Traces, TRACES), (Signal::Metrics, METRICS)] {
            let payload = EncodedPayload::scan(signal, Bytes::from_static(body)).unwrap();
            assert_eq!(Some(payload.item_count()), decoded(signal, body));
            assert_eq!(payload.item_count(), 100);
            assert_eq!(payload.encode(), body, "the entries are the request");
            assert_eq!(payload.decode().item_count(), 100);
        }
    }

    /// Every truncation and every single-byte change of the workload is accepted by the scan
    /// exactly when prost decodes it, with the same item count.
    #[test]
    fn accepts_exactly_what_prost_decodes() {
        for (signal, body) in [(Signal::Traces, TRACES), (Signal::Metrics, METRICS)] {
            for cut in (0..body.len()).step_by(17) {
                let part = &body[..cut];
                assert_eq!(scanned(signal, part), decoded(signal, part), "cut at {cut}");
            }
            let mut changed = body.to_vec();
            for at in (0..body.len()).step_by(11) {
                for value in [0x00, 0x0a, 0x80, 0xff] {
                    let before = changed[at];
                    changed[at] = value;
                    assert_eq!(
                        scanned(signal, &changed),
                        decoded(signal, &changed),
                        "byte {at} set to {value:#x}"
                    );
                    changed[at] = before;
                }
            }
        }
    }

    #[test]
    fn spans_times_and_entries_split_where_resources_begin() {
        let payload = EncodedPayload::scan(Signal::Traces, Bytes::from_static(TRACES)).unwrap();
        let request = ExportTraceServiceRequest::decode(TRACES).unwrap();
        let spans = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans);
        let earliest_end = spans.clone().map(|s| s.end_time_unix_nano).min().unwrap();
        let latest_start = spans.map(|s| s.start_time_unix_nano).max().unwrap();
        assert_eq!(payload.entries().len(), request.resource_spans.len());
        assert_eq!(
            payload.entries()[0].span_times,
            Some((earliest_end, latest_start))
        );
        let mut twice = payload.clone();
        twice.append(payload);
        assert_eq!(twice.item_count(), 200);
        assert_eq!(decoded(Signal::Traces, &twice.encode()), Some(200));
    }

    #[test]
    fn a_metrics_data_oneof_counts_as_prost_keeps_it() {
        use opentelemetry_proto::tonic::metrics::v1::{
            Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric::Data,
        };
        let metric = |data| Metric {
            name: "m".into(),
            data: Some(data),
            ..Default::default()
        };
        let points = |n| vec![NumberDataPoint::default(); n];
        let encode = |metric: Metric| {
            ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    scope_metrics: vec![ScopeMetrics {
                        metrics: vec![metric],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
        };
        let gauge = encode(metric(Data::Gauge(Gauge {
            data_points: points(3),
        })));
        let sum = encode(metric(Data::Sum(Sum {
            data_points: points(2),
            ..Default::default()
        })));
        // Two requests' bytes of one metric each, concatenated inside one metric message: the
        // same data field twice merges (3 + 3), another type replaces (2).
        let metric_body = |request: &[u8]| {
            let rm = ExportMetricsServiceRequest::decode(request).unwrap();
            rm.resource_metrics[0].scope_metrics[0].metrics[0].encode_to_vec()
        };
        for (first, second) in [(&gauge, &gauge), (&gauge, &sum), (&sum, &gauge)] {
            let mut inner = metric_body(first);
            inner.extend(metric_body(second));
            let mut scope = Vec::new();
            prost::encoding::encode_key(2, prost::encoding::WireType::LengthDelimited, &mut scope);
            prost::encoding::encode_varint(inner.len() as u64, &mut scope);
            scope.extend(&inner);
            let mut resource = Vec::new();
            prost::encoding::bytes::encode(2, &scope, &mut resource);
            let mut request = Vec::new();
            prost::encoding::bytes::encode(1, &resource, &mut request);
            assert_eq!(
                scanned(Signal::Metrics, &request),
                decoded(Signal::Metrics, &request)
            );
        }
    }

    /// A batch starts empty and owned: encoded requests appended to it stay encoded; owned data
    /// joining them makes the batch owned, with every item.
    #[test]
    fn a_batch_of_encoded_requests_stays_encoded() {
        let request = || {
            Payload::Encoded(
                EncodedPayload::scan(Signal::Traces, Bytes::from_static(TRACES)).unwrap(),
            )
        };
        let mut batch = Payload::empty(Signal::Traces);
        batch.append(request());
        batch.append(request());
        assert!(matches!(batch, Payload::Encoded(_)));
        assert_eq!(batch.item_count(), 200);
        batch.append(request().decoded());
        assert!(matches!(batch, Payload::Traces(_)));
        assert_eq!(batch.item_count(), 300);
    }
}
