//! OTLP data points → EMF values, one kind at a time: gauges, sums (cumulative ones through the
//! delta cache, up-down counters as levels), histograms, exponential histograms and summaries.

use super::*;

/// One data point ready for grouping.
pub(super) struct PointOut<'a> {
    pub(super) attributes: KeyValuesView<'a>,
    /// Set for `detailed_metrics` summary parts (`<name>_sum`, `<name>_count`, quantiles).
    pub(super) name: Option<String>,
    pub(super) extra_label: Option<(&'static str, String)>,
    pub(super) time_unix_nano: u64,
    pub(super) value: EmfValue,
    /// Keeps gauges and sums apart, as the collector's grouping key does.
    pub(super) type_class: u8,
    pub(super) split: usize,
}

impl<'a> PointOut<'a> {
    pub(super) fn new(
        attributes: KeyValuesView<'a>,
        time_unix_nano: u64,
        value: EmfValue,
        type_class: u8,
    ) -> Self {
        PointOut {
            attributes,
            name: None,
            extra_label: None,
            time_unix_nano,
            value,
            type_class,
            split: 0,
        }
    }
}

pub(super) fn number_value(point: &NumberPointView) -> Option<f64> {
    match point.value? {
        number_data_point::Value::AsInt(i) => Some(i as f64),
        number_data_point::Value::AsDouble(d) => Some(d),
    }
}

pub(super) fn skip(flags: u32, values: &[f64]) -> bool {
    flags & FLAG_NO_RECORDED_VALUE != 0 || values.iter().any(|v| !v.is_finite())
}

