//! A minimal `/metrics` endpoint (Prometheus text format) on the
//! controller shard: any request on the port gets the counters, and the
//! metrics clients pushed (KIP-714). Requests
//! are bounded in size and time; one at a time is plenty for a scraper.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};

use crate::runtime::{TcpListener, TcpStream};
use crate::shard::Shard;

const REQUEST_BYTES_MAX: usize = 8 << 10;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn serve(
    shard: Rc<Shard>,
    listener: TcpListener,
    telemetry: Arc<crate::client_metrics::ClientTelemetry>,
) {
    loop {
        let accepted = {
            let stop = std::pin::pin!(shard.stopping.changed_since(0));
            let accept = std::pin::pin!(listener.accept());
            match futures::future::select(accept, stop).await {
                futures::future::Either::Left((r, _)) => r,
                futures::future::Either::Right(_) => return,
            }
        };
        match accepted {
            Ok(stream) => {
                if crate::runtime::timeout(REQUEST_TIMEOUT, answer(&shard, stream, &telemetry))
                    .await
                    .is_none()
                {
                    tracing::debug!("metrics request timed out");
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics accept failed"),
        }
    }
}

async fn answer(
    shard: &Rc<Shard>,
    mut stream: TcpStream,
    telemetry: &crate::client_metrics::ClientTelemetry,
) {
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < REQUEST_BYTES_MAX {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    // Partitions and clients' series may be many: counted and written out
    // on a blocking thread, off this shard's reactor, from snapshots taken
    // without copying them.
    let clients = telemetry.snapshot(crate::runtime::now_ms());
    let replicas = shard.replica_stats().await;
    let (topics, config) = (shard.topics(), shard.config.clone());
    let node = config.node_id;
    let active_controller = shard
        .controller
        .as_ref()
        .is_none_or(|c| c.leader() == Some(node));
    let body = crate::runtime::blocking(move || {
        let mut body = crate::stats::render();
        crate::metadata::Health::of(&topics, &config, node, active_controller).render(&mut body);
        render_topics(replicas, &mut body);
        clients.render(&mut body);
        body
    })
    .await;
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.close().await;
}

/// One topic's sums over the replicas this node hosts.
#[derive(Default)]
struct TopicTotals {
    traffic: crate::shard::Traffic,
    log_bytes: u64,
}

/// A per-topic series: name, Prometheus type, help, value.
type TopicSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TopicTotals) -> u64,
);

/// Kafka's per-topic BrokerTopicMetrics and log sizes, from the replicas
/// this node hosts: what producers appended while it led, what consumers
/// were given, the bytes the replicas' segments hold.
fn render_topics(replicas: Vec<crate::shard::ReplicaStats>, out: &mut String) {
    use std::fmt::Write;
    let mut by_topic: std::collections::BTreeMap<String, TopicTotals> =
        std::collections::BTreeMap::new();
    for r in replicas {
        let topic = by_topic.entry(r.tp.topic.to_string()).or_default();
        topic.traffic.add(r.traffic);
        topic.log_bytes += r.size_bytes;
    }
    const SERIES: [TopicSeries; 4] = [
        (
            "sluice_topic_bytes_in_total",
            "counter",
            "Record batch bytes producers appended to the topic's partitions led here.",
            |t| t.traffic.bytes_in,
        ),
        (
            "sluice_topic_records_in_total",
            "counter",
            "Records producers appended to the topic's partitions led here.",
            |t| t.traffic.records_in,
        ),
        (
            "sluice_topic_bytes_out_total",
            "counter",
            "Record bytes consumers were given from the topic's replicas here.",
            |t| t.traffic.bytes_out,
        ),
        (
            "sluice_topic_log_bytes",
            "gauge",
            "Bytes the segments of the topic's replicas here hold.",
            |t| t.log_bytes,
        ),
    ];
    for (name, kind, help, value) in SERIES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (topic, totals) in &by_topic {
            let _ = writeln!(out, "{name}{{topic=\"{topic}\"}} {}", value(totals));
        }
    }
}
