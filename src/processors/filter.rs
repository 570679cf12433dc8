//! The `filter` processor: drops metrics, data points and spans. The legacy `include` /
//! `exclude` forms (strict or regexp names, resource attributes; span match properties) and
//! OTTL conditions in the subset [`super::ottl`] implements; anything else is refused at start
//! naming the condition. A batch with nothing left is not forwarded and counts as success
//! upstream, as in the collector.

use super::matching::{
    AttributeConfig, AttributeMatcher, IncludeExclude, MatchConfig, MatchSignal, MatchType, Pattern,
};
use super::ottl::{Condition, Context};
use crate::pipeline::Payload;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
use serde::Deserialize;
use serde_yaml_ng::Value as Yaml;

/// `metrics.include` / `metrics.exclude` as written.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricMatchConfig {
    #[serde(default)]
    match_type: String,
    #[serde(default)]
    metric_names: Vec<String>,
    #[serde(default)]
    expressions: Vec<String>,
    #[serde(default)]
    resource_attributes: Vec<AttributeConfig>,
    /// The match-result cache settings: accepted, every match is computed.
    #[serde(default, rename = "regexp")]
    _regexp: Option<Yaml>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    #[serde(default)]
    include: Option<MetricMatchConfig>,
    #[serde(default)]
    exclude: Option<MetricMatchConfig>,
    /// Accepted and unused, as in the collector.
    #[serde(default, rename = "regexp")]
    _regexp: Option<Yaml>,
    #[serde(default)]
    resource: Vec<String>,
    #[serde(default)]
    metric: Vec<String>,
    #[serde(default)]
    datapoint: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpansSection {
    #[serde(default)]
    include: Option<MatchConfig>,
    #[serde(default)]
    exclude: Option<MatchConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TracesSection {
    #[serde(default)]
    resource: Vec<String>,
    #[serde(default)]
    span: Vec<String>,
    #[serde(default)]
    spanevent: Vec<String>,
}

/// `processors.filter` as written.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterProcessorSection {
    #[serde(default)]
    error_mode: Option<String>,
    #[serde(default)]
    metrics: MetricsSection,
    #[serde(default)]
    spans: SpansSection,
    #[serde(default)]
    traces: TracesSection,
    #[serde(default)]
    logs: Option<Yaml>,
    #[serde(default)]
    metric_conditions: Vec<Yaml>,
    #[serde(default)]
    trace_conditions: Vec<Yaml>,
    #[serde(default)]
    log_conditions: Vec<Yaml>,
}

/// One side of the legacy metric form: names and resource attributes.
#[derive(Debug, Clone)]
struct MetricMatch {
    names: Vec<Pattern>,
    resource: Vec<AttributeMatcher>,
}

/// What a runtime error in a condition does (`error_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    Ignore,
    Silent,
    Propagate,
}

/// A validated `filter` processor.
#[derive(Debug, Clone)]
pub struct FilterProcessorConfig {
    /// As written, for `validate --print`.
    written: Box<FilterProcessorSection>,
    include: Option<MetricMatch>,
    exclude: Option<MetricMatch>,
    spans: IncludeExclude,
    /// OTTL conditions by context: an item is dropped when any of its context's is true.
    conditions: Vec<Condition>,
    error_mode: ErrorMode,
}

impl MetricMatchConfig {
    fn validate(&self) -> Result<MetricMatch, String> {
        if self.match_type == "expr" || !self.expressions.is_empty() {
            return Err(
                "match_type: expr is not supported by otel-sidecar: use OTTL conditions".into(),
            );
        }
        let needs_type = !self.metric_names.is_empty()
            || self.resource_attributes.iter().any(|a| a.value.is_some());
        let match_type = if needs_type || !self.match_type.is_empty() {
            Some(MatchType::parse(&self.match_type)?)
        } else {
            None
        };
        let mut names = Vec::new();
        if let Some(t) = match_type {
            for name in &self.metric_names {
                names.push(t.pattern(name)?);
            }
        }
        let resource = self
            .resource_attributes
            .iter()
            .map(|a| AttributeMatcher::new(a, match_type))
            .collect::<Result<_, _>>()?;
        Ok(MetricMatch { names, resource })
    }
}

