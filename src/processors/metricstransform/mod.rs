//! The `metricstransform` processor (also `metrics_transform`): renames metrics, copies them,
//! combines several into one, and edits their labels and values; aggregating over labels is how
//! users cut the dimensions CloudWatch bills. Transforms run in order over each scope; regular
//! expressions are unanchored searches, and `new_name` expands `$1` / `${name}` captures.

mod aggregation;
mod model;
mod operations;
mod section;

pub use aggregation::Aggregation;
pub use section::MetricsTransformSection;

use crate::pipeline::Payload;
use model::Transform;

/// A validated `metricstransform` processor.
#[derive(Debug, Clone)]
pub struct MetricsTransformConfig {
    /// As written, for `validate --print`.
    written: Box<MetricsTransformSection>,
    transforms: Vec<Transform>,
}

impl crate::config::ComponentSection for MetricsTransformSection {
    type Settings = MetricsTransformConfig;

    fn validate(self) -> Result<MetricsTransformConfig, Vec<crate::config::InvalidSetting>> {
        self.settings().map_err(|problem| vec![problem.into()])
    }
}

impl MetricsTransformSection {
    fn settings(&self) -> Result<MetricsTransformConfig, (String, String)> {
        Ok(MetricsTransformConfig {
            written: Box::new(self.clone()),
            transforms: self.transforms()?,
        })
    }
}

impl MetricsTransformConfig {
    /// Runs every transform, in order, over each scope; empty scopes and resources go.
    pub fn process(&self, payload: &mut Payload) {
        payload.make_owned();
        let Payload::Metrics(list) = payload else {
            return;
        };
        for rm in list.iter_mut() {
            for scope in &mut rm.scope_metrics {
                for transform in &self.transforms {
                    transform.apply(scope);
                }
            }
            rm.scope_metrics.retain(|s| !s.metrics.is_empty());
        }
        list.retain(|rm| !rm.scope_metrics.is_empty());
    }
}

