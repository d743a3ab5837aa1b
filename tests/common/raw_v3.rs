//! Requests in Kafka 3.x's schemas (kafka-protocol 0.15.1), for the versions
//! Kafka 4.0 dropped, over a [`RawClient`] connection.

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol_v3::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol_v3::protocol::{Decodable, Encodable, Request, StrBytes};

use super::raw::RawClient;

/// A size-prefixed request frame at `version`, header as Kafka 3.x wrote it.
pub fn frame<R: Request>(version: i16, correlation_id: i32, req: &R) -> Vec<u8> {
    let key = ApiKey::try_from(R::KEY).expect("known api key");
    let mut header = RequestHeader::default();
    header.request_api_key = R::KEY;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("sluice-raw-v3-test"));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, key.request_header_version(version))
        .expect("encode request header");
    req.encode(&mut body, version).expect("encode request body");
    let mut out = Vec::with_capacity(body.len() + 4);
    out.put_i32(body.len() as i32);
    out.extend_from_slice(&body);
    out
}

/// Sends `req` at `version` and decodes the whole response at that version;
/// an I/O error (the broker closed the connection) is an `Err`.
pub fn try_call<R: Request>(
    c: &mut RawClient,
    version: i16,
    req: &R,
) -> std::io::Result<R::Response> {
    const CORRELATION_ID: i32 = 0x5eed;
    c.send_bytes(&frame(version, CORRELATION_ID, req))?;
    let mut resp = c.read_frame()?;
    let key = ApiKey::try_from(R::KEY).unwrap();
    let header = ResponseHeader::decode(&mut resp, key.response_header_version(version))
        .expect("decode response header");
    assert_eq!(header.correlation_id, CORRELATION_ID);
    let body = R::Response::decode(&mut resp, version)
        .unwrap_or_else(|e| panic!("decode {key:?} v{version} response: {e}"));
    assert!(
        !resp.has_remaining(),
        "{} trailing bytes after {key:?} v{version}",
        resp.remaining()
    );
    Ok(body)
}

pub fn call<R: Request>(c: &mut RawClient, version: i16, req: &R) -> R::Response {
    try_call(c, version, req).unwrap_or_else(|e| panic!("v{version} call: {e}"))
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}
