//! The read model: OTLP data as views that borrow what they read, from a request's bytes or
//! from the owned model. Exporters that only read (the X-Ray and EMF translations) work from
//! views, so a request kept encoded is translated without an owned copy of every string;
//! processors that change data keep the owned model (`opentelemetry-proto`), which views borrow
//! as well.
//!
//! Views of bytes read entries `EncodedPayload::scan` accepted: a malformed field ends the
//! list it is in instead of failing (the scan has refused such requests already), and entries
//! the view cannot read as prost would (a singular message written twice, which decoders merge)
//! are read through the owned model instead (`EncodedEntry::merges`).

use super::encoded::{EncodedEntry, Reader, WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT};
use super::payload::{Payload, Signal};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

mod metrics;
pub use metrics::*;

/// One field of a message as written.
#[derive(Debug, Clone, Copy)]
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    Len(&'a [u8]),
    /// A group, skipped.
    Group,
}

/// The fields of a message in order; stops at the first malformed one.
struct Fields<'a> {
    reader: Reader<'a>,
}

fn fields(bytes: &[u8]) -> Fields<'_> {
    Fields {
        reader: Reader { bytes, at: 0 },
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u32, Field<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.reader.done() {
            return None;
        }
        let read = |reader: &mut Reader<'a>| -> Result<(u32, Field<'a>), String> {
            let (number, wire) = reader.key()?;
            let field = match wire {
                WIRE_VARINT => Field::Varint(reader.varint()?),
                WIRE_FIXED64 => Field::Fixed64(reader.fixed64()?),
                WIRE_FIXED32 => {
                    reader.fixed(4)?;
                    Field::Fixed32
                }
                WIRE_LEN => Field::Len(reader.length_delimited()?),
                _ => {
                    reader.skip(number, wire, super::encoded::NESTING_LIMIT)?;
                    Field::Group
                }
            };
            Ok((number, field))
        };
        match read(&mut self.reader) {
            Ok(field) => Some(field),
            Err(_) => {
                self.reader.at = self.reader.bytes.len();
                None
            }
        }
    }
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// An attribute value: `AnyValue`, borrowed.
#[derive(Debug, Clone, Copy)]
pub enum ValueView<'a> {
    /// An `AnyValue` without a value.
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(ArrayView<'a>),
    Kvlist(KeyValuesView<'a>),
    /// A dictionary index (profiles only).
    StringIndex(i32),
}

/// Doubles compare by their bits: a view equals what it was read from, NaN included.
impl PartialEq for ValueView<'_> {
    fn eq(&self, other: &Self) -> bool {
        use ValueView::*;
        match (self, other) {
            (Empty, Empty) => true,
            (Str(a), Str(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Double(a), Double(b)) => a.to_bits() == b.to_bits(),
            (Bytes(a), Bytes(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (Kvlist(a), Kvlist(b)) => a == b,
            (StringIndex(a), StringIndex(b)) => a == b,
            _ => false,
        }
    }
}

impl<'a> From<&'a AnyValue> for ValueView<'a> {
    fn from(value: &'a AnyValue) -> Self {
        match &value.value {
            None => ValueView::Empty,
            Some(Av::StringValue(s)) => ValueView::Str(s),
            Some(Av::BoolValue(b)) => ValueView::Bool(*b),
            Some(Av::IntValue(i)) => ValueView::Int(*i),
            Some(Av::DoubleValue(d)) => ValueView::Double(*d),
            Some(Av::BytesValue(b)) => ValueView::Bytes(b),
            Some(Av::ArrayValue(a)) => ValueView::Array(ArrayView::Owned(&a.values)),
            Some(Av::KvlistValue(kv)) => ValueView::Kvlist(KeyValuesView::Owned(&kv.values)),
            Some(Av::StringValueStrindex(i)) => ValueView::StringIndex(*i),
        }
    }
}

impl<'a> ValueView<'a> {
    /// An encoded `AnyValue`: the last field of its oneof wins, as in a decoder.
    fn parse(bytes: &'a [u8]) -> Self {
        let mut value = ValueView::Empty;
        for (number, field) in fields(bytes) {
            value = match (number, field) {
                (1, Field::Len(s)) => ValueView::Str(text(s)),
                (2, Field::Varint(b)) => ValueView::Bool(b != 0),
                (3, Field::Varint(i)) => ValueView::Int(i as i64),
                (4, Field::Fixed64(d)) => ValueView::Double(f64::from_bits(d)),
                (5, Field::Len(a)) => ValueView::Array(ArrayView::Encoded(a)),
                (6, Field::Len(kv)) => ValueView::Kvlist(KeyValuesView::Encoded {
                    message: kv,
                    field: 1,
                }),
                (7, Field::Len(b)) => ValueView::Bytes(b),
                (8, Field::Varint(i)) => ValueView::StringIndex(i as i32),
                _ => continue,
            };
        }
        value
    }
}

/// The values of an `ArrayValue`.
#[derive(Debug, Clone, Copy)]
pub enum ArrayView<'a> {
    Owned(&'a [AnyValue]),
    /// The encoded `ArrayValue`.
    Encoded(&'a [u8]),
}

impl<'a> ArrayView<'a> {
    pub fn iter(self) -> impl Iterator<Item = ValueView<'a>> {
        let (owned, encoded) = match self {
            ArrayView::Owned(values) => (values, &[][..]),
            ArrayView::Encoded(bytes) => (&[][..], bytes),
        };
        owned
            .iter()
            .map(ValueView::from)
            .chain(
                fields(encoded).filter_map(|(number, field)| match (number, field) {
                    (1, Field::Len(value)) => Some(ValueView::parse(value)),
                    _ => None,
                }),
            )
    }
}

impl PartialEq for ArrayView<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

/// A list of `KeyValue`s: an attribute list or a `KeyValueList`.
#[derive(Debug, Clone, Copy)]
pub enum KeyValuesView<'a> {
    Owned(&'a [KeyValue]),
    /// The fields numbered `field` of an encoded message.
    Encoded {
        message: &'a [u8],
        field: u32,
    },
}

impl<'a> From<&'a [KeyValue]> for KeyValuesView<'a> {
    fn from(list: &'a [KeyValue]) -> Self {
        KeyValuesView::Owned(list)
    }
}

impl<'a> From<&'a Vec<KeyValue>> for KeyValuesView<'a> {
    fn from(list: &'a Vec<KeyValue>) -> Self {
        KeyValuesView::Owned(list)
    }
}

