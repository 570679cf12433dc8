//! The X-Ray daemon's UDP socket: one segment document per datagram. A bad datagram is counted
//! by reason and logged (rate-limited); it never stops the socket.

use super::translate::datagram_to_resource_spans;
use crate::internal_events::XrayDatagramDropped;
use crate::pipeline::{Consumers, Payload, Shutdown};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Datagrams up to 64 KiB, as the daemon reads them.
pub const MAX_DATAGRAM_BYTES: usize = 65_536;

/// Receive buffer asked of the kernel, so bursts wait in the socket rather than being dropped
/// (the kernel caps it at `net.core.rmem_max`).
const RECEIVE_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Tasks reading the one socket, as the collector's two pollers do.
const READERS: usize = 2;

/// How often the kernel's per-socket drop count is read from `/proc/net/udp`.
const KERNEL_DROPS_INTERVAL: Duration = Duration::from_secs(10);

pub async fn start(
    id: &str,
    endpoint: &str,
    consumers: Consumers,
    shutdown: Shutdown,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let address = crate::http_server::resolve_endpoint(endpoint).await?;
    let socket = bind(address)?;
    let bound = socket.local_addr()?;
    tracing::info!(message = "listening", component = id, transport = "udp", address = %bound);
    let socket = Arc::new(socket);
    let traffic = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..READERS {
        tasks.push(tokio::spawn(read_loop(
            id.to_string(),
            socket.clone(),
            consumers.clone(),
            shutdown.clone(),
            DATAGRAMS_PER_PAYLOAD,
            traffic.clone(),
        )));
    }
    tasks.push(tokio::spawn(report_kernel_drops(
        id.to_string(),
        bound,
        shutdown,
        traffic,
    )));
    Ok(tasks)
}

fn bind(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(address);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if let Err(error) = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES) {
        tracing::warn!(%error, "cannot enlarge the UDP receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

/// Datagrams already waiting in the socket taken into one payload: a payload per datagram
/// put the pipeline's per-request cost (queueing, self-metrics) on every segment, and 64 made
/// batches of 50 + 14 documents, so a fifth of the PutTraceSegments calls carried 14. Two full
/// calls' worth: 500 held ten calls' worth of decoded spans at once (peak RSS 35-42 MB at
/// 100k segments/s against 31-32 MB with 100, side by side; CPU per segment the same within
/// noise).
const DATAGRAMS_PER_PAYLOAD: usize = 100;

async fn read_loop(
    receiver: String,
    socket: Arc<UdpSocket>,
    consumers: Consumers,
    shutdown: Shutdown,
    datagrams_per_payload: usize,
    traffic: Arc<Notify>,
) {
    let mut buffer = vec![0u8; MAX_DATAGRAM_BYTES + 1];
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let length = tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok((length, _)) => length,
                Err(error) => {
                    tracing::warn!(%error, "UDP receive failed");
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        traffic.notify_one();
        let mut resource_spans = Vec::new();
        take_datagram(&receiver, &buffer[..length], &mut resource_spans);
        // Whatever else has already arrived goes into the same payload, without waiting.
        // Datagrams are counted, not resources: segments of one service share a resource, and
        // counting those let one payload drain the whole socket buffer past the queue's room.
        let mut datagrams = 1;
        while datagrams < datagrams_per_payload {
            match socket.try_recv_from(&mut buffer) {
                Ok((length, _)) => {
                    datagrams += 1;
                    take_datagram(&receiver, &buffer[..length], &mut resource_spans)
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    tracing::warn!(%error, "UDP receive failed");
                    break;
                }
            }
        }
        if !resource_spans.is_empty() {
            // UDP cannot push back: a refusal is counted by `accept` and the segments are lost.
            let payload = Payload::Traces(resource_spans);
            let _ = crate::receivers::accept(&receiver, "udp", &consumers, payload).await;
        }
    }
}

fn take_datagram(
    receiver: &str,
    datagram: &[u8],
    into: &mut Vec<opentelemetry_proto::tonic::trace::v1::ResourceSpans>,
) {
    match datagram_to_resource_spans(datagram) {
        Ok(mut resource_spans) => match into.last_mut() {
            // Segments of one service share a resource: one resource for the run of them keeps
            // the exporter's per-resource work (and allocations) per run, not per segment.
            Some(last)
                if last.resource == resource_spans.resource
                    && last.scope_spans.len() == 1
                    && resource_spans.scope_spans.len() == 1
                    && last.scope_spans[0].scope == resource_spans.scope_spans[0].scope =>
            {
                let spans = std::mem::take(&mut resource_spans.scope_spans[0].spans);
                last.scope_spans[0].spans.extend(spans);
            }
            _ => into.push(resource_spans),
        },
        Err(error) => XrayDatagramDropped { receiver, error }.emit(),
    }
}

/// Publishes the kernel's drop count for this socket (`/proc/net/udp`, last column), at most
/// every [`KERNEL_DROPS_INTERVAL`] and only after datagrams arrived: the count grows only while
/// they do, so an idle receiver is not woken to read the table.
async fn report_kernel_drops(
    receiver: String,
    bound: SocketAddr,
    shutdown: Shutdown,
    traffic: Arc<Notify>,
) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = traffic.notified() => {}
            _ = &mut stop => break,
        }
        if let Some(drops) = kernel_drops(bound.port()) {
            metrics::gauge!("otelsidecar_receiver_udp_kernel_drops", "receiver" => receiver.clone())
                .set(drops as f64);
        }
        tokio::select! {
            _ = tokio::time::sleep(KERNEL_DROPS_INTERVAL) => {}
            _ = &mut stop => break,
        }
    }
}