pub(super) fn points<'a>(
    metric: &'a MetricView<'a>,
    settings: &EmfSettings,
    deltas: &mut DeltaCache,
    series: &SeriesPrefix,
    stats: &mut TranslateStats,
) -> Vec<PointOut<'a>> {
    let mut out = Vec::new();
    let delta_key = |kind: SeriesKind, attributes: KeyValuesView<'_>| {
        DeltaKey::new(series, metric.name, kind, attributes)
    };
    let cumulative = |temporality: i32| temporality == AggregationTemporality::Cumulative as i32;
    match metric.data.as_ref() {
        Some(MetricDataView::Gauge(points)) => {
            for p in points {
                match number_value(p).filter(|v| !skip(p.flags, &[*v])) {
                    Some(v) => out.push(PointOut::new(
                        p.attributes,
                        p.time_unix_nano,
                        EmfValue::Number(v),
                        0,
                    )),
                    None => stats.skipped_points += 1,
                }
            }
        }
        Some(MetricDataView::Sum {
            points,
            temporality,
            is_monotonic,
        }) => {
            // A non-monotonic cumulative sum (an up-down counter) is a level: its value is
            // published as it is. Its deltas would be changes nobody can read a level back from.
            let cumulative = *is_monotonic && cumulative(*temporality);
            for p in points {
                let Some(v) = number_value(p).filter(|v| !skip(p.flags, &[*v])) else {
                    stats.skipped_points += 1;
                    continue;
                };
                let value = if cumulative {
                    match deltas.number_delta(
                        delta_key(SeriesKind::Sum, p.attributes),
                        p.start_time_unix_nano,
                        v,
                        &settings.delta,
                    ) {
                        Some(d) => d,
                        None => {
                            stats.first_cumulative_points += 1;
                            continue;
                        }
                    }
                } else {
                    v
                };
                out.push(PointOut::new(
                    p.attributes,
                    p.time_unix_nano,
                    EmfValue::Number(value),
                    1,
                ));
            }
        }
        Some(MetricDataView::Histogram {
            points,
            temporality,
        }) => {
            let cumulative = cumulative(*temporality);
            for p in points {
                let sum = p.sum.unwrap_or(0.0);
                if skip(p.flags, &[sum, p.min.unwrap_or(0.0), p.max.unwrap_or(0.0)]) {
                    stats.skipped_points += 1;
                    continue;
                }
                let (count, sum) = if cumulative {
                    match deltas.histogram_delta(
                        delta_key(SeriesKind::Histogram, p.attributes),
                        p.start_time_unix_nano,
                        p.count,
                        sum,
                        &settings.delta,
                    ) {
                        Some(d) => d,
                        None => {
                            stats.first_cumulative_points += 1;
                            continue;
                        }
                    }
                } else {
                    (p.count, sum)
                };
                out.push(PointOut::new(
                    p.attributes,
                    p.time_unix_nano,
                    histogram_value(p, count, sum),
                    2,
                ));
            }
        }
        Some(MetricDataView::ExponentialHistogram {
            points,
            temporality,
        }) => {
            let cumulative = cumulative(*temporality);
            for view in points {
                let p = view.point.as_ref();
                let sum = p.sum.unwrap_or(0.0);
                if skip(p.flags, &[sum, p.min.unwrap_or(0.0), p.max.unwrap_or(0.0)]) {
                    stats.skipped_points += 1;
                    continue;
                }
                let values = if cumulative {
                    let Some(delta) = deltas.exponential_delta(
                        delta_key(SeriesKind::ExponentialHistogram, view.attributes),
                        p.start_time_unix_nano,
                        snapshot_of(p),
                        &settings.delta,
                    ) else {
                        stats.first_cumulative_points += 1;
                        continue;
                    };
                    exponential_values(&with_snapshot(p, delta))
                } else {
                    exponential_values(p)
                };
                for (split, value) in values.into_iter().enumerate() {
                    out.push(PointOut {
                        attributes: view.attributes,
                        name: None,
                        extra_label: None,
                        time_unix_nano: p.time_unix_nano,
                        value,
                        type_class: 3,
                        split,
                    });
                }
            }
        }
        Some(MetricDataView::Summary(points)) => {
            for p in points {
                if skip(p.flags, &[p.sum]) {
                    stats.skipped_points += 1;
                    continue;
                }
                if !settings.detailed_metrics {
                    out.push(PointOut::new(
                        p.attributes,
                        p.time_unix_nano,
                        summary_value(p),
                        4,
                    ));
                    continue;
                }
                // detailed_metrics: the sum, the count, and one point per quantile, each in its
                // own event as in the collector (its group key holds the part's index).
                let part = |split: usize,
                            name: Option<String>,
                            label: Option<(&'static str, String)>,
                            value: f64| PointOut {
                    attributes: p.attributes,
                    name,
                    extra_label: label,
                    time_unix_nano: p.time_unix_nano,
                    value: EmfValue::Number(value),
                    type_class: 4,
                    split,
                };
                out.push(part(0, Some(format!("{}_sum", metric.name)), None, p.sum));
                out.push(part(
                    1,
                    Some(format!("{}_count", metric.name)),
                    None,
                    p.count as f64,
                ));
                for (i, (quantile, value)) in p.quantiles.iter().enumerate() {
                    out.push(part(
                        2 + i,
                        None,
                        Some(("quantile", quantile.to_string())),
                        *value,
                    ));
                }
            }
        }
        None => {}
    }
    out
}

