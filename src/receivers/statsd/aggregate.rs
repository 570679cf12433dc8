//! Per-interval aggregation of StatsD lines into OTLP metrics. Series are looked up with a
//! borrowed key, so a line for an existing series allocates nothing.
//!
//! Where we differ from the collector (reference section 12): series are aggregated across
//! senders; timers, histograms and distributions are aggregated per interval (exact count, sum,
//! min and max plus an exponential-bucket distribution) instead of one gauge per sample; sets
//! are counted; the last partial interval is flushed on shutdown.

use super::parse::{LineValue, MetricKind, StatsdLine, tags};
use hashbrown::{Equivalent, HashMap, HashSet};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, exponential_histogram_data_point::Buckets,
    metric::Data, number_data_point,
};
use std::collections::BTreeMap;

/// The collector's statsd scope name: it becomes the `OTelLib` dimension in CloudWatch, so it
/// must not change.
pub const SCOPE_NAME: &str =
    "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/statsdreceiver";

/// Exponential-histogram scale for timer distributions: bucket bounds grow by 2^(1/16), about
/// 4.4 %, which keeps percentiles within a few percent with a few hundred buckets at most.
pub const DISTRIBUTION_SCALE: i32 = 4;

/// Series tracked per interval; lines for new series beyond this are dropped and counted, so a
/// tag explosion cannot exhaust memory.
pub const MAX_SERIES: usize = 100_000;

/// Distinct members remembered per set per interval.
pub const MAX_SET_MEMBERS: usize = 100_000;

/// How counter values are accumulated (`counter_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterType {
    /// Each line's `value / rate` truncated to an integer, as the collector does.
    #[default]
    Int,
    Float,
}

/// Receiver settings that change what is produced.
#[derive(Debug, Clone, Default)]
pub struct AggregationSettings {
    pub enable_metric_type: bool,
    pub is_monotonic_counter: bool,
    pub counter_type: CounterType,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    name: Box<str>,
    kind: MetricKind,
    tags: Box<str>,
    container: Option<Box<str>>,
}

/// The borrowed form of [`SeriesKey`]; hashes identically (same field types and order).
#[derive(Hash)]
struct SeriesRef<'a> {
    name: &'a str,
    kind: MetricKind,
    tags: &'a str,
    container: Option<&'a str>,
}

impl Equivalent<SeriesKey> for SeriesRef<'_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        self.name == &*key.name
            && self.kind == key.kind
            && self.tags == &*key.tags
            && self.container == key.container.as_deref()
    }
}

#[derive(Debug)]
enum SeriesState {
    Counter { sum: f64, timestamp: Option<u64> },
    Gauge { value: f64, timestamp: u64 },
    Distribution(Distribution),
    Set(HashSet<Box<str>>),
}

/// Weighted samples of a timer, histogram or distribution within one interval.
#[derive(Debug, Default)]
struct Distribution {
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
    zero: f64,
    positive: BTreeMap<i32, f64>,
    negative: BTreeMap<i32, f64>,
}

impl Distribution {
    fn record(&mut self, value: f64, weight: f64) {
        if self.count == 0.0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += weight;
        self.sum += value * weight;
        if value == 0.0 {
            self.zero += weight;
        } else {
            let side = if value > 0.0 {
                &mut self.positive
            } else {
                &mut self.negative
            };
            *side.entry(bucket_index(value.abs())).or_default() += weight;
        }
    }
}

/// The exponential-histogram bucket holding `value` (> 0): bucket `i` is (base^i, base^(i+1)].
pub fn bucket_index(value: f64) -> i32 {
    let scaled = value.log2() * f64::from(1 << DISTRIBUTION_SCALE);
    (scaled.ceil() as i32) - 1
}

/// All series of the current interval.
pub struct Aggregator {
    settings: AggregationSettings,
    series: HashMap<SeriesKey, SeriesState>,
    interval_start: u64,
    /// Lines refused because the interval already holds [`MAX_SERIES`] series.
    pub dropped_lines: u64,
}

