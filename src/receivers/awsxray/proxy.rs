//! The X-Ray daemon's TCP sampling proxy. X-Ray SDKs POST `/GetSamplingRules` and
//! `/SamplingTargets` to the daemon address; those requests (and X-Ray's other sampling read,
//! `/SamplingStatisticSummaries`) are signed with SigV4 using the sidecar's credentials and
//! forwarded to X-Ray, and X-Ray's answer is returned. Any other path or method is refused
//! with 403: the proxy signs with the task role, and must not lend it to anything else that can
//! reach the port (the X-Ray daemon and the collector forward everything).

use super::config::ProxyServerConfig;
use crate::http_server;
use crate::pipeline::Shutdown;
use aws_credential_types::provider::SharedCredentialsProvider;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Sampling requests and answers are small; anything larger is not an SDK talking.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long X-Ray may take to answer before the SDK is told the proxy failed.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

struct SamplingProxy {
    upstream: String,
    signer: crate::aws::signed::Signer,
    client: HttpsClient,
}

pub async fn start(
    id: &str,
    config: &ProxyServerConfig,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let region = crate::aws::resolve_region(&config.region, config.local_mode)
        .await
        .ok_or_else(|| {
            std::io::Error::other(
                "proxy_server: cannot determine the AWS region from config, environment or ECS task metadata; set proxy_server.region",
            )
        })?;
    let upstream = if config.aws_endpoint.is_empty() {
        format!("https://{}.{region}.amazonaws.com", config.service_name)
    } else {
        config.aws_endpoint.trim_end_matches('/').to_string()
    };
    let sdk = crate::aws::sdk_loader()
        .region(aws_config::Region::new(region.clone()))
        .load()
        .await;
    let mut credentials = sdk
        .credentials_provider()
        .ok_or_else(|| std::io::Error::other("proxy_server: no AWS credentials provider"))?;
    if !config.role_arn.is_empty() {
        let role = aws_config::sts::AssumeRoleProvider::builder(&config.role_arn)
            .session_name("otel-sidecar-xray-proxy")
            .region(aws_config::Region::new(region.clone()))
            .configure(&sdk)
            .build()
            .await;
        credentials = SharedCredentialsProvider::new(role);
    }
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .build();
    let proxy = Arc::new(SamplingProxy {
        upstream,
        signer: crate::aws::signed::Signer::new(credentials, region, &config.service_name),
        client: Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector),
    });
    let listener = http_server::bind(&config.endpoint, &format!("{id}/proxy"), "http").await?;
    let handler = move |request: Request<hyper::body::Incoming>| {
        let proxy = proxy.clone();
        async move {
            match proxy.forward(request).await {
                Ok(response) => response,
                Err(message) => {
                    tracing::warn!(%message, "sampling proxy request failed");
                    Response::builder()
                        .status(StatusCode::BAD_GATEWAY)
                        .body(Full::new(Bytes::from(message)))
                        .expect("static response")
                }
            }
        }
    };
    Ok(http_server::serve(listener, handler, shutdown, false))
}

/// The X-Ray API paths an SDK's sampler calls; nothing else is signed.
pub const SAMPLING_PATHS: &[&str] = &[
    "/GetSamplingRules",
    "/SamplingTargets",
    "/SamplingStatisticSummaries",
];

/// Whether the proxy forwards a request: a POST to one of [`SAMPLING_PATHS`].
pub fn is_sampling_request(method: &hyper::Method, path: &str) -> bool {
    method == hyper::Method::POST && SAMPLING_PATHS.contains(&path)
}

impl SamplingProxy {
    async fn forward(
        &self,
        request: Request<hyper::body::Incoming>,
    ) -> Result<Response<Full<Bytes>>, String> {
        if !is_sampling_request(request.method(), request.uri().path()) {
            crate::internal_events::SamplingRequestRefused {
                method: request.method().as_str(),
                path: request.uri().path(),
            }
            .emit();
            return Ok(Response::builder()
                .status(StatusCode::FORBIDDEN)
                .body(Full::new(Bytes::from_static(
                    b"the sampling proxy forwards only POST /GetSamplingRules, /SamplingTargets and /SamplingStatisticSummaries\n",
                )))
                .expect("static response"));
        }
        let (parts, body) = request.into_parts();
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| format!("cannot read request body: {e}"))?
            .to_bytes();
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let url = format!("{}{path}", self.upstream);
        let mut upstream = Request::builder().method(parts.method.clone()).uri(&url);
        for name in ["content-type", "accept", "user-agent"] {
            if let Some(value) = parts.headers.get(name) {
                upstream = upstream.header(name, value);
            }
        }
        let mut upstream = upstream
            .body(Full::new(body.clone()))
            .map_err(|e| format!("cannot build upstream request: {e}"))?;
        let host = upstream
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        upstream.headers_mut().insert(
            "host",
            host.parse()
                .map_err(|e| format!("bad upstream host: {e}"))?,
        );
        self.sign(&mut upstream, &body).await?;
        let response = tokio::time::timeout(UPSTREAM_TIMEOUT, self.client.request(upstream))
            .await
            .map_err(|_| format!("X-Ray did not answer within {UPSTREAM_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| format!("cannot read X-Ray's answer: {e}"))?
            .to_bytes();
        let mut answer = Response::builder().status(parts.status);
        if let Some(content_type) = parts.headers.get("content-type") {
            answer = answer.header("content-type", content_type);
        }
        answer
            .body(Full::new(body))
            .map_err(|e| format!("cannot build answer: {e}"))
    }

    async fn sign(&self, request: &mut Request<Full<Bytes>>, body: &[u8]) -> Result<(), String> {
        self.signer
            .sign(request, body)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sampling_calls_are_forwarded() {
        let post = hyper::Method::POST;
        assert!(is_sampling_request(&post, "/GetSamplingRules"));
        assert!(is_sampling_request(&post, "/SamplingTargets"));
        assert!(!is_sampling_request(
            &hyper::Method::GET,
            "/GetSamplingRules"
        ));
        for path in [
            "/TraceSegments",
            "/PutTraceSegments",
            "/",
            "/GetSamplingRules/../CreateGroup",
        ] {
            assert!(!is_sampling_request(&post, path), "{path}");
        }
    }
}
