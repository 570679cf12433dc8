//! Cumulative → delta conversion for CloudWatch, which sums what it is given. Bounded: idle
//! series expire after [`SERIES_TTL_MS`], and at most [`MAX_SERIES`] are remembered.

use crate::pipeline::view::{KeyValuesView, ScopeView, ValueView};
use std::collections::{BTreeMap, HashMap};

/// Series unseen for this long are forgotten (the collector's 5-minute sweep).
pub const SERIES_TTL_MS: i64 = 5 * 60 * 1000;
/// Remembered series at most; beyond it a new cumulative series is treated as first seen
/// every time (its points are counted as dropped first points), so memory stays flat.
pub const MAX_SERIES: usize = 200_000;

/// What every point of one instrumentation scope of one resource shares in its series identity:
/// the destination (namespace, log group, log stream), the resource's attributes and the scope
/// (name, version, attributes). Two meters or two containers recording the same metric name and
/// attributes are distinct series: sharing one previous value would turn every point of one
/// into a "reset" of the other. Built once per scope, not per point.
#[derive(Debug, Clone, Default)]
pub struct SeriesPrefix(Vec<u8>);

impl SeriesPrefix {
    pub fn new(
        namespace: &str,
        log_group: &str,
        log_stream: &str,
        resource: KeyValuesView<'_>,
        scope: Option<ScopeView<'_>>,
    ) -> Self {
        let mut key = Vec::with_capacity(128);
        for text in [namespace, log_group, log_stream] {
            part(&mut key, text.as_bytes());
        }
        push_attributes(&mut key, resource);
        let ScopeView {
            name,
            version,
            attributes,
        } = scope.unwrap_or_default();
        part(&mut key, name.as_bytes());
        part(&mut key, version.as_bytes());
        push_attributes(&mut key, attributes);
        SeriesPrefix(key)
    }
}

/// What kind of cumulative series a key is for: a sum and a histogram of one name never share
/// a previous value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    Sum = 1,
    Histogram = 2,
    ExponentialHistogram = 3,
}

/// Identity of a series: its [`SeriesPrefix`], the metric name and kind, and the point's
/// attributes, each part length-prefixed and values type-tagged, so distinct series never share
/// a key. Built without formatting: this is per point for every cumulative series (the
/// OpenTelemetry SDKs' default temporality).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeltaKey(Box<[u8]>);

impl DeltaKey {
    pub fn new(
        prefix: &SeriesPrefix,
        metric: &str,
        kind: SeriesKind,
        attributes: KeyValuesView<'_>,
    ) -> Self {
        let mut key = Vec::with_capacity(prefix.0.len() + metric.len() + 64);
        key.extend_from_slice(&prefix.0);
        part(&mut key, metric.as_bytes());
        key.push(kind as u8);
        push_attributes(&mut key, attributes);
        DeltaKey(key.into_boxed_slice())
    }
}

/// Appends `bytes` with its length in front.
fn part(key: &mut Vec<u8>, bytes: &[u8]) {
    key.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    key.extend_from_slice(bytes);
}

