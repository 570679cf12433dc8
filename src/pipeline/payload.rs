//! The data a pipeline moves: the owned OTLP protobuf model, for components that change it, or
//! requests as they arrived (`Encoded`); `super::view` reads either without copying.

use super::EncodedPayload;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, metric::Data};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

pub use crate::config::Signal;

/// A unit of telemetry moving through a pipeline: the resource-level lists of one OTLP export
/// request, or a batch made of several. The owned model is for components that read or change
/// data; `Encoded` keeps the request's bytes for pipelines that only batch and forward them
/// (the service feeds it only to those, see [`Payload::decoded`] for the others).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Traces(Vec<ResourceSpans>),
    Metrics(Vec<ResourceMetrics>),
    Logs(Vec<ResourceLogs>),
    Encoded(EncodedPayload),
}

impl Payload {
    /// An empty payload of the given signal.
    pub fn empty(signal: Signal) -> Self {
        match signal {
            Signal::Traces => Payload::Traces(Vec::new()),
            Signal::Metrics => Payload::Metrics(Vec::new()),
            Signal::Logs => Payload::Logs(Vec::new()),
        }
    }

    pub fn signal(&self) -> Signal {
        match self {
            Payload::Traces(_) => Signal::Traces,
            Payload::Metrics(_) => Signal::Metrics,
            Payload::Logs(_) => Signal::Logs,
            Payload::Encoded(encoded) => encoded.signal(),
        }
    }

    /// Turns encoded entries into the owned model in place (nothing to do for owned data).
    pub fn make_owned(&mut self) {
        if let Payload::Encoded(encoded) = self {
            *self = encoded.decode();
        }
    }

    /// The owned model of this payload: itself, or its encoded entries decoded.
    pub fn decoded(self) -> Payload {
        match self {
            Payload::Encoded(encoded) => encoded.decode(),
            owned => owned,
        }
    }

    /// Items as the batch processor counts them: spans, data points (a histogram or summary
    /// point counts as one) or log records.
    pub fn item_count(&self) -> usize {
        match self {
            Payload::Traces(rs) => rs
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum(),
            Payload::Metrics(rm) => rm
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| data_point_count(m.data.as_ref()))
                .sum(),
            Payload::Logs(rl) => rl
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len())
                .sum(),
            Payload::Encoded(encoded) => encoded.item_count(),
        }
    }

    /// Moves every resource of `other` into `self`, as the collector's batcher does (no merge
    /// of identical resources). Payloads of different signals are never mixed by a pipeline.
    pub fn append(&mut self, other: Payload) {
        match (self, other) {
            (Payload::Traces(a), Payload::Traces(b)) => a.extend(b),
            (Payload::Metrics(a), Payload::Metrics(b)) => a.extend(b),
            (Payload::Logs(a), Payload::Logs(b)) => a.extend(b),
            (Payload::Encoded(a), Payload::Encoded(b)) if a.signal() == b.signal() => a.append(b),
            // One pipeline gets one form; should both meet, the batch is owned.
            (this @ Payload::Encoded(_), owned) if this.signal() == owned.signal() => {
                this.make_owned();
                this.append(owned);
            }
            (this, encoded @ Payload::Encoded(_)) if this.signal() == encoded.signal() => {
                if this.has_no_resources() {
                    *this = encoded;
                } else {
                    this.append(encoded.decoded());
                }
            }
            (this, other) => unreachable!(
                "a {} pipeline was handed {} data",
                this.signal(),
                other.signal()
            ),
        }
    }

    /// Takes the first `max_items` items out of `self` and returns them, keeping resource and
    /// scope envelopes on both sides. Used to honour `send_batch_max_size`.
    pub fn split_off_front(&mut self, max_items: usize) -> Payload {
        self.make_owned();
        match self {
            Payload::Encoded(_) => unreachable!("decoded above"),
            Payload::Traces(rs) => Payload::Traces(split::take_spans(rs, max_items)),
            Payload::Metrics(rm) => Payload::Metrics(split::take_metric_points(rm, max_items)),
            Payload::Logs(rl) => Payload::Logs(split::take_log_records(rl, max_items)),
        }
    }

    /// An owned payload without a single resource (what a batch starts from).
    fn has_no_resources(&self) -> bool {
        match self {
            Payload::Traces(r) => r.is_empty(),
            Payload::Metrics(r) => r.is_empty(),
            Payload::Logs(r) => r.is_empty(),
            Payload::Encoded(_) => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.item_count() == 0
    }

    /// The payload of a protobuf-encoded OTLP export request of `signal`, decoded into the owned
    /// model.
    pub fn decode_export_request(
        signal: Signal,
        body: &[u8],
    ) -> Result<Payload, prost::DecodeError> {
        use prost::Message;
        Ok(match signal {
            Signal::Traces => {
                Payload::Traces(ExportTraceServiceRequest::decode(body)?.resource_spans)
            }
            Signal::Metrics => {
                Payload::Metrics(ExportMetricsServiceRequest::decode(body)?.resource_metrics)
            }
            Signal::Logs => Payload::Logs(ExportLogsServiceRequest::decode(body)?.resource_logs),
        })
    }

    /// The OTLP export request of this payload, protobuf-encoded: in every signal's request the
    /// resources are field 1, repeated, so it is written from the resources as they are,
    /// without building the request message around a copy of them.
    pub fn encode_export_request(&self) -> Vec<u8> {
        fn encode<M: prost::Message>(resources: &[M]) -> Vec<u8> {
            let length = resources
                .iter()
                .map(|r| prost::encoding::message::encoded_len(1, r))
                .sum();
            let mut out = Vec::with_capacity(length);
            for resource in resources {
                prost::encoding::message::encode(1, resource, &mut out);
            }
            out
        }
        match self {
            Payload::Traces(resources) => encode(resources),
            Payload::Metrics(resources) => encode(resources),
            Payload::Logs(resources) => encode(resources),
            Payload::Encoded(encoded) => encoded.encode(),
        }
    }
}

