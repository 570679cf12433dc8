//! The `attributes` processor: attribute actions on span attributes, on the attributes of every
//! data point, and on log record attributes, for the items its `include` / `exclude` blocks let
//! through.

use super::attraction::{Action, ActionConfig, apply, validate_actions};
use super::matching::{IncludeExclude, MatchConfig, MatchSignal};
use crate::config::InvalidSetting;
use crate::pipeline::{Payload, Signal};
use serde::Deserialize;

/// `processors.attributes` as written.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttributesProcessorSection {
    #[serde(default)]
    actions: Vec<ActionConfig>,
    #[serde(default)]
    include: Option<MatchConfig>,
    #[serde(default)]
    exclude: Option<MatchConfig>,
}

/// A validated `attributes` processor. Its include/exclude blocks are checked for the signal
/// of each pipeline that uses it (each signal accepts its own match properties), when the
/// pipelines are checked.
#[derive(Debug, Clone)]
pub struct AttributesProcessorConfig {
    /// As written, for `validate --print`.
    written: Box<AttributesProcessorSection>,
    actions: Vec<Action>,
    include: Option<MatchConfig>,
    exclude: Option<MatchConfig>,
}

impl crate::config::ComponentSection for AttributesProcessorSection {
    type Settings = AttributesProcessorConfig;

    fn validate(self) -> Result<AttributesProcessorConfig, Vec<crate::config::InvalidSetting>> {
        self.settings().map_err(|problem| vec![problem])
    }
}

impl AttributesProcessorSection {
    fn settings(&self) -> Result<AttributesProcessorConfig, InvalidSetting> {
        Ok(AttributesProcessorConfig {
            written: Box::new(self.clone()),
            actions: validate_actions("actions", &self.actions)?,
            include: self.include.clone(),
            exclude: self.exclude.clone(),
        })
    }
}

impl AttributesProcessorConfig {
    /// The include/exclude blocks checked for `signal`, or the problem with them.
    pub fn for_signal(&self, signal: Signal) -> Result<IncludeExclude, (String, String)> {
        let signal = match signal {
            Signal::Traces => MatchSignal::Spans,
            Signal::Metrics => MatchSignal::Metrics,
            Signal::Logs => MatchSignal::Logs,
        };
        IncludeExclude::new(self.include.as_ref(), self.exclude.as_ref(), signal)
    }

    /// Runs the actions on the items the blocks let through.
    pub fn process(&self, matcher: &IncludeExclude, payload: &mut Payload) {
        payload.make_owned();
        match payload {
            Payload::Encoded(_) => unreachable!("made owned above"),
            Payload::Traces(list) => {
                for rs in list {
                    let resource = rs
                        .resource
                        .as_ref()
                        .map(|r| r.attributes.clone())
                        .unwrap_or_default();
                    for ss in &mut rs.scope_spans {
                        let scope = ss.scope.clone();
                        for span in &mut ss.spans {
                            if matcher.is_empty()
                                || matcher
                                    .keeps(|m| m.matches_span(span, &resource, scope.as_ref()))
                            {
                                apply(&self.actions, &mut span.attributes);
                            }
                        }
                    }
                }
            }
            Payload::Metrics(list) => {
                for rm in list {
                    for sm in &mut rm.scope_metrics {
                        for metric in &mut sm.metrics {
                            if matcher.keeps(|m| m.matches_metric(&metric.name)) {
                                crate::pipeline::for_each_point_attributes(metric, |attributes| {
                                    apply(&self.actions, attributes)
                                });
                            }
                        }
                    }
                }
            }
            Payload::Logs(list) => {
                for rl in list {
                    let resource = rl
                        .resource
                        .as_ref()
                        .map(|r| r.attributes.clone())
                        .unwrap_or_default();
                    for sl in &mut rl.scope_logs {
                        let scope = sl.scope.clone();
                        for record in &mut sl.log_records {
                            if matcher.keeps(|m| {
                                m.matches_log(&record.attributes, &resource, scope.as_ref())
                            }) {
                                apply(&self.actions, &mut record.attributes);
                            }
                        }
                    }
                }
            }
        }
    }
}

impl serde::Serialize for AttributesProcessorConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(key: &str, value: Av) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn processor(yaml: &str) -> AttributesProcessorConfig {
        serde_yaml_ng::from_str::<AttributesProcessorSection>(yaml)
            .unwrap()
            .settings()
            .unwrap()
    }

    /// Whether the span got `tagged`, under `yaml`'s include/exclude.
    fn tags_span(yaml: &str, resource: Vec<KeyValue>, span_attributes: Vec<KeyValue>) -> bool {
        let config = processor(yaml);
        let matcher = config.for_signal(Signal::Traces).unwrap();
        let mut payload = Payload::Traces(vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    name: "GET /a".into(),
                    attributes: span_attributes,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }]);
        config.process(&matcher, &mut payload);
        let Payload::Traces(list) = payload else {
            unreachable!()
        };
        list[0].scope_spans[0].spans[0]
            .attributes
            .iter()
            .any(|kv| kv.key == "tagged")
    }

    const TAG: &str = "actions: [{key: tagged, value: true, action: upsert}]\n";

    #[test]
    fn include_and_exclude_decide_which_spans_change() {
        assert!(
            !tags_span(
                &format!("{TAG}include: {{match_type: strict, services: [a]}}"),
                vec![],
                vec![]
            ),
            "no service.name is compared as <nil-service-name>"
        );
        assert!(tags_span(
            &format!("{TAG}include: {{match_type: strict, services: [a]}}"),
            vec![kv("service.name", Av::StringValue("a".into()))],
            vec![]
        ));
        assert!(
            !tags_span(
                &format!(
                    "{TAG}include: {{match_type: strict, attributes: [{{key: k, value: 5}}]}}"
                ),
                vec![],
                vec![kv("k", Av::StringValue("5".into()))]
            ),
            "strict compares types"
        );
        assert!(
            tags_span(
                &format!(
                    "{TAG}include: {{match_type: regexp, attributes: [{{key: k, value: '^5$'}}]}}"
                ),
                vec![],
                vec![kv("k", Av::IntValue(5))]
            ),
            "regexp reads ints as strings"
        );
        assert!(!tags_span(
            &format!("{TAG}exclude: {{match_type: regexp, span_names: ['^GET']}}"),
            vec![],
            vec![]
        ));
    }

    #[test]
    fn metrics_are_matched_by_name_only() {
        let config = processor(&format!(
            "{TAG}include: {{match_type: strict, resources: [{{key: nope, value: x}}]}}"
        ));
        let matcher = config.for_signal(Signal::Metrics).unwrap();
        let mut payload = Payload::Metrics(vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "m".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint::default()],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }]);
        config.process(&matcher, &mut payload);
        let Payload::Metrics(list) = payload else {
            unreachable!()
        };
        let Some(Data::Gauge(g)) = &list[0].scope_metrics[0].metrics[0].data else {
            panic!()
        };
        assert_eq!(
            g.data_points[0].attributes.len(),
            1,
            "resources is never evaluated for metrics"
        );
        let spans_only = processor(&format!(
            "{TAG}include: {{match_type: strict, span_names: [a]}}"
        ));
        assert!(spans_only.for_signal(Signal::Metrics).is_err());
        assert!(
            processor("actions: [{key: a, action: delete}]\ninclude: {metric_names: [a]}")
                .for_signal(Signal::Metrics)
                .is_err(),
            "no match_type"
        );
    }
}
