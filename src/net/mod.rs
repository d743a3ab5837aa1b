//! The listener and connections. Only this module touches sockets.
//!
//! Every shard accepts on the same address (SO_REUSEPORT, so the kernel
//! spreads connections) and serves each connection it accepted to the end.
//! A connection serves its next request once the current one is ordered:
//! at its end, or for a produce once its batches are appended, so that an
//! acks=all produce's wait for the ISR overlaps the next ones'. Appends
//! keep request order, and answers are written in request order as Kafka
//! clients require.

pub mod client;
mod conn;
pub mod frame;
pub mod listen;
pub mod metrics;
pub mod sasl;
mod send;
mod stream;
pub mod tls;

use std::rc::Rc;
use std::sync::Arc;

use futures::channel::oneshot;
use futures::future::{select, Either, LocalBoxFuture};
use futures::stream::{FuturesOrdered, StreamExt};

use crate::handlers;
use crate::runtime::writable::ShardWritable;
use crate::runtime::TcpStream;
use crate::services::Services;
use crate::shard::Shard;

/// Accepts on every listener of this shard until the shard stops; the
/// per-shard connection limit counts all of them.
pub async fn accept_all(
    services: Rc<Services>,
    listeners: Vec<(listen::ShardListener, Arc<sasl::ListenerInfo>)>,
    writable: Rc<ShardWritable>,
) {
    let open = Rc::new(std::cell::Cell::new(0usize));
    let loops = listeners
        .into_iter()
        .map(|(l, info)| accept_loop(services.clone(), l, info, writable.clone(), open.clone()));
    futures::future::join_all(loops).await;
}

/// Accepts until the shard stops. Connections over the per-shard limit are
/// closed at once.
pub async fn accept_loop(
    services: Rc<Services>,
    listener: listen::ShardListener,
    info: Arc<sasl::ListenerInfo>,
    writable: Rc<ShardWritable>,
    open: Rc<std::cell::Cell<usize>>,
) {
    let shard = &services.shard;
    loop {
        let accepted = {
            let stop = std::pin::pin!(shard.stopping.changed_since(0));
            let accept = std::pin::pin!(listener.listener.accept());
            match select(accept, stop).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => {
                    listener.stop_listening();
                    return;
                }
            }
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                crate::runtime::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if !ip_admitted(shard, &stream) {
            continue;
        }
        if open.get() >= shard.config.max_connections_per_shard {
            info.stats.refused();
            tracing::warn!(
                limit = shard.config.max_connections_per_shard,
                "connection limit reached; closing new connection"
            );
            continue;
        }
        open.set(open.get() + 1);
        info.stats.accepted();
        let (services, open, writable) = (services.clone(), open.clone(), writable.clone());
        let info = info.clone();
        let quota = std::time::Duration::from_micros(shard.config.task_quota_us.max(100));
        crate::runtime::spawn_serving(quota, async move {
            let stats = info.stats.clone();
            serve(&services, stream, info, writable).await;
            open.set(open.get() - 1);
            stats.closed();
        })
        .detach();
    }
}

/// KIP-612: a connection from an ip over its connection_creation_rate is
/// closed at once (dropped unserved) and counted. Kafka holds such a
/// socket for the throttle time before closing it; closing at once costs
/// the broker less and the client sees the same refusal.
fn ip_admitted(shard: &Shard, stream: &TcpStream) -> bool {
    let topics = shard.topics();
    if topics.ip_quotas.is_empty() {
        return true;
    }
    let Ok(peer) = stream.peer_addr() else {
        return true;
    };
    let window = crate::quota::Window::from_config(
        shard.config.quota_window_num,
        shard.config.quota_window_size_seconds,
    );
    if crate::quota::admit_connection(&topics.ip_quotas, peer.ip(), window) {
        return true;
    }
    crate::stats::QUOTA_CONNECTIONS_REFUSED.add(1);
    tracing::debug!(%peer, "connection_creation_rate exceeded; closing new connection");
    false
}

