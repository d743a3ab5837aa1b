//! The version bridge: request versions Kafka 4.0 dropped (KIP-896) that
//! kafka-protocol 0.18 no longer decodes, served by the unchanged handlers.
//!
//! A request below the oldest version 0.18 knows is decoded with Kafka 3.x's
//! schemas (kafka-protocol 0.15.1, `kafka_protocol_v3`), re-encoded at that
//! oldest version and dispatched as if the client had sent it; the response
//! comes back the same way, decoded at the forwarded version and re-encoded
//! at the client's. Where the old version means something the forwarded one
//! cannot say, [`fixups`] rebuilds it: ListOffsets v0's offset arrays,
//! OffsetCommit v1's commit times ([`Carried`]), DescribeConfigs v0's
//! `is_default`.
//!
//! Bounds: the forwarded request is at most [`GROWTH_MAX`] times the frame
//! the client sent, which `socket_request_max_bytes` already bounds; the
//! response is decoded from bytes a handler produced.

mod fixups;
mod offsets_v0;
mod records;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol_v3 as v3;
use v3::protocol::{Decodable, Encodable};

use super::{Client, Piece, RequestError};
use crate::services::Services;

/// What the forwarded request cannot say and its handler must still know.
#[derive(Debug, Default)]
pub(crate) struct Carried {
    /// OffsetCommit v1: each partition's commit time in request order (-1:
    /// the broker's clock), which Kafka 3.x kept as the commit time.
    pub(crate) commit_timestamps: Vec<i64>,
}

/// How much bigger than the client's request the forwarded one may be: the
/// fields a forwarded version adds (a retention time, a null tag buffer)
/// are a few bytes per request or per entry the client already sent.
pub(crate) const GROWTH_MAX: usize = 2;

/// The APIs whose dropped versions the bridge serves.
fn bridges(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::Produce
            | ApiKey::Fetch
            | ApiKey::ListOffsets
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::CreateTopics
            | ApiKey::DeleteTopics
            | ApiKey::DescribeConfigs
            | ApiKey::DescribeLogDirs
            | ApiKey::OffsetForLeaderEpoch
            | ApiKey::WriteTxnMarkers
            | ApiKey::DescribeAcls
            | ApiKey::CreateAcls
            | ApiKey::DeleteAcls
    )
}

/// The version a request of `key` at `version` is served at, when the
/// bridge serves it: the oldest version kafka-protocol 0.18 decodes.
pub(super) fn forwarded_version(key: ApiKey, version: i16) -> Option<i16> {
    let oldest = key.valid_versions().min;
    (version < oldest && bridges(key) && v3_knows(key, version)).then_some(oldest)
}

/// Whether Kafka 3.x's schemas hold `key` at `version`.
pub(super) fn v3_knows(key: ApiKey, version: i16) -> bool {
    v3::messages::ApiKey::try_from(key as i16)
        .is_ok_and(|k| (k.valid_versions().min..=k.valid_versions().max).contains(&version))
}

/// The request half of [`serve`] without a broker: a frame (without its
/// size) of a bridged version decoded and re-encoded at the version the
/// handlers read, message sets converted within the given bounds. `None`
/// for a version the bridge does not serve; an empty body for ListOffsets
/// v0, which is decoded and answered without forwarding. For the fuzzer.
pub fn forward_frame(
    key: ApiKey,
    version: i16,
    frame: Bytes,
    decompressed_max: usize,
    down_conversion_max: usize,
) -> Option<Result<Bytes, RequestError>> {
    let to = forwarded_version(key, version)?;
    let v3_key = v3::messages::ApiKey::try_from(key as i16).ok()?;
    let mut buf = frame;
    let header: Result<v3::messages::RequestHeader, _> = decode(
        &mut buf,
        key,
        version,
        v3_key.request_header_version(version),
    );
    let limits = records::Limits {
        decompressed_max,
        down_conversion_max,
    };
    Some(header.and_then(|_| {
        if key == ApiKey::ListOffsets {
            let _: v3::messages::ListOffsetsRequest = decode(&mut buf, key, version, version)?;
            return Ok(Bytes::new());
        }
        fixups::forward_request(key, (version, to), &mut buf, limits).map(|f| f.body)
    }))
}