/// Appends an attribute list in key order, its length first, each value tagged with its type.
fn push_attributes(key: &mut Vec<u8>, attributes: KeyValuesView<'_>) {
    let mut sorted: Vec<(&str, Option<ValueView<'_>>)> = attributes.entries().collect();
    key.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    if !sorted.is_sorted_by(|a, b| a.0 <= b.0) {
        sorted.sort_by(|a, b| a.0.cmp(b.0));
    }
    for (name, value) in sorted {
        part(key, name.as_bytes());
        match value {
            Some(value) => push_value(key, value),
            None => key.push(b'n'),
        }
    }
}

/// Appends a value tagged with its type; arrays and lists with their lengths, recursively.
fn push_value(key: &mut Vec<u8>, value: ValueView<'_>) {
    match value {
        ValueView::Str(s) => {
            key.push(b's');
            part(key, s.as_bytes());
        }
        ValueView::Int(i) => {
            key.push(b'i');
            key.extend_from_slice(&i.to_le_bytes());
        }
        ValueView::Double(d) => {
            key.push(b'd');
            key.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        ValueView::Bool(b) => key.extend_from_slice(&[b'b', u8::from(b)]),
        ValueView::Bytes(b) => {
            key.push(b'x');
            part(key, b);
        }
        ValueView::Array(values) => {
            key.push(b'a');
            let at = key.len();
            key.extend_from_slice(&0u32.to_le_bytes());
            let mut count = 0u32;
            for value in values.iter() {
                push_value(key, value);
                count += 1;
            }
            key[at..at + 4].copy_from_slice(&count.to_le_bytes());
        }
        ValueView::Kvlist(list) => {
            key.push(b'k');
            let at = key.len();
            key.extend_from_slice(&0u32.to_le_bytes());
            let mut count = 0u32;
            for (name, value) in list.iter() {
                part(key, name.as_bytes());
                push_value(key, value);
                count += 1;
            }
            key[at..at + 4].copy_from_slice(&count.to_le_bytes());
        }
        ValueView::StringIndex(i) => {
            key.push(b'r');
            key.extend_from_slice(&i.to_le_bytes());
        }
        ValueView::Empty => key.push(b'e'),
    }
}

#[derive(Debug)]
struct Entry {
    start: u64,
    value: f64,
    count: u64,
    last_seen_ms: i64,
}

/// The previous cumulative state of an exponential histogram.
#[derive(Debug, Clone)]
struct ExpState {
    start: u64,
    scale: i32,
    count: u64,
    sum: f64,
    zero: u64,
    positive: BTreeMap<i32, u64>,
    negative: BTreeMap<i32, u64>,
    last_seen_ms: i64,
}

/// Buckets of an exponential histogram as index → count, at some scale.
pub type SparseBuckets = BTreeMap<i32, u64>;

/// Re-indexes buckets to a coarser scale (each step down merges pairs of buckets).
fn downscale(buckets: &SparseBuckets, by: i32) -> SparseBuckets {
    let mut out = SparseBuckets::new();
    for (&index, &count) in buckets {
        *out.entry(index >> by).or_default() += count;
    }
    out
}

/// An exponential histogram point reduced to what delta conversion needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpSnapshot {
    pub scale: i32,
    pub count: u64,
    pub sum: f64,
    pub zero: u64,
    pub positive: SparseBuckets,
    pub negative: SparseBuckets,
}

/// What decides whether the first point of a cumulative series is published: the exporter's
/// settings the cache needs, and nothing else of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeltaPolicy {
    /// Unix nanoseconds at which the sidecar started: cumulative series that began later are
    /// complete, so their first point is a delta.
    pub started_at: u64,
    /// `retain_initial_value_of_delta_metric`: every first point is published.
    pub retain_initial_value: bool,
}

#[derive(Debug, Default)]
pub struct DeltaCache {
    entries: HashMap<DeltaKey, Entry>,
    exponential: HashMap<DeltaKey, ExpState>,
    now_ms: i64,
    last_sweep_ms: i64,
}

