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
    shard: &Shard,
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
    let (topics, config) = (shard.topics(), shard.config.clone());
    let node = config.node_id;
    let active_controller = shard
        .controller
        .as_ref()
        .is_none_or(|c| c.leader() == Some(node));
    let quorum = shard.controller.as_ref().map(|c| c.quorum_metrics());
    let body = crate::runtime::blocking(move || {
        let mut body = crate::stats::render(config.metrics_partition_series_max);
        crate::metadata::Health::of(&topics, &config, node, active_controller).render(&mut body);
        if let Some(quorum) = quorum {
            quorum.render(&mut body);
        }
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