impl Default for KeyValuesView<'_> {
    fn default() -> Self {
        KeyValuesView::Owned(&[])
    }
}

impl<'a> KeyValuesView<'a> {
    /// Each key and value, in order; entries without a value are left out.
    pub fn iter(self) -> impl Iterator<Item = (&'a str, ValueView<'a>)> {
        self.entries()
            .filter_map(|(key, value)| Some((key, value?)))
    }

    /// Each key and its value, in order, entries without a value included.
    pub fn entries(self) -> impl Iterator<Item = (&'a str, Option<ValueView<'a>>)> {
        let (owned, encoded, wanted) = match self {
            KeyValuesView::Owned(list) => (list, &[][..], 0),
            KeyValuesView::Encoded { message, field } => (&[][..], message, field),
        };
        let owned = owned
            .iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_ref().map(ValueView::from)));
        let encoded = fields(encoded).filter_map(move |(number, field)| match field {
            Field::Len(entry) if number == wanted => Some(key_value(entry)),
            _ => None,
        });
        owned.chain(encoded)
    }

    /// How many entries the list has (values or not).
    pub fn len(self) -> usize {
        match self {
            KeyValuesView::Owned(list) => list.len(),
            KeyValuesView::Encoded { message, field } => fields(message)
                .filter(|(number, value)| *number == field && matches!(value, Field::Len(_)))
                .count(),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for KeyValuesView<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.entries().eq(other.entries())
    }
}

/// An encoded `KeyValue`: its value `None` when not written, as the owned model's `value: None`.
fn key_value(bytes: &[u8]) -> (&str, Option<ValueView<'_>>) {
    let mut key = "";
    let mut value = None;
    for (number, field) in fields(bytes) {
        match (number, field) {
            (1, Field::Len(k)) => key = text(k),
            (2, Field::Len(v)) => value = Some(ValueView::parse(v)),
            _ => {}
        }
    }
    (key, value)
}

/// A span's event, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventView<'a> {
    pub time_unix_nano: u64,
    pub name: &'a str,
    pub attributes: KeyValuesView<'a>,
}

/// A span's link, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkView<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub attributes: KeyValuesView<'a>,
}

