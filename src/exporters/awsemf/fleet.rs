//! The fleet-wide cardinality budget: every sidecar of a fleet admits new CloudWatch metric
//! identities through one Valkey/Redis store, so the cap a user sets caps the bill whatever
//! the number of tasks.
//!
//! Per UTC hour and fleet the store holds the set of admitted identities (`admitted`), those
//! seen during the hour (`seen`, which becomes the next hour's starting set, so nothing flaps
//! at the boundary) and the regular identities per metric name (`names`, for
//! `max_metrics_per_name`). All keys of a fleet share one hash tag, hence one cluster slot, and
//! expire after two hours. Admission is one Lua script per export batch; a sidecar caches what
//! the fleet admitted and refused, so a known identity costs no round trip.

use crate::config::duration::GoDuration;
use serde::Deserialize;
use std::time::{Duration, Instant};

// The protocol between a budget and the store: what a batch asks, what the store answers.

/// A data point whose new identities only the fleet's store can admit.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingPoint {
    pub name: String,
    pub overflow: u64,
    pub identities: Vec<u64>,
}

/// The store's answer for one pending point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetVerdict {
    Admitted,
    /// Refused; its name's overflow metric is admitted, so the point folds into it.
    Folded,
    /// Refused, and no room for the overflow metric either: left out of the directive.
    Dropped,
}

/// What a batch needs from the store: the points to admit and the identities to mark seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetRequest {
    pub hour: i64,
    pub pending: Vec<PendingPoint>,
    pub seen: Vec<u64>,
}

impl FleetRequest {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.seen.is_empty()
    }
}

/// The longest a batch may wait for the store before it is published with local decisions.
pub const MAX_STORE_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a background connection attempt may take (a TLS handshake, cluster discovery).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys outlive their hour by one: the next hour starts from the previous one's `seen` set.
const KEY_TTL_SECONDS: u64 = 2 * 3600;

/// `cardinality_budget.shared`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SharedBudgetConfig {
    /// `redis://` or `rediss://` (TLS) URL; empty: the `REDIS_HOST`, `REDIS_PORT`,
    /// `REDIS_MODE` and `REDIS_TLS` variables the deployment's API already gets.
    #[serde(default)]
    pub endpoint: String,
    /// `standalone` or `cluster`; default `REDIS_MODE`, else standalone.
    #[serde(default)]
    pub mode: Option<StoreMode>,
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// Sidecars with the same fleet name share one budget; default: namespace and log group.
    #[serde(default)]
    pub fleet: String,
    #[serde(default = "default_timeout")]
    pub timeout: GoDuration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreMode {
    Standalone,
    Cluster,
}

fn default_prefix() -> String {
    "otel-sidecar:budget".into()
}

fn default_timeout() -> GoDuration {
    GoDuration(MAX_STORE_TIMEOUT)
}

impl SharedBudgetConfig {
    /// The shared budget the `--emf-shared-budget` flag names: a URL, or `env` for the
    /// `REDIS_*` variables.
    pub fn from_flag(value: &str) -> Self {
        SharedBudgetConfig {
            endpoint: if value == "env" {
                String::new()
            } else {
                value.to_string()
            },
            mode: None,
            key_prefix: default_prefix(),
            fleet: String::new(),
            timeout: default_timeout(),
        }
    }

    pub fn validate(&self) -> Result<(), (String, String)> {
        let url = self.endpoint.is_empty()
            || self.endpoint.starts_with("redis://")
            || self.endpoint.starts_with("rediss://");
        if !url {
            return Err((
                "endpoint".into(),
                format!("{:?} is not a redis:// or rediss:// URL", self.endpoint),
            ));
        }
        if self.timeout.is_zero() || *self.timeout > MAX_STORE_TIMEOUT {
            return Err((
                "timeout".into(),
                format!(
                    "must be between 1ms and {MAX_STORE_TIMEOUT:?}: a batch never waits longer for the store"
                ),
            ));
        }
        if self.key_prefix.contains(['{', '}']) {
            return Err(("key_prefix".into(), "must not contain { or }".into()));
        }
        Ok(())
    }
}

/// Where the store is: node URLs (credentials included) and whether it is a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAddress {
    pub urls: Vec<String>,
    pub cluster: bool,
}

