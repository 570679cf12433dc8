//! A small HTTP server loop shared by the OTLP/HTTP receiver, `health_check` and the
//! self-metrics endpoint: accepts until shutdown, then lets in-flight requests finish.

use crate::pipeline::Shutdown;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Resolves a collector endpoint (`localhost:4318`, `0.0.0.0:4317`, `:8888`) to one address.
/// `localhost` means IPv4 loopback, as Go's listener picks it.
pub async fn resolve_endpoint(endpoint: &str) -> std::io::Result<SocketAddr> {
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("endpoint {endpoint:?} must be host:port"),
        )
    })?;
    let host = match host {
        "" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        other => other,
    };
    tokio::net::lookup_host(format!("{host}:{port}"))
        .await?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("endpoint {endpoint:?} resolves to no address"),
            )
        })
}

/// Binds a TCP listener for `endpoint` and logs the bound address (tests bind port 0 and read
/// it from this line).
pub async fn bind(
    endpoint: &str,
    component: &str,
    transport: &str,
) -> std::io::Result<TcpListener> {
    let address = resolve_endpoint(endpoint).await?;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {address}: {e}")))?;
    let bound = listener.local_addr()?;
    tracing::info!(message = "listening", component, transport, address = %bound);
    Ok(listener)
}

/// Serves `handler` on `listener` until `shutdown`, then waits for open connections to finish
/// their current request. `keep_alive: false` closes every connection after one response, as the
/// collector's health endpoint does.
pub fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    shutdown: Shutdown,
    keep_alive: bool,
) -> JoinHandle<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    serve_maybe_tls(listener, None, handler, shutdown, keep_alive)
}

/// [`serve`] over TLS: each connection's handshake (bounded by [`TLS_HANDSHAKE_TIMEOUT`]) first.
pub fn serve_tls<H, F>(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    handler: H,
    shutdown: Shutdown,
) -> JoinHandle<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    serve_maybe_tls(listener, Some(tls), handler, shutdown, true)
}

/// How long a client may take over its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A TLS acceptor from PEM files: the certificate chain and its private key.
pub fn tls_acceptor(
    certificate: &std::path::Path,
    key: &std::path::Path,
) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let chain = CertificateDer::pem_file_iter(certificate)
        .map_err(|e| invalid(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(&e))?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(&e))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| invalid(&e))?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

fn serve_maybe_tls<H, F>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: H,
    shutdown: Shutdown,
    keep_alive: bool,
) -> JoinHandle<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder.http1().keep_alive(keep_alive);
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(error) => {
                            tracing::warn!(%error, "accept failed");
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let handler = handler.clone();
                    let service = hyper::service::service_fn(move |request| {
                        let response = handler(request);
                        async move { Ok::<_, Infallible>(response.await) }
                    });
                    match &tls {
                        None => {
                            let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                            let connection = graceful.watch(connection);
                            tokio::spawn(async move {
                                let _ = connection.await;
                            });
                        }
                        Some(acceptor) => {
                            let Ok(Ok(stream)) = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
                                continue;
                            };
                            let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                            let connection = graceful.watch(connection);
                            tokio::spawn(async move {
                                let _ = connection.await;
                            });
                        }
                    }
                }
                _ = &mut stop => break,
            }
        }
        drop(listener);
        graceful.shutdown().await;
    })
}