async fn serve(
    services: &Rc<Services>,
    stream: TcpStream,
    info: Arc<sasl::ListenerInfo>,
    writable: Rc<ShardWritable>,
) {
    let shard = &services.shard;
    let peer_addr = stream.peer_addr().ok();
    let peer = peer_addr.map(|a| a.to_string()).unwrap_or_default();
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "TCP_NODELAY");
    }
    let write_timeout = std::time::Duration::from_millis(shard.config.socket_write_timeout_ms);
    if let Err(e) = stream.set_write_timeout(Some(write_timeout)) {
        tracing::debug!(%peer, error = %e, "write timeout");
    }
    let Some(mut stream) = handshake(shard, stream, &info, &peer).await else {
        return;
    };
    let ssl = info.protocol == crate::security::listeners::SecurityProtocol::Ssl;
    let client = handlers::Client::on_listener(peer_addr, info);
    if let Some(der) = stream.peer_certificate().filter(|_| ssl) {
        match crate::security::principal::ssl_principal(der) {
            Ok(principal) => client.session.set_certificate_principal(principal),
            Err(e) => {
                // Never fall back to the listener's principal: it may be
                // worth more than an unreadable certificate.
                tracing::warn!(%peer, error = %e, "client certificate refused");
                return;
            }
        }
    }
    let mut writer = match send::ResponseWriter::new(
        &stream,
        shard.config.fetch.zero_copy,
        write_timeout,
        writable,
    ) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot set up the connection");
            return;
        }
    };
    let max = shard.config.socket_request_max_bytes;
    let idle_max = std::time::Duration::from_millis(shard.config.connections_max_idle_ms);
    let mut reader = frame::FrameReader::default();
    // Requests read and not yet answered, answered in this order.
    let mut pending: FuturesOrdered<LocalBoxFuture<'_, Served>> = FuturesOrdered::new();
    // The last request read, until it is ordered (see `handlers::Ordered`).
    let mut ordering: Option<oneshot::Receiver<()>> = None;
    loop {
        let step = if let Some(ordered) = ordering.as_mut() {
            match select(ordered, pending.next()).await {
                Either::Left(_) => {
                    ordering = None;
                    continue;
                }
                Either::Right((served, _)) => Step::Served(served.expect("the request is pending")),
            }
        } else if pending.is_empty() {
            // An idle connection ends when the shard stops; a request
            // already read is served to the end.
            let stop = std::pin::pin!(shard.stopping.changed_since(0));
            let max = client.session.frame_max(max);
            let read = std::pin::pin!(reader.read(&mut stream, max));
            match crate::runtime::timeout(idle_max, select(read, stop)).await {
                Some(Either::Left((r, _))) => Step::Frame(r),
                Some(Either::Right(_)) => return,
                None => {
                    tracing::debug!(%peer, "closing idle connection (connections_max_idle_ms)");
                    return;
                }
            }
        } else if pending.len() < PIPELINED_REQUESTS_MAX {
            // Reading the next request and finishing the oldest go on
            // together: the reader keeps what it read if the answer wins.
            let max = client.session.frame_max(max);
            let read = std::pin::pin!(reader.read(&mut stream, max));
            match select(read, pending.next()).await {
                Either::Left((r, _)) => Step::Frame(r),
                Either::Right((served, _)) => Step::Served(served.expect("pending is not empty")),
            }
        } else {
            Step::Served(pending.next().await.expect("pending is not empty"))
        };
        let frame = match step {
            Step::Served(served) => {
                if !write_served(shard, &client, &mut writer, &mut stream, &peer, served).await {
                    return;
                }
                continue;
            }
            Step::Frame(Ok(Some(frame))) => frame,
            Step::Frame(Ok(None)) => return,
            Step::Frame(Err(e)) if e.is_peer_gone() => {
                tracing::debug!(%peer, error = %e, "connection closed by the peer");
                return;
            }
            Step::Frame(Err(e)) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                return;
            }
        };
        let (ordered, ordered_rx) = handlers::Ordered::new();
        // With client quotas configured, the request's shard time is
        // measured; without, this emptiness check is all quotas cost it.
        let quotas = !shard.topics().client_quotas.is_empty();
        // Only a produce is ordered before its end, and only where no quota
        // measures one request at a time.
        if !quotas && is_produce(&frame) {
            client.ordering.replace(Some(ordered.clone()));
        }
        let client = &client;
        pending.push_back(Box::pin(async move {
            let served = serve_request(services, client, frame, quotas).await;
            // Not a produce, or one that appended nothing: ordered by its end.
            ordered.signal();
            served
        }));
        ordering = Some(ordered_rx);
    }
}

/// Requests one connection has read and not yet answered: a producer that
/// pipelines (librdkafka sends one partition per request and keeps many in
/// flight) gets that many replication waits overlapped; Kafka's Java
/// producer and librdkafka's idempotent one keep at most 5 in flight.
pub const PIPELINED_REQUESTS_MAX: usize = 5;

/// What the connection does next.
enum Step {
    Frame(Result<Option<bytes::Bytes>, frame::FrameError>),
    Served(Served),
}

/// A request's answer, and what writing it needs.
struct Served {
    handled: Result<Option<Vec<handlers::Piece>>, handlers::RequestError>,
    throttle_ms: u64,
    throttles_itself: bool,
    started: std::time::Instant,
    request_time: &'static crate::stats::Histogram,
}

/// The API key a frame's header starts with.
fn api_key(frame: &[u8]) -> Option<i16> {
    frame.get(..2).map(|k| i16::from_be_bytes([k[0], k[1]]))
}

fn is_produce(frame: &[u8]) -> bool {
    api_key(frame) == Some(kafka_protocol::messages::ApiKey::Produce as i16)
}

