//! A broker's own Kafka client connection: what a follower's fetcher uses
//! to reach its leader, and a coordinator to write transaction markers.
//! One request at a time; every wait is bounded. It speaks the
//! inter-broker listener's protocol ([`Security`]): TLS (`tls`), a SASL
//! login (`sasl`), both or neither.

mod kept;
mod sasl;
mod security;
mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures::AsyncWriteExt;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

pub use kept::KeptConnections;
pub use security::{Security, SecurityError};

use super::frame::{read_frame, FrameError};
use crate::runtime::TcpStream;
use crate::security::scram_client::ScramClientError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the peer closed the connection")]
    Closed,
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot encode or decode: {0}")]
    Codec(String),
    #[error("answer to correlation id {got}, expected {expected}")]
    Correlation { expected: i32, got: i32 },
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
    #[error("the peer does not offer SASL mechanism {mechanism} (it offers {offered:?})")]
    SaslMechanism {
        mechanism: &'static str,
        offered: Vec<String>,
    },
    #[error("SASL authentication as {user:?} refused (error {code}): {message}")]
    SaslAuthentication {
        user: String,
        code: i16,
        message: String,
    },
    #[error(transparent)]
    Scram(#[from] ScramClientError),
}

impl ClientError {
    /// Whether the peer was reached but refused this broker's TLS or SASL
    /// login (a configuration to fix, not a network blip).
    pub fn is_login(&self) -> bool {
        matches!(
            self,
            ClientError::Tls { .. }
                | ClientError::SaslMechanism { .. }
                | ClientError::SaslAuthentication { .. }
                | ClientError::Scram(_)
        )
    }

    /// A short name for the kind of failure, so a retrying caller logs a
    /// kind once rather than every attempt.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Connect { .. } => "connect",
            ClientError::Timeout(_) => "timeout",
            ClientError::Closed | ClientError::Io(_) => "connection",
            ClientError::Frame(_) | ClientError::Codec(_) | ClientError::Correlation { .. } => {
                "protocol"
            }
            ClientError::Tls { .. } => "tls",
            ClientError::SaslMechanism { .. } => "sasl-mechanism",
            ClientError::SaslAuthentication { .. } | ClientError::Scram(_) => "sasl-authentication",
        }
    }
}

/// The socket, plain or under TLS.
type Stream = crate::net::stream::MaybeTls<tls::TlsClientConn>;

pub struct KafkaConnection {
    stream: Stream,
    client_id: StrBytes,
    next_correlation: i32,
    /// Largest response frame accepted.
    response_max: u32,
    security: Arc<Security>,
    /// KIP-368: when the SASL session must be renewed, if the peer limits it.
    renew_at: Option<Instant>,
}

impl KafkaConnection {
    /// Connects to `addr` (`host:port`, the peer's advertised inter-broker
    /// endpoint), runs the TLS handshake and the SASL login `security`
    /// asks for, all within `timeout`.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        response_max: u32,
        timeout: Duration,
        security: &Arc<Security>,
    ) -> Result<KafkaConnection, ClientError> {
        let opening = Self::open(addr, client_id, response_max, timeout, security);
        crate::runtime::timeout(timeout, opening)
            .await
            .ok_or(ClientError::Timeout(timeout))?
    }

    async fn open(
        addr: &str,
        client_id: &str,
        response_max: u32,
        timeout: Duration,
        security: &Arc<Security>,
    ) -> Result<KafkaConnection, ClientError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect {
                addr: addr.to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
        let _ = tcp.set_nodelay(true);
        let stream = match &security.tls {
            None => Stream::Plain(tcp),
            Some(t) => Stream::Tls(t.connect(tls::host_of(addr), tcp).await.map_err(|e| {
                ClientError::Tls {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                }
            })?),
        };
        let mut conn = KafkaConnection {
            stream,
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation: 0,
            response_max,
            security: security.clone(),
            renew_at: None,
        };
        conn.login(timeout).await?;
        Ok(conn)
    }

    /// The SASL login, when the inter-broker listener wants one.
    async fn login(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let security = self.security.clone();
        if let Some(login) = &security.sasl {
            self.renew_at = sasl::authenticate(self, login, timeout).await?;
        }
        Ok(())
    }

    /// Sends `request` as `api` version `version` and returns the decoded
    /// answer, or an error once `timeout` passes.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClientError> {
        if self.renew_at.is_some_and(|at| Instant::now() >= at) {
            // KIP-368: the peer would close the session; renew it first, on
            // this connection, as Kafka's clients do; all its steps
            // within one `timeout`.
            crate::runtime::timeout(timeout, self.login(timeout))
                .await
                .ok_or(ClientError::Timeout(timeout))??;
        }
        self.call_bounded(api, version, request, timeout, self.response_max)
            .await
    }

    /// [`Self::call`] with its own bound on the answer's size.
    async fn call_bounded<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
        response_max: u32,
    ) -> Result<Resp, ClientError> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let frame = encode(api, version, correlation, &self.client_id, request)?;
        let exchange = async {
            self.stream.write_all(&frame).await?;
            // TLS holds written records until flushed.
            self.stream.flush().await?;
            read_frame(&mut self.stream, response_max)
                .await?
                .ok_or(ClientError::Closed)
        };
        let mut body = crate::runtime::timeout(timeout, exchange)
            .await
            .ok_or(ClientError::Timeout(timeout))??;
        decode(api, version, correlation, &mut body)
    }
}

fn encode<Req: Encodable>(
    api: ApiKey,
    version: i16,
    correlation: i32,
    client_id: &StrBytes,
    request: &Req,
) -> Result<Bytes, ClientError> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(client_id.clone()));
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&[0; 4]);
    header
        .encode(&mut buf, api.request_header_version(version))
        .map_err(codec)?;
    request.encode(&mut buf, version).map_err(codec)?;
    let size = i32::try_from(buf.len() - 4).map_err(|_| ClientError::Codec("too large".into()))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

fn decode<Resp: Decodable>(
    api: ApiKey,
    version: i16,
    correlation: i32,
    body: &mut Bytes,
) -> Result<Resp, ClientError> {
    let header =
        ResponseHeader::decode(body, api.response_header_version(version)).map_err(codec)?;
    if header.correlation_id != correlation {
        return Err(ClientError::Correlation {
            expected: correlation,
            got: header.correlation_id,
        });
    }
    let response = Resp::decode(body, version).map_err(codec)?;
    if body.has_remaining() {
        tracing::debug!(left = body.remaining(), "bytes left after a response");
    }
    Ok(response)
}

fn codec(e: impl std::fmt::Display) -> ClientError {
    ClientError::Codec(e.to_string())
}
