//! Evaluating an expression against one item: a resource, a metric, a data point or a span.

use super::ast::{Expr, Op, Path, PointValue, Val, Value};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
use opentelemetry_proto::tonic::trace::v1::Span;

#[derive(Default)]
pub(super) struct Item<'a> {
    pub(super) resource: &'a [KeyValue],
    pub(super) metric: Option<&'a Metric>,
    pub(super) point: Option<(&'a [KeyValue], Option<PointValue>)>,
    pub(super) span: Option<&'a Span>,
}

pub(super) fn attribute(list: &[KeyValue], key: &str) -> Val {
    match list
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
    {
        None => Val::Nil,
        Some(Av::StringValue(s)) => Val::Str(s.clone()),
        Some(Av::IntValue(i)) => Val::Int(*i),
        Some(Av::DoubleValue(d)) => Val::Double(*d),
        Some(Av::BoolValue(b)) => Val::Bool(*b),
        Some(_) => Val::Other,
    }
}

pub(super) fn metric_type(metric: &Metric) -> i64 {
    match metric.data {
        None => 0,
        Some(Data::Gauge(_)) => 1,
        Some(Data::Sum(_)) => 2,
        Some(Data::Histogram(_)) => 3,
        Some(Data::ExponentialHistogram(_)) => 4,
        Some(Data::Summary(_)) => 5,
    }
}

pub(super) fn resolve(value: &Value, item: &Item) -> Val {
    let path = match value {
        Value::Literal(v) => return v.clone(),
        Value::Path(p) => p,
    };
    let metric = item.metric;
    match path {
        Path::ResourceAttribute(k) => attribute(item.resource, k),
        Path::MetricName => metric.map_or(Val::Nil, |m| Val::Str(m.name.clone())),
        Path::MetricType => metric.map_or(Val::Nil, |m| Val::Int(metric_type(m))),
        Path::MetricUnit => metric.map_or(Val::Nil, |m| Val::Str(m.unit.clone())),
        Path::MetricDescription => metric.map_or(Val::Nil, |m| Val::Str(m.description.clone())),
        Path::MetricTemporality => metric.map_or(Val::Nil, |m| {
            Val::Int(match &m.data {
                Some(Data::Sum(s)) => i64::from(s.aggregation_temporality),
                Some(Data::Histogram(h)) => i64::from(h.aggregation_temporality),
                Some(Data::ExponentialHistogram(h)) => i64::from(h.aggregation_temporality),
                _ => 0,
            })
        }),
        Path::MetricMonotonic => metric.map_or(Val::Nil, |m| {
            Val::Bool(matches!(&m.data, Some(Data::Sum(s)) if s.is_monotonic))
        }),
        Path::PointAttribute(k) => item.point.map_or(Val::Nil, |(a, _)| attribute(a, k)),
        Path::PointValueInt => match item.point {
            Some((_, Some(PointValue::Int(i)))) => Val::Int(i),
            Some((_, Some(PointValue::Double(_)))) => Val::Int(0),
            _ => Val::Nil,
        },
        Path::PointValueDouble => match item.point {
            Some((_, Some(PointValue::Double(d)))) => Val::Double(d),
            Some((_, Some(PointValue::Int(_)))) => Val::Double(0.0),
            _ => Val::Nil,
        },
        Path::SpanName => item.span.map_or(Val::Nil, |s| Val::Str(s.name.clone())),
        Path::SpanKind => item.span.map_or(Val::Nil, |s| Val::Int(i64::from(s.kind))),
        Path::SpanStatusCode => item.span.map_or(Val::Nil, |s| {
            Val::Int(s.status.as_ref().map_or(0, |st| i64::from(st.code)))
        }),
        Path::SpanAttribute(k) => item.span.map_or(Val::Nil, |s| attribute(&s.attributes, k)),
    }
}

/// Compares as OTTL does: numbers across int and double as floats, equal types by value,
/// anything else not equal (and not ordered).
pub(super) fn compare(a: &Val, op: Op, b: &Val) -> bool {
    use std::cmp::Ordering;
    let ordering = match (a, b) {
        (Val::Nil, Val::Nil) => Some(Ordering::Equal),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Int(x), Val::Double(y)) => (*x as f64).partial_cmp(y),
        (Val::Double(x), Val::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Val::Double(x), Val::Double(y)) => x.partial_cmp(y),
        _ => None,
    };
    match (op, ordering) {
        (Op::Eq, o) => o == Some(Ordering::Equal),
        (Op::Ne, o) => o != Some(Ordering::Equal),
        (_, None) => false,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
    }
}

pub(super) fn eval(expr: &Expr, item: &Item) -> bool {
    match expr {
        Expr::Or(a, b) => eval(a, item) || eval(b, item),
        Expr::And(a, b) => eval(a, item) && eval(b, item),
        Expr::Not(a) => !eval(a, item),
        Expr::Bool(b) => *b,
        Expr::Compare(a, op, b) => compare(&resolve(a, item), *op, &resolve(b, item)),
        Expr::IsMatch(target, regex) => match resolve(target, item) {
            Val::Str(s) => regex.is_match(&s),
            Val::Int(i) => regex.is_match(&i.to_string()),
            Val::Double(d) => regex.is_match(&crate::processors::attraction::es6_number(d)),
            Val::Bool(b) => regex.is_match(&b.to_string()),
            Val::Nil | Val::Other => false,
        },
        Expr::HasAttrKeyOnDatapoint(key) => item.metric.is_some_and(|m| {
            crate::pipeline::point_attributes(m)
                .iter()
                .any(|a| a.iter().any(|kv| kv.key == *key))
        }),
        Expr::HasAttrOnDatapoint(key, value) => item.metric.is_some_and(|m| {
            crate::pipeline::point_attributes(m)
                .iter()
                .any(|a| match attribute(a, key) {
                    Val::Str(s) => s == *value,
                    Val::Nil => false,
                    _ => value.is_empty(),
                })
        }),
    }
}