impl serde::Serialize for MetricsTransformConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::operations::label;
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
    use opentelemetry_proto::tonic::metrics::v1::{Gauge, Histogram, Summary, SummaryDataPoint};
    use opentelemetry_proto::tonic::metrics::v1::{
        HistogramDataPoint, Metric, NumberDataPoint, ScopeMetrics, metric::Data,
        number_data_point::Value as Nv,
    };
    use std::collections::BTreeSet;

    fn s(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Av::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn point(attributes: Vec<KeyValue>, value: i64, time: u64) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            value: Some(Nv::AsInt(value)),
            time_unix_nano: time,
            ..Default::default()
        }
    }

    fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
        Metric {
            name: name.into(),
            unit: "1".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: points,
            })),
            ..Default::default()
        }
    }

    fn run(yaml: &str, metrics: Vec<Metric>) -> Vec<Metric> {
        let config = serde_yaml_ng::from_str::<MetricsTransformSection>(yaml)
            .unwrap()
            .settings()
            .unwrap();
        let mut payload = Payload::Metrics(vec![
            opentelemetry_proto::tonic::metrics::v1::ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            },
        ]);
        config.process(&mut payload);
        let Payload::Metrics(list) = payload else {
            unreachable!()
        };
        list.into_iter()
            .flat_map(|r| r.scope_metrics)
            .flat_map(|s| s.metrics)
            .collect()
    }

    fn numbers(metric: &Metric) -> BTreeSet<(String, i64)> {
        let Some(Data::Gauge(g)) = &metric.data else {
            panic!()
        };
        g.data_points
            .iter()
            .map(|p| {
                let mut attributes: Vec<String> = p
                    .attributes
                    .iter()
                    .map(|kv| {
                        format!(
                            "{}={}",
                            kv.key,
                            label(std::slice::from_ref(kv), &kv.key).unwrap_or("")
                        )
                    })
                    .collect();
                attributes.sort();
                let Some(Nv::AsInt(v)) = p.value else {
                    panic!()
                };
                (attributes.join(","), v)
            })
            .collect()
    }

    #[test]
    fn renames_copies_and_labels() {
        let out = run(
            r#"transforms: [{include: '^sys\.(.*)$', match_type: regexp, action: update, new_name: 'x.${1}'}]"#,
            vec![gauge("sys.cpu", vec![])],
        );
        assert_eq!(out[0].name, "x.cpu");
        let out = run(
            "transforms: [{metric_name: a, action: update, new_name: MemoryUtilized}]",
            vec![gauge("a", vec![point(vec![], 1, 1)])],
        );
        assert_eq!(
            out[0].name, "MemoryUtilized",
            "ADOT's configs write metric_name"
        );
        let out = run(
            "transforms: [{include: a, action: insert, new_name: a2}]",
            vec![gauge("a", vec![point(vec![], 1, 1)])],
        );
        assert_eq!(
            out.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "a2"]
        );
        assert_eq!(out[0].data, out[1].data);
        // Not every point matches: no rename, update_label only on the matching point.
        let out = run(
            "transforms: [{include: a, action: update, new_name: b, experimental_match_labels: {k: v}, operations: [{action: update_label, label: k, new_label: kk}]}]",
            vec![gauge(
                "a",
                vec![
                    point(vec![s("k", "v")], 1, 1),
                    point(vec![s("k", "w")], 2, 1),
                ],
            )],
        );
        assert_eq!(out[0].name, "a");
        assert_eq!(
            numbers(&out[0]),
            [("k=w".to_string(), 2), ("kk=v".to_string(), 1)]
                .into_iter()
                .collect()
        );
        let out = run(
            "transforms: [{include: a, action: update, operations: [{action: add_label, new_label: env, new_value: prod}]}]",
            vec![gauge(
                "a",
                vec![point(vec![s("env", "dev")], 1, 1), point(vec![], 2, 1)],
            )],
        );
        assert_eq!(
            numbers(&out[0]),
            [("env=dev".to_string(), 1), ("env=prod".to_string(), 2)]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn aggregation_follows_the_collector() {
        let three = |t: [u64; 3]| {
            vec![gauge(
                "a",
                vec![
                    point(vec![s("s", "x"), s("c", "1")], 1, t[0]),
                    point(vec![s("s", "x"), s("c", "2")], 2, t[1]),
                    point(vec![s("s", "y")], 5, t[2]),
                ],
            )]
        };
        let sum = "transforms: [{include: a, action: update, operations: [{action: aggregate_labels, label_set: [s], aggregation_type: sum}]}]";
        assert_eq!(
            numbers(&run(sum, three([1, 1, 1]))[0]),
            [("s=x".to_string(), 3), ("s=y".to_string(), 5)]
                .into_iter()
                .collect()
        );
        assert_eq!(
            numbers(&run(sum, three([1, 2, 1]))[0]).len(),
            3,
            "different timestamps never merge"
        );
        let count = "transforms: [{include: a, action: update, operations: [{action: aggregate_labels, label_set: [], aggregation_type: count}]}]";
        assert_eq!(
            numbers(&run(count, vec![gauge("a", vec![point(vec![], 42, 1)])])[0]),
            [(String::new(), 42)].into_iter().collect(),
            "a single point keeps its value"
        );
        let mean = "transforms: [{include: a, action: update, operations: [{action: aggregate_labels, label_set: [], aggregation_type: mean}]}]";
        assert_eq!(
            numbers(
                &run(
                    mean,
                    vec![gauge("a", vec![point(vec![], 1, 1), point(vec![], 2, 1)])]
                )[0]
            ),
            [(String::new(), 1)].into_iter().collect(),
            "integer mean truncates"
        );
        let values = "transforms: [{include: a, action: update, operations: [{action: aggregate_label_values, label: route, aggregated_values: ['/u/1', '/u/2'], new_value: '/u/*', aggregation_type: sum}]}]";
        let out = run(
            values,
            vec![gauge(
                "a",
                vec![
                    point(vec![s("route", "/u/1")], 1, 1),
                    point(vec![s("route", "/u/2")], 2, 1),
                    point(vec![s("route", "/h")], 7, 1),
                ],
            )],
        );
        assert_eq!(
            numbers(&out[0]),
            [("route=/h".to_string(), 7), ("route=/u/*".to_string(), 3)]
                .into_iter()
                .collect()
        );
        let summary = Metric {
            name: "a".into(),
            data: Some(Data::Summary(Summary {
                data_points: vec![SummaryDataPoint::default()],
            })),
            ..Default::default()
        };
        assert!(
            run(sum, vec![summary]).is_empty(),
            "summaries have no merge: the metric goes"
        );
    }

    #[test]
    fn combine_scale_toggle_and_delete() {
        let mut other = gauge("b", vec![point(vec![], 1, 1)]);
        other.unit = "ms".into();
        let out = run(
            "transforms: [{include: '^(a|b)$', match_type: regexp, action: combine, new_name: c, aggregation_type: sum}]",
            vec![gauge("a", vec![point(vec![], 1, 1)]), other],
        );
        assert_eq!(
            out.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"],
            "different units: nothing combined"
        );
        let out = run(
            "transforms: [{include: '^(?P<kind>a|b)$', match_type: regexp, action: combine, new_name: c, aggregation_type: sum}]",
            vec![
                gauge("a", vec![point(vec![], 1, 1)]),
                gauge("b", vec![point(vec![], 2, 1)]),
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            numbers(&out[0]),
            [("kind=a".to_string(), 1), ("kind=b".to_string(), 2)]
                .into_iter()
                .collect()
        );
        let histogram = Metric {
            name: "h".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    count: 2,
                    explicit_bounds: vec![1.0, 2.0],
                    bucket_counts: vec![1, 1, 0],
                    sum: Some(3.0),
                    ..Default::default()
                }],
                aggregation_temporality: 1,
            })),
            ..Default::default()
        };
        let out = run(
            "transforms: [{include: h, action: update, operations: [{action: experimental_scale_value, experimental_scale: 1000}]}]",
            vec![histogram],
        );
        let Some(Data::Histogram(h)) = &out[0].data else {
            panic!()
        };
        assert_eq!(
            (
                h.data_points[0].explicit_bounds.clone(),
                h.data_points[0].bucket_counts.clone(),
                h.data_points[0].sum
            ),
            (vec![1000.0, 2000.0], vec![1, 1, 0], Some(3000.0))
        );
        let out = run(
            "transforms: [{include: a, action: update, operations: [{action: toggle_scalar_data_type}]}]",
            vec![gauge("a", vec![point(vec![], 3, 1)])],
        );
        let Some(Data::Gauge(g)) = &out[0].data else {
            panic!()
        };
        assert_eq!(g.data_points[0].value, Some(Nv::AsDouble(3.0)));
        let out = run(
            "transforms: [{include: a, action: update, operations: [{action: delete_label_value, label: k, label_value: x}]}]",
            vec![gauge("a", vec![point(vec![s("k", "x")], 1, 1)])],
        );
        assert!(out.is_empty(), "a metric left without points is removed");
    }

    #[test]
    fn bad_transforms_are_refused() {
        let cases = [
            ("transforms: [{action: update}]", "transforms[0]"),
            (
                "transforms: [{include: a, action: rename}]",
                "transforms[0].action",
            ),
            (
                "transforms: [{include: a, match_type: glob, action: update}]",
                "transforms[0].match_type",
            ),
            (
                "transforms: [{include: a, action: insert}]",
                "transforms[0]",
            ),
            (
                "transforms: [{include: a, action: combine, new_name: b}]",
                "transforms[0]",
            ),
            (
                "transforms: [{include: a, action: update, operations: [{action: add_label, new_label: x}]}]",
                "transforms[0].operations",
            ),
            (
                "transforms: [{include: a, action: update, operations: [{action: experimental_scale_value}]}]",
                "transforms[0].operations",
            ),
        ];
        for (yaml, path) in cases {
            let error = serde_yaml_ng::from_str::<MetricsTransformSection>(yaml)
                .unwrap()
                .settings()
                .unwrap_err();
            assert_eq!(error.0, path, "{yaml}: {}", error.1);
        }
    }
}
