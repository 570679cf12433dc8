//! Metrics, borrowed: what the EMF translation reads of resources, scopes, metrics and points.
//! Numbers, histograms and summaries are read from the bytes; an exponential histogram's point
//! is decoded whole (its buckets are rewritten for deltas anyway), its attributes borrowed.

use super::{Field, KeyValuesView, entry_body, fields, text};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    SummaryDataPoint, metric::Data, number_data_point,
};
use std::borrow::Cow;

/// An instrumentation scope, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScopeView<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub attributes: KeyValuesView<'a>,
}

impl<'a> From<&'a InstrumentationScope> for ScopeView<'a> {
    fn from(scope: &'a InstrumentationScope) -> Self {
        ScopeView {
            name: &scope.name,
            version: &scope.version,
            attributes: KeyValuesView::Owned(&scope.attributes),
        }
    }
}

impl<'a> ScopeView<'a> {
    fn parse(bytes: &'a [u8]) -> Self {
        let mut scope = ScopeView {
            attributes: KeyValuesView::Encoded {
                message: bytes,
                field: 3,
            },
            ..ScopeView::default()
        };
        for (number, field) in fields(bytes) {
            match (number, field) {
                (1, Field::Len(name)) => scope.name = text(name),
                (2, Field::Len(version)) => scope.version = text(version),
                _ => {}
            }
        }
        scope
    }
}

/// Doubles compare by their bits in the point views: a view equals what it was read from,
/// NaN included.
fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
}

fn same_option(a: Option<f64>, b: Option<f64>) -> bool {
    a.map(f64::to_bits) == b.map(f64::to_bits)
}

/// A gauge's or a sum's point.
#[derive(Debug, Clone, Copy)]
pub struct NumberPointView<'a> {
    pub attributes: KeyValuesView<'a>,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub value: Option<number_data_point::Value>,
    pub flags: u32,
}

impl PartialEq for NumberPointView<'_> {
    fn eq(&self, other: &Self) -> bool {
        use number_data_point::Value::{AsDouble, AsInt};
        let value = match (self.value, other.value) {
            (Some(AsDouble(a)), Some(AsDouble(b))) => same(a, b),
            (Some(AsInt(a)), Some(AsInt(b))) => a == b,
            (None, None) => true,
            _ => false,
        };
        value
            && self.attributes == other.attributes
            && self.start_time_unix_nano == other.start_time_unix_nano
            && self.time_unix_nano == other.time_unix_nano
            && self.flags == other.flags
    }
}

impl<'a> From<&'a NumberDataPoint> for NumberPointView<'a> {
    fn from(p: &'a NumberDataPoint) -> Self {
        NumberPointView {
            attributes: KeyValuesView::Owned(&p.attributes),
            start_time_unix_nano: p.start_time_unix_nano,
            time_unix_nano: p.time_unix_nano,
            value: p.value,
            flags: p.flags,
        }
    }
}

impl<'a> NumberPointView<'a> {
    fn parse(bytes: &'a [u8]) -> Self {
        let mut point = NumberPointView {
            attributes: KeyValuesView::Encoded {
                message: bytes,
                field: 7,
            },
            start_time_unix_nano: 0,
            time_unix_nano: 0,
            value: None,
            flags: 0,
        };
        for (number, field) in fields(bytes) {
            match (number, field) {
                (2, Field::Fixed64(t)) => point.start_time_unix_nano = t,
                (3, Field::Fixed64(t)) => point.time_unix_nano = t,
                (4, Field::Fixed64(d)) => {
                    point.value = Some(number_data_point::Value::AsDouble(f64::from_bits(d)))
                }
                (6, Field::Fixed64(i)) => {
                    point.value = Some(number_data_point::Value::AsInt(i as i64))
                }
                (8, Field::Varint(flags)) => point.flags = flags as u32,
                _ => {}
            }
        }
        point
    }
}

/// A histogram's point: its count, sum, min and max (the EMF statistic set), not its buckets.
#[derive(Debug, Clone, Copy)]
pub struct HistogramPointView<'a> {
    pub attributes: KeyValuesView<'a>,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub count: u64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub flags: u32,
}