impl MetricMatch {
    fn has_resource_test(&self) -> bool {
        !self.resource.is_empty()
    }
    fn resource_matches(&self, resource: &[KeyValue]) -> bool {
        self.resource.iter().all(|m| m.is_match(resource))
    }
    fn has_name_test(&self) -> bool {
        !self.names.is_empty()
    }
    fn name_matches(&self, name: &str) -> bool {
        self.names.iter().any(|p| p.is_match(name))
    }
}

/// The OTTL conditions of a list, each checked for the subset and tied to its context.
fn conditions(
    key: &str,
    list: &[String],
    context: Option<Context>,
) -> Result<Vec<Condition>, (String, String)> {
    list.iter()
        .enumerate()
        .map(|(i, text)| Condition::parse(text, context).map_err(|e| (format!("{key}[{i}]"), e)))
        .collect()
}

fn condition_strings(key: &str, list: &[Yaml]) -> Result<Vec<String>, (String, String)> {
    list.iter()
        .enumerate()
        .map(|(i, item)| match item {
            Yaml::String(s) => Ok(s.clone()),
            Yaml::Null => Err((format!("{key}[{i}]"), "condition cannot be empty".into())),
            _ => Err((
                format!("{key}[{i}]"),
                "the {context, conditions} form is not supported by otel-sidecar; write the conditions as strings"
                    .into(),
            )),
        })
        .collect()
}

impl crate::config::ComponentSection for FilterProcessorSection {
    type Settings = FilterProcessorConfig;

    fn validate(self) -> Result<FilterProcessorConfig, Vec<crate::config::InvalidSetting>> {
        self.settings().map_err(|problem| vec![problem.into()])
    }
}

impl FilterProcessorSection {
    fn settings(&self) -> Result<FilterProcessorConfig, (String, String)> {
        let error_mode = match self
            .error_mode
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("ignore") => ErrorMode::Ignore,
            Some("silent") => ErrorMode::Silent,
            Some("propagate") => ErrorMode::Propagate,
            Some(_) => {
                return Err((
                    "error_mode".into(),
                    format!(
                        "{:?}: unknown error mode (expected one of ignore, silent, propagate)",
                        self.error_mode.as_deref().unwrap_or_default()
                    ),
                ));
            }
        };
        let legacy_metrics = self.metrics.include.is_some() || self.metrics.exclude.is_some();
        let ottl_metrics = !self.metrics.resource.is_empty()
            || !self.metrics.metric.is_empty()
            || !self.metrics.datapoint.is_empty();
        if legacy_metrics && ottl_metrics {
            return Err(("metrics".into(), "cannot use \"metrics.resource\", \"metrics.metric\", \"metrics.datapoint\" and the settings \"metrics.include\", \"metrics.exclude\" at the same time".into()));
        }
        if !self.metric_conditions.is_empty() && (legacy_metrics || ottl_metrics) {
            return Err(("metric_conditions".into(), "cannot use context inferred metric conditions \"metric_conditions\" and the settings \"metrics.resource\", \"metrics.metric\", \"metrics.datapoint\", \"metrics.include\", \"metrics.exclude\" at the same time".into()));
        }
        let legacy_spans = self.spans.include.is_some() || self.spans.exclude.is_some();
        let ottl_traces = !self.traces.resource.is_empty()
            || !self.traces.span.is_empty()
            || !self.traces.spanevent.is_empty();
        if legacy_spans && ottl_traces {
            return Err(("spans".into(), "cannot use \"traces.resource\", \"traces.span\", \"traces.spanevent\" and the settings \"spans.include\", \"spans.exclude\" at the same time".into()));
        }
        if self.logs.is_some() || !self.log_conditions.is_empty() {
            let key = if self.logs.is_some() {
                "logs"
            } else {
                "log_conditions"
            };
            return Err((
                key.into(),
                "filtering logs is not supported by otel-sidecar".into(),
            ));
        }
        if !self.traces.spanevent.is_empty() {
            return Err((
                "traces.spanevent".into(),
                "span event conditions are not supported by otel-sidecar".into(),
            ));
        }
        let side = |key: &str, block: &Option<MetricMatchConfig>| {
            block
                .as_ref()
                .map(|b| b.validate())
                .transpose()
                .map_err(|e| (format!("metrics.{key}"), e))
        };
        let mut all = Vec::new();
        for (key, list, context) in [
            (
                "metrics.resource",
                &self.metrics.resource,
                Context::Resource,
            ),
            ("metrics.metric", &self.metrics.metric, Context::Metric),
            (
                "metrics.datapoint",
                &self.metrics.datapoint,
                Context::DataPoint,
            ),
            ("traces.resource", &self.traces.resource, Context::Resource),
            ("traces.span", &self.traces.span, Context::Span),
        ] {
            all.extend(conditions(key, list, Some(context))?);
        }
        let metric_conditions = condition_strings("metric_conditions", &self.metric_conditions)?;
        all.extend(conditions("metric_conditions", &metric_conditions, None)?);
        let trace_conditions = condition_strings("trace_conditions", &self.trace_conditions)?;
        all.extend(conditions("trace_conditions", &trace_conditions, None)?);
        Ok(FilterProcessorConfig {
            written: Box::new(self.clone()),
            include: side("include", &self.metrics.include)?,
            exclude: side("exclude", &self.metrics.exclude)?,
            spans: IncludeExclude::new(
                self.spans.include.as_ref(),
                self.spans.exclude.as_ref(),
                MatchSignal::Spans,
            )
            .map_err(|(k, e)| (format!("spans.{k}"), e))?,
            conditions: all,
            error_mode,
        })
    }
}

