//! The `http` block: request and response from the HTTP semantic conventions (old and new
//! names), the URL put together as the collector does.

use super::*;

pub(super) fn make_http<'a>(
    span: &SpanView,
    kind: SpanKind,
    from_xray: bool,
    remaining: &mut Attributes<'a>,
) -> Option<HttpData<'a>> {
    let mut request = HttpRequest::default();
    let mut forwarded = None;
    let mut response = HttpResponse::default();
    let mut url_parts: BTreeMap<&str, Cow<'a, str>> = BTreeMap::new();
    let mut has_http = false;
    let mut has_url_attributes = false;
    remaining.retain(|key, value| {
        // Rendered only for the keys that are used.
        let text = || value_str(value);
        let mut consumed = true;
        match key {
            "http.method" | "http.request.method" => {
                request.method = Some(text());
                has_http = true;
            }
            "http.client_ip" | "client.address" => {
                request.client_ip = Some(text());
                // The collector's guess for OTLP spans; an X-Ray document says for itself.
                if !from_xray {
                    request.x_forwarded_for = Some(true);
                }
                has_http = true;
            }
            X_FORWARDED_FOR_ATTRIBUTE => forwarded = bool_of(value),
            "http.user_agent" | "user_agent.original" => {
                request.user_agent = Some(text());
                has_http = true;
            }
            "http.status_code" | "http.response.status_code" => {
                response.status = int_of(value);
                has_http = true;
            }
            "http.url" | "url.full" => {
                url_parts.insert("http.url", text());
                has_http = true;
                has_url_attributes = true;
            }
            "http.scheme" | "url.scheme" => {
                url_parts.insert("http.scheme", text());
                has_http = true;
            }
            "http.host" | "server.address" => {
                url_parts.insert("http.host", text());
                has_http = true;
                has_url_attributes = true;
            }
            "http.target" => {
                url_parts.insert("http.target", text());
                has_http = true;
            }
            "url.path" => {
                url_parts.insert("url.path", text());
                has_http = true;
            }
            "url.query" => {
                url_parts.insert("url.query", text());
                has_http = true;
            }
            "http.server_name" => {
                url_parts.insert("http.server_name", text());
                has_http = true;
                has_url_attributes = true;
            }
            "net.host.port" | "server.port" => {
                url_parts.insert("net.host.port", text());
                has_http = true;
            }
            "host.name" => {
                url_parts.insert("host.name", text());
                has_url_attributes = true;
            }
            "net.host.name" => {
                url_parts.insert("net.host.name", text());
                has_url_attributes = true;
            }
            "net.peer.name" => {
                url_parts.insert("net.peer.name", text());
            }
            "net.peer.port" => {
                url_parts.insert("net.peer.port", text());
            }
            "net.peer.ip" | "network.peer.address" => {
                if request.client_ip.is_none() {
                    request.client_ip = Some(text());
                }
                url_parts.insert("net.peer.ip", text());
                has_url_attributes = true;
            }
            "http.response_content_length" | "http.response.body.size" => {
                response.content_length = Some(value_json(value));
                has_http = true;
            }
            _ => consumed = false,
        }
        !consumed
    });
    if !has_http {
        return None;
    }
    if from_xray {
        request.x_forwarded_for = forwarded;
    }
    if has_url_attributes {
        request.url = Some(construct_url(&url_parts, kind == SpanKind::Server));
    }
    if response.content_length.is_none() {
        response.content_length = response_size_from_events(span, remaining).map(Value::from);
    }
    // An empty response object says nothing (an X-Ray SDK leaves it out without a status).
    let response = (response != HttpResponse::default()).then_some(response);
    Some(HttpData {
        request: Some(request),
        response,
    })
}

/// The payload size of the first received message among the span's attributes (`span_attrs`,
/// which still hold the messaging keys) and its events' attributes.
pub(super) fn response_size_from_events(span: &SpanView, span_attrs: &Attributes) -> Option<i64> {
    let size = |attrs: &Attributes| {
        (str_attr(attrs, "message.type") == "RECEIVED")
            .then(|| {
                attrs
                    .get("messaging.message_payload_size_bytes")
                    .and_then(int_of)
            })
            .flatten()
    };
    size(span_attrs).or_else(|| {
        span.events
            .iter()
            .find_map(|event| size(&attributes(event.attributes)))
    })
}

pub(super) fn construct_url<'a>(
    parts: &BTreeMap<&str, Cow<'a, str>>,
    server: bool,
) -> Cow<'a, str> {
    if let Some(url) = parts.get("http.url") {
        return url.clone();
    }
    let part = |key: &str| parts.get(key).map(|p| &**p);
    let scheme = part("http.scheme").unwrap_or("http");
    let (host, port) = match part("http.host") {
        Some(host) => (host, ""),
        None if server => (
            ["http.server_name", "net.host.name", "host.name"]
                .iter()
                .find_map(|k| part(k))
                .unwrap_or_default(),
            part("net.host.port").unwrap_or_default(),
        ),
        None => (
            ["net.peer.name", "net.peer.ip"]
                .iter()
                .find_map(|k| part(k))
                .unwrap_or_default(),
            part("net.peer.port").unwrap_or_default(),
        ),
    };
    let mut url = format!("{scheme}://{host}");
    let default_port = (scheme == "http" && port == "80") || (scheme == "https" && port == "443");
    if !port.is_empty() && !default_port {
        url.push(':');
        url.push_str(port);
    }
    match (parts.get("http.target"), parts.get("url.path")) {
        (Some(target), _) => url.push_str(target),
        (None, Some(path)) => {
            url.push_str(path);
            if let Some(query) = parts.get("url.query") {
                url.push('?');
                url.push_str(query);
            }
        }
        (None, None) => url.push('/'),
    }
    Cow::Owned(url)
}