impl Aggregator {
    pub fn new(settings: AggregationSettings, now: u64) -> Self {
        Aggregator {
            settings,
            series: HashMap::new(),
            interval_start: now,
            dropped_lines: 0,
        }
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Adds one line at time `now` (unix nanoseconds).
    pub fn add(&mut self, line: &StatsdLine<'_>, now: u64) {
        let key = SeriesRef {
            name: line.name,
            kind: line.kind,
            tags: line.tags,
            container: line.container_id,
        };
        if !self.series.contains_key(&key) {
            if self.series.len() >= MAX_SERIES {
                self.dropped_lines += 1;
                return;
            }
            let state = match line.kind {
                MetricKind::Counter => SeriesState::Counter {
                    sum: 0.0,
                    timestamp: None,
                },
                MetricKind::Gauge => SeriesState::Gauge {
                    value: 0.0,
                    timestamp: now,
                },
                MetricKind::Set => SeriesState::Set(HashSet::new()),
                _ => SeriesState::Distribution(Distribution::default()),
            };
            self.series.insert(
                SeriesKey {
                    name: line.name.into(),
                    kind: line.kind,
                    tags: line.tags.into(),
                    container: line.container_id.map(Into::into),
                },
                state,
            );
        }
        let state = self.series.get_mut(&key).expect("inserted above");
        let timestamp = line.timestamp.map(|s| s.saturating_mul(1_000_000_000));
        match (state, line.value) {
            (SeriesState::Counter { sum, timestamp: ts }, LineValue::Number(v)) => {
                let scaled = v / line.sample_rate;
                *sum += match self.settings.counter_type {
                    CounterType::Int => scaled.trunc(),
                    CounterType::Float => scaled,
                };
                if timestamp.is_some() {
                    *ts = timestamp;
                }
            }
            (
                SeriesState::Gauge {
                    value,
                    timestamp: ts,
                },
                LineValue::Number(v),
            ) => {
                if line.signed {
                    *value += v;
                } else {
                    *value = v;
                }
                *ts = timestamp.unwrap_or(now);
            }
            (SeriesState::Distribution(d), LineValue::Number(v)) => {
                d.record(v, 1.0 / line.sample_rate)
            }
            (SeriesState::Set(members), LineValue::Member(m))
                if members.len() < MAX_SET_MEMBERS && !members.contains(m) =>
            {
                members.insert(m.into());
            }
            _ => {}
        }
    }

    /// Emits everything aggregated since the last flush, and starts a new interval.
    pub fn flush(&mut self, now: u64) -> Option<ResourceMetrics> {
        let start = std::mem::replace(&mut self.interval_start, now);
        if self.series.is_empty() {
            return None;
        }
        let series = std::mem::take(&mut self.series);
        let mut metrics: Vec<Metric> = series
            .into_iter()
            .map(|(key, state)| self.to_metric(key, state, start, now))
            .collect();
        metrics.sort_by(|a, b| a.name.cmp(&b.name));
        Some(ResourceMetrics {
            resource: Some(Default::default()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.into(),
                    version: crate::VERSION.into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
    }

    fn attributes(&self, key: &SeriesKey) -> Vec<KeyValue> {
        let string = |k: &str, v: &str| KeyValue {
            key: k.to_string(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.to_string())),
            }),
            ..Default::default()
        };
        let mut pairs: Vec<(&str, &str)> = tags(&key.tags).collect();
        pairs.sort_unstable();
        pairs.dedup_by(|a, b| a.0 == b.0);
        let mut attributes: Vec<KeyValue> = pairs.into_iter().map(|(k, v)| string(k, v)).collect();
        if self.settings.enable_metric_type {
            attributes.push(string("metric_type", key.kind.label()));
        }
        if let Some(container) = &key.container {
            attributes.push(string("container.id", container));
        }
        attributes
    }

    fn to_metric(&self, key: SeriesKey, state: SeriesState, start: u64, now: u64) -> Metric {
        let attributes = self.attributes(&key);
        let number_point =
            |value: number_data_point::Value, start: u64, time: u64| NumberDataPoint {
                attributes: attributes.clone(),
                start_time_unix_nano: start,
                time_unix_nano: time,
                value: Some(value),
                ..Default::default()
            };
        let data = match state {
            SeriesState::Counter { sum, timestamp } => {
                let value = match self.settings.counter_type {
                    CounterType::Int => number_data_point::Value::AsInt(sum as i64),
                    CounterType::Float => number_data_point::Value::AsDouble(sum),
                };
                Data::Sum(Sum {
                    data_points: vec![number_point(value, start, timestamp.unwrap_or(now))],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                    is_monotonic: self.settings.is_monotonic_counter,
                })
            }
            SeriesState::Gauge { value, timestamp } => Data::Gauge(Gauge {
                data_points: vec![number_point(
                    number_data_point::Value::AsDouble(value),
                    0,
                    timestamp,
                )],
            }),
            SeriesState::Set(members) => Data::Gauge(Gauge {
                data_points: vec![number_point(
                    number_data_point::Value::AsInt(members.len() as i64),
                    0,
                    now,
                )],
            }),
            SeriesState::Distribution(d) => Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    attributes: attributes.clone(),
                    start_time_unix_nano: start,
                    time_unix_nano: now,
                    count: d.count.round() as u64,
                    sum: Some(d.sum),
                    scale: DISTRIBUTION_SCALE,
                    zero_count: d.zero.round() as u64,
                    positive: dense_buckets(&d.positive),
                    negative: dense_buckets(&d.negative),
                    min: Some(d.min),
                    max: Some(d.max),
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Delta as i32,
            }),
        };
        Metric {
            name: key.name.to_string(),
            data: Some(data),
            ..Default::default()
        }
    }
}