/// What a filter call removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Filtered {
    pub data_points: u64,
    pub spans: u64,
}

impl FilterProcessorConfig {
    fn drops_resource(&self, resource: &[KeyValue], report: &mut ConditionErrors) -> bool {
        let legacy = self
            .include
            .as_ref()
            .is_some_and(|i| i.has_resource_test() && !i.resource_matches(resource))
            || self
                .exclude
                .as_ref()
                .is_some_and(|e| e.has_resource_test() && e.resource_matches(resource));
        legacy
            || self
                .conditions
                .iter()
                .filter(|c| c.context() == Context::Resource)
                .any(|c| report.check(c.eval_resource(resource), c, self.error_mode))
    }

    fn drops_metric(
        &self,
        metric: &Metric,
        resource: &[KeyValue],
        report: &mut ConditionErrors,
    ) -> bool {
        let legacy = self
            .include
            .as_ref()
            .is_some_and(|i| i.has_name_test() && !i.name_matches(&metric.name))
            || self
                .exclude
                .as_ref()
                .is_some_and(|e| e.has_name_test() && e.name_matches(&metric.name));
        legacy
            || self
                .conditions
                .iter()
                .filter(|c| c.context() == Context::Metric)
                .any(|c| report.check(c.eval_metric(metric, resource), c, self.error_mode))
    }