/// Serves one request frame of a bridged version (see the module doc).
pub(super) async fn serve(
    services: &std::rc::Rc<Services>,
    client: &Client,
    key: ApiKey,
    version: i16,
    frame: Bytes,
) -> Result<Option<Vec<Piece>>, RequestError> {
    let to = forwarded_version(key, version).ok_or(RequestError::UnsupportedVersion {
        key,
        version,
        client: client.software(),
    })?;
    let v3_key = v3::messages::ApiKey::try_from(key as i16)
        .map_err(|_| RequestError::UnknownApi(key as i16))?;
    let frame_len = frame.len();
    let mut buf = frame;
    let mut header: v3::messages::RequestHeader = decode(
        &mut buf,
        key,
        version,
        v3_key.request_header_version(version),
    )?;
    let correlation_id = header.correlation_id;
    if key == ApiKey::ListOffsets {
        let request = decode(&mut buf, key, version, version)?;
        let access = super::access::Access::of(&services.shard, client);
        let response = offsets_v0::answer(&services.shard, &access, request).await;
        let mut body = BytesMut::new();
        encode(&response, &mut body, version)?;
        let mut response_header = v3::messages::ResponseHeader::default();
        response_header.correlation_id = correlation_id;
        return framed(v3_key, version, &response_header, &body).map(Some);
    }
    let limits = records::Limits {
        decompressed_max: services.shard.config.decompressed_batch_bytes_max,
        down_conversion_max: services.shard.config.fetch.down_conversion_max_bytes,
    };
    let forward = fixups::forward_request(key, (version, to), &mut buf, limits)?;
    header.request_api_version = to;
    let mut forwarded = BytesMut::with_capacity(frame_len.saturating_mul(GROWTH_MAX));
    encode(&header, &mut forwarded, v3_key.request_header_version(to))?;
    forwarded.extend_from_slice(&forward.body);
    let Some(pieces) = super::dispatch(
        services,
        client,
        key,
        to,
        correlation_id,
        forwarded.freeze(),
        forward.carried,
    )
    .await?
    else {
        return Ok(None);
    };
    let mut response = join(pieces)?;
    let response_header: v3::messages::ResponseHeader =
        decode(&mut response, key, to, v3_key.response_header_version(to))?;
    let body = fixups::answer(key, to, version, &mut response, forward.answer)?;
    framed(v3_key, version, &response_header, &body).map(Some)
}

/// A response frame at the client's `version`: size, header, body.
fn framed(
    key: v3::messages::ApiKey,
    version: i16,
    header: &v3::messages::ResponseHeader,
    body: &[u8],
) -> Result<Vec<Piece>, RequestError> {
    let mut out = BytesMut::with_capacity(body.len() + 16);
    out.put_i32(0); // size, filled in below
    encode(header, &mut out, key.response_header_version(version))?;
    out.extend_from_slice(body);
    let size = i32::try_from(out.len() - 4)
        .map_err(|_| RequestError::Encode(format!("response of {} bytes", out.len())))?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(vec![Piece::Bytes(out.freeze())])
}

/// A bridged response as one buffer without its size prefix. A fetch's
/// file slices are read in here, from the page cache: the forwarded fetch
/// asked for at most `fetch.down_conversion_max_bytes`.
fn join(pieces: Vec<Piece>) -> Result<Bytes, RequestError> {
    use std::os::unix::fs::FileExt;
    let mut out = BytesMut::with_capacity(pieces.iter().map(Piece::len).sum());
    for piece in pieces {
        match piece {
            Piece::Bytes(b) => out.extend_from_slice(&b),
            Piece::File(f) => {
                let at = out.len();
                out.resize(at + f.len as usize, 0);
                f.file
                    .read_exact_at(&mut out[at..], f.position)
                    .map_err(|e| RequestError::Encode(format!("reading fetched batches: {e}")))?;
            }
        }
    }
    if out.len() < 4 {
        return Err(RequestError::Encode("a response without its size".into()));
    }
    Ok(out.freeze().slice(4..))
}

/// Decodes with Kafka 3.x's schemas; a decoder panic costs the connection.
pub(super) fn decode<T: Decodable>(
    buf: &mut Bytes,
    key: ApiKey,
    version: i16,
    schema_version: i16,
) -> Result<T, RequestError> {
    let fail = |reason: String| RequestError::Decode {
        key,
        version,
        reason,
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        T::decode(buf, schema_version)
    }))
    .map_err(|_| fail("decoder panicked".into()))?
    .map_err(|e| fail(e.to_string()))
}

pub(super) fn encode<T: Encodable>(
    value: &T,
    buf: &mut BytesMut,
    version: i16,
) -> Result<(), RequestError> {
    value
        .encode(buf, version)
        .map_err(|e| RequestError::Encode(format!("v{version}: {e}")))
}

/// Decodes `T` at `from`, lets `fix` change it, encodes it at `to`.
pub(super) fn reencode<T: Decodable + Encodable>(
    buf: &mut Bytes,
    key: ApiKey,
    (from, to): (i16, i16),
    fix: impl FnOnce(&mut T),
) -> Result<Bytes, RequestError> {
    let len = buf.len();
    let mut value: T = decode(buf, key, from, from)?;
    fix(&mut value);
    let mut out = BytesMut::with_capacity(len.saturating_mul(GROWTH_MAX) + 64);
    encode(&value, &mut out, to)?;
    Ok(out.freeze())
}

#[cfg(test)]
mod tests;
