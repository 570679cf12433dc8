//! The OTTL subset the `filter` processor evaluates: boolean conditions over resource, metric,
//! data point and span paths, with literals, the enums, comparisons, `and` / `or` / `not`,
//! parentheses, and the functions `IsMatch`, `HasAttrOnDatapoint` and `HasAttrKeyOnDatapoint`.
//! Anything outside it is refused at start with the condition's text, rather than read
//! differently from the collector.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as Av};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
use opentelemetry_proto::tonic::trace::v1::Span;
use regex::Regex;

/// Where a condition is evaluated: the lowest level any of its paths names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Context {
    Resource,
    Metric,
    DataPoint,
    Span,
}

/// A number data point's value, for `datapoint.value_int` / `value_double`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PointValue {
    Int(i64),
    Double(f64),
}

#[derive(Debug, Clone, PartialEq)]
enum Path {
    ResourceAttribute(String),
    MetricName,
    MetricType,
    MetricUnit,
    MetricDescription,
    MetricTemporality,
    MetricMonotonic,
    PointAttribute(String),
    PointValueInt,
    PointValueDouble,
    SpanName,
    SpanKind,
    SpanStatusCode,
    SpanAttribute(String),
}

impl Path {
    fn context(&self) -> Context {
        match self {
            Path::ResourceAttribute(_) => Context::Resource,
            Path::MetricName
            | Path::MetricType
            | Path::MetricUnit
            | Path::MetricDescription
            | Path::MetricTemporality
            | Path::MetricMonotonic => Context::Metric,
            Path::PointAttribute(_) | Path::PointValueInt | Path::PointValueDouble => {
                Context::DataPoint
            }
            Path::SpanName | Path::SpanKind | Path::SpanStatusCode | Path::SpanAttribute(_) => {
                Context::Span
            }
        }
    }
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Nil,
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Lists, maps and bytes: equal to nothing.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Value, Op, Value),
    IsMatch(Value, Regex),
    HasAttrOnDatapoint(String, String),
    HasAttrKeyOnDatapoint(String),
    Bool(bool),
}

#[derive(Debug, Clone)]
enum Value {
    Literal(Val),
    Path(Path),
}