impl DeltaCache {
    pub fn len(&self) -> usize {
        self.entries.len() + self.exponential.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the clock for the next points and drops idle series (at most once a minute).
    pub fn advance(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
        if now_ms - self.last_sweep_ms >= 60_000 {
            self.entries
                .retain(|_, e| now_ms - e.last_seen_ms < SERIES_TTL_MS);
            self.exponential
                .retain(|_, e| now_ms - e.last_seen_ms < SERIES_TTL_MS);
            self.last_sweep_ms = now_ms;
        }
    }

    /// The first point of a series: its value is a delta only when the series began after the
    /// sidecar (or when `retain_initial_value_of_delta_metric` says so).
    fn first(start: u64, policy: &DeltaPolicy) -> bool {
        (start != 0 && start >= policy.started_at) || policy.retain_initial_value
    }

    fn update(
        &mut self,
        key: DeltaKey,
        start: u64,
        value: f64,
        count: u64,
        monotonic: bool,
    ) -> Option<Option<(f64, u64)>> {
        let now_ms = self.now_ms;
        match self.entries.get_mut(&key) {
            Some(entry) => {
                // A new start time means the source restarted, and so does a decrease of anything
                // monotonic: the value counts from zero again.
                let decreased = monotonic && value < entry.value;
                let reset =
                    (start != 0 && start != entry.start) || decreased || count < entry.count;
                let delta = if reset {
                    (value, count)
                } else {
                    (value - entry.value, count - entry.count)
                };
                *entry = Entry {
                    start,
                    value,
                    count,
                    last_seen_ms: now_ms,
                };
                Some(Some(delta))
            }
            None => {
                if self.entries.len() < MAX_SERIES {
                    self.entries.insert(
                        key,
                        Entry {
                            start,
                            value,
                            count,
                            last_seen_ms: now_ms,
                        },
                    );
                }
                Some(None)
            }
        }
    }

    /// Delta of a monotonic cumulative sum, or `None` for a first point that cannot be one.
    /// (Non-monotonic sums are levels and are published as they are, not through the cache.)
    pub fn number_delta(
        &mut self,
        key: DeltaKey,
        start: u64,
        value: f64,
        policy: &DeltaPolicy,
    ) -> Option<f64> {
        match self.update(key, start, value, 0, true)? {
            Some((delta, _)) => Some(delta),
            None => Self::first(start, policy).then_some(value),
        }
    }

    /// Delta of a cumulative exponential histogram, bucket by bucket (at the coarser of the two
    /// scales when the source downscaled in between).
    pub fn exponential_delta(
        &mut self,
        key: DeltaKey,
        start: u64,
        point: ExpSnapshot,
        policy: &DeltaPolicy,
    ) -> Option<ExpSnapshot> {
        let now_ms = self.now_ms;
        let state = ExpState {
            start,
            scale: point.scale,
            count: point.count,
            sum: point.sum,
            zero: point.zero,
            positive: point.positive.clone(),
            negative: point.negative.clone(),
            last_seen_ms: now_ms,
        };
        let Some(previous) = self.exponential.get(&key).cloned() else {
            if self.len() < MAX_SERIES {
                self.exponential.insert(key, state);
            }
            return Self::first(start, policy).then_some(point);
        };
        self.exponential.insert(key, state);
        let reset = (start != 0 && start != previous.start) || point.count < previous.count;
        if reset {
            return Some(point);
        }
        let scale = point.scale.min(previous.scale);
        let subtract =
            |now: &SparseBuckets, now_scale: i32, before: &SparseBuckets, before_scale: i32| {
                let mut out = downscale(now, now_scale - scale);
                for (index, count) in downscale(before, before_scale - scale) {
                    let slot = out.entry(index).or_default();
                    *slot = slot.saturating_sub(count);
                }
                out.retain(|_, c| *c > 0);
                out
            };
        Some(ExpSnapshot {
            scale,
            count: point.count - previous.count,
            sum: point.sum - previous.sum,
            zero: point.zero.saturating_sub(previous.zero),
            positive: subtract(
                &point.positive,
                point.scale,
                &previous.positive,
                previous.scale,
            ),
            negative: subtract(
                &point.negative,
                point.scale,
                &previous.negative,
                previous.scale,
            ),
        })
    }

    /// Delta of a cumulative histogram's count and sum.
    pub fn histogram_delta(
        &mut self,
        key: DeltaKey,
        start: u64,
        count: u64,
        sum: f64,
        policy: &DeltaPolicy,
    ) -> Option<(u64, f64)> {
        match self.update(key, start, sum, count, false)? {
            Some((sum, count)) => Some((count, sum)),
            None => Self::first(start, policy).then_some((count, sum)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(scale: i32, positive: &[(i32, u64)]) -> ExpSnapshot {
        let positive: SparseBuckets = positive.iter().copied().collect();
        ExpSnapshot {
            scale,
            count: positive.values().sum(),
            sum: 0.0,
            zero: 0,
            positive,
            negative: SparseBuckets::new(),
        }
    }

    #[test]
    fn exponential_deltas_subtract_buckets_across_downscaling() {
        let policy = DeltaPolicy::default();
        let mut cache = DeltaCache::default();
        let prefix = SeriesPrefix::new("ns", "g", "s", KeyValuesView::default(), None);
        let key = || {
            DeltaKey::new(
                &prefix,
                "h",
                SeriesKind::ExponentialHistogram,
                KeyValuesView::default(),
            )
        };
        let first = cache
            .exponential_delta(key(), 10, snapshot(2, &[(0, 1), (1, 2), (5, 1)]), &policy)
            .unwrap();
        assert_eq!(
            first.count, 4,
            "a series that began after the sidecar keeps its first point"
        );
        // The source downscaled by one: (0,1) and (1,2) merge into index 0, (5,1) into 2.
        let second = cache
            .exponential_delta(key(), 10, snapshot(1, &[(0, 5), (2, 1), (3, 4)]), &policy)
            .unwrap();
        assert_eq!(second.scale, 1);
        assert_eq!(
            second.positive,
            [(0, 2), (3, 4)].into_iter().collect::<SparseBuckets>()
        );
        assert_eq!(second.count, 10 - 4);
    }
}

#[cfg(test)]
mod churn_tests {
    use super::*;

    #[test]
    fn memory_stays_flat_under_series_churn() {
        let policy = DeltaPolicy::default();
        let prefix = SeriesPrefix::default();
        let mut cache = DeltaCache::default();
        let mut peak = 0;
        // Every minute 1,000 new series replace the previous ones, for two hours.
        for minute in 0..120i64 {
            cache.advance(minute * 60_000);
            for i in 0..1000 {
                let key = DeltaKey::new(
                    &prefix,
                    &format!("m{minute}-{i}"),
                    SeriesKind::Sum,
                    KeyValuesView::default(),
                );
                cache.number_delta(key, 1, 1.0, &policy);
            }
            peak = peak.max(cache.len());
        }
        // Idle series expire after five minutes, swept once a minute: at most ~6 minutes' worth.
        assert!(peak <= 6 * 1000, "peak {peak}");
    }

    #[test]
    fn the_cache_is_capped() {
        let policy = DeltaPolicy::default();
        let prefix = SeriesPrefix::default();
        let mut cache = DeltaCache::default();
        cache.advance(0);
        for i in 0..(MAX_SERIES + 100) {
            let key = DeltaKey::new(
                &prefix,
                &format!("m{i}"),
                SeriesKind::Sum,
                KeyValuesView::default(),
            );
            cache.number_delta(key, 1, 1.0, &policy);
        }
        assert_eq!(cache.len(), MAX_SERIES);
    }

    #[test]
    fn series_keys_tell_types_and_boundaries_apart_but_not_attribute_order() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
        let kv = |k: &str, v: Av| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let prefix = SeriesPrefix::new("ns", "g", "s", KeyValuesView::default(), None);
        let key = |attributes: &[KeyValue]| {
            DeltaKey::new(&prefix, "m", SeriesKind::Sum, attributes.into())
        };
        let a = kv("a", Av::StringValue("1".into()));
        let b = kv("b", Av::IntValue(1));
        assert_eq!(key(&[a.clone(), b.clone()]), key(&[b, a.clone()]));
        assert_ne!(
            key(std::slice::from_ref(&a)),
            key(&[kv("a", Av::IntValue(1))])
        );
        assert_ne!(
            key(&[kv("a", Av::StringValue("bc".into()))]),
            key(&[kv("ab", Av::StringValue("c".into()))])
        );
        let destination = |ns: &str, group: &str| {
            SeriesPrefix::new(ns, group, "s", KeyValuesView::default(), None)
        };
        assert_ne!(
            DeltaKey::new(
                &destination("n", "sg"),
                "m",
                SeriesKind::Sum,
                KeyValuesView::default()
            ),
            DeltaKey::new(
                &destination("ns", "g"),
                "m",
                SeriesKind::Sum,
                KeyValuesView::default()
            )
        );
        // Nested values: an array is not the list of its values' texts, and one written in a
        // request's bytes keys as its decoded form does.
        let array = |values: Vec<Av>| {
            Av::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: values
                    .into_iter()
                    .map(|v| AnyValue { value: Some(v) })
                    .collect(),
            })
        };
        let nested = [
            kv("a", array(vec![Av::IntValue(1), Av::DoubleValue(1.0)])),
            kv("b", Av::BytesValue(b"1".to_vec())),
            KeyValue {
                key: "c".into(),
                value: None,
                ..Default::default()
            },
        ];
        assert_ne!(
            key(&nested[..1]),
            key(&[kv("a", array(vec![Av::IntValue(1), Av::IntValue(1)]))])
        );
        assert_ne!(key(&nested[1..2]), key(std::slice::from_ref(&a)));
        let resource = opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: nested.to_vec(),
            ..Default::default()
        };
        let encoded = prost::Message::encode_to_vec(&resource);
        assert_eq!(
            DeltaKey::new(
                &prefix,
                "m",
                SeriesKind::Sum,
                KeyValuesView::Encoded {
                    message: &encoded,
                    field: 1
                }
            ),
            key(&nested)
        );
    }