    /// Removes what the filter drops. `Err` carries the first condition error in `propagate`
    /// mode (the batch is then not forwarded); `Ok(None)` means nothing is left to forward.
    pub fn process(&self, mut payload: Payload) -> Result<(Option<Payload>, Filtered), String> {
        let mut report = ConditionErrors::default();
        let mut filtered = Filtered::default();
        let has_names = self
            .include
            .as_ref()
            .is_some_and(MetricMatch::has_name_test)
            || self
                .exclude
                .as_ref()
                .is_some_and(MetricMatch::has_name_test);
        let datapoint_conditions: Vec<&Condition> = self
            .conditions
            .iter()
            .filter(|c| c.context() == Context::DataPoint)
            .collect();
        let span_conditions: Vec<&Condition> = self
            .conditions
            .iter()
            .filter(|c| c.context() == Context::Span)
            .collect();
        payload.make_owned();
        let empty = match &mut payload {
            Payload::Encoded(_) => unreachable!("made owned above"),
            Payload::Metrics(list) => {
                let before: u64 = list.iter().map(points_in).sum();
                list.retain_mut(|rm| {
                    let resource = rm
                        .resource
                        .as_ref()
                        .map(|r| r.attributes.clone())
                        .unwrap_or_default();
                    if self.drops_resource(&resource, &mut report) {
                        return false;
                    }
                    for sm in &mut rm.scope_metrics {
                        sm.metrics.retain_mut(|metric| {
                            if self.drops_metric(metric, &resource, &mut report) {
                                return false;
                            }
                            if datapoint_conditions.is_empty() {
                                return true;
                            }
                            // Metric paths in a data point condition read this copy.
                            let whole = metric.clone();
                            retain_points(metric, |attributes, value| {
                                !datapoint_conditions.iter().any(|c| {
                                    report.check(
                                        c.eval_datapoint(attributes, value, &whole, &resource),
                                        c,
                                        self.error_mode,
                                    )
                                })
                            })
                        });
                    }
                    if has_names || !datapoint_conditions.is_empty() || !self.conditions.is_empty()
                    {
                        rm.scope_metrics.retain(|sm| !sm.metrics.is_empty());
                    }
                    !rm.scope_metrics.is_empty()
                });
                let after: u64 = list.iter().map(points_in).sum();
                filtered.data_points = before - after;
                list.is_empty()
            }
            Payload::Traces(list) => {
                let before: u64 = list
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len() as u64)
                    .sum();
                list.retain_mut(|rs| {
                    let resource = rs
                        .resource
                        .as_ref()
                        .map(|r| r.attributes.clone())
                        .unwrap_or_default();
                    if self.drops_resource(&resource, &mut report) {
                        return false;
                    }
                    for ss in &mut rs.scope_spans {
                        let scope = ss.scope.clone();
                        ss.spans.retain(|span| {
                            let legacy = !self.spans.is_empty()
                                && !self
                                    .spans
                                    .keeps(|m| m.matches_span(span, &resource, scope.as_ref()));
                            !legacy
                                && !span_conditions.iter().any(|c| {
                                    report.check(c.eval_span(span, &resource), c, self.error_mode)
                                })
                        });
                    }
                    rs.scope_spans.retain(|ss| !ss.spans.is_empty());
                    !rs.scope_spans.is_empty()
                });
                let after: u64 = list
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len() as u64)
                    .sum();
                filtered.spans = before - after;
                list.is_empty()
            }
            Payload::Logs(_) => false,
        };
        if let Some(error) = report.first {
            return Err(error);
        }
        Ok(((!empty).then_some(payload), filtered))
    }
}

/// Condition errors met during one call: logged per `error_mode`, the first kept for
/// `propagate`.
#[derive(Default)]
struct ConditionErrors {
    first: Option<String>,
}

impl ConditionErrors {
    /// A condition's verdict; an error counts as false and is reported per `mode`.
    fn check(
        &mut self,
        result: Result<bool, String>,
        condition: &Condition,
        mode: ErrorMode,
    ) -> bool {
        match result {
            Ok(verdict) => verdict,
            Err(error) => {
                match mode {
                    ErrorMode::Ignore => {
                        tracing::warn!(condition = %condition.text(), %error, "failed to eval condition")
                    }
                    ErrorMode::Silent => {}
                    ErrorMode::Propagate => {
                        self.first.get_or_insert_with(|| {
                            format!("failed to eval condition: {}, {error}", condition.text())
                        });
                    }
                }
                false
            }
        }
    }
}

fn points_in(rm: &opentelemetry_proto::tonic::metrics::v1::ResourceMetrics) -> u64 {
    rm.scope_metrics
        .iter()
        .flat_map(|s| &s.metrics)
        .map(|m| crate::pipeline::data_point_count(m.data.as_ref()) as u64)
        .sum()
}

