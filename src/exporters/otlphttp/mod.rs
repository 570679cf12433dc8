//! The `otlp_http` exporter (`otlphttp`, its older name, too): OTLP/HTTP to any collector or
//! to AWS's OTLP endpoints for X-Ray, CloudWatch Logs and CloudWatch, signed by `sigv4auth`.
//! A batch is encoded once (`request`), sent with the exporter's retries (`answer` says what
//! each reply means), and on X-Ray's endpoint split to stay within its per-request limits.

mod answer;
pub mod config;
mod request;

pub use config::{OtlpHttpConfig, OtlpHttpSettings};

use super::{ExportError, InFlight};
use crate::aws::calls::{Answer, Retrying, Unit};
use crate::aws::signed::Signer;
use crate::config::{ComponentId, Signal};
use crate::internal_events::{DropReason, report_otlp_dropped as report_dropped};
use crate::pipeline::Payload;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use request::PreparedRequest;
use std::sync::Arc;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Answers larger than this are not OTLP responses.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// One destination of a signal: its URL and, with an authenticator, its signer.
struct Destination {
    url: hyper::Uri,
    signer: Option<Signer>,
}

/// A built `otlp_http` exporter.
pub struct OtlpHttpExporter {
    id: String,
    settings: Arc<OtlpHttpSettings>,
    client: HttpsClient,
    traces: Option<Arc<Destination>>,
    metrics: Option<Arc<Destination>>,
    logs: Option<Arc<Destination>>,
}

impl OtlpHttpExporter {
    /// `signers` sign the requests of their signal, when `auth.authenticator` names an
    /// extension that signs (the service builds them from it).
    pub fn new(
        id: &ComponentId,
        settings: &OtlpHttpSettings,
        mut signers: Vec<(Signal, Signer)>,
    ) -> Result<Self, ExportError> {
        let client = https_client(&settings.config.tls).map_err(ExportError::Setup)?;
        let mut destination = |signal: Signal| -> Result<Option<Arc<Destination>>, ExportError> {
            let Some(url) = settings.url(signal) else {
                return Ok(None);
            };
            let signer = signers
                .iter()
                .position(|(s, _)| *s == signal)
                .map(|i| signers.swap_remove(i).1);
            let url = url
                .parse()
                .map_err(|e| ExportError::Setup(format!("invalid URL {url}: {e}")))?;
            Ok(Some(Arc::new(Destination { url, signer })))
        };
        Ok(OtlpHttpExporter {
            id: id.to_string(),
            settings: Arc::new(settings.clone()),
            traces: destination(Signal::Traces)?,
            metrics: destination(Signal::Metrics)?,
            logs: destination(Signal::Logs)?,
            client,
        })
    }

    /// Encodes the batch now (in order) and returns the sending, to be awaited.
    pub fn start(&self, mut payload: Payload) -> InFlight {
        let signal = payload.signal();
        let destination = match signal {
            Signal::Traces => self.traces.clone(),
            Signal::Metrics => self.metrics.clone(),
            Signal::Logs => self.logs.clone(),
        };
        let Some(destination) = destination else {
            let items = payload.item_count() as u64;
            return Box::pin(std::future::ready(Err(ExportError::Dropped {
                items,
                reason: DropReason::PermanentError,
            })));
        };
        let limits = request::Limits::for_destination(&destination.url);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let outside = request::drop_outside_window(&mut payload, limits, now);
        report_dropped(
            &self.id,
            DropReason::OutsideTimeWindow,
            outside,
            &"span times outside the window X-Ray's OTLP endpoint takes (2 h ahead, 14 days back)",
        );
        let requests = match request::prepare(payload, &self.settings.config, limits) {
            Ok(requests) => requests,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        let client = self.client.clone();
        let settings = self.settings.clone();
        let exporter = self.id.clone();
        Box::pin(async move {
            let retrying = Retrying {
                call: "OTLP export",
                exporter: &exporter,
                settings: &settings.config.retry_on_failure,
                report_dropped,
            };
            let mut dropped = 0;
            for prepared in requests {
                dropped += retrying
                    .send(prepared, |prepared| {
                        call(
                            &client,
                            &settings,
                            &destination,
                            &exporter,
                            signal,
                            prepared,
                        )
                    })
                    .await;
            }
            let dropped = dropped + outside;
            if dropped > 0 {
                return Err(ExportError::Counted { items: dropped });
            }
            Ok(())
        })
    }
}

impl Unit for PreparedRequest {
    fn items(&self) -> u64 {
        self.items
    }
}

/// Sends one prepared request and reads the answer.
async fn call(
    client: &HttpsClient,
    settings: &OtlpHttpSettings,
    destination: &Destination,
    exporter: &str,
    signal: Signal,
    prepared: PreparedRequest,
) -> Answer<PreparedRequest> {
    let again = |prepared, error: String| Answer::Again {
        rest: prepared,
        refused: 0,
        error,
        retry_after: None,
    };
    let mut request = match prepared.http_request(&destination.url, &settings.config) {
        Ok(request) => request,
        Err(error) => {
            return Answer::Failed {
                items: prepared.items,
                error,
            };
        }
    };
    if let Some(signer) = &destination.signer
        && let Err(error) = signer.sign(&mut request, &prepared.body).await
    {
        return again(prepared, error.to_string());
    }
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("cannot reach {}: {e:#}", destination.url))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>((parts, body))
    };
    let (parts, body) = match tokio::time::timeout(*settings.config.timeout, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => return again(prepared, error),
        Err(_) => {
            let error = format!("no answer within {:?}", settings.config.timeout);
            return again(prepared, error);
        }
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let verdict = answer::read(
        signal,
        parts.status.as_u16(),
        header("retry-after"),
        header("content-type"),
        &body,
    );
    match verdict {
        answer::Verdict::Accepted { rejected, message } => {
            let refused = rejected.min(prepared.items);
            report_dropped(exporter, DropReason::Rejected, refused, &message);
            Answer::Done { refused }
        }
        answer::Verdict::Retry { error, after } => Answer::Again {
            rest: prepared,
            refused: 0,
            error,
            retry_after: after,
        },
        answer::Verdict::Refused { error } => Answer::Failed {
            items: prepared.items,
            error,
        },
    }
}

/// The HTTP/1.1 client, TLS as `tls` says; plain HTTP for `http://` URLs.
fn https_client(tls: &crate::exporters::client::TlsSettings) -> Result<HttpsClient, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.client_config()?)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build(connector))
}
