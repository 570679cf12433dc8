//! Merging points that fall together (`aggregation_type`), as the collector's aggregateutil
//! does: by labels and timestamps, and for histograms their bounds.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    HistogramDataPoint, Metric, NumberDataPoint, metric::Data, number_data_point::Value as Nv,
};
/// How points that fall together are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Sum,
    Mean,
    Min,
    Max,
    Count,
    Median,
}

impl Aggregation {
    pub(super) fn parse(text: &str) -> Result<Option<Self>, String> {
        Ok(Some(match text {
            "" => return Ok(None),
            "sum" => Aggregation::Sum,
            "mean" => Aggregation::Mean,
            "min" => Aggregation::Min,
            "max" => Aggregation::Max,
            "count" => Aggregation::Count,
            "median" => Aggregation::Median,
            other => {
                return Err(format!(
                    "{other:?} must be in [\"sum\" \"mean\" \"min\" \"max\" \"count\" \"median\"]"
                ));
            }
        }))
    }
}

/// The group a point falls in: its attributes (sorted) and timestamps, and for histograms
/// their bounds.
pub(super) fn group_key(
    attributes: &[KeyValue],
    time: u64,
    start: Option<u64>,
    extra: &[u8],
) -> Vec<u8> {
    let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut key = format!("{sorted:?}").into_bytes();
    key.extend_from_slice(&time.to_le_bytes());
    if let Some(start) = start {
        key.extend_from_slice(&start.to_le_bytes());
    }
    key.extend_from_slice(extra);
    key
}

/// Merges points with the same labels and timestamps (§ aggregateutil in the collector).
pub(super) fn aggregate(metric: &mut Metric, how: Option<Aggregation>) {
    match metric.data.as_mut() {
        Some(Data::Gauge(g)) => {
            g.data_points = merge_numbers(std::mem::take(&mut g.data_points), how, false)
        }
        Some(Data::Sum(s)) => {
            let delta = s.aggregation_temporality == 1;
            s.data_points = merge_numbers(std::mem::take(&mut s.data_points), how, delta);
        }
        Some(Data::Histogram(h)) => {
            let delta = h.aggregation_temporality == 1;
            h.data_points = merge_histograms(std::mem::take(&mut h.data_points), delta);
        }
        // Summaries have no merge: the collector deletes their points.
        Some(Data::Summary(s)) => s.data_points.clear(),
        Some(Data::ExponentialHistogram(_)) | None => {}
    }
}

pub(super) fn merge_numbers(
    points: Vec<NumberDataPoint>,
    how: Option<Aggregation>,
    delta: bool,
) -> Vec<NumberDataPoint> {
    let mut groups: Vec<(Vec<u8>, Vec<NumberDataPoint>)> = Vec::new();
    for p in points {
        let key = group_key(
            &p.attributes,
            p.time_unix_nano,
            delta.then_some(p.start_time_unix_nano),
            &[],
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    groups
        .into_iter()
        .map(|(_, members)| {
            let mut first = members[0].clone();
            if members.len() == 1 {
                return first;
            }
            let as_int = matches!(first.value, Some(Nv::AsInt(_)));
            let ints: Vec<i64> = members
                .iter()
                .map(|p| match p.value {
                    Some(Nv::AsInt(i)) => i,
                    Some(Nv::AsDouble(d)) => d as i64,
                    None => 0,
                })
                .collect();
            let raw_ints: Vec<i64> = members
                .iter()
                .map(|p| match p.value {
                    Some(Nv::AsInt(i)) => i,
                    _ => 0,
                })
                .collect();
            let doubles: Vec<f64> = members
                .iter()
                .map(|p| match p.value {
                    Some(Nv::AsInt(i)) => i as f64,
                    Some(Nv::AsDouble(d)) => d,
                    None => 0.0,
                })
                .collect();
            first.start_time_unix_nano = members
                .iter()
                .map(|p| p.start_time_unix_nano)
                .min()
                .unwrap_or(0);
            let n = members.len();
            first.value = match (how, as_int) {
                (None, _) => first.value,
                (Some(Aggregation::Count), true) => Some(Nv::AsInt(n as i64)),
                (Some(Aggregation::Count), false) => Some(Nv::AsDouble(n as f64)),
                (Some(Aggregation::Sum), true) => Some(Nv::AsInt(raw_ints.iter().sum())),
                (Some(Aggregation::Sum), false) => Some(Nv::AsDouble(doubles.iter().sum())),
                (Some(Aggregation::Mean), true) => {
                    Some(Nv::AsInt(raw_ints.iter().sum::<i64>() / n as i64))
                }
                (Some(Aggregation::Mean), false) => {
                    Some(Nv::AsDouble(doubles.iter().sum::<f64>() / n as f64))
                }
                (Some(Aggregation::Min), true) => Some(Nv::AsInt(*ints.iter().min().unwrap_or(&0))),
                (Some(Aggregation::Min), false) => Some(Nv::AsDouble(
                    doubles.iter().copied().fold(f64::INFINITY, f64::min),
                )),
                (Some(Aggregation::Max), true) => Some(Nv::AsInt(*ints.iter().max().unwrap_or(&0))),
                (Some(Aggregation::Max), false) => Some(Nv::AsDouble(
                    doubles.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                )),
                (Some(Aggregation::Median), true) => {
                    let mut v = ints.clone();
                    v.sort();
                    Some(Nv::AsInt(if n % 2 == 1 {
                        v[n / 2]
                    } else {
                        (v[n / 2 - 1] + v[n / 2]) / 2
                    }))
                }
                (Some(Aggregation::Median), false) => {
                    let mut v = doubles.clone();
                    v.sort_by(f64::total_cmp);
                    Some(Nv::AsDouble(if n % 2 == 1 {
                        v[n / 2]
                    } else {
                        (v[n / 2 - 1] + v[n / 2]) / 2.0
                    }))
                }
            };
            first
        })
        .collect()
}

pub(super) fn merge_histograms(
    points: Vec<HistogramDataPoint>,
    delta: bool,
) -> Vec<HistogramDataPoint> {
    let mut groups: Vec<(Vec<u8>, HistogramDataPoint)> = Vec::new();
    for p in points.into_iter().filter(|p| p.count > 0) {
        let extra: Vec<u8> = p
            .explicit_bounds
            .iter()
            .flat_map(|b| b.to_le_bytes())
            .chain([u8::from(p.min.is_some()), u8::from(p.max.is_some())])
            .chain(p.flags.to_le_bytes())
            .collect();
        let key = group_key(
            &p.attributes,
            p.time_unix_nano,
            delta.then_some(p.start_time_unix_nano),
            &extra,
        );
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, into)) => {
                into.count += p.count;
                into.sum = Some(into.sum.unwrap_or(0.0) + p.sum.unwrap_or(0.0));
                for (a, b) in into.bucket_counts.iter_mut().zip(&p.bucket_counts) {
                    *a += b;
                }
                into.min = match (into.min, p.min) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                into.max = match (into.max, p.max) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                into.exemplars.extend(p.exemplars);
                into.start_time_unix_nano = into.start_time_unix_nano.min(p.start_time_unix_nano);
            }
            None => groups.push((key, p)),
        }
    }
    groups.into_iter().map(|(_, p)| p).collect()
}