/// Runs one request to its answer (not written).
async fn serve_request(
    services: &Rc<Services>,
    client: &handlers::Client,
    frame: bytes::Bytes,
    quotas: bool,
) -> Served {
    let shard = &services.shard;
    let _in_flight = crate::shard::InFlight::enter(shard);
    let started = std::time::Instant::now();
    let request_time = request_histogram(api_key(&frame));
    let throttles_itself = handlers::client_throttles(&frame);
    let handled = client
        .quota
        .serve(quotas, handlers::handle_frame(services, client, frame))
        .await;
    Served {
        handled,
        throttle_ms: client.quota.take_throttle_ms(),
        throttles_itself,
        started,
        request_time,
    }
}

/// Writes one answer (or closes on a bad request); `false` when the
/// connection is done.
async fn write_served(
    shard: &Shard,
    client: &handlers::Client,
    writer: &mut send::ResponseWriter,
    stream: &mut conn::Conn,
    peer: &str,
    served: Served,
) -> bool {
    let Served {
        handled,
        mut throttle_ms,
        throttles_itself,
        started,
        request_time,
    } = served;
    match handled {
        Ok(Some(response)) => {
            // A client from before KIP-219 ignores throttle_time_ms: its
            // response waits out the throttle, as Kafka delays it.
            if throttle_ms > 0 && !throttles_itself {
                if !mute(shard, throttle_ms).await {
                    return false;
                }
                throttle_ms = 0;
            }
            let writing = std::time::Instant::now();
            if let Err(e) = writer.write(stream, response).await {
                tracing::debug!(%peer, error = %e, "write failed");
                return false;
            }
            crate::stats::RESPONSE_WRITE.observe(writing.elapsed());
            request_time.observe(started.elapsed());
            tracing::trace!(%peer, "response written");
            if client.close_after_response.get() {
                return false;
            }
        }
        Ok(None) => request_time.observe(started.elapsed()),
        Err(e) => {
            tracing::warn!(%peer, error = %e, "closing connection: bad request");
            return false;
        }
    }
    // KIP-219: a throttled client's response goes out at once and its
    // connection is muted (nothing read) for the throttle time.
    if throttle_ms > 0 && !mute(shard, throttle_ms).await {
        return false;
    }
    // A busy client's next frame is usually already buffered, so this
    // loop could run without ever awaiting anything pending and starve
    // the shard's other connections and peer messages. Take turns.
    let yielded = std::time::Instant::now();
    crate::runtime::yield_now().await;
    crate::stats::SHARD_QUEUE.observe(yielded.elapsed());
    true
}

/// Waits out a quota throttle without reading; `false` when the shard
/// stops meanwhile.
async fn mute(shard: &Shard, ms: u64) -> bool {
    let stop = std::pin::pin!(shard.stopping.changed_since(0));
    let wait = std::pin::pin!(crate::runtime::sleep(std::time::Duration::from_millis(ms)));
    matches!(select(wait, stop).await, Either::Left(_))
}

/// How long a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The connection as its listener speaks: TLS after a bounded handshake,
/// or the socket as it is. `None`: the handshake failed (logged).
async fn handshake(
    shard: &Shard,
    stream: TcpStream,
    info: &sasl::ListenerInfo,
    peer: &str,
) -> Option<conn::Conn> {
    let Some(tls) = &info.tls else {
        return Some(conn::Conn::Plain(stream));
    };
    let stop = std::pin::pin!(shard.stopping.changed_since(0));
    let accept = std::pin::pin!(tls.accept(stream));
    match crate::runtime::timeout(TLS_HANDSHAKE_TIMEOUT, select(accept, stop)).await {
        Some(Either::Left((Ok(c), _))) => {
            tracing::debug!(%peer, listener = %info.name, client_cert = c.has_peer_certificate(), "TLS established");
            // On SASL_SSL the login that follows is what authenticates.
            if !info.protocol.sasl() {
                info.stats.authenticated();
            }
            Some(conn::Conn::Tls(c))
        }
        Some(Either::Left((Err(e), _))) => {
            tracing::warn!(%peer, listener = %info.name, error = %e, "TLS handshake failed");
            info.stats.authentication_failed();
            None
        }
        Some(Either::Right(_)) => None,
        None => {
            tracing::warn!(%peer, listener = %info.name, "TLS handshake timed out");
            None
        }
    }
}

/// The request-time histogram of API `key`.
fn request_histogram(key: Option<i16>) -> &'static crate::stats::Histogram {
    use kafka_protocol::messages::ApiKey;
    match key {
        Some(k) if k == ApiKey::Produce as i16 => &crate::stats::REQUEST_PRODUCE,
        Some(k) if k == ApiKey::Fetch as i16 => &crate::stats::REQUEST_FETCH,
        _ => &crate::stats::REQUEST_OTHER,
    }
}
