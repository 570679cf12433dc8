//! The `health_check` extension, legacy mode (the collector's default): 503 until every
//! pipeline has started, 200 with `status`/`upSince`/`uptime` while running, 503 again from the
//! start of shutdown. Also the client side used by `otel-sidecar healthcheck` (ADOT's
//! `/healthcheck` contract).

use crate::config::duration::format_go_duration;
use crate::http_server;
use crate::pipeline::Shutdown;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tokio::task::JoinHandle;

/// `extensions.health_check`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default)]
    pub response_body: Option<ResponseBody>,
    /// Accepted for compatibility; the collector documents it as not working.
    #[serde(default)]
    pub check_collector_pipeline: Option<Value>,
}

/// Fixed bodies instead of the JSON document.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseBody {
    #[serde(default)]
    pub healthy: String,
    #[serde(default)]
    pub unhealthy: String,
}

/// The collector's default: loopback only.
pub const DEFAULT_ENDPOINT: &str = "localhost:13133";
/// The port ADOT's `/healthcheck` probes by default.
pub const DEFAULT_PORT: u16 = 13133;

impl crate::config::ComponentSection for HealthCheckConfig {
    type Settings = Self;

    fn validate(self) -> Result<Self, Vec<crate::config::InvalidSetting>> {
        let mut invalid: Vec<_> = crate::config::check_listen_endpoint("endpoint", &self.endpoint)
            .into_iter()
            .collect();
        if !self.path.starts_with('/') {
            invalid.push(crate::config::InvalidSetting::new(
                "path",
                &self.path,
                "a URL path starting with /",
            ));
        }
        if invalid.is_empty() {
            Ok(self)
        } else {
            Err(invalid)
        }
    }
}

fn default_endpoint() -> String {
    DEFAULT_ENDPOINT.into()
}
fn default_path() -> String {
    "/".into()
}

/// Whether the service is ready, and since when. Shared by the service and the extension.
#[derive(Debug, Clone, Default)]
pub struct HealthState(Arc<Mutex<Option<(SystemTime, Instant)>>>);

impl HealthState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_ready(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((SystemTime::now(), Instant::now()));
    }

    pub fn set_unavailable(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Ready, and no task has ended in a panic (see `panic_policy`).
    pub fn is_ready(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
            && crate::panic_policy::healthy()
    }

    /// Status code and body, exactly as the collector answers.
    pub fn response(&self, custom: Option<&ResponseBody>) -> (u16, String) {
        let state = (*self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
        .filter(|_| crate::panic_policy::healthy());
        match (state, custom) {
            (Some(_), Some(body)) => (200, body.healthy.clone()),
            (None, Some(body)) => (503, body.unhealthy.clone()),
            (Some((since, started)), None) => (
                200,
                serde_json::json!({
                    "status": "Server available",
                    "upSince": rfc3339_nanos(since),
                    "uptime": format_go_duration(started.elapsed()),
                })
                .to_string(),
            ),
            (None, None) => (
                503,
                r#"{"status":"Server not available","upSince":"0001-01-01T00:00:00Z","uptime":""}"#
                    .to_string(),
            ),
        }
    }
}

/// `2026-11-26T14:42:36.123456789Z`, as Go's `time.RFC3339Nano` prints a UTC time.
pub fn rfc3339_nanos(time: SystemTime) -> String {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let nanos = since_epoch.subsec_nanos();
    let fraction = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Starts the health endpoint.
pub async fn start(
    id: &str,
    config: &HealthCheckConfig,
    health: HealthState,
    shutdown: Shutdown,
) -> std::io::Result<(JoinHandle<()>, std::net::SocketAddr)> {
    let listener = http_server::bind(&config.endpoint, id, "http").await?;
    let address = listener.local_addr()?;
    let path = config.path.clone();
    let custom = config.response_body.clone();
    let handler = move |request: hyper::Request<hyper::body::Incoming>| {
        let health = health.clone();
        let custom = custom.clone();
        let path = path.clone();
        async move {
            // Go's ServeMux: a pattern ending in `/` matches its whole subtree.
            let matches = if path.ends_with('/') {
                request.uri().path().starts_with(&path)
            } else {
                request.uri().path() == path
            };
            if !matches {
                return Response::builder()
                    .status(404)
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(Full::new(Bytes::from_static(b"404 page not found\n")))
                    .expect("static response");
            }
            let (status, body) = health.response(custom.as_ref());
            let mut response = Response::builder().status(status);
            if custom.is_none() {
                response = response.header("content-type", "application/json");
            }
            response
                .body(Full::new(Bytes::from(body)))
                .expect("static response")
        }
    };
    Ok((
        http_server::serve(listener, handler, shutdown, false),
        address,
    ))
}

/// ADOT's `/healthcheck`: `GET http://127.0.0.1:<port>/`; prints `STATUS: 200` and returns true
/// on 200, otherwise prints the status or error and returns false.
pub fn probe(port: u16) -> bool {
    use std::io::{Read, Write};
    let result = (|| -> std::io::Result<u16> {
        let timeout = std::time::Duration::from_secs(5);
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(
            format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        let mut head = Vec::new();
        stream.read_to_end(&mut head)?;
        let text = String::from_utf8_lossy(&head);
        text.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other("malformed HTTP response"))
    })();
    match result {
        Ok(200) => {
            println!("STATUS: 200");
            true
        }
        Ok(code) => {
            eprintln!("STATUS: {code}");
            false
        }
        Err(error) => {
            eprintln!("health check failed: {error}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ShutdownTrigger;
    use std::time::Duration;

    fn config() -> HealthCheckConfig {
        serde_yaml_ng::from_str("endpoint: 127.0.0.1:0").unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_503_until_ready_and_again_from_shutdown() {
        let state = HealthState::new();
        let (stop, _) = ShutdownTrigger::new();
        let (task, address) = start("health_check", &config(), state.clone(), stop.subscribe())
            .await
            .unwrap();
        let probe_port = |port| tokio::task::spawn_blocking(move || probe(port));
        assert!(
            !probe_port(address.port()).await.unwrap(),
            "not ready yet: 503"
        );
        state.set_ready();
        assert!(probe_port(address.port()).await.unwrap(), "ready: 200");
        state.set_unavailable();
        assert!(
            !probe_port(address.port()).await.unwrap(),
            "shutting down: 503"
        );
        stop.trigger();
        task.await.unwrap();
        assert!(
            !probe_port(address.port()).await.unwrap(),
            "nothing listening"
        );
    }

    #[test]
    fn formats_rfc3339_like_go() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        assert_eq!(rfc3339_nanos(t), "2026-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::new(951_782_400 + 3661, 500_000_000);
        assert_eq!(rfc3339_nanos(t), "2000-02-29T01:01:01.5Z");
    }

    #[test]
    fn bodies_follow_the_state() {
        let state = HealthState::new();
        let (code, body) = state.response(None);
        assert_eq!(code, 503);
        assert_eq!(
            body,
            r#"{"status":"Server not available","upSince":"0001-01-01T00:00:00Z","uptime":""}"#
        );
        state.set_ready();
        let (code, body) = state.response(None);
        assert_eq!(code, 200);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "Server available");
        assert!(json["upSince"].as_str().unwrap().ends_with('Z'));
        assert!(json["uptime"].as_str().unwrap().ends_with('s'));
        let custom = ResponseBody {
            healthy: "ok".into(),
            unhealthy: "down".into(),
        };
        assert_eq!(state.response(Some(&custom)), (200, "ok".into()));
        state.set_unavailable();
        assert_eq!(state.response(Some(&custom)), (503, "down".into()));
    }
}
