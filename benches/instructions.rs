//! A fixed workload through the real pipeline, for instruction counts that do not depend on a
//! noisy machine: 100 OTLP/HTTP requests of the comparison bodies (`benches/workload`, 10,000
//! spans or 10,000 data points) into the OTLP receiver, the seed config's batch settings, the
//! X-Ray or EMF exporter (or, for `otlp`, the spans to X-Ray's OTLP endpoint: `otlphttp` with
//! gzip and `sigv4auth`), and a loopback AWS stand-in; then shutdown, which flushes. The test
//! command runs it under callgrind with 0 and 100 requests and prints the difference per item:
//!
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!         target/release/deps/instructions-* traces 100
//!
//! `metrics-var` sends 100 variants of the metrics body whose timestamps advance 10 ms each
//! (`benches/workload/make_metrics_var.py`'s rule: the same series recur, no point is a re-sent
//! copy), as an SDK exporting often would; `metrics` sends the same body again and again, which
//! the EMF exporter publishes once. The variants are made before the run's start whatever the
//! number of requests, so the difference counts only the pipeline.
//!
//! It needs AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (any
//! values: nothing leaves the machine). With INSTRUCTIONS_SINK=host:port it exports to an
//! `otel-sidecar loadgen sink` running outside (so the count leaves out the stand-in's own work
//! of reading every document); otherwise it starts one in-process.

use bytes::Bytes;
use http_body_util::Full;
use otel_sidecar::pipeline::ShutdownTrigger;
use std::time::Duration;

const TRACES: &[u8] = include_bytes!("workload/traces.pb");
const METRICS: &[u8] = include_bytes!("workload/metrics.pb");

fn main() {
    let mut args = std::env::args().skip(1);
    let signal = args.next().unwrap_or_else(|| "traces".into());
    let requests: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
    let (path, bodies) = match signal.as_str() {
        "traces" | "otlp" => ("/v1/traces", vec![Bytes::from_static(TRACES)]),
        "metrics" => ("/v1/metrics", vec![Bytes::from_static(METRICS)]),
        "metrics-var" => ("/v1/metrics", metrics_variants(requests.max(100))),
        other => panic!("signal must be traces, metrics, metrics-var or otlp, not {other}"),
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(path, bodies, requests, signal == "otlp"));
}

/// `count` variants of the metrics body, the k-th with every timestamp 10 ms × k later, delta
/// points covering their own 10 ms, gauges moved by k mod 7 and sums by k mod 3.
fn metrics_variants(count: usize) -> Vec<Bytes> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
    use prost::Message;
    let base = ExportMetricsServiceRequest::decode(METRICS).expect("the workload decodes");
    (0..count as u64)
        .map(|k| {
            let mut request = base.clone();
            let shift = k * 10_000_000;
            for metric in request
                .resource_metrics
                .iter_mut()
                .flat_map(|r| r.scope_metrics.iter_mut())
                .flat_map(|s| s.metrics.iter_mut())
            {
                let move_number =
                    |p: &mut opentelemetry_proto::tonic::metrics::v1::NumberDataPoint,
                     gauge: bool| {
                        p.time_unix_nano += shift;
                        match (&mut p.value, gauge) {
                            (Some(Value::AsDouble(v)), true) => *v += (k % 7) as f64,
                            (Some(Value::AsInt(v)), true) => *v += (k % 7) as i64,
                            (Some(Value::AsInt(v)), false) => *v += (k % 3) as i64,
                            (Some(Value::AsDouble(v)), false) => *v += (k % 3) as f64,
                            (None, _) => {}
                        }
                        if !gauge {
                            p.start_time_unix_nano = p.time_unix_nano - 10_000_000;
                        }
                    };
                match &mut metric.data {
                    Some(Data::Gauge(g)) => {
                        g.data_points.iter_mut().for_each(|p| move_number(p, true))
                    }
                    Some(Data::Sum(s)) => {
                        s.data_points.iter_mut().for_each(|p| move_number(p, false))
                    }
                    Some(Data::Histogram(h)) => h.data_points.iter_mut().for_each(|p| {
                        p.time_unix_nano += shift;
                        p.start_time_unix_nano = p.time_unix_nano - 10_000_000;
                    }),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.iter_mut().for_each(|p| {
                        p.time_unix_nano += shift;
                        p.start_time_unix_nano = p.time_unix_nano - 10_000_000;
                    }),
                    Some(Data::Summary(s)) => s.data_points.iter_mut().for_each(|p| {
                        p.time_unix_nano += shift;
                        p.start_time_unix_nano = p.time_unix_nano - 10_000_000;
                    }),
                    None => {}
                }
            }
            Bytes::from(request.encode_to_vec())
        })
        .collect()
}

async fn run(path: &str, bodies: Vec<Bytes>, requests: usize, otlp: bool) {
    let (stop_sink, _) = ShutdownTrigger::new();
    let outside = std::env::var("INSTRUCTIONS_SINK").ok();
    let (sink, sink_address, counts) = match &outside {
        Some(address) => (None, address.clone(), None),
        None => {
            let (task, address, counts) =
                otel_sidecar::loadgen::sink::start("127.0.0.1:0", None, stop_sink.subscribe())
                    .await
                    .expect("sink");
            (Some(task), address.to_string(), Some(counts))
        }
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let traces_exporter = if otlp { "otlphttp" } else { "awsxray" };
    let config = format!(
        r#"
extensions:
  sigv4auth: {{region: us-east-1, service: xray}}
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:{port}"}}
processors:
  batch/traces: {{timeout: 1s, send_batch_size: 50}}
  batch/metrics: {{timeout: 60s}}
exporters:
  awsxray: {{endpoint: "http://{sink_address}"}}
  awsemf: {{namespace: ECS/OTEL/VM-X-AI, log_group_name: /aws/ecs/application/metrics, endpoint: "http://{sink_address}"}}
  otlphttp: {{traces_endpoint: "http://{sink_address}/v1/traces", auth: {{authenticator: sigv4auth}}}}
service:
  extensions: [sigv4auth]
  telemetry: {{logs: {{level: warn}}, metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch/traces], exporters: [{traces_exporter}]}}
    metrics: {{receivers: [otlp], processors: [batch/metrics], exporters: [awsemf]}}
"#
    );
    let config = otel_sidecar::components::parse_config(&config, &|name| std::env::var(name).ok())
        .expect("config");
    let running = otel_sidecar::service::start(&config).await.expect("start");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    for k in 0..requests {
        let request = hyper::Request::post(format!("http://127.0.0.1:{port}{path}"))
            .header("content-type", "application/x-protobuf")
            .body(Full::new(bodies[k % bodies.len()].clone()))
            .expect("request");
        let answer = client.request(request).await.expect("the receiver answers");
        assert_eq!(answer.status(), 200);
    }
    running
        .shutdown(Duration::from_secs(30))
        .await
        .expect("drained");
    stop_sink.trigger();
    if let Some(sink) = sink {
        let _ = sink.await;
    }
    match counts {
        Some(counts) => eprintln!("{}", counts.json()),
        None => {
            let answer = client
                .request(
                    hyper::Request::get(format!("http://{sink_address}/counts"))
                        .body(Full::new(Bytes::new()))
                        .expect("request"),
                )
                .await
                .expect("the sink answers");
            let body = http_body_util::BodyExt::collect(answer.into_body())
                .await
                .expect("counts")
                .to_bytes();
            eprintln!("{}", String::from_utf8_lossy(&body));
        }
    }
}