pub(super) fn sparse(
    buckets: Option<
        &opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets,
    >,
) -> SparseBuckets {
    buckets
        .map(|b| {
            b.bucket_counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (b.offset + i as i32, *c))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn dense(
    buckets: &SparseBuckets,
) -> Option<opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets> {
    let (&first, _) = buckets.first_key_value()?;
    let (&last, _) = buckets.last_key_value()?;
    let mut bucket_counts = vec![0; (last - first + 1) as usize];
    for (&i, &c) in buckets {
        bucket_counts[(i - first) as usize] = c;
    }
    Some(
        opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets {
            offset: first,
            bucket_counts,
        },
    )
}

pub(super) fn snapshot_of(p: &ExponentialHistogramDataPoint) -> ExpSnapshot {
    ExpSnapshot {
        scale: p.scale,
        count: p.count,
        sum: p.sum.unwrap_or(0.0),
        zero: p.zero_count,
        positive: sparse(p.positive.as_ref()),
        negative: sparse(p.negative.as_ref()),
    }
}

pub(super) fn with_snapshot(
    p: &ExponentialHistogramDataPoint,
    delta: ExpSnapshot,
) -> ExponentialHistogramDataPoint {
    ExponentialHistogramDataPoint {
        scale: delta.scale,
        count: delta.count,
        sum: Some(delta.sum),
        zero_count: delta.zero,
        positive: dense(&delta.positive),
        negative: dense(&delta.negative),
        ..p.clone()
    }
}

pub(super) fn histogram_value(p: &HistogramPointView, count: u64, sum: f64) -> EmfValue {
    EmfValue::Statistics {
        max: p.max.unwrap_or(0.0),
        min: p.min.unwrap_or(0.0),
        count,
        sum,
    }
}

pub(super) fn summary_value(p: &SummaryPointView) -> EmfValue {
    EmfValue::Statistics {
        max: p.quantiles.last().map(|q| q.1).unwrap_or(0.0),
        min: p.quantiles.first().map(|q| q.1).unwrap_or(0.0),
        count: p.count,
        sum: p.sum,
    }
}

/// Values/Counts from the buckets' midpoints: positive buckets high to low, the zero bucket,
/// then negative; at most [`MAX_VALUES_PER_POINT`] per point, only the first carrying the sum.
pub fn exponential_values(p: &ExponentialHistogramDataPoint) -> Vec<EmfValue> {
    let base = 2f64.powf(2f64.powi(-p.scale));
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    if let Some(positive) = &p.positive {
        for (i, &count) in positive.bucket_counts.iter().enumerate().rev() {
            if count > 0 {
                let index = positive.offset + i as i32;
                let (low, high) = (base.powi(index), base.powi(index + 1));
                pairs.push(((low + high) / 2.0, count as f64));
            }
        }
    }
    if p.zero_count > 0 {
        pairs.push((0.0, p.zero_count as f64));
    }
    if let Some(negative) = &p.negative {
        for (i, &count) in negative.bucket_counts.iter().enumerate() {
            if count > 0 {
                let index = negative.offset + i as i32;
                let (low, high) = (base.powi(index), base.powi(index + 1));
                pairs.push((-(low + high) / 2.0, count as f64));
            }
        }
    }
    if pairs.is_empty() {
        return vec![EmfValue::Distribution {
            values: vec![],
            counts: vec![],
            max: p.max.unwrap_or(0.0),
            min: p.min.unwrap_or(0.0),
            count: p.count,
            sum: p.sum.unwrap_or(0.0),
        }];
    }
    let chunks = pairs.len().div_ceil(MAX_VALUES_PER_POINT);
    pairs
        .chunks(MAX_VALUES_PER_POINT)
        .enumerate()
        .map(|(i, chunk)| {
            let count: f64 = chunk.iter().map(|(_, c)| c).sum();
            let values: Vec<f64> = chunk.iter().map(|(v, _)| *v).collect();
            let chunk_min = values.iter().copied().fold(f64::INFINITY, f64::min);
            // The point's exact max and min belong to the first and last chunk; the others are
            // bounded by their own buckets.
            EmfValue::Distribution {
                max: if i == 0 {
                    p.max.unwrap_or(values[0])
                } else {
                    values[0]
                },
                min: if i + 1 == chunks {
                    p.min.unwrap_or(chunk_min)
                } else {
                    chunk_min
                },
                count: count.round() as u64,
                sum: if i == 0 { p.sum.unwrap_or(0.0) } else { 0.0 },
                counts: chunk.iter().map(|(_, c)| *c).collect(),
                values,
            }
        })
        .collect()
}
