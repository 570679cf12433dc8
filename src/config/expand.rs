//! `${...}` expansion in config values, as the collector's confmap resolver does it with ADOT's
//! default scheme `env`: `${VAR}`, `${env:VAR}`, `${env:VAR:-default}`, nested references, and
//! `$$` for a literal `$`.

use serde_yaml_ng::Value;

/// What expanding a config tree produced besides the new tree.
#[derive(Debug, Default)]
pub struct ExpansionReport {
    /// `(yaml path, message)` for each reference that could not be expanded.
    pub errors: Vec<(String, String)>,
    /// Names of referenced environment variables that are not set.
    pub unset_variables: Vec<String>,
}

/// Expands every string in `value` in place. `lookup` reads an environment variable.
pub fn expand_tree(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    report: &mut ExpansionReport,
) {
    match value {
        Value::String(text) if text.contains('$') => match expand_scalar(text, lookup, report) {
            Ok(expanded) => *value = expanded,
            Err(message) => report.errors.push((path.to_string(), message)),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_tree(item, &format!("{path}[{i}]"), lookup, report);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key_text(key);
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                expand_tree(item, &child, lookup, report);
            }
        }
        Value::Tagged(tagged) => expand_tree(&mut tagged.value, path, lookup, report),
        _ => {}
    }
}

/// A mapping key as text, for YAML paths in messages.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        other => format!("{other:?}"),
    }
}

/// Expands one scalar. When the whole scalar is a single reference, the retrieved text is
/// parsed as YAML (so `${N}` can become a number), as the collector does.
fn expand_scalar(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    report: &mut ExpansionReport,
) -> Result<Value, String> {
    let whole_reference = text.starts_with("${") && matching_close(text, 0) == Some(text.len() - 1);
    let expanded = expand_text(text, lookup, report)?;
    if whole_reference {
        if expanded.is_empty() {
            return Ok(Value::Null);
        }
        return Ok(serde_yaml_ng::from_str::<Value>(&expanded).unwrap_or(Value::String(expanded)));
    }
    Ok(Value::String(expanded))
}

/// Index of the `}` closing the `${` that starts at `start`, honouring nested `${...}`.
fn matching_close(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            depth += 1;
            i += 2;
            continue;
        }
        if bytes[i] == b'}' {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

fn expand_text(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    report: &mut ExpansionReport,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'$') {
            out.push('$');
            i += 2;
        } else if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            let close = matching_close(text, i)
                .ok_or_else(|| format!("unterminated reference in {text:?}"))?;
            let inner = expand_text(&text[i + 2..close], lookup, report)?;
            out.push_str(&resolve_reference(&inner, lookup, report)?);
            i = close + 1;
        } else {
            let ch = text[i..]
                .chars()
                .next()
                .expect("index is on a char boundary");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    Ok(out)
}

fn resolve_reference(
    reference: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    report: &mut ExpansionReport,
) -> Result<String, String> {
    let (scheme, opaque) = match reference.split_once(':') {
        Some((scheme, rest)) if is_scheme(scheme) => (scheme, rest),
        _ => ("env", reference),
    };
    if scheme != "env" {
        return Err(format!(
            "unsupported config provider scheme {scheme:?} in ${{{reference}}} (supported: env)"
        ));
    }
    let (name, default) = match opaque.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (opaque, None),
    };
    if !is_env_name(name) {
        return Err(format!(
            "environment variable name {name:?} is not valid (expected [a-zA-Z_][a-zA-Z0-9_]*)"
        ));
    }
    match (lookup(name), default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_string()),
        (None, None) => {
            report.unset_variables.push(name.to_string());
            Ok(String::new())
        }
    }
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("0.0.0.0".into()),
            "PORT" => Some("4317".into()),
            "INNER" => Some("HOST".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn expand(text: &str) -> (Result<Value, String>, Vec<String>) {
        let mut report = ExpansionReport::default();
        let out = expand_scalar(text, &env, &mut report);
        (out, report.unset_variables)
    }

    #[test]
    fn expands_references() {
        let s = |t: &str| Ok(Value::String(t.into()));
        let cases: Vec<(&str, Result<Value, String>)> = vec![
            ("${HOST}:${PORT}", s("0.0.0.0:4317")),
            ("${env:HOST}:4318", s("0.0.0.0:4318")),
            ("${env:MISSING:-localhost}:1", s("localhost:1")),
            ("${env:MISSING:-}x", s("x")),
            ("${env:${INNER}}", s("0.0.0.0")),
            ("$${HOST}", s("${HOST}")),
            ("cost $$5", s("cost $5")),
            ("${PORT}", Ok(Value::Number(4317.into()))),
            ("${EMPTY}", Ok(Value::Null)),
        ];
        for (text, want) in cases {
            assert_eq!(expand(text).0, want, "{text}");
        }
    }

    #[test]
    fn reports_unset_and_bad_references() {
        let (out, unset) = expand("a${NOPE}b");
        assert_eq!(out, Ok(Value::String("ab".into())));
        assert_eq!(unset, vec!["NOPE".to_string()]);
        assert!(
            expand("${file:/etc/x}")
                .0
                .unwrap_err()
                .contains("unsupported")
        );
        assert!(expand("${env:1BAD}").0.unwrap_err().contains("not valid"));
        assert!(expand("${HOST").0.unwrap_err().contains("unterminated"));
    }
}