/// A span's status, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StatusView<'a> {
    pub message: &'a str,
    pub code: i32,
}

/// A span, borrowed: what the X-Ray translation reads of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanView<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub name: &'a str,
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: KeyValuesView<'a>,
    pub events: Vec<EventView<'a>>,
    pub links: Vec<LinkView<'a>>,
    pub status: Option<StatusView<'a>>,
}

impl<'a> From<&'a Span> for SpanView<'a> {
    fn from(span: &'a Span) -> Self {
        SpanView {
            trace_id: &span.trace_id,
            span_id: &span.span_id,
            parent_span_id: &span.parent_span_id,
            name: &span.name,
            kind: span.kind,
            start_time_unix_nano: span.start_time_unix_nano,
            end_time_unix_nano: span.end_time_unix_nano,
            attributes: KeyValuesView::Owned(&span.attributes),
            events: span
                .events
                .iter()
                .map(|event| EventView {
                    time_unix_nano: event.time_unix_nano,
                    name: &event.name,
                    attributes: KeyValuesView::Owned(&event.attributes),
                })
                .collect(),
            links: span
                .links
                .iter()
                .map(|link| LinkView {
                    trace_id: &link.trace_id,
                    span_id: &link.span_id,
                    attributes: KeyValuesView::Owned(&link.attributes),
                })
                .collect(),
            status: span.status.as_ref().map(|status| StatusView {
                message: &status.message,
                code: status.code,
            }),
        }
    }
}

impl<'a> SpanView<'a> {
    /// An encoded `Span`.
    pub fn parse(bytes: &'a [u8]) -> Self {
        let mut span = SpanView {
            attributes: KeyValuesView::Encoded {
                message: bytes,
                field: 9,
            },
            ..SpanView::default()
        };
        for (number, field) in fields(bytes) {
            match (number, field) {
                (1, Field::Len(id)) => span.trace_id = id,
                (2, Field::Len(id)) => span.span_id = id,
                (4, Field::Len(id)) => span.parent_span_id = id,
                (5, Field::Len(name)) => span.name = text(name),
                (6, Field::Varint(kind)) => span.kind = kind as i32,
                (7, Field::Fixed64(start)) => span.start_time_unix_nano = start,
                (8, Field::Fixed64(end)) => span.end_time_unix_nano = end,
                (11, Field::Len(event)) => span.events.push(event_view(event)),
                (13, Field::Len(link)) => span.links.push(link_view(link)),
                (15, Field::Len(status)) => span.status = Some(status_view(status)),
                _ => {}
            }
        }
        span
    }
}

fn event_view(bytes: &[u8]) -> EventView<'_> {
    let mut event = EventView {
        time_unix_nano: 0,
        name: "",
        attributes: KeyValuesView::Encoded {
            message: bytes,
            field: 3,
        },
    };
    for (number, field) in fields(bytes) {
        match (number, field) {
            (1, Field::Fixed64(time)) => event.time_unix_nano = time,
            (2, Field::Len(name)) => event.name = text(name),
            _ => {}
        }
    }
    event
}

fn link_view(bytes: &[u8]) -> LinkView<'_> {
    let mut link = LinkView {
        trace_id: &[],
        span_id: &[],
        attributes: KeyValuesView::Encoded {
            message: bytes,
            field: 4,
        },
    };
    for (number, field) in fields(bytes) {
        match (number, field) {
            (1, Field::Len(id)) => link.trace_id = id,
            (2, Field::Len(id)) => link.span_id = id,
            _ => {}
        }
    }
    link
}

fn status_view(bytes: &[u8]) -> StatusView<'_> {
    let mut status = StatusView::default();
    for (number, field) in fields(bytes) {
        match (number, field) {
            (2, Field::Len(message)) => status.message = text(message),
            (3, Field::Varint(code)) => status.code = code as i32,
            _ => {}
        }
    }
    status
}

/// The resource's attributes and the spans of one `ResourceSpans` entry.
pub struct ResourceSpansView<'a> {
    pub resource: KeyValuesView<'a>,
    pub spans: Vec<SpanView<'a>>,
}

impl<'a> From<&'a ResourceSpans> for ResourceSpansView<'a> {
    fn from(entry: &'a ResourceSpans) -> Self {
        ResourceSpansView {
            resource: entry
                .resource
                .as_ref()
                .map(|r| KeyValuesView::Owned(&r.attributes))
                .unwrap_or_default(),
            spans: entry
                .scope_spans
                .iter()
                .flat_map(|scope| &scope.spans)
                .map(SpanView::from)
                .collect(),
        }
    }
}