impl EncodedPayload {
    /// The owned model of these entries, for a component that reads or changes data. The bytes
    /// were checked when they arrived, so this decodes.
    pub fn decode(&self) -> Payload {
        Payload::decode_export_request(self.signal(), &self.encode()).unwrap_or_else(|error| {
            // Unreachable while `scan` accepts only what prost decodes (the fuzz target holds
            // them to that); should it happen, the entries are lost, and said so.
            tracing::error!(%error, items = self.item_count(), "checked OTLP entries failed to decode");
            Payload::empty(self.signal())
        })
    }
}

/// The attributes of each data point of a metric, whatever its type.
pub fn point_attributes(metric: &Metric) -> Vec<&[KeyValue]> {
    match &metric.data {
        Some(Data::Gauge(g)) => g
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        Some(Data::Sum(s)) => s
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        Some(Data::Histogram(h)) => h
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        Some(Data::ExponentialHistogram(h)) => h
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        Some(Data::Summary(s)) => s
            .data_points
            .iter()
            .map(|p| p.attributes.as_slice())
            .collect(),
        None => Vec::new(),
    }
}

/// Calls `f` with the attributes of every data point of a metric, whatever its type.
pub fn for_each_point_attributes(metric: &mut Metric, mut f: impl FnMut(&mut Vec<KeyValue>)) {
    match metric.data.as_mut() {
        Some(Data::Gauge(g)) => g.data_points.iter_mut().for_each(|p| f(&mut p.attributes)),
        Some(Data::Sum(s)) => s.data_points.iter_mut().for_each(|p| f(&mut p.attributes)),
        Some(Data::Histogram(h)) => h.data_points.iter_mut().for_each(|p| f(&mut p.attributes)),
        Some(Data::ExponentialHistogram(h)) => {
            h.data_points.iter_mut().for_each(|p| f(&mut p.attributes))
        }
        Some(Data::Summary(s)) => s.data_points.iter_mut().for_each(|p| f(&mut p.attributes)),
        None => {}
    }
}

/// Keeps the data points whose attributes `keep` accepts, whatever the metric's type.
pub fn retain_points(metric: &mut Metric, mut keep: impl FnMut(&[KeyValue]) -> bool) {
    match metric.data.as_mut() {
        Some(Data::Gauge(g)) => g.data_points.retain(|p| keep(&p.attributes)),
        Some(Data::Sum(s)) => s.data_points.retain(|p| keep(&p.attributes)),
        Some(Data::Histogram(h)) => h.data_points.retain(|p| keep(&p.attributes)),
        Some(Data::ExponentialHistogram(h)) => h.data_points.retain(|p| keep(&p.attributes)),
        Some(Data::Summary(s)) => s.data_points.retain(|p| keep(&p.attributes)),
        None => {}
    }
}