/// A parsed condition and the context it runs in.
#[derive(Debug, Clone)]
pub struct Condition {
    text: String,
    context: Context,
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Op(Op),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Dot,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' => {
                tokens.push(Token::LParen);
                i += 1
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1
            }
            '[' => {
                tokens.push(Token::LBracket);
                i += 1
            }
            ']' => {
                tokens.push(Token::RBracket);
                i += 1
            }
            '.' => {
                tokens.push(Token::Dot);
                i += 1
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, width) = match (c, next) {
                    ('=', Some('=')) => (Op::Eq, 2),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', Some('=')) => (Op::Le, 2),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', _) => (Op::Gt, 1),
                    _ => return Err(format!("unexpected {c:?}")),
                };
                tokens.push(Token::Op(op));
                i += width;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string".into()),
                        Some('"') => break,
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some(other) => s.push(*other),
                                None => return Err("unterminated string".into()),
                            }
                            i += 2;
                        }
                        Some(other) => {
                            s.push(*other);
                            i += 1;
                        }
                    }
                }
                i += 1;
                tokens.push(Token::Str(s));
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while let Some(&d) = chars.get(i) {
                    let exponent_sign = matches!(d, '+' | '-') && matches!(chars[i - 1], 'e' | 'E');
                    if d.is_ascii_digit() || matches!(d, '.' | 'e' | 'E') || exponent_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let text: String = chars[start..i].iter().collect();
                match text.parse::<i64>() {
                    Ok(n) => tokens.push(Token::Int(n)),
                    Err(_) => tokens.push(Token::Float(
                        text.parse().map_err(|_| format!("bad number {text:?}"))?,
                    )),
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// The context of a bare path (`name`, `attributes[...]`) in the explicit legacy form.
    default: Option<Context>,
}

fn enum_value(name: &str) -> Option<i64> {
    Some(match name {
        "METRIC_DATA_TYPE_NONE" => 0,
        "METRIC_DATA_TYPE_GAUGE" => 1,
        "METRIC_DATA_TYPE_SUM" => 2,
        "METRIC_DATA_TYPE_HISTOGRAM" => 3,
        "METRIC_DATA_TYPE_EXPONENTIAL_HISTOGRAM" => 4,
        "METRIC_DATA_TYPE_SUMMARY" => 5,
        "AGGREGATION_TEMPORALITY_UNSPECIFIED" => 0,
        "AGGREGATION_TEMPORALITY_DELTA" => 1,
        "AGGREGATION_TEMPORALITY_CUMULATIVE" => 2,
        "SPAN_KIND_UNSPECIFIED" => 0,
        "SPAN_KIND_INTERNAL" => 1,
        "SPAN_KIND_SERVER" => 2,
        "SPAN_KIND_CLIENT" => 3,
        "SPAN_KIND_PRODUCER" => 4,
        "SPAN_KIND_CONSUMER" => 5,
        "STATUS_CODE_UNSET" => 0,
        "STATUS_CODE_OK" => 1,
        "STATUS_CODE_ERROR" => 2,
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn expect(&mut self, want: Token) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            other => Err(format!("expected {want:?}, found {other:?}")),
        }
    }
    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w == word)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.keyword("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }
    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.term()
    }
    fn term(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Token::LParen) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(Token::RParen)?;
            return Ok(inner);
        }
        if let Some(Token::Ident(name)) = self.peek().cloned()
            && self.tokens.get(self.at + 1) == Some(&Token::LParen)
        {
            self.at += 2;
            let call = self.call(&name)?;
            return self.maybe_compare_bool(call);
        }
        let left = self.value()?;
        match self.next() {
            Some(Token::Op(op)) => Ok(Expr::Compare(left, op, self.value()?)),
            None | Some(Token::RParen) if matches!(left, Value::Literal(Val::Bool(_))) => {
                if self.tokens.get(self.at - 1) == Some(&Token::RParen) {
                    self.at -= 1;
                }
                let Value::Literal(Val::Bool(b)) = left else {
                    unreachable!()
                };
                Ok(Expr::Bool(b))
            }
            other => Err(format!("expected a comparison, found {other:?}")),
        }
    }
    /// `IsMatch(...) == true` is the same as `IsMatch(...)`.
    fn maybe_compare_bool(&mut self, call: Expr) -> Result<Expr, String> {
        if let Some(Token::Op(op @ (Op::Eq | Op::Ne))) = self.peek().cloned() {
            self.at += 1;
            let Value::Literal(Val::Bool(b)) = self.value()? else {
                return Err("a function's result can only be compared with true or false".into());
            };
            return Ok(if (op == Op::Eq) == b {
                call
            } else {
                Expr::Not(Box::new(call))
            });
        }
        Ok(call)
    }
    fn string_argument(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(s),
            other => Err(format!("expected a string literal, found {other:?}")),
        }
    }
    fn call(&mut self, name: &str) -> Result<Expr, String> {
        let expr = match name {
            "IsMatch" => {
                let target = self.value()?;
                self.expect(Token::Comma)?;
                let pattern = self.string_argument()?;
                let regex = Regex::new(&pattern).map_err(|e| format!("IsMatch: {e}"))?;
                Expr::IsMatch(target, regex)
            }
            "HasAttrOnDatapoint" => {
                let key = self.string_argument()?;
                self.expect(Token::Comma)?;
                Expr::HasAttrOnDatapoint(key, self.string_argument()?)
            }
            "HasAttrKeyOnDatapoint" => Expr::HasAttrKeyOnDatapoint(self.string_argument()?),
            other => return Err(format!("function {other} is not supported")),
        };
        self.expect(Token::RParen)?;
        Ok(expr)
    }
    fn value(&mut self) -> Result<Value, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Value::Literal(Val::Str(s))),
            Some(Token::Int(i)) => Ok(Value::Literal(Val::Int(i))),
            Some(Token::Float(f)) => Ok(Value::Literal(Val::Double(f))),
            Some(Token::Ident(word)) => match word.as_str() {
                "true" => Ok(Value::Literal(Val::Bool(true))),
                "false" => Ok(Value::Literal(Val::Bool(false))),
                "nil" => Ok(Value::Literal(Val::Nil)),
                _ if enum_value(&word).is_some() => {
                    Ok(Value::Literal(Val::Int(enum_value(&word).unwrap_or(0))))
                }
                _ => self.path(word).map(Value::Path),
            },
            other => Err(format!("expected a value, found {other:?}")),
        }
    }
    fn index(&mut self) -> Result<String, String> {
        self.expect(Token::LBracket)?;
        let key = self.string_argument()?;
        self.expect(Token::RBracket)?;
        if self.peek() == Some(&Token::LBracket) {
            return Err("nested attribute paths are not supported".into());
        }
        Ok(key)
    }
    fn path(&mut self, first: String) -> Result<Path, String> {
        let mut parts = vec![first];
        while self.peek() == Some(&Token::Dot) {
            self.at += 1;
            match self.next() {
                Some(Token::Ident(part)) => parts.push(part),
                other => return Err(format!("expected a path segment, found {other:?}")),
            }
        }
        let mut parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let explicit = matches!(parts[0], "resource" | "metric" | "datapoint" | "span");
        if !explicit {
            let prefix = match self.default {
                Some(Context::Resource) => "resource",
                Some(Context::Metric) => "metric",
                Some(Context::DataPoint) => "datapoint",
                Some(Context::Span) => "span",
                None => {
                    return Err(format!(
                        "path {:?} needs a context prefix (resource., metric., datapoint., span.)",
                        parts.join(".")
                    ));
                }
            };
            parts.insert(0, prefix);
        }
        let attribute = |p: &mut Self| p.index();
        Ok(match parts.as_slice() {
            ["resource", "attributes"] => Path::ResourceAttribute(attribute(self)?),
            ["metric", "name"] => Path::MetricName,
            ["metric", "type"] => Path::MetricType,
            ["metric", "unit"] => Path::MetricUnit,
            ["metric", "description"] => Path::MetricDescription,
            ["metric", "aggregation_temporality"] => Path::MetricTemporality,
            ["metric", "is_monotonic"] => Path::MetricMonotonic,
            ["datapoint", "attributes"] => Path::PointAttribute(attribute(self)?),
            ["datapoint", "value_int"] => Path::PointValueInt,
            ["datapoint", "value_double"] => Path::PointValueDouble,
            ["span", "name"] => Path::SpanName,
            ["span", "kind"] => Path::SpanKind,
            ["span", "status", "code"] => Path::SpanStatusCode,
            ["span", "attributes"] => Path::SpanAttribute(attribute(self)?),
            _ => return Err(format!("path {:?} is not supported", parts.join("."))),
        })
    }
}