    /// Two meters, two resources, a sum and a histogram of one name: four series.
    #[test]
    fn scopes_resources_and_kinds_are_distinct_series() {
        use opentelemetry_proto::tonic::common::v1::{
            AnyValue, InstrumentationScope, KeyValue, any_value::Value as Av,
        };
        let scope = |name: &str| InstrumentationScope {
            name: name.into(),
            ..Default::default()
        };
        let resource = |id: &str| {
            vec![KeyValue {
                key: "service.instance.id".into(),
                value: Some(AnyValue {
                    value: Some(Av::StringValue(id.into())),
                }),
                ..Default::default()
            }]
        };
        let key = |resource: &[KeyValue], scope: &InstrumentationScope, kind| {
            DeltaKey::new(
                &SeriesPrefix::new("ns", "g", "s", resource.into(), Some(scope.into())),
                "requests",
                kind,
                KeyValuesView::default(),
            )
        };
        let (a, b) = (scope("scope-a"), scope("scope-b"));
        let (r1, r2) = (resource("1"), resource("2"));
        let keys = [
            key(&r1, &a, SeriesKind::Sum),
            key(&r1, &b, SeriesKind::Sum),
            key(&r2, &a, SeriesKind::Sum),
            key(&r1, &a, SeriesKind::Histogram),
        ];
        for (i, left) in keys.iter().enumerate() {
            for right in &keys[i + 1..] {
                assert_ne!(left, right);
            }
        }
        assert_eq!(keys[0], key(&r1, &a, SeriesKind::Sum));
        let mut cache = DeltaCache::default();
        let policy = DeltaPolicy::default();
        for (n, (first, second)) in [(1.0, 10.0), (2.0, 20.0), (3.0, 30.0)]
            .into_iter()
            .enumerate()
        {
            let one = cache.number_delta(keys[0].clone(), 5, first, &policy);
            let two = cache.number_delta(keys[1].clone(), 7, second, &policy);
            if n > 0 {
                assert_eq!((one, two), (Some(1.0), Some(10.0)));
            }
        }
    }
}