impl PartialEq for HistogramPointView<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.attributes == other.attributes
            && self.start_time_unix_nano == other.start_time_unix_nano
            && self.time_unix_nano == other.time_unix_nano
            && self.count == other.count
            && same_option(self.sum, other.sum)
            && same_option(self.min, other.min)
            && same_option(self.max, other.max)
            && self.flags == other.flags
    }
}

impl<'a> From<&'a HistogramDataPoint> for HistogramPointView<'a> {
    fn from(p: &'a HistogramDataPoint) -> Self {
        HistogramPointView {
            attributes: KeyValuesView::Owned(&p.attributes),
            start_time_unix_nano: p.start_time_unix_nano,
            time_unix_nano: p.time_unix_nano,
            count: p.count,
            sum: p.sum,
            min: p.min,
            max: p.max,
            flags: p.flags,
        }
    }
}

impl<'a> HistogramPointView<'a> {
    fn parse(bytes: &'a [u8]) -> Self {
        let mut point = HistogramPointView {
            attributes: KeyValuesView::Encoded {
                message: bytes,
                field: 9,
            },
            start_time_unix_nano: 0,
            time_unix_nano: 0,
            count: 0,
            sum: None,
            min: None,
            max: None,
            flags: 0,
        };
        for (number, field) in fields(bytes) {
            match (number, field) {
                (2, Field::Fixed64(t)) => point.start_time_unix_nano = t,
                (3, Field::Fixed64(t)) => point.time_unix_nano = t,
                (4, Field::Fixed64(count)) => point.count = count,
                (5, Field::Fixed64(sum)) => point.sum = Some(f64::from_bits(sum)),
                (10, Field::Varint(flags)) => point.flags = flags as u32,
                (11, Field::Fixed64(min)) => point.min = Some(f64::from_bits(min)),
                (12, Field::Fixed64(max)) => point.max = Some(f64::from_bits(max)),
                _ => {}
            }
        }
        point
    }
}

/// An exponential histogram's point: the attributes borrowed, the rest decoded.
#[derive(Debug, Clone)]
pub struct ExponentialPointView<'a> {
    pub attributes: KeyValuesView<'a>,
    /// The point (its attributes are not read from here).
    pub point: Cow<'a, ExponentialHistogramDataPoint>,
}

impl<'a> From<&'a ExponentialHistogramDataPoint> for ExponentialPointView<'a> {
    fn from(p: &'a ExponentialHistogramDataPoint) -> Self {
        ExponentialPointView {
            attributes: KeyValuesView::Owned(&p.attributes),
            point: Cow::Borrowed(p),
        }
    }
}

/// Equal when the attributes and the rest of the point are: the point's own attribute list
/// is not read.
impl PartialEq for ExponentialPointView<'_> {
    fn eq(&self, other: &Self) -> bool {
        // Compared encoded, so that doubles compare by their bits.
        let without_attributes = |p: &ExponentialHistogramDataPoint| {
            prost::Message::encode_to_vec(&ExponentialHistogramDataPoint {
                attributes: Vec::new(),
                ..p.clone()
            })
        };
        self.attributes == other.attributes
            && without_attributes(&self.point) == without_attributes(&other.point)
    }
}

impl<'a> ExponentialPointView<'a> {
    fn parse(bytes: &'a [u8]) -> Self {
        let mut point: ExponentialHistogramDataPoint =
            prost::Message::decode(bytes).unwrap_or_default();
        point.attributes = Vec::new();
        ExponentialPointView {
            attributes: KeyValuesView::Encoded {
                message: bytes,
                field: 1,
            },
            point: Cow::Owned(point),
        }
    }
}

/// A summary's point.
#[derive(Debug, Clone)]
pub struct SummaryPointView<'a> {
    pub attributes: KeyValuesView<'a>,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub count: u64,
    pub sum: f64,
    /// (quantile, value) in the order written.
    pub quantiles: Vec<(f64, f64)>,
    pub flags: u32,
}

