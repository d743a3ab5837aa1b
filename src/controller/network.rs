//! The quorum's own TCP listener and framing.
//!
//! A frame is a 4-byte big-endian length and that many bytes of postcard,
//! at most `FRAME_BYTES_MAX`. A connection opens with one `Hello` each
//! way; a peer of another cluster or protocol version gets a log line and
//! its connection closed. Any node of the cluster may connect (learners
//! forward proposals and heartbeats, and ask to join), but Raft's own
//! requests are taken from voters only, and a join only for the sender
//! itself; any other request closes the connection the same way. A frame
//! too long or not decodable closes that connection only.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::driver::Core;
use super::rpc::{Hello, Request, PROTOCOL_VERSION};
use super::tls::Stream;

/// The largest frame either side sends or accepts. AppendEntries batches
/// (`APPEND_ENTRIES_MAX` entries) and snapshot chunks stay well below it.
pub const FRAME_BYTES_MAX: usize = 16 << 20;
/// How long a new connection may take to say hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long dialing a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long writing one response may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request for this long is closed; peers redial.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("a {0} byte frame is over the {FRAME_BYTES_MAX} byte bound")]
    TooLong(usize),
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
    #[error("timed out")]
    Timeout,
    #[error("peer refused: {0}")]
    Refused(String),
}

pub async fn write_frame<T: Serialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    value: &T,
) -> Result<(), FrameError> {
    let body = postcard::to_allocvec(value)?;
    if body.len() > FRAME_BYTES_MAX {
        return Err(FrameError::TooLong(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await?;
    // TLS holds what it encrypted until flushed.
    stream.flush().await?;
    Ok(())
}

pub async fn read_frame<T: DeserializeOwned>(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<T, FrameError> {
    Ok(postcard::from_bytes(&read_body(stream).await?)?)
}

async fn read_body(stream: &mut (impl AsyncRead + Unpin)) -> Result<Vec<u8>, FrameError> {
    let len = stream.read_u32().await? as usize;
    if len > FRAME_BYTES_MAX {
        return Err(FrameError::TooLong(len));
    }
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

async fn read_hello(stream: &mut (impl AsyncRead + Unpin)) -> Result<Hello, FrameError> {
    Ok(Hello::decode(&read_body(stream).await?)?)
}

/// Bounds any frame exchange.
pub async fn within<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, FrameError>>,
) -> Result<T, FrameError> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or(Err(FrameError::Timeout))
}

/// Why a hello is refused, if it is.
pub fn check_hello(core: &Core, hello: &Hello) -> Result<(), String> {
    if hello.version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} (this node speaks {PROTOCOL_VERSION})",
            hello.version
        ));
    }
    if hello.cluster_id != core.cluster_id {
        return Err(format!(
            "cluster id {:?}, this node's is {:?}",
            hello.cluster_id, core.cluster_id
        ));
    }
    Ok(())
}

/// Why node `from` may not send `request`, if it may not.
pub fn check_request(core: &Core, from: i32, request: &Request) -> Result<(), String> {
    match request {
        // A node that wrongly calls itself a voter cannot campaign. Only
        // votes are checked: a node behind may not know yet that a learner
        // became a voter and now leads, and must still take its entries;
        // and a leader is elected by voters, which refused the others.
        Request::Vote(_) | Request::VoteAs { .. } if !core.voters_known().contains(&from) => Err(
            format!("node {from} is not a voter here and asked for a vote"),
        ),
        Request::VoteAs {
            voter_directory_id, ..
        } => match super::directories::refuse_vote(core.directory_id, *voter_directory_id) {
            Some(why) => Err(format!("node {from} asked for a vote: {why}")),
            None => Ok(()),
        },
        Request::AddLearner { id, .. } if *id != from => {
            Err(format!("node {from} asked to add node {id} as a learner"))
        }
        _ => Ok(()),
    }
}

/// Dials `target` at `addr` (HOST:PORT) and exchanges hellos; the peer
/// must be the node we meant, in our cluster.
pub async fn connect(core: &Core, target: i32, addr: &str) -> Result<Stream, FrameError> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| FrameError::Timeout)??;
    tcp.set_nodelay(true)?;
    let mut stream = match &core.tls {
        Some(tls) => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let handshake = async { Ok(tls.connect(host, tcp).await?) };
            within(HELLO_TIMEOUT, handshake).await.inspect_err(|e| {
                core.stats.peers_refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(node = target, addr, error = %e, "TLS handshake with controller peer failed");
            })?
        }
        None => Stream::from(tcp),
    };
    within(HELLO_TIMEOUT, async {
        write_frame(&mut stream, &core.hello()).await?;
        let theirs = read_hello(&mut stream).await?;
        let refused = check_hello(core, &theirs).err().or_else(|| {
            (theirs.node_id != target).then(|| format!("it is node {}", theirs.node_id))
        });
        if let Some(why) = refused {
            core.stats.peers_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(node = target, addr, reason = %why, "refusing controller peer");
            return Err(FrameError::Refused(why));
        }
        core.peer_hello(target, &theirs);
        Ok(())
    })
    .await?;
    Ok(stream)
}

/// Accepts quorum connections until the runtime stops.
pub async fn accept_loop(listener: TcpListener, core: Arc<Core>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let core = core.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, peer, &core).await {
                        tracing::debug!(%peer, error = %e, "controller connection closed");
                    }
                });
            }
            Err(e) => {
                // Out of fds and the like: pause instead of spinning.
                tracing::warn!(error = %e, "controller accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve(tcp: TcpStream, peer: SocketAddr, core: &Core) -> Result<(), FrameError> {
    tcp.set_nodelay(true)?;
    let mut stream = match &core.tls {
        Some(tls) => {
            let handshake = async { Ok(tls.accept(tcp).await?) };
            match within(HELLO_TIMEOUT, handshake).await {
                Ok(stream) => stream,
                Err(e) => {
                    // A peer without a certificate of the quorum's CA.
                    core.stats.peers_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%peer, error = %e, "TLS handshake from controller peer failed");
                    return Ok(());
                }
            }
        }
        None => Stream::from(tcp),
    };
    let hello = match within(HELLO_TIMEOUT, read_hello(&mut stream)).await {
        Ok(h) => h,
        Err(e @ (FrameError::TooLong(_) | FrameError::Decode(_))) => {
            tracing::warn!(%peer, error = %e, "bad controller hello");
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if let Err(why) = check_hello(core, &hello) {
        core.stats.peers_refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%peer, node = hello.node_id, reason = %why, "refusing controller peer");
        return Ok(());
    }
    core.peer_hello(hello.node_id, &hello);
    within(HELLO_TIMEOUT, write_frame(&mut stream, &core.hello())).await?;
    loop {
        let request: Request = match within(IDLE_TIMEOUT, read_frame(&mut stream)).await {
            Ok(r) => r,
            Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(());
            }
            Err(e @ (FrameError::TooLong(_) | FrameError::Decode(_))) => {
                tracing::warn!(%peer, node = hello.node_id, error = %e, "bad controller frame");
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if let Err(why) = check_request(core, hello.node_id, &request) {
            core.stats.peers_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, node = hello.node_id, reason = %why, "refusing controller request");
            return Ok(());
        }
        let response = core.handle(request).await;
        within(WRITE_TIMEOUT, write_frame(&mut stream, &response)).await?;
    }
}
