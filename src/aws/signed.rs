//! The two hot AWS calls (PutTraceSegments, PutLogEvents) are built here and signed with
//! `aws-sigv4` over one pooled hyper/rustls client per exporter. The SDK stays for what it does
//! well: the credential chain and its refresh, region and endpoint rules, and the cold calls
//! (CreateLogGroup, GetParameter, ...). Its per-call orchestration cost about as much CPU as
//! translating the spans of a call.

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::time::{Duration, SystemTime};

/// The AWS services with a hot call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsService {
    Xray,
    Logs,
}

impl AwsService {
    /// The SigV4 signing name.
    fn signing_name(self) -> &'static str {
        match self {
            AwsService::Xray => "xray",
            AwsService::Logs => "logs",
        }
    }

    /// The service-specific endpoint variable the SDK reads (`AWS_ENDPOINT_URL_<ID>`).
    fn endpoint_variable(self) -> &'static str {
        match self {
            AwsService::Xray => "AWS_ENDPOINT_URL_XRAY",
            AwsService::Logs => "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
        }
    }
}

/// Answers larger than this are not from the two calls made here.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Credentials are fetched again this long before they expire, as the SDK's cache does.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// What a failed call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// May pass later: throttling, 5xx, 429, network errors, timeouts, an expired token.
    Retryable,
    /// Will fail again the same way.
    Permanent,
    /// The log group or stream does not exist (CloudWatch Logs creates it on request).
    Missing,
}

/// A failed call: its class, the AWS error code when there was one, and the message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{message}{}", code_prefix(.code), status_suffix(.status))]
pub struct CallError {
    pub class: FailureClass,
    pub code: String,
    pub message: String,
    pub status: Option<u16>,
}

fn code_prefix(code: &str) -> String {
    if code.is_empty() {
        String::new()
    } else {
        format!("{code}: ")
    }
}