impl PartialEq for SummaryPointView<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.attributes == other.attributes
            && self.start_time_unix_nano == other.start_time_unix_nano
            && self.time_unix_nano == other.time_unix_nano
            && self.count == other.count
            && same(self.sum, other.sum)
            && self.quantiles.len() == other.quantiles.len()
            && (self.quantiles.iter().zip(&other.quantiles))
                .all(|(a, b)| same(a.0, b.0) && same(a.1, b.1))
            && self.flags == other.flags
    }
}

impl<'a> From<&'a SummaryDataPoint> for SummaryPointView<'a> {
    fn from(p: &'a SummaryDataPoint) -> Self {
        SummaryPointView {
            attributes: KeyValuesView::Owned(&p.attributes),
            start_time_unix_nano: p.start_time_unix_nano,
            time_unix_nano: p.time_unix_nano,
            count: p.count,
            sum: p.sum,
            quantiles: p
                .quantile_values
                .iter()
                .map(|q| (q.quantile, q.value))
                .collect(),
            flags: p.flags,
        }
    }
}

impl<'a> SummaryPointView<'a> {
    fn parse(bytes: &'a [u8]) -> Self {
        let mut point = SummaryPointView {
            attributes: KeyValuesView::Encoded {
                message: bytes,
                field: 7,
            },
            start_time_unix_nano: 0,
            time_unix_nano: 0,
            count: 0,
            sum: 0.0,
            quantiles: Vec::new(),
            flags: 0,
        };
        for (number, field) in fields(bytes) {
            match (number, field) {
                (2, Field::Fixed64(t)) => point.start_time_unix_nano = t,
                (3, Field::Fixed64(t)) => point.time_unix_nano = t,
                (4, Field::Fixed64(count)) => point.count = count,
                (5, Field::Fixed64(sum)) => point.sum = f64::from_bits(sum),
                (6, Field::Len(quantile)) => {
                    let (mut q, mut v) = (0.0, 0.0);
                    for (number, field) in fields(quantile) {
                        match (number, field) {
                            (1, Field::Fixed64(bits)) => q = f64::from_bits(bits),
                            (2, Field::Fixed64(bits)) => v = f64::from_bits(bits),
                            _ => {}
                        }
                    }
                    point.quantiles.push((q, v));
                }
                (8, Field::Varint(flags)) => point.flags = flags as u32,
                _ => {}
            }
        }
        point
    }
}

/// A metric's data: the oneof of `Metric`, each kind with the fields the translation reads.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricDataView<'a> {
    Gauge(Vec<NumberPointView<'a>>),
    Sum {
        points: Vec<NumberPointView<'a>>,
        temporality: i32,
        is_monotonic: bool,
    },
    Histogram {
        points: Vec<HistogramPointView<'a>>,
        temporality: i32,
    },
    ExponentialHistogram {
        points: Vec<ExponentialPointView<'a>>,
        temporality: i32,
    },
    Summary(Vec<SummaryPointView<'a>>),
}

/// A metric, borrowed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricView<'a> {
    pub name: &'a str,
    pub unit: &'a str,
    pub data: Option<MetricDataView<'a>>,
}

impl<'a> From<&'a Metric> for MetricView<'a> {
    fn from(metric: &'a Metric) -> Self {
        let data = metric.data.as_ref().map(|data| match data {
            Data::Gauge(g) => MetricDataView::Gauge(g.data_points.iter().map(Into::into).collect()),
            Data::Sum(s) => MetricDataView::Sum {
                points: s.data_points.iter().map(Into::into).collect(),
                temporality: s.aggregation_temporality,
                is_monotonic: s.is_monotonic,
            },
            Data::Histogram(h) => MetricDataView::Histogram {
                points: h.data_points.iter().map(Into::into).collect(),
                temporality: h.aggregation_temporality,
            },
            Data::ExponentialHistogram(h) => MetricDataView::ExponentialHistogram {
                points: h.data_points.iter().map(Into::into).collect(),
                temporality: h.aggregation_temporality,
            },
            Data::Summary(s) => {
                MetricDataView::Summary(s.data_points.iter().map(Into::into).collect())
            }
        });
        MetricView {
            name: &metric.name,
            unit: &metric.unit,
            data,
        }
    }
}