impl<'a> ResourceSpansView<'a> {
    /// An encoded entry of a traces export request, its tag and length included (as
    /// `EncodedEntry::bytes` holds it).
    pub fn parse_entry(entry: &'a [u8]) -> Self {
        let body = entry_body(entry);
        let mut view = ResourceSpansView {
            resource: KeyValuesView::default(),
            spans: Vec::new(),
        };
        for (number, field) in fields(body) {
            match (number, field) {
                (1, Field::Len(resource)) => {
                    view.resource = KeyValuesView::Encoded {
                        message: resource,
                        field: 1,
                    }
                }
                (2, Field::Len(scope)) => {
                    view.spans
                        .extend(fields(scope).filter_map(|(n, f)| match f {
                            Field::Len(span) if n == 2 => Some(SpanView::parse(span)),
                            _ => None,
                        }))
                }
                _ => {}
            }
        }
        view
    }
}

/// Calls `read` with views of a traces payload's resources, owned or encoded (`None` for other
/// signals). An encoded entry that writes a singular message twice is decoded first, as
/// decoders merge the two.
pub fn read_traces<R>(
    payload: &Payload,
    read: impl FnOnce(&[ResourceSpansView]) -> R,
) -> Option<R> {
    match payload {
        Payload::Traces(resource_spans) => {
            let views: Vec<_> = resource_spans.iter().map(ResourceSpansView::from).collect();
            Some(read(&views))
        }
        Payload::Encoded(encoded) if encoded.signal() == Signal::Traces => {
            let merged: Vec<ExportTraceServiceRequest> = decode_merging(encoded.entries());
            let views = entry_views(
                encoded.entries(),
                merged.iter().flat_map(|request| &request.resource_spans),
                ResourceSpansView::from,
                ResourceSpansView::parse_entry,
            );
            Some(read(&views))
        }
        _ => None,
    }
}

/// Calls `read` with views of a metrics payload's resources, owned or encoded (`None` for
/// other signals); as [`read_traces`], merging entries are decoded first.
pub fn read_metrics<R>(
    payload: &Payload,
    read: impl FnOnce(&[ResourceMetricsView]) -> R,
) -> Option<R> {
    match payload {
        Payload::Metrics(resource_metrics) => {
            let views: Vec<_> = resource_metrics
                .iter()
                .map(ResourceMetricsView::from)
                .collect();
            Some(read(&views))
        }
        Payload::Encoded(encoded) if encoded.signal() == Signal::Metrics => {
            let merged: Vec<ExportMetricsServiceRequest> = decode_merging(encoded.entries());
            let views = entry_views(
                encoded.entries(),
                merged.iter().flat_map(|request| &request.resource_metrics),
                ResourceMetricsView::from,
                ResourceMetricsView::parse_entry,
            );
            Some(read(&views))
        }
        _ => None,
    }
}

/// The entries that write a singular message twice, decoded (each is an export request of
/// one resource entry).
fn decode_merging<Request: prost::Message + Default>(entries: &[EncodedEntry]) -> Vec<Request> {
    entries
        .iter()
        .filter(|entry| entry.merges)
        .map(|entry| Request::decode(entry.bytes.as_ref()).unwrap_or_default())
        .collect()
}

/// A view of each entry: parsed from its bytes, or, for one that merges, of the next of
/// `merged` (its decoded form).
fn entry_views<'a, Entry: 'a, View>(
    entries: &'a [EncodedEntry],
    mut merged: impl Iterator<Item = &'a Entry>,
    from_owned: impl Fn(&'a Entry) -> View,
    parse: impl Fn(&'a [u8]) -> View,
) -> Vec<View> {
    entries
        .iter()
        .filter_map(|entry| {
            if entry.merges {
                merged.next().map(&from_owned)
            } else {
                Some(parse(&entry.bytes))
            }
        })
        .collect()
}

/// The body of an encoded entry of an export request, whose tag and length it includes (as
/// `EncodedEntry::bytes` holds it).
fn entry_body(entry: &[u8]) -> &[u8] {
    match fields(entry).next() {
        Some((_, Field::Len(body))) => body,
        _ => &[],
    }
}

#[cfg(test)]
mod tests;
