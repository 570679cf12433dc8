//! Component and pipeline ids: `type` or `type/name`, split at the first `/`.

use super::Signal;
use std::fmt;

/// The id of a configured component, e.g. `batch/traces`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    pub kind: String,
    pub name: Option<String>,
}

impl ComponentId {
    /// Parses an id with the collector's rules and messages (`component/identifiable.go`).
    pub fn parse(id: &str) -> Result<Self, String> {
        if id.trim().is_empty() {
            return Err("id must not be empty".into());
        }
        let (kind, name) = match id.split_once('/') {
            Some((kind, name)) => (kind, Some(name)),
            None => (id, None),
        };
        if kind.is_empty() {
            return Err(format!("in {id:?} the part before / should not be empty"));
        }
        let mut chars = kind.chars();
        let valid_type = kind.len() <= 63
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_type {
            return Err(format!(
                "invalid character(s) in type {kind:?} (expected ^[a-zA-Z][0-9a-zA-Z_]{{0,62}}$)"
            ));
        }
        if let Some(name) = name {
            if name.is_empty() {
                return Err(format!("in {id:?} the part after / should not be empty"));
            }
            if name.chars().count() > 1024 {
                return Err(format!("name in {id:?} is longer than 1024 characters"));
            }
            if name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || is_symbol(c))
            {
                return Err(format!(
                    "invalid character(s) in name {name:?}: no separators, control characters or symbols"
                ));
            }
        }
        Ok(ComponentId {
            kind: kind.to_string(),
            name: name.map(str::to_string),
        })
    }
}

/// Characters of Unicode category S (symbols) that are plausible in ids: the ASCII ones.
fn is_symbol(c: char) -> bool {
    matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~')
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{}", self.kind, name),
            None => f.write_str(&self.kind),
        }
    }
}

/// A pipeline id: `traces`, `metrics/emf`, ...
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PipelineId {
    pub signal: Signal,
    pub name: Option<String>,
}

impl PipelineId {
    pub fn parse(id: &str) -> Result<Self, String> {
        let component = ComponentId::parse(id)?;
        let signal = match component.kind.as_str() {
            "traces" => Signal::Traces,
            "metrics" => Signal::Metrics,
            "logs" => Signal::Logs,
            other => {
                return Err(format!(
                    "unknown signal {other:?} (valid values: [traces metrics logs])"
                ));
            }
        };
        Ok(PipelineId {
            signal,
            name: component.name,
        })
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{}", self.signal, name),
            None => write!(f, "{}", self.signal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_like_the_collector() {
        let ok = ComponentId::parse("batch/traces").unwrap();
        assert_eq!(
            (ok.kind.as_str(), ok.name.as_deref()),
            ("batch", Some("traces"))
        );
        assert_eq!(ok.to_string(), "batch/traces");
        assert_eq!(
            ComponentId::parse("a/b/c").unwrap().name.as_deref(),
            Some("b/c")
        );
        let cases = [
            ("", "must not be empty"),
            ("/x", "part before / should not be empty"),
            ("batch/", "part after / should not be empty"),
            ("9batch", "invalid character(s) in type"),
            ("bat-ch", "invalid character(s) in type"),
            ("batch/a b", "invalid character(s) in name"),
        ];
        for (id, want) in cases {
            let err = ComponentId::parse(id).unwrap_err();
            assert!(err.contains(want), "{id:?}: {err}");
        }
        assert!(
            PipelineId::parse("spans")
                .unwrap_err()
                .contains("unknown signal")
        );
        assert_eq!(
            PipelineId::parse("metrics/emf").unwrap().to_string(),
            "metrics/emf"
        );
    }
}