/// The points (field 1) of an encoded gauge, sum, histogram or summary, and its temporality
/// (field 2) and monotonicity (field 3).
fn data_fields<'a, P>(bytes: &'a [u8], parse: impl Fn(&'a [u8]) -> P) -> (Vec<P>, i32, bool) {
    let (mut points, mut temporality, mut monotonic) = (Vec::new(), 0, false);
    for (number, field) in fields(bytes) {
        match (number, field) {
            (1, Field::Len(point)) => points.push(parse(point)),
            (2, Field::Varint(t)) => temporality = t as i32,
            (3, Field::Varint(m)) => monotonic = m != 0,
            _ => {}
        }
    }
    (points, temporality, monotonic)
}

impl<'a> MetricView<'a> {
    /// An encoded `Metric`; of its data fields the last one wins, as in a decoder.
    fn parse(bytes: &'a [u8]) -> Self {
        let mut metric = MetricView::default();
        for (number, field) in fields(bytes) {
            let Field::Len(body) = field else { continue };
            metric.data = Some(match number {
                1 => {
                    metric.name = text(body);
                    continue;
                }
                3 => {
                    metric.unit = text(body);
                    continue;
                }
                5 => MetricDataView::Gauge(data_fields(body, NumberPointView::parse).0),
                7 => {
                    let (points, temporality, is_monotonic) =
                        data_fields(body, NumberPointView::parse);
                    MetricDataView::Sum {
                        points,
                        temporality,
                        is_monotonic,
                    }
                }
                9 => {
                    let (points, temporality, _) = data_fields(body, HistogramPointView::parse);
                    MetricDataView::Histogram {
                        points,
                        temporality,
                    }
                }
                10 => {
                    let (points, temporality, _) = data_fields(body, ExponentialPointView::parse);
                    MetricDataView::ExponentialHistogram {
                        points,
                        temporality,
                    }
                }
                11 => MetricDataView::Summary(data_fields(body, SummaryPointView::parse).0),
                _ => continue,
            });
        }
        metric
    }
}

/// A scope and its metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeMetricsView<'a> {
    pub scope: Option<ScopeView<'a>>,
    pub metrics: Vec<MetricView<'a>>,
}

/// The resource's attributes and the scopes of one `ResourceMetrics` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceMetricsView<'a> {
    pub resource: KeyValuesView<'a>,
    pub scopes: Vec<ScopeMetricsView<'a>>,
}

impl<'a> From<&'a ResourceMetrics> for ResourceMetricsView<'a> {
    fn from(entry: &'a ResourceMetrics) -> Self {
        ResourceMetricsView {
            resource: entry
                .resource
                .as_ref()
                .map(|r| KeyValuesView::Owned(&r.attributes))
                .unwrap_or_default(),
            scopes: entry
                .scope_metrics
                .iter()
                .map(|scope| ScopeMetricsView {
                    scope: scope.scope.as_ref().map(ScopeView::from),
                    metrics: scope.metrics.iter().map(MetricView::from).collect(),
                })
                .collect(),
        }
    }
}

impl<'a> ResourceMetricsView<'a> {
    /// An encoded entry of a metrics export request, its tag and length included (as
    /// `EncodedEntry::bytes` holds it).
    pub fn parse_entry(entry: &'a [u8]) -> Self {
        let body = entry_body(entry);
        let mut view = ResourceMetricsView {
            resource: KeyValuesView::default(),
            scopes: Vec::new(),
        };
        for (number, field) in fields(body) {
            match (number, field) {
                (1, Field::Len(resource)) => {
                    view.resource = KeyValuesView::Encoded {
                        message: resource,
                        field: 1,
                    }
                }
                (2, Field::Len(scope_metrics)) => {
                    let mut scope = ScopeMetricsView {
                        scope: None,
                        metrics: Vec::new(),
                    };
                    for (number, field) in fields(scope_metrics) {
                        match (number, field) {
                            (1, Field::Len(s)) => scope.scope = Some(ScopeView::parse(s)),
                            (2, Field::Len(metric)) => {
                                scope.metrics.push(MetricView::parse(metric))
                            }
                            _ => {}
                        }
                    }
                    view.scopes.push(scope);
                }
                _ => {}
            }
        }
        view
    }
}

#[cfg(test)]
mod tests;