/// Resolves the address from the config and the environment (`env` reads a variable).
pub fn resolve_address(
    config: &SharedBudgetConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<StoreAddress, String> {
    let cluster = match config.mode {
        Some(mode) => mode == StoreMode::Cluster,
        None => env("REDIS_MODE").is_some_and(|m| m.eq_ignore_ascii_case("cluster")),
    };
    let mut url = if config.endpoint.is_empty() {
        let host = env("REDIS_HOST")
            .filter(|h| !h.is_empty())
            .ok_or("no store: set cardinality_budget.shared.endpoint or the REDIS_HOST variable")?;
        let port = env("REDIS_PORT").unwrap_or_else(|| "6379".into());
        let tls = env("REDIS_TLS").is_some_and(|t| t.eq_ignore_ascii_case("true"));
        format!("{}://{host}:{port}", if tls { "rediss" } else { "redis" })
    } else {
        config.endpoint.clone()
    };
    // Credentials from the environment when the URL has none.
    if !url.contains('@')
        && let Some(password) = env("REDIS_PASSWORD").filter(|p| !p.is_empty())
    {
        let user = env("REDIS_USERNAME").unwrap_or_default();
        let (scheme, rest) = url.split_once("://").unwrap_or(("redis", &url));
        url = format!("{scheme}://{user}:{password}@{rest}");
    }
    Ok(StoreAddress {
        urls: vec![url],
        cluster,
    })
}

/// The admission script. KEYS: this hour's admitted set, its per-name counts, its seen set,
/// the previous hour's seen set. ARGV: cap, per-name cap (0: none), TTL, reserve overflow
/// (1/0), the count of seen identities and them, then per point: name, overflow identity,
/// count, identities. Returns one verdict per point (1 admitted, 2 folded, 0 dropped) and the
/// fleet's admitted count.
const ADMIT_SCRIPT: &str = r#"
local admitted, names, seen, last = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cap, per_name, ttl, reserve = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', admitted) == 0 then
  redis.call('SADD', admitted, '-')
  if redis.call('EXISTS', last) == 1 then
    redis.call('SUNIONSTORE', admitted, admitted, last)
  end
  redis.call('EXPIRE', admitted, ttl)
end
local i = 5
local touched = tonumber(ARGV[i])
i = i + 1
for _ = 1, touched do
  redis.call('SADD', seen, ARGV[i])
  i = i + 1
end
local verdicts = {}
while i <= #ARGV do
  local name, overflow, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local new = {}
  for k = 0, n - 1 do
    local id = ARGV[i + k]
    if redis.call('SISMEMBER', admitted, id) == 0 then table.insert(new, id) end
  end
  local count = redis.call('SCARD', admitted) - 1
  local hold = 0
  if reserve == 1 and redis.call('SISMEMBER', admitted, overflow) == 0 then hold = 1 end
  local used = tonumber(redis.call('HGET', names, name) or '0')
  if #new == 0 or (count + #new + hold <= cap and (per_name == 0 or used + #new <= per_name)) then
    for _, id in ipairs(new) do redis.call('SADD', admitted, id) end
    if #new > 0 then
      redis.call('HINCRBY', names, name, #new)
      if hold == 1 then redis.call('SADD', admitted, overflow) end
    end
    for k = 0, n - 1 do redis.call('SADD', seen, ARGV[i + k]) end
    if reserve == 1 then redis.call('SADD', seen, overflow) end
    table.insert(verdicts, 1)
  elseif reserve == 1 and (hold == 0 or count < cap) then
    redis.call('SADD', admitted, overflow)
    redis.call('SADD', seen, overflow)
    table.insert(verdicts, 2)
  else
    table.insert(verdicts, 0)
  end
  i = i + n
end
redis.call('EXPIRE', names, ttl)
redis.call('EXPIRE', seen, ttl)
table.insert(verdicts, redis.call('SCARD', admitted) - 1)
return verdicts
"#;

/// The keys of one fleet-hour; the hash tag puts them in one cluster slot.
pub fn keys(prefix: &str, fleet: &str, hour: i64) -> [String; 4] {
    let tag = format!("{{{prefix}:{fleet}}}");
    [
        format!("{tag}:admitted:{hour}"),
        format!("{tag}:names:{hour}"),
        format!("{tag}:seen:{hour}"),
        format!("{tag}:seen:{}", hour - 1),
    ]
}

enum Connection {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected answer from the admission script")]
    Answer,
    #[error("waiting {0:?} before asking again")]
    BackingOff(Duration),
    #[error("not connected yet")]
    NotConnected,
}

/// One exporter's connection to the fleet's store.
pub struct FleetStore {
    address: StoreAddress,
    prefix: String,
    fleet: String,
    timeout: Duration,
    cap: usize,
    per_name: usize,
    reserve: bool,
    connection: tokio::sync::Mutex<Option<Connection>>,
    /// A connection is being made in the background (batches never wait for one).
    connecting: std::sync::atomic::AtomicBool,
    script: redis::Script,
    /// When the store failed: not asked again before this, doubling up to 30 s.
    backoff: std::sync::Mutex<(Option<Instant>, Duration)>,
}

impl FleetStore {
    pub fn new(
        address: StoreAddress,
        prefix: &str,
        fleet: &str,
        timeout: Duration,
        cap: usize,
        per_name: Option<usize>,
        reserve: bool,
    ) -> Self {
        FleetStore {
            address,
            prefix: prefix.to_string(),
            fleet: fleet.to_string(),
            timeout,
            cap,
            per_name: per_name.unwrap_or(0),
            reserve,
            connection: tokio::sync::Mutex::new(None),
            connecting: std::sync::atomic::AtomicBool::new(false),
            script: redis::Script::new(ADMIT_SCRIPT),
            backoff: std::sync::Mutex::new((None, Duration::ZERO)),
        }
    }

    pub fn fleet(&self) -> &str {
        &self.fleet
    }

    /// Whether the store may be asked now (not while backing off after a failure).
    pub fn askable(&self) -> bool {
        let backoff = self
            .backoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        backoff.0.is_none_or(|until| Instant::now() >= until)
    }

    /// Starts connecting in the background unless a connection is being made already; the
    /// store is asked once it is there. TLS handshakes and cluster discovery take longer than
    /// a batch may wait.
    pub fn connect_in_background(self: &std::sync::Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.connecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(200);
            loop {
                match tokio::time::timeout(CONNECT_TIMEOUT, store.connect()).await {
                    Ok(Ok(connection)) => {
                        *store.connection.lock().await = Some(connection);
                        metrics::gauge!("otelsidecar_emf_budget_store_connected").set(1.0);
                        break;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%error, "cannot connect to the shared budget store yet")
                    }
                    Err(_) => tracing::debug!(
                        "no connection to the shared budget store within {CONNECT_TIMEOUT:?}"
                    ),
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            store.connecting.store(false, Ordering::Release);
        });
    }

    async fn connect(&self) -> Result<Connection, redis::RedisError> {
        if self.address.cluster {
            let client = redis::cluster::ClusterClient::new(self.address.urls.clone())?;
            Ok(Connection::Cluster(client.get_async_connection().await?))
        } else {
            let client = redis::Client::open(self.address.urls[0].as_str())?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(self.timeout)
                .set_response_timeout(self.timeout)
                .set_number_of_retries(1);
            Ok(Connection::Single(
                redis::aio::ConnectionManager::new_with_config(client, config).await?,
            ))
        }
    }

    async fn invoke(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut guard = self.connection.lock().await;
        let Some(connection) = guard.as_mut() else {
            return Err(StoreError::NotConnected);
        };
        let result = match connection {
            Connection::Single(c) => invocation.invoke_async(c).await,
            Connection::Cluster(c) => invocation.invoke_async(c).await,
        };
        if result.is_err() && self.address.cluster {
            // A cluster connection is made again after a failure (the slots may have moved).
            *guard = None;
            metrics::gauge!("otelsidecar_emf_budget_store_connected").set(0.0);
        }
        Ok(result?)
    }

    /// Asks the store about one batch; within the timeout or not at all.
    pub async fn admit(
        self: &std::sync::Arc<Self>,
        request: &FleetRequest,
    ) -> Result<(Vec<FleetVerdict>, u64), StoreError> {
        if !self.askable() {
            let wait = self
                .backoff
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .1;
            return Err(StoreError::BackingOff(wait));
        }
        if self.connection.lock().await.is_none() {
            // Not connected (yet, or again): this batch folds, the next may find a connection.
            self.connect_in_background();
            metrics::counter!("otelsidecar_emf_budget_store_errors").increment(1);
            return Err(StoreError::NotConnected);
        }
        let [admitted, names, seen, last] = keys(&self.prefix, &self.fleet, request.hour);
        let mut invocation = self.script.prepare_invoke();
        invocation.key(admitted).key(names).key(seen).key(last);
        invocation
            .arg(self.cap)
            .arg(self.per_name)
            .arg(KEY_TTL_SECONDS)
            .arg(u8::from(self.reserve))
            .arg(request.seen.len());
        for id in &request.seen {
            invocation.arg(format!("{id:x}"));
        }
        for point in &request.pending {
            invocation
                .arg(&point.name)
                .arg(format!("{:x}", point.overflow))
                .arg(point.identities.len());
            for id in &point.identities {
                invocation.arg(format!("{id:x}"));
            }
        }
        let started = Instant::now();
        let answer = tokio::time::timeout(self.timeout, self.invoke(&invocation))
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))
            .and_then(|r| r);
        metrics::histogram!("otelsidecar_emf_budget_store_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("otelsidecar_emf_budget_store_round_trips").increment(1);
        let answer = match answer {
            Ok(answer) if answer.len() == request.pending.len() + 1 => answer,
            Ok(_) => return Err(self.failed(StoreError::Answer)),
            Err(error) => return Err(self.failed(error)),
        };
        metrics::counter!("otelsidecar_emf_budget_store_answers").increment(1);
        {
            let mut backoff = self
                .backoff
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if backoff.0.is_some() {
                tracing::info!(fleet = %self.fleet, "shared budget store reachable again");
            }
            *backoff = (None, Duration::ZERO);
        }
        let (verdicts, count) = answer.split_at(request.pending.len());
        let verdicts = verdicts
            .iter()
            .map(|v| match v {
                1 => FleetVerdict::Admitted,
                2 => FleetVerdict::Folded,
                _ => FleetVerdict::Dropped,
            })
            .collect();
        Ok((verdicts, count[0].max(0) as u64))
    }

    /// Records a failure: counted, logged when the store first fails, then not asked again for
    /// a while (1 s doubling to 30 s) so batches are not held up during an outage.
    fn failed(&self, error: StoreError) -> StoreError {
        metrics::counter!("otelsidecar_emf_budget_store_errors").increment(1);
        let mut backoff = self
            .backoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if backoff.0.is_none() {
            tracing::warn!(fleet = %self.fleet, %error, "shared budget store unreachable: new metrics fold into the overflow metric until it answers");
        }
        let wait = (backoff.1 * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
        *backoff = (Some(Instant::now() + wait), wait);
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_from_the_config_or_the_apis_variables() {
        let config = SharedBudgetConfig::from_flag("env");
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            resolve_address(
                &config,
                env(&[
                    ("REDIS_HOST", "cache.example"),
                    ("REDIS_PORT", "6380"),
                    ("REDIS_MODE", "cluster"),
                    ("REDIS_TLS", "true")
                ])
            )
            .unwrap(),
            StoreAddress {
                urls: vec!["rediss://cache.example:6380".into()],
                cluster: true
            }
        );
        assert_eq!(
            resolve_address(
                &SharedBudgetConfig::from_flag("redis://10.0.0.1:6379"),
                env(&[("REDIS_PASSWORD", "s3cret")])
            )
            .unwrap()
            .urls,
            vec!["redis://:s3cret@10.0.0.1:6379".to_string()]
        );
        assert!(resolve_address(&config, env(&[])).is_err());
        let [admitted, names, seen, last] = keys("otel-sidecar:budget", "ECS/x:/g", 10);
        for key in [&admitted, &names, &seen, &last] {
            assert!(key.starts_with("{otel-sidecar:budget:ECS/x:/g}:"), "{key}");
        }
        assert!(last.ends_with(":seen:9"));
        let bad = SharedBudgetConfig {
            timeout: GoDuration::from_secs(1),
            ..config.clone()
        };
        assert_eq!(bad.validate().unwrap_err().0, "timeout");
        let bad = SharedBudgetConfig {
            endpoint: "http://x".into(),
            ..config
        };
        assert_eq!(bad.validate().unwrap_err().0, "endpoint");
    }
}
