//! The X-Ray segment document, with the field names of the X-Ray API
//! (`internal/aws/xray/tracesegment.go` in the collector). Empty values are left out, as the
//! collector's helpers turn "" into a missing field. A document borrows what it quotes from
//! the span and from its resource's context (`Cow`), and is encoded as soon as it is made.

use crate::pipeline::view::ValueView;
use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SegmentDocument<'a> {
    pub name: Cow<'a, str>,
    pub id: Cow<'a, str>,
    pub start_time: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<Cow<'a, str>>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_arn: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traced: Option<bool>,
    pub error: bool,
    pub fault: bool,
    pub throttle: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Cow<'a, ServiceData>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<SqlData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub annotations: Map<String, Value>,
    #[serde(skip_serializing_if = "SortedMap::is_empty")]
    pub metadata: Metadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<SpanLink>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HttpData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<HttpRequest<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpResponse>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HttpRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_forwarded_for: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct HttpResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_length: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AwsData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elastic_beanstalk: Option<Cow<'a, BeanstalkData>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs: Option<Cow<'a, EcsData>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec2: Option<Cow<'a, Ec2Data>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eks: Option<Cow<'a, EksData>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xray: Option<Cow<'a, XRayData>>,
    #[serde(skip_serializing_if = "is_empty_slice")]
    pub cloudwatch_logs: Cow<'a, [LogGroupData]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<Cow<'a, str>>,
    #[serde(rename = "region", skip_serializing_if = "Option::is_none")]
    pub remote_region: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_url: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub table_names: Vec<Cow<'a, str>>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BeanstalkData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_label: Option<String>,
    pub deployment_id: i64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EcsData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Ec2Data {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ami_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EksData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct XRayData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sdk_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sdk: Option<String>,
    pub auto_instrumentation: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LogGroupData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ServiceData {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SqlData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_string: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sanitized_query: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_type: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Cause {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    pub exceptions: Vec<ExceptionData>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ExceptionData {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stack: Vec<StackFrame>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StackFrame {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `null` when unknown, as X-Ray SDKs write a frame without a line.
    pub line: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SpanLink {
    pub trace_id: String,
    pub id: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

/// Metadata by namespace and key, sorted as the collector's maps write them; keys and values
/// borrowed from the span and its resource's context, where most of them come from.
pub type Metadata<'a> = SortedMap<Cow<'a, str>, SortedMap<Cow<'a, str>, MetadataValue<'a>>>;

/// A map as a vector of entries sorted by key, one per key (inserting a key again replaces its
/// value), written as a JSON object. A span's metadata has a handful of entries, mostly
/// inserted in key order: one allocation and a push each, where a `BTreeMap` allocates nodes
/// and frees them again for every span.
#[derive(Debug, Clone, PartialEq)]
pub struct SortedMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap(Vec::new())
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, key: K, value: V) {
        // Entries mostly come in key order: the end is checked before searching.
        match self.0.last() {
            Some((last, _)) if *last < key => self.0.push((key, value)),
            None => self.0.push((key, value)),
            Some(_) => match self.0.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(i) => self.0[i].1 = value,
                Err(i) => self.0.insert(i, (key, value)),
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, v)| v)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.0.retain_mut(|(k, v)| keep(k, v));
    }
}

impl<K: Ord, V> Extend<(K, V)> for SortedMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
        for (key, value) in entries {
            self.insert(key, value);
        }
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for SortedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = SortedMap::new();
        map.extend(entries);
        map
    }
}

impl<K: Ord, V, const N: usize> From<[(K, V); N]> for SortedMap<K, V> {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<K: Serialize, V: Serialize> Serialize for SortedMap<K, V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue<'a> {
    /// An attribute's value, written as plain JSON (`Value.AsRaw()`, see
    /// [`crate::pipeline::values::value_json`]) without making a copy of it first.
    Attribute(ValueView<'a>),
    Json(Value),
}

impl Serialize for MetadataValue<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = match self {
            MetadataValue::Json(value) => return value.serialize(serializer),
            MetadataValue::Attribute(value) => *value,
        };
        match value {
            ValueView::Str(s) => serializer.serialize_str(s),
            ValueView::Int(i) => serializer.serialize_i64(i),
            ValueView::Bool(b) => serializer.serialize_bool(b),
            // Integral doubles print as `3`, not `3.0`, and non-finite ones as null, as
            // `value_json` has them.
            ValueView::Double(d) if d.fract() == 0.0 && d.abs() < 1e15 => {
                serializer.serialize_i64(d as i64)
            }
            ValueView::Double(d) if d.is_finite() => serializer.serialize_f64(d),
            _ => crate::pipeline::values::value_json(value).serialize(serializer),
        }
    }
}

/// `Some(s)` unless `s` is empty: the collector never writes empty strings.
pub fn non_empty<S: AsRef<str>>(s: impl Into<S>) -> Option<S> {
    let s = s.into();
    (!s.as_ref().is_empty()).then_some(s)
}

fn is_empty_slice<T>(items: &[T]) -> bool {
    items.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Inserting in any order, keys again included, leaves what a `BTreeMap` would hold, and it
    /// is written as the same JSON object.
    #[test]
    fn a_sorted_map_holds_and_writes_what_a_btreemap_would() {
        let mut seed = 7u64;
        for round in 0..200 {
            let mut sorted = SortedMap::new();
            let mut reference = BTreeMap::new();
            for i in 0..(round % 17) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let key = format!("k{}", (seed >> 33) % 9);
                sorted.insert(key.clone(), i);
                reference.insert(key, i);
            }
            let entries: Vec<_> = sorted.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let expected: Vec<_> = reference.iter().map(|(k, v)| (k.clone(), *v)).collect();
            assert_eq!(entries, expected);
            assert_eq!(
                serde_json::to_string(&sorted).unwrap(),
                serde_json::to_string(&reference).unwrap()
            );
        }
    }
}
