//! A broker's own Kafka client connection: what a follower's fetcher uses
//! to reach its leader. One request at a time; every wait is bounded.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::AsyncWriteExt;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::frame::{read_frame, FrameError};
use crate::runtime::TcpStream;

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
}

pub struct KafkaConnection {
    stream: TcpStream,
    client_id: StrBytes,
    next_correlation: i32,
    /// Largest response frame accepted.
    response_max: u32,
}

impl KafkaConnection {
    pub async fn connect(
        addr: &str,
        client_id: &str,
        response_max: u32,
        timeout: Duration,
    ) -> Result<KafkaConnection, ClientError> {
        let connecting = TcpStream::connect(addr);
        let stream = match crate::runtime::timeout(timeout, connecting).await {
            None => return Err(ClientError::Timeout(timeout)),
            Some(Err(e)) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    source: std::io::Error::other(e.to_string()),
                })
            }
            Some(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(KafkaConnection {
            stream,
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation: 0,
            response_max,
        })
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
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let frame = encode(api, version, correlation, &self.client_id, request)?;
        let exchange = async {
            self.stream.write_all(&frame).await?;
            read_frame(&mut self.stream, self.response_max)
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