fn paths(expr: &Expr, out: &mut Vec<Context>) {
    let value = |v: &Value, out: &mut Vec<Context>| {
        if let Value::Path(p) = v {
            out.push(p.context());
        }
    };
    match expr {
        Expr::Or(a, b) | Expr::And(a, b) => {
            paths(a, out);
            paths(b, out);
        }
        Expr::Not(a) => paths(a, out),
        Expr::Compare(a, _, b) => {
            value(a, out);
            value(b, out);
        }
        Expr::IsMatch(v, _) => value(v, out),
        Expr::HasAttrOnDatapoint(..) | Expr::HasAttrKeyOnDatapoint(_) => out.push(Context::Metric),
        Expr::Bool(_) => {}
    }
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

#[derive(Default)]
struct Item<'a> {
    resource: &'a [KeyValue],
    metric: Option<&'a Metric>,
    point: Option<(&'a [KeyValue], Option<PointValue>)>,
    span: Option<&'a Span>,
}

fn attribute(list: &[KeyValue], key: &str) -> Val {
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

fn metric_type(metric: &Metric) -> i64 {
    match metric.data {
        None => 0,
        Some(Data::Gauge(_)) => 1,
        Some(Data::Sum(_)) => 2,
        Some(Data::Histogram(_)) => 3,
        Some(Data::ExponentialHistogram(_)) => 4,
        Some(Data::Summary(_)) => 5,
    }
}

fn resolve(value: &Value, item: &Item) -> Val {
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
fn compare(a: &Val, op: Op, b: &Val) -> bool {
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

fn eval(expr: &Expr, item: &Item) -> bool {
    match expr {
        Expr::Or(a, b) => eval(a, item) || eval(b, item),
        Expr::And(a, b) => eval(a, item) && eval(b, item),
        Expr::Not(a) => !eval(a, item),
        Expr::Bool(b) => *b,
        Expr::Compare(a, op, b) => compare(&resolve(a, item), *op, &resolve(b, item)),
        Expr::IsMatch(target, regex) => match resolve(target, item) {
            Val::Str(s) => regex.is_match(&s),
            Val::Int(i) => regex.is_match(&i.to_string()),
            Val::Double(d) => regex.is_match(&super::attraction::es6_number(d)),
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

#[cfg(test)]
mod tests {
    use super::*;
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