/// Keeps the data points `keep` says yes to; `false` when a metric had points and has none
/// left (or had none), so the caller removes it.
fn retain_points(
    metric: &mut Metric,
    mut keep: impl FnMut(&[KeyValue], Option<super::ottl::PointValue>) -> bool,
) -> bool {
    use super::ottl::PointValue;
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Nv;
    let number = |v: &Option<Nv>| match v {
        Some(Nv::AsInt(i)) => Some(PointValue::Int(*i)),
        Some(Nv::AsDouble(d)) => Some(PointValue::Double(*d)),
        None => None,
    };
    match metric.data.as_mut() {
        Some(Data::Gauge(g)) => {
            g.data_points
                .retain(|p| keep(&p.attributes, number(&p.value)));
            !g.data_points.is_empty()
        }
        Some(Data::Sum(s)) => {
            s.data_points
                .retain(|p| keep(&p.attributes, number(&p.value)));
            !s.data_points.is_empty()
        }
        Some(Data::Histogram(h)) => {
            h.data_points.retain(|p| keep(&p.attributes, None));
            !h.data_points.is_empty()
        }
        Some(Data::ExponentialHistogram(h)) => {
            h.data_points.retain(|p| keep(&p.attributes, None));
            !h.data_points.is_empty()
        }
        Some(Data::Summary(s)) => {
            s.data_points.retain(|p| keep(&p.attributes, None));
            !s.data_points.is_empty()
        }
        None => false,
    }
}

