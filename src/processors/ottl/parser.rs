//! Tokens into an expression: precedence, paths, the enums and the supported functions.

use super::ast::{Context, Expr, Op, Path, Val, Value};
use super::lexer::Token;
use regex::Regex;

pub(super) struct Parser {
    pub(super) tokens: Vec<Token>,
    pub(super) at: usize,
    /// The context of a bare path (`name`, `attributes[...]`) in the explicit legacy form.
    pub(super) default: Option<Context>,
}

pub(super) fn enum_value(name: &str) -> Option<i64> {
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
    pub(super) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }
    pub(super) fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }
    pub(super) fn expect(&mut self, want: Token) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            other => Err(format!("expected {want:?}, found {other:?}")),
        }
    }
    pub(super) fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w == word)
    }

    pub(super) fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    pub(super) fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.keyword("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }
    pub(super) fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.term()
    }
    pub(super) fn term(&mut self) -> Result<Expr, String> {
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
    pub(super) fn maybe_compare_bool(&mut self, call: Expr) -> Result<Expr, String> {
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
    pub(super) fn string_argument(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(s),
            other => Err(format!("expected a string literal, found {other:?}")),
        }
    }
    pub(super) fn call(&mut self, name: &str) -> Result<Expr, String> {
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
    pub(super) fn value(&mut self) -> Result<Value, String> {
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
    pub(super) fn index(&mut self) -> Result<String, String> {
        self.expect(Token::LBracket)?;
        let key = self.string_argument()?;
        self.expect(Token::RBracket)?;
        if self.peek() == Some(&Token::LBracket) {
            return Err("nested attribute paths are not supported".into());
        }
        Ok(key)
    }
    pub(super) fn path(&mut self, first: String) -> Result<Path, String> {
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

pub(super) fn paths(expr: &Expr, out: &mut Vec<Context>) {
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