fn kernel_drops(port: u16) -> Option<u64> {
    let wanted = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"].iter().find_map(|path| {
        let table = std::fs::read_to_string(path).ok()?;
        table.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1)?.ends_with(&wanted)).then(|| fields.last()?.parse().ok())?
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(name: &str, id: &str) -> Vec<u8> {
        format!(
            "{{\"format\":\"json\",\"version\":1}}\n{{\"name\":\"{name}\",\"id\":\"{id}\",\
             \"trace_id\":\"1-5f84c7a1-e71b2a063150523ede000199\",\"start_time\":1.0,\"end_time\":2.0}}"
        )
        .into_bytes()
    }

    /// Segments of one service merge into one resource, so a payload's size must be bounded
    /// by datagrams: with a limit of 10, 15 waiting datagrams make a payload of 10 and one of 5
    /// (few, so they fit any socket buffer).
    #[tokio::test]
    async fn a_payload_takes_at_most_its_datagram_limit() {
        let socket = Arc::new(bind("127.0.0.1:0".parse().unwrap()).unwrap());
        let address = socket.local_addr().unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let total = 15;
        for n in 1..=total {
            client
                .send_to(&datagram("api", &format!("{n:016x}")), address)
                .unwrap();
        }
        let (input, mut pipeline) = tokio::sync::mpsc::channel(16);
        let mut consumers = Consumers::default();
        consumers.add(crate::pipeline::Signal::Traces, input, false, false);
        let (stop, shutdown) = crate::pipeline::ShutdownTrigger::new();
        let traffic = Arc::new(Notify::new());
        let reader = tokio::spawn(read_loop(
            "awsxray".into(),
            socket,
            consumers,
            shutdown,
            10,
            traffic,
        ));
        let mut sizes = Vec::new();
        while sizes.iter().sum::<usize>() < total {
            sizes.push(pipeline.recv().await.unwrap().payload.item_count());
        }
        stop.trigger();
        reader.await.unwrap();
        assert_eq!(sizes, vec![10, 5]);
    }

    /// The kernel's drop count is read after traffic, at most every interval, and an idle
    /// receiver's reporter is never woken.
    #[tokio::test(start_paused = true)]
    async fn kernel_drops_are_read_only_after_traffic() {
        use crate::test_support::{Counted, polls};
        let (stop, shutdown) = crate::pipeline::ShutdownTrigger::new();
        let traffic = Arc::new(Notify::new());
        let (reporter, polled) = Counted::new(report_kernel_drops(
            "awsxray".into(),
            "127.0.0.1:9".parse().unwrap(),
            shutdown,
            traffic.clone(),
        ));
        let reporter = tokio::spawn(reporter);
        tokio::task::yield_now().await;
        let idle = polls(&polled);
        tokio::time::sleep(KERNEL_DROPS_INTERVAL * 5).await;
        assert_eq!(polls(&polled), idle, "an idle reporter was woken");
        // Traffic: one read, then a pause of one interval before it listens again.
        traffic.notify_one();
        tokio::task::yield_now().await;
        let after_traffic = polls(&polled);
        assert!(after_traffic > idle);
        tokio::time::sleep(KERNEL_DROPS_INTERVAL * 5).await;
        assert_eq!(
            polls(&polled),
            after_traffic + 1,
            "woken once, when its pause ended"
        );
        stop.trigger();
        reporter.await.unwrap();
    }

    #[test]
    fn consecutive_segments_of_one_service_share_a_resource() {
        let mut taken = Vec::new();
        take_datagram("awsxray", &datagram("api", "0000000000000001"), &mut taken);
        take_datagram("awsxray", &datagram("api", "0000000000000002"), &mut taken);
        take_datagram("awsxray", b"not a datagram", &mut taken);
        take_datagram("awsxray", &datagram("ui", "0000000000000003"), &mut taken);
        let spans: Vec<usize> = taken
            .iter()
            .map(|r| r.scope_spans.iter().map(|s| s.spans.len()).sum())
            .collect();
        assert_eq!(spans, vec![2, 1]);
        let ids: Vec<Vec<u8>> = taken[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| s.span_id.clone())
            .collect();
        assert_eq!(
            ids,
            vec![vec![0, 0, 0, 0, 0, 0, 0, 1], vec![0, 0, 0, 0, 0, 0, 0, 2]]
        );
    }
}