fn dense_buckets(sparse: &BTreeMap<i32, f64>) -> Option<Buckets> {
    let (&first, _) = sparse.first_key_value()?;
    let (&last, _) = sparse.last_key_value()?;
    let mut counts = vec![0u64; (last - first + 1) as usize];
    for (&index, &weight) in sparse {
        counts[(index - first) as usize] = weight.round() as u64;
    }
    Some(Buckets {
        offset: first,
        bucket_counts: counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receivers::statsd::parse::parse_line;

    fn aggregate(lines: &[&str], settings: AggregationSettings) -> Vec<Metric> {
        let mut aggregator = Aggregator::new(settings, 1_000);
        for line in lines {
            aggregator.add(&parse_line(line, false).unwrap(), 2_000);
        }
        let rm = aggregator.flush(60_000).unwrap();
        assert_eq!(rm.scope_metrics[0].scope.as_ref().unwrap().name, SCOPE_NAME);
        rm.scope_metrics.into_iter().next().unwrap().metrics
    }

    fn number(metric: &Metric) -> f64 {
        let point = match metric.data.as_ref().unwrap() {
            Data::Sum(s) => &s.data_points[0],
            Data::Gauge(g) => &g.data_points[0],
            other => panic!("{other:?}"),
        };
        match point.value.unwrap() {
            number_data_point::Value::AsInt(i) => i as f64,
            number_data_point::Value::AsDouble(d) => d,
        }
    }

    #[test]
    fn counters_sum_with_sample_rates() {
        let m = aggregate(
            &["c:1|c", "c:2|c|@0.5", "c:1|c|@0.3"],
            AggregationSettings::default(),
        );
        assert_eq!(
            number(&m[0]),
            1.0 + 4.0 + 3.0,
            "int counters truncate each line"
        );
        let Data::Sum(sum) = m[0].data.as_ref().unwrap() else {
            panic!()
        };
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Delta as i32
        );
        assert_eq!(
            (
                sum.data_points[0].start_time_unix_nano,
                sum.data_points[0].time_unix_nano
            ),
            (1_000, 60_000)
        );
        let float = AggregationSettings {
            counter_type: CounterType::Float,
            ..Default::default()
        };
        let m = aggregate(&["c:1|c|@0.3"], float);
        assert!((number(&m[0]) - 1.0 / 0.3).abs() < 1e-9);
    }

    #[test]
    fn gauges_take_the_last_value_and_apply_deltas() {
        let m = aggregate(
            &["g:10|g", "g:+5|g", "g:-3|g"],
            AggregationSettings::default(),
        );
        assert_eq!(number(&m[0]), 12.0);
        let m = aggregate(
            &["g:10|g", "g:+5|g", "g:4|g"],
            AggregationSettings::default(),
        );
        assert_eq!(number(&m[0]), 4.0);
        let m = aggregate(&["g:-2|g"], AggregationSettings::default());
        assert_eq!(number(&m[0]), -2.0);
    }

    #[test]
    fn timers_keep_exact_statistics_and_a_distribution() {
        let m = aggregate(
            &["t:10|ms", "t:20|ms", "t:30|ms|@0.5", "t:0|ms"],
            AggregationSettings::default(),
        );
        let Data::ExponentialHistogram(h) = m[0].data.as_ref().unwrap() else {
            panic!()
        };
        let p = &h.data_points[0];
        assert_eq!(p.count, 5);
        assert_eq!(p.sum, Some(10.0 + 20.0 + 60.0));
        assert_eq!((p.min, p.max), (Some(0.0), Some(30.0)));
        assert_eq!(p.zero_count, 1);
        let positive = p.positive.as_ref().unwrap();
        assert_eq!(positive.bucket_counts.iter().sum::<u64>(), 4);
        let base = 2f64.powf(1.0 / 16.0);
        let lower = base.powi(positive.offset);
        assert!(
            lower < 10.0 && 10.0 <= lower * base,
            "first bucket holds 10"
        );
    }

    #[test]
    fn bucket_bounds_are_upper_inclusive() {
        assert_eq!(bucket_index(1.0), -1);
        assert_eq!(bucket_index(2.0), 15);
        assert_eq!(bucket_index(2.0001), 16);
    }

    #[test]
    fn sets_count_distinct_members() {
        let m = aggregate(&["u:a|s", "u:b|s", "u:a|s"], AggregationSettings::default());
        assert_eq!(number(&m[0]), 2.0);
    }

    #[test]
    fn tags_and_options_become_attributes() {
        let settings = AggregationSettings {
            enable_metric_type: true,
            ..Default::default()
        };
        let m = aggregate(&["c:1|c|#b:2,a:1|c:cid"], settings);
        let Data::Sum(sum) = m[0].data.as_ref().unwrap() else {
            panic!()
        };
        let keys: Vec<&str> = sum.data_points[0]
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(keys, ["a", "b", "metric_type", "container.id"]);
    }

    #[test]
    fn series_are_bounded() {
        let mut aggregator = Aggregator::new(AggregationSettings::default(), 0);
        for i in 0..MAX_SERIES + 10 {
            let line = format!("c{i}:1|c");
            aggregator.add(&parse_line(&line, false).unwrap(), 0);
        }
        assert_eq!(aggregator.series_count(), MAX_SERIES);
        assert_eq!(aggregator.dropped_lines, 10);
    }

    #[test]
    fn flush_resets_the_interval() {
        let mut aggregator = Aggregator::new(AggregationSettings::default(), 0);
        aggregator.add(&parse_line("c:1|c", false).unwrap(), 1);
        assert!(aggregator.flush(10).is_some());
        assert!(
            aggregator.flush(20).is_none(),
            "nothing is remembered across intervals"
        );
    }
}