/// Data points in one metric, whatever its type.
pub fn data_point_count(data: Option<&Data>) -> usize {
    match data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

mod split {
    //! Splitting resource lists at an item count, keeping envelopes on both halves.

    use super::data_point_count;
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        Metric, ResourceMetrics, ScopeMetrics, metric::Data,
    };
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    /// Drains up to `n` elements from the front of `v`.
    fn drain_front<T>(v: &mut Vec<T>, n: usize) -> Vec<T> {
        let n = n.min(v.len());
        v.drain(..n).collect()
    }

    pub fn take_spans(resources: &mut Vec<ResourceSpans>, mut budget: usize) -> Vec<ResourceSpans> {
        let mut taken = Vec::new();
        while budget > 0 && !resources.is_empty() {
            let resource = &mut resources[0];
            let mut scopes = Vec::new();
            while budget > 0 && !resource.scope_spans.is_empty() {
                let scope = &mut resource.scope_spans[0];
                if scope.spans.len() <= budget {
                    budget -= scope.spans.len();
                    scopes.push(resource.scope_spans.remove(0));
                } else {
                    let spans = drain_front(&mut scope.spans, budget);
                    budget = 0;
                    scopes.push(ScopeSpans {
                        scope: scope.scope.clone(),
                        spans,
                        schema_url: scope.schema_url.clone(),
                    });
                }
            }
            if resource.scope_spans.is_empty() {
                let mut whole = resources.remove(0);
                whole.scope_spans = scopes;
                taken.push(whole);
            } else {
                taken.push(ResourceSpans {
                    resource: resource.resource.clone(),
                    scope_spans: scopes,
                    schema_url: resource.schema_url.clone(),
                });
            }
        }
        taken
    }

    pub fn take_log_records(
        resources: &mut Vec<ResourceLogs>,
        mut budget: usize,
    ) -> Vec<ResourceLogs> {
        let mut taken = Vec::new();
        while budget > 0 && !resources.is_empty() {
            let resource = &mut resources[0];
            let mut scopes = Vec::new();
            while budget > 0 && !resource.scope_logs.is_empty() {
                let scope = &mut resource.scope_logs[0];
                if scope.log_records.len() <= budget {
                    budget -= scope.log_records.len();
                    scopes.push(resource.scope_logs.remove(0));
                } else {
                    let log_records = drain_front(&mut scope.log_records, budget);
                    budget = 0;
                    scopes.push(ScopeLogs {
                        scope: scope.scope.clone(),
                        log_records,
                        schema_url: scope.schema_url.clone(),
                    });
                }
            }
            if resource.scope_logs.is_empty() {
                let mut whole = resources.remove(0);
                whole.scope_logs = scopes;
                taken.push(whole);
            } else {
                taken.push(ResourceLogs {
                    resource: resource.resource.clone(),
                    scope_logs: scopes,
                    schema_url: resource.schema_url.clone(),
                });
            }
        }
        taken
    }

    pub fn take_metric_points(
        resources: &mut Vec<ResourceMetrics>,
        mut budget: usize,
    ) -> Vec<ResourceMetrics> {
        let mut taken = Vec::new();
        while budget > 0 && !resources.is_empty() {
            let resource = &mut resources[0];
            let mut scopes = Vec::new();
            while budget > 0 && !resource.scope_metrics.is_empty() {
                let scope = &mut resource.scope_metrics[0];
                let mut metrics = Vec::new();
                while budget > 0 && !scope.metrics.is_empty() {
                    let points = data_point_count(scope.metrics[0].data.as_ref());
                    if points <= budget {
                        budget -= points;
                        metrics.push(scope.metrics.remove(0));
                    } else {
                        metrics.push(take_points_of_metric(&mut scope.metrics[0], budget));
                        budget = 0;
                    }
                }
                if scope.metrics.is_empty() {
                    let mut whole = resource.scope_metrics.remove(0);
                    whole.metrics = metrics;
                    scopes.push(whole);
                } else {
                    scopes.push(ScopeMetrics {
                        scope: scope.scope.clone(),
                        metrics,
                        schema_url: scope.schema_url.clone(),
                    });
                }
            }
            if resource.scope_metrics.is_empty() {
                let mut whole = resources.remove(0);
                whole.scope_metrics = scopes;
                taken.push(whole);
            } else {
                taken.push(ResourceMetrics {
                    resource: resource.resource.clone(),
                    scope_metrics: scopes,
                    schema_url: resource.schema_url.clone(),
                });
            }
        }
        taken
    }

    /// A copy of `metric`'s descriptor holding its first `n` data points, which leave `metric`.
    fn take_points_of_metric(metric: &mut Metric, n: usize) -> Metric {
        let data = match metric.data.as_mut() {
            Some(Data::Gauge(g)) => {
                let mut part = g.clone();
                part.data_points = drain_front(&mut g.data_points, n);
                Some(Data::Gauge(part))
            }
            Some(Data::Sum(s)) => Some(Data::Sum(opentelemetry_proto::tonic::metrics::v1::Sum {
                data_points: drain_front(&mut s.data_points, n),
                aggregation_temporality: s.aggregation_temporality,
                is_monotonic: s.is_monotonic,
            })),
            Some(Data::Histogram(h)) => Some(Data::Histogram(
                opentelemetry_proto::tonic::metrics::v1::Histogram {
                    data_points: drain_front(&mut h.data_points, n),
                    aggregation_temporality: h.aggregation_temporality,
                },
            )),
            Some(Data::ExponentialHistogram(h)) => Some(Data::ExponentialHistogram(
                opentelemetry_proto::tonic::metrics::v1::ExponentialHistogram {
                    data_points: drain_front(&mut h.data_points, n),
                    aggregation_temporality: h.aggregation_temporality,
                },
            )),
            Some(Data::Summary(s)) => Some(Data::Summary(
                opentelemetry_proto::tonic::metrics::v1::Summary {
                    data_points: drain_front(&mut s.data_points, n),
                },
            )),
            None => None,
        };
        Metric {
            name: metric.name.clone(),
            description: metric.description.clone(),
            unit: metric.unit.clone(),
            metadata: metric.metadata.clone(),
            data,
        }
    }
}

