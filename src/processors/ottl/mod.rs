//! The OTTL subset the `filter` processor evaluates: boolean conditions over resource, metric,
//! data point and span paths, with literals, the enums, comparisons, `and` / `or` / `not`,
//! parentheses, and the functions `IsMatch`, `HasAttrOnDatapoint` and `HasAttrKeyOnDatapoint`.
//! Anything outside it is refused at start with the condition's text, rather than read
//! differently from the collector.

mod ast;
mod eval;
mod lexer;
mod parser;

pub use ast::{Context, PointValue};

use ast::Expr;
use eval::{Item, eval};
use lexer::tokenize;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use parser::{Parser, paths};

/// A parsed condition and the context it runs in.
#[derive(Debug, Clone)]
pub struct Condition {
    text: String,
    context: Context,
    expr: Expr,
}

impl Condition {
    /// Parses `text`. `context` is the list's context in the explicit form (`metrics.metric`),
    /// or `None` when it is inferred from the paths (`metric_conditions`).
    pub fn parse(text: &str, context: Option<Context>) -> Result<Self, String> {
        let refuse = |why: String| {
            format!("OTTL condition `{text}` is outside the subset otel-sidecar supports: {why}")
        };
        let tokens = tokenize(text).map_err(refuse)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            default: context,
        };
        let expr = parser.or().map_err(refuse)?;
        if parser.at < parser.tokens.len() {
            return Err(refuse(format!("unexpected {:?}", parser.tokens[parser.at])));
        }
        let mut found = Vec::new();
        paths(&expr, &mut found);
        let lowest = found.iter().copied().max();
        let context = match (context, lowest) {
            (Some(c), Some(l)) if l > c => {
                return Err(refuse(format!("a {l:?} path in a {c:?} condition")));
            }
            (Some(c), _) => c,
            (None, Some(l)) => l,
            (None, None) => return Err(refuse("no path says which context it is for".into())),
        };
        if found.contains(&Context::Span)
            && found
                .iter()
                .any(|c| matches!(c, Context::Metric | Context::DataPoint))
        {
            return Err(refuse("span and metric paths mixed".into()));
        }
        Ok(Condition {
            text: text.to_string(),
            context,
            expr,
        })
    }

    pub fn context(&self) -> Context {
        self.context
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn eval_resource(&self, resource: &[KeyValue]) -> Result<bool, String> {
        Ok(eval(
            &self.expr,
            &Item {
                resource,
                ..Item::default()
            },
        ))
    }

    pub fn eval_metric(&self, metric: &Metric, resource: &[KeyValue]) -> Result<bool, String> {
        Ok(eval(
            &self.expr,
            &Item {
                resource,
                metric: Some(metric),
                ..Item::default()
            },
        ))
    }

    pub fn eval_datapoint(
        &self,
        attributes: &[KeyValue],
        value: Option<PointValue>,
        metric: &Metric,
        resource: &[KeyValue],
    ) -> Result<bool, String> {
        Ok(eval(
            &self.expr,
            &Item {
                resource,
                metric: Some(metric),
                point: Some((attributes, value)),
                span: None,
            },
        ))
    }

    pub fn eval_span(&self, span: &Span, resource: &[KeyValue]) -> Result<bool, String> {
        Ok(eval(
            &self.expr,
            &Item {
                resource,
                span: Some(span),
                ..Item::default()
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value as Av};
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    use opentelemetry_proto::tonic::metrics::v1::{Gauge, NumberDataPoint, Sum};

    fn s(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Av::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn gauge(name: &str, points: Vec<Vec<KeyValue>>) -> Metric {
        Metric {
            name: name.into(),
            unit: "ms".into(),
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

    #[test]
    fn metric_conditions_evaluate() {
        let m = gauge("http.latency", vec![vec![s("route", "/a")]]);
        let resource = vec![s("service.name", "api")];
        let check = |text: &str, context| {
            Condition::parse(text, context)
                .unwrap()
                .eval_metric(&m, &resource)
                .unwrap()
        };
        assert!(check(r#"name == "http.latency""#, Some(Context::Metric)));
        assert!(!check(r#"metric.name != "http.latency""#, None));
        assert!(check(r#"IsMatch(metric.name, "latency")"#, None));
        assert!(check(
            r#"metric.type == METRIC_DATA_TYPE_GAUGE and metric.unit == "ms""#,
            None
        ));
        assert!(check(
            r#"not (metric.name == "x" or resource.attributes["service.name"] == "db")"#,
            None
        ));
        assert!(check(r#"HasAttrOnDatapoint("route", "/a")"#, None));
        assert!(check(r#"HasAttrKeyOnDatapoint("route") == true"#, None));
        assert!(
            !check(r#"resource.attributes["missing"] == "x""#, None),
            "nil is not equal"
        );
        assert!(check(r#"resource.attributes["missing"] == nil"#, None));
    }

    #[test]
    fn contexts_are_inferred_from_the_lowest_path() {
        let context = |text: &str| Condition::parse(text, None).unwrap().context();
        assert_eq!(
            context(r#"resource.attributes["a"] == "b""#),
            Context::Resource
        );
        assert_eq!(
            context(r#"metric.name == "a" and resource.attributes["a"] == "b""#),
            Context::Metric
        );
        assert_eq!(
            context(r#"datapoint.attributes["k"] == "x" and metric.name == "a""#),
            Context::DataPoint
        );
        assert_eq!(context(r#"span.kind == SPAN_KIND_SERVER"#), Context::Span);
    }

    #[test]
    fn outside_the_subset_is_refused_with_the_condition() {
        for text in [
            r#"Substring(attributes["s"], 0, 10) == "x""#,
            r#"name == "a""#,
            r#"metric.name == "a" and span.name == "b""#,
            r#"log.body == "x""#,
            r#"metric.name = "a""#,
        ] {
            let error = Condition::parse(text, None).unwrap_err();
            assert!(error.contains(text), "{error}");
        }
    }

    #[test]
    fn numbers_compare_across_types() {
        let m = Metric {
            name: "n".into(),
            data: Some(Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    value: Some(
                        opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(5),
                    ),
                    ..Default::default()
                }],
                is_monotonic: true,
                aggregation_temporality: 2,
            })),
            ..Default::default()
        };
        let c = Condition::parse("datapoint.value_int > 4.5 and metric.is_monotonic == true and metric.aggregation_temporality == AGGREGATION_TEMPORALITY_CUMULATIVE", None).unwrap();
        assert!(
            c.eval_datapoint(&[], Some(PointValue::Int(5)), &m, &[])
                .unwrap()
        );
        assert!(
            !c.eval_datapoint(&[], Some(PointValue::Int(4)), &m, &[])
                .unwrap()
        );
    }
}
