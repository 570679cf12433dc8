//! `error`, `fault`, `throttle` and the `cause` block: exception events, their stack traces
//! (Java, Python, V8), the status message, and the flags an X-Ray document carried.

use super::*;

pub(super) fn make_cause(
    span: &SpanView,
    kind: SpanKind,
    all_attrs: &Attributes,
    language: &str,
    remaining: &mut Attributes,
) -> (bool, bool, bool, Option<Cause>) {
    let status_code = span
        .status
        .as_ref()
        .map(|s| s.code)
        .unwrap_or(StatusCode::Unset as i32);
    let is_status_error = status_code == StatusCode::Error as i32;
    let exception_events: Vec<_> = span
        .events
        .iter()
        .filter(|e| e.name == "exception")
        .collect();
    let mut cause = None;
    let working_directory = remaining
        .remove(WORKING_DIRECTORY_ATTRIBUTE)
        .map(value_string);
    if !exception_events.is_empty() {
        let remote = matches!(kind, SpanKind::Client | SpanKind::Producer);
        let exceptions = exception_events
            .iter()
            .map(|event| {
                let attrs = attributes(event.attributes);
                // A segment that came from X-Ray keeps its exception ids.
                let id = attrs
                    .get("aws.xray.exception.id")
                    .map(value_string)
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(new_segment_id);
                ExceptionData {
                    id,
                    message: non_empty(str_attr(&attrs, "exception.message")),
                    kind: non_empty(str_attr(&attrs, "exception.type")),
                    remote: match attrs.get(EXCEPTION_REMOTE_ATTRIBUTE).and_then(bool_of) {
                        Some(sent) => Some(sent),
                        None => remote.then_some(true),
                    },
                    truncated: attrs.get(EXCEPTION_TRUNCATED_ATTRIBUTE).and_then(int_of),
                    skipped: attrs.get(EXCEPTION_SKIPPED_ATTRIBUTE).and_then(int_of),
                    cause: attrs.get(EXCEPTION_CAUSE_ATTRIBUTE).map(value_string),
                    stack: parse_stacktrace(&str_attr(&attrs, "exception.stacktrace"), language),
                }
            })
            .collect();
        cause = Some(Cause {
            working_directory,
            exceptions,
        });
    } else if is_status_error {
        let mut message = span
            .status
            .as_ref()
            .map(|s| s.message.to_string())
            .unwrap_or_default();
        if message.is_empty() {
            message = str_attr(all_attrs, "http.status_text");
        }
        if !message.is_empty() {
            remaining.remove("http.status_text");
            cause = Some(Cause {
                working_directory,
                exceptions: vec![ExceptionData {
                    id: new_segment_id(),
                    message: Some(message),
                    ..Default::default()
                }],
            });
        }
    }
    let http_status = all_attrs
        .get("http.status_code")
        .or_else(|| all_attrs.get("http.response.status_code"))
        .and_then(int_of);
    let (error, fault, throttle) = match http_status {
        Some(code @ 400..=499) => (true, false, code == 429),
        Some(500..=599) => (false, true, false),
        _ => (false, is_status_error, false),
    };
    // Flags an X-Ray document carried win: an SDK sets them by hand too (add_fault_flag()).
    let mut sent =
        |key: &str, derived: bool| remaining.remove(key).and_then(bool_of).unwrap_or(derived);
    let error = sent(ERROR_ATTRIBUTE, error);
    let fault = sent(FAULT_ATTRIBUTE, fault);
    let throttle = sent(THROTTLE_ATTRIBUTE, throttle);
    (error, fault, throttle, cause)
}

/// Stack frames from `exception.stacktrace` for the languages whose format is known; others
/// keep the message and type only.
pub fn parse_stacktrace(stacktrace: &str, language: &str) -> Vec<StackFrame> {
    // `\tat label(path: line)` is also how the awsxray receiver renders X-Ray frames.
    let java_style = stacktrace.lines().any(|l| l.starts_with("\tat "));
    let language = if java_style {
        "java".to_string()
    } else {
        language.to_ascii_lowercase()
    };
    match language.as_str() {
        "python" => {
            // `  File "path", line N, in label`, most recent call last: X-Ray wants it first.
            let mut frames: Vec<StackFrame> = stacktrace
                .lines()
                .filter_map(|line| {
                    let rest = line.trim_start().strip_prefix("File \"")?;
                    let (path, rest) = rest.split_once("\", line ")?;
                    let (line_no, label) = match rest.split_once(", in ") {
                        Some((n, label)) => (n, Some(label.trim().to_string())),
                        None => (rest, None),
                    };
                    Some(StackFrame {
                        path: Some(path.to_string()),
                        line: line_no.trim().parse().ok(),
                        label,
                    })
                })
                .collect();
            frames.reverse();
            frames
        }
        "java" => stacktrace
            .lines()
            .filter_map(|line| {
                let rest = line.trim_start().strip_prefix("at ")?;
                let (label, location) = rest.split_once('(')?;
                let location = location.trim_end_matches(')');
                // `path:line`; a frame without a number keeps its whole location as the path
                // (`node:internal/x`, or a receiver frame whose line was null).
                let (path, line_no) = match location.rsplit_once(':') {
                    Some((path, n)) if n.trim().parse::<i64>().is_ok() => {
                        (path, n.trim().parse().ok())
                    }
                    _ => (location, None),
                };
                Some(StackFrame {
                    path: Some(path.to_string()),
                    line: line_no,
                    label: Some(label.to_string()),
                })
            })
            .collect(),
        "javascript" | "nodejs" | "webjs" => stacktrace.lines().filter_map(v8_frame).collect(),
        _ => Vec::new(),
    }
}

/// One frame of a V8 stack trace (Node.js, browsers): `    at label (path:line:column)`, or
/// `    at path:line:column` for an anonymous function. The line and column are taken from the
/// right, so `file:///app/x.mjs:3:7` and `node:internal/timers:1:2` keep their whole path.
pub(super) fn v8_frame(line: &str) -> Option<StackFrame> {
    let rest = line.strip_prefix("    at ")?;
    let (label, location) = match rest.find('(') {
        Some(open) if rest.ends_with(')') => {
            (rest[..open].trim_end(), &rest[open + 1..rest.len() - 1])
        }
        Some(_) => ("", ""),
        None => ("", rest),
    };
    let numbered = |text: &str| text.parse::<i64>().ok();
    let (path, line_no) = match location.rsplit_once(':') {
        Some((before, column)) if numbered(column).is_some() => match before.rsplit_once(':') {
            Some((path, line)) if numbered(line).is_some() => (path, numbered(line)),
            _ => (before, numbered(column)),
        },
        _ if location.contains("native") => ("native", None),
        _ => (location, None),
    };
    if path.is_empty() && label.is_empty() && line_no.is_none() {
        return None;
    }
    Some(StackFrame {
        path: non_empty(path),
        line: line_no,
        label: non_empty(label),
    })
}