/// A traces payload of `n` empty spans, for tests of the stages that count items.
#[cfg(test)]
pub(crate) fn test_spans(n: usize) -> Payload {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    Payload::Traces(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span::default(); n],
            ..Default::default()
        }],
        ..Default::default()
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

    fn spans(groups: &[&[usize]]) -> Payload {
        Payload::Traces(
            groups
                .iter()
                .map(|scopes| ResourceSpans {
                    scope_spans: scopes
                        .iter()
                        .map(|&n| ScopeSpans {
                            spans: (0..n).map(|_| Span::default()).collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        )
    }

    #[test]
    fn split_spans_across_resources_and_scopes() {
        // (shape, split at, expected taken count, expected left count)
        let cases: &[(&[&[usize]], usize, usize, usize)] = &[
            (&[&[10]], 4, 4, 6),
            (&[&[10]], 10, 10, 0),
            (&[&[10]], 50, 10, 0),
            (&[&[3, 3], &[5]], 4, 4, 7),
            (&[&[3, 3], &[5]], 6, 6, 5),
            (&[&[3, 3], &[5]], 7, 7, 4),
            (&[&[0, 2]], 1, 1, 1),
        ];
        for &(shape, at, taken, left) in cases {
            let mut p = spans(shape);
            let front = p.split_off_front(at);
            assert_eq!(front.item_count(), taken, "shape {shape:?} at {at}");
            assert_eq!(p.item_count(), left, "shape {shape:?} at {at}");
        }
    }

    #[test]
    fn split_metrics_inside_one_metric_keeps_descriptor() {
        let point = NumberDataPoint::default();
        let mut p = Payload::Metrics(vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "g".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![point.clone(); 3],
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "s".into(),
                        unit: "ms".into(),
                        data: Some(Data::Sum(Sum {
                            data_points: vec![point; 5],
                            aggregation_temporality: 1,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }]);
        assert_eq!(p.item_count(), 8);
        let front = p.split_off_front(5);
        assert_eq!(front.item_count(), 5);
        assert_eq!(p.item_count(), 3);
        let Payload::Metrics(rest) = &p else { panic!() };
        let m = &rest[0].scope_metrics[0].metrics[0];
        assert_eq!((m.name.as_str(), m.unit.as_str()), ("s", "ms"));
        let Some(Data::Sum(sum)) = &m.data else {
            panic!()
        };
        assert!(sum.is_monotonic);
        assert_eq!(sum.aggregation_temporality, 1);
    }
}