impl serde::Serialize for FilterProcessorConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value as Av};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(key: &str, value: Av) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn gauge(name: &str, points: Vec<Vec<KeyValue>>) -> Metric {
        Metric {
            name: name.into(),
            data: Some(Data::Gauge(Gauge {
                data_points: points
                    .into_iter()
                    .map(|attributes| NumberDataPoint {
                        attributes,
                        ..Default::default()
                    })
                    .collect(),
            })),
            ..Default::default()
        }
    }

    fn metrics(resource: Vec<KeyValue>, list: Vec<Metric>) -> Payload {
        Payload::Metrics(vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: list,
                ..Default::default()
            }],
            ..Default::default()
        }])
    }

    fn filter(yaml: &str) -> Result<FilterProcessorConfig, (String, String)> {
        serde_yaml_ng::from_str::<FilterProcessorSection>(yaml)
            .unwrap()
            .settings()
    }

    /// Names of the metrics left, or `None` when nothing is forwarded.
    fn names(yaml: &str, payload: Payload) -> Option<Vec<String>> {
        let (kept, _) = filter(yaml).unwrap().process(payload).unwrap();
        let Payload::Metrics(list) = kept? else {
            panic!("metrics in, metrics out")
        };
        Some(
            list.iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| m.name.clone())
                .collect(),
        )
    }

    fn plain(names: &[&str]) -> Payload {
        metrics(
            vec![],
            names.iter().map(|n| gauge(n, vec![vec![]])).collect(),
        )
    }

    #[test]
    fn the_digests_cases() {
        let strict_a = "metrics: {include: {match_type: strict, metric_names: [a]}}";
        assert_eq!(names(strict_a, plain(&["a", "b"])), Some(vec!["a".into()]));
        assert_eq!(
            names(
                "metrics: {include: {match_type: regexp, metric_names: [cpu]}}",
                plain(&["system.cpu.x", "mem"])
            ),
            Some(vec!["system.cpu.x".into()]),
            "unanchored"
        );
        let svc = |v: &str| vec![kv("svc", Av::StringValue(v.into()))];
        assert_eq!(
            names(
                "metrics: {include: {match_type: strict, metric_names: [a], resource_attributes: [{key: svc, value: x}]}}",
                metrics(svc("y"), vec![gauge("a", vec![vec![]])])
            ),
            None
        );
        assert_eq!(
            names(
                "metrics: {include: {match_type: strict, resource_attributes: [{key: k}]}}",
                metrics(
                    vec![kv("k", Av::IntValue(1))],
                    vec![gauge("a", vec![vec![]])]
                )
            ),
            Some(vec!["a".into()])
        );
        assert_eq!(
            names(strict_a, plain(&["b", "c"])),
            None,
            "nothing forwarded, no error"
        );
        let (path, message) =
            filter("metrics: {include: {match_type: '', metric_names: [a]}}").unwrap_err();
        assert_eq!(path, "metrics.include");
        assert!(
            message.starts_with("unrecognized match_type: ''"),
            "{message}"
        );
        assert_eq!(
            names("metrics: {metric: ['name == \"a\"']}", plain(&["a", "b"])),
            Some(vec!["b".into()])
        );
        let k = |v: &str| vec![kv("k", Av::StringValue(v.into()))];
        assert_eq!(
            names(
                "metrics: {datapoint: ['attributes[\"k\"] == \"x\"']}",
                metrics(
                    vec![],
                    vec![
                        gauge("a", vec![k("x"), k("x")]),
                        gauge("b", vec![k("x"), k("y")])
                    ]
                )
            ),
            Some(vec!["b".into()]),
            "a metric whose points all go is removed"
        );
        assert_eq!(
            names(
                "metric_conditions: ['metric.name == \"a\" and resource.attributes[\"svc\"] == \"y\"']",
                metrics(
                    svc("y"),
                    vec![gauge("a", vec![vec![]]), gauge("c", vec![vec![]])]
                )
            ),
            Some(vec!["c".into()])
        );
        assert_eq!(
            names(
                "metrics: {exclude: {match_type: strict, metric_names: [a]}}",
                plain(&["a", "b"])
            ),
            Some(vec!["b".into()])
        );
    }

    #[test]
    fn outside_the_subset_is_refused_naming_the_condition() {
        let (path, message) =
            filter("metrics: {metric: ['Substring(name, 0, 1) == \"x\"']}").unwrap_err();
        assert_eq!(path, "metrics.metric[0]");
        assert!(message.contains("Substring(name, 0, 1)"), "{message}");
        let (path, _) =
            filter("metrics: {include: {match_type: expr, expressions: ['MetricName == \"a\"']}}")
                .unwrap_err();
        assert_eq!(path, "metrics.include");
        let (path, _) = filter("error_mode: loud").unwrap_err();
        assert_eq!(path, "error_mode");
        let (path, _) = filter("metrics: {include: {match_type: strict, metric_names: [a]}, metric: ['name == \"a\"']}").unwrap_err();
        assert_eq!(path, "metrics");
    }

    #[test]
    fn spans_by_match_properties_and_conditions() {
        let span = |name: &str, kind: i32| Span {
            name: name.into(),
            kind,
            span_id: vec![1; 8],
            trace_id: vec![1; 16],
            ..Default::default()
        };
        let payload = || {
            Payload::Traces(vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", Av::StringValue("api".into()))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span("GET /health", 2),
                        span("GET /orders", 2),
                        span("db", 3),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }])
        };
        let names = |yaml: &str| -> Vec<String> {
            let (kept, filtered) = filter(yaml).unwrap().process(payload()).unwrap();
            let Some(Payload::Traces(list)) = kept else {
                return vec![];
            };
            let names: Vec<String> = list
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .map(|s| s.name.clone())
                .collect();
            assert_eq!(filtered.spans as usize, 3 - names.len());
            names
        };
        assert_eq!(
            names("spans: {exclude: {match_type: regexp, span_names: ['/health']}}"),
            vec!["GET /orders", "db"]
        );
        assert_eq!(
            names(
                "spans: {include: {match_type: strict, services: [api], span_kinds: [SPAN_KIND_CLIENT]}}"
            ),
            vec!["db"]
        );
        assert_eq!(
            names(
                "traces: {span: ['IsMatch(span.name, \"health\") or span.kind == SPAN_KIND_CLIENT']}"
            ),
            vec!["GET /orders"]
        );
    }
}