fn status_suffix(status: &Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl CallError {
    fn transport(message: String) -> Self {
        CallError {
            class: FailureClass::Retryable,
            code: String::new(),
            message,
            status: None,
        }
    }

    /// An AWS error answer, classified the way both exporters (and the collector) do.
    pub fn from_answer(status: u16, error_type: Option<&str>, body: &[u8]) -> Self {
        let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        // `x-amzn-errortype: Code:http://...` or `"__type": "com.amazonaws...#Code"`.
        let raw = error_type
            .map(str::to_string)
            .or_else(|| {
                parsed
                    .get("__type")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
            })
            .or_else(|| {
                parsed
                    .get("code")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let code = raw
            .rsplit('#')
            .next()
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        let message = ["message", "Message"]
            .iter()
            .find_map(|k| parsed.get(*k).and_then(|m| m.as_str()))
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
        let class = if code == "ResourceNotFoundException" {
            FailureClass::Missing
        } else if status >= 500
            || status == 429
            || code.contains("Throttl")
            || code == "ServiceUnavailableException"
            || code == "ExpiredTokenException"
            || code == "RequestTimeoutException"
        {
            FailureClass::Retryable
        } else {
            FailureClass::Permanent
        };
        CallError {
            class,
            code,
            message,
            status: Some(status),
        }
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Signs requests with SigV4 for one service and region, with credentials from a provider
/// (the SDK's chain, or an assumed role), cached and fetched again shortly before they expire.
/// The one signing layer: the hot AWS calls and the `sigv4auth` extension both use it.
pub struct Signer {
    region: String,
    service: String,
    credentials: SharedCredentialsProvider,
    current: tokio::sync::Mutex<Option<Credentials>>,
}

impl Signer {
    pub fn new(
        credentials: SharedCredentialsProvider,
        region: impl Into<String>,
        service: impl Into<String>,
    ) -> Self {
        Signer {
            region: region.into(),
            service: service.into(),
            credentials,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The SigV4 service name it signs for.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The region it signs for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Forgets the cached credentials, so the next request reads them again (after AWS said
    /// they expired).
    pub async fn forget_credentials(&self) {
        *self.current.lock().await = None;
    }

    /// The cached credentials, fetched again shortly before they expire.
    async fn credentials(&self) -> Result<Credentials, CallError> {
        let mut current = self.current.lock().await;
        if let Some(credentials) = current.as_ref()
            && credentials
                .expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
        {
            return Ok(credentials.clone());
        }
        let fresh = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| CallError::transport(format!("no AWS credentials: {e}")))?;
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    /// Adds the SigV4 headers to `request`, whose body is `body`, as it will be sent: every
    /// header already set is signed.
    pub async fn sign(
        &self,
        request: &mut Request<Full<Bytes>>,
        body: &[u8],
    ) -> Result<(), CallError> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let identity: aws_smithy_runtime_api::client::identity::Identity =
            self.credentials().await?.into();
        let unsignable = |e: &dyn std::fmt::Display| CallError {
            class: FailureClass::Permanent,
            code: String::new(),
            message: format!("cannot sign the request: {e}"),
            status: None,
        };
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| unsignable(&e))?
            .into();
        let uri = request.uri().to_string();
        let method = request.method().as_str().to_string();
        let signable = SignableRequest::new(
            &method,
            &uri,
            request
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
            SignableBody::Precomputed(payload_hash(body)),
        )
        .map_err(|e| unsignable(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| unsignable(&e))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

/// The hex SHA-256 of a request body, as SigV4's canonical request has it. Hashing the body is
/// the largest part of signing a PutTraceSegments call: ring's assembly does it with AVX2 or
/// SSSE3 where the CPU has no SHA extensions (Intel server parts before Ice Lake), where
/// aws-sigv4's own hash would run portable code.
fn payload_hash(body: &[u8]) -> String {
    crate::pipeline::values::hex(ring::digest::digest(&ring::digest::SHA256, body).as_ref())
}

/// Signs and sends the hot calls of one exporter.
pub struct SignedClient {
    http: HttpsClient,
    endpoint: String,
    authority: String,
    signer: Signer,
    timeout: Duration,
    attempts: u32,
}

impl SignedClient {
    /// A client for `service` with the SDK config's region, credentials and endpoint rules; an
    /// exporter's `endpoint` key, `AWS_ENDPOINT_URL_<SERVICE>` and `AWS_ENDPOINT_URL` override
    /// the endpoint in that order, as in the SDK. `max_retries` quick retries per call, as the
    /// SDK's standard retry mode did, before the exporter's own backoff takes over.
    pub async fn new(
        sdk: &SdkConfig,
        service: AwsService,
        configured_endpoint: &str,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<Self, String> {
        let endpoint = resolve_endpoint(sdk, service, configured_endpoint)
            .await?
            .trim_end_matches('/')
            .to_string();
        let uri: hyper::Uri = endpoint
            .parse()
            .map_err(|e| format!("invalid endpoint {endpoint}: {e}"))?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("endpoint {endpoint} has no host"))?
            .to_string();
        let region = sdk.region().ok_or("no region")?.as_ref().to_string();
        let credentials = sdk
            .credentials_provider()
            .ok_or("no AWS credentials provider")?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("cannot load CA certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let http = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(SignedClient {
            http,
            endpoint,
            authority,
            signer: Signer::new(credentials, region, service.signing_name()),
            timeout,
            attempts: max_retries + 1,
        })
    }

    /// POSTs `body` to `path` with `headers`, signed; the answer's body on success.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&'static str, &str)],
        body: Bytes,
    ) -> Result<Bytes, CallError> {
        let mut attempt = 0;
        loop {
            let result = self.post_once(path, headers, body.clone()).await;
            match &result {
                Err(error) if error.code == "ExpiredTokenException" => {
                    // Read the credentials again before the next try.
                    self.signer.forget_credentials().await;
                }
                _ => {}
            }
            attempt += 1;
            match result {
                Err(error) if error.class == FailureClass::Retryable && attempt < self.attempts => {
                    // The SDK's standard mode: a jittered exponential wait, capped at 20 s.
                    let cap = 2f64.powi(attempt as i32 - 1).min(20.0);
                    tokio::time::sleep(Duration::from_secs_f64(fastrand::f64() * cap)).await;
                }
                other => return other,
            }
        }
    }

    async fn post_once(
        &self,
        path: &str,
        headers: &[(&'static str, &str)],
        body: Bytes,
    ) -> Result<Bytes, CallError> {
        let mut request = Request::builder()
            .method("POST")
            .uri(format!("{}{path}", self.endpoint))
            .header("host", &self.authority);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request
            .body(Full::new(body.clone()))
            .map_err(|e| CallError::transport(format!("cannot build the request: {e}")))?;
        self.signer.sign(&mut request, &body).await?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                CallError::transport(format!("cannot reach {}: {e:#}", self.endpoint))
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| CallError::transport(format!("cannot read the answer: {e}")))?
                .to_bytes();
            Ok::<_, CallError>((parts, body))
        };
        let (parts, answer) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| CallError::transport(format!("no answer within {:?}", self.timeout)))??;
        if parts.status.is_success() {
            return Ok(answer);
        }
        let error_type = parts
            .headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok());
        Err(CallError::from_answer(
            parts.status.as_u16(),
            error_type,
            &answer,
        ))
    }
}

/// The endpoint the SDK would use for `service`.
async fn resolve_endpoint(
    sdk: &SdkConfig,
    service: AwsService,
    configured: &str,
) -> Result<String, String> {
    if !configured.is_empty() {
        return Ok(configured.to_string());
    }
    if let Ok(url) = std::env::var(service.endpoint_variable())
        && !url.is_empty()
    {
        return Ok(url);
    }
    if let Some(url) = sdk.endpoint_url() {
        return Ok(url.to_string());
    }
    let region = sdk.region().ok_or("no region")?.as_ref().to_string();
    let fips = sdk.use_fips().unwrap_or(false);
    let dual_stack = sdk.use_dual_stack().unwrap_or(false);
    let unresolvable = |e: &dyn std::fmt::Display| format!("no endpoint for {region}: {e}");
    // Each SDK crate has its own resolver and parameter types with the same shape.
    macro_rules! resolve_with {
        ($sdk:ident) => {{
            use $sdk::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
            let params = Params::builder()
                .region(region.clone())
                .use_fips(fips)
                .use_dual_stack(dual_stack)
                .build()
                .map_err(|e| unresolvable(&e))?;
            DefaultResolver::new()
                .resolve_endpoint(&params)
                .await
                .map_err(|e| unresolvable(&e))?
        }};
    }
    let endpoint = match service {
        AwsService::Xray => resolve_with!(aws_sdk_xray),
        AwsService::Logs => resolve_with!(aws_sdk_cloudwatchlogs),
    };
    Ok(endpoint.url().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_like_the_sdk_does() {
        let class = |status, header: Option<&str>, body: &str| {
            let e = CallError::from_answer(status, header, body.as_bytes());
            (e.class, e.code)
        };
        assert_eq!(
            class(
                400,
                None,
                r#"{"__type":"com.amazonaws.logs#ResourceNotFoundException","message":"x"}"#
            ),
            (FailureClass::Missing, "ResourceNotFoundException".into())
        );
        assert_eq!(
            class(
                400,
                Some("ThrottledException:http://internal.amazon.com/"),
                "{}"
            ),
            (FailureClass::Retryable, "ThrottledException".into())
        );
        assert_eq!(
            class(400, None, r#"{"__type":"ExpiredTokenException"}"#).0,
            FailureClass::Retryable
        );
        assert_eq!(class(503, None, "").0, FailureClass::Retryable);
        assert_eq!(class(429, None, "").0, FailureClass::Retryable);
        assert_eq!(
            class(
                400,
                None,
                r#"{"__type":"InvalidParameterException","message":"bad"}"#
            ),
            (FailureClass::Permanent, "InvalidParameterException".into())
        );
        let e = CallError::from_answer(
            403,
            None,
            br#"{"Message":"denied","__type":"AccessDeniedException"}"#,
        );
        assert_eq!(e.to_string(), "AccessDeniedException: denied (HTTP 403)");
    }

    /// The payload hash is SHA-256 at every length around the block boundaries.
    #[test]
    fn the_payload_hash_is_sha_256() {
        use sha2::Digest;
        let body: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 1000, 3000] {
            assert_eq!(
                payload_hash(&body[..len]),
                crate::pipeline::values::hex(&sha2::Sha256::digest(&body[..len])),
                "{len} bytes"
            );
        }
    }

    #[tokio::test]
    async fn endpoints_follow_the_sdk_rules() {
        let sdk = SdkConfig::builder()
            .region(aws_config::Region::new("cn-north-1"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        // The variable is the service-specific one; the test process sets neither.
        if std::env::var(AwsService::Logs.endpoint_variable()).is_err() {
            assert_eq!(
                resolve_endpoint(&sdk, AwsService::Logs, "").await.unwrap(),
                "https://logs.cn-north-1.amazonaws.com.cn"
            );
        }
        assert_eq!(
            resolve_endpoint(&sdk, AwsService::Xray, "http://127.0.0.1:9")
                .await
                .unwrap(),
            "http://127.0.0.1:9"
        );
        let fips = SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .use_fips(true)
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        if std::env::var(AwsService::Xray.endpoint_variable()).is_err() {
            assert_eq!(
                resolve_endpoint(&fips, AwsService::Xray, "").await.unwrap(),
                "https://xray-fips.us-east-1.amazonaws.com"
            );
        }
    }
}
