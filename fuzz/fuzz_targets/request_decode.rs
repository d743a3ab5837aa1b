//! Request decoding as the broker does it before dispatch
//! (`handlers::handle_frame`): the 8-byte prefix, the request header at the
//! API's header version, then the body with kafka-protocol's decoder for
//! that API and version. The input is one frame without its size prefix; an
//! API key or version the broker does not serve is folded onto one it does
//! (the broker refuses those before decoding), so every input reaches a
//! decoder of `handlers::APIS`.
//!
//! Versions Kafka 4 dropped (served through `handlers::legacy`) go through
//! that bridge as the broker takes them: decoded with the 3.x schemas,
//! message sets converted, re-encoded, then decoded again as the handlers
//! would.
//!
//! Decoder panics are findings here, though the broker survives them: its
//! `decode` catches the unwind and closes only that connection.
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;
use libfuzzer_sys::fuzz_target;
use sluice::handlers::APIS;

/// The broker's allocator, as `main.rs` installs it: huge wire-declared
/// capacities cost address space, not memory.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: sluice::alloc::Allocator = sluice::alloc::Allocator;

/// Api key, version, correlation id: what the broker reads before decoding.
const HEADER_PREFIX_LEN: usize = 8;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_PREFIX_LEN {
        return;
    }
    let mut frame = data.to_vec();
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let raw_version = i16::from_be_bytes([frame[2], frame[3]]);
    let spec = APIS
        .iter()
        .find(|s| s.key as i16 == raw_key)
        .unwrap_or(&APIS[raw_key.unsigned_abs() as usize % APIS.len()]);
    let span = (spec.max - spec.min + 1) as u16;
    let version = if (spec.min..=spec.max).contains(&raw_version) {
        raw_version
    } else {
        spec.min + (raw_version as u16 % span) as i16
    };
    frame[..2].copy_from_slice(&(spec.key as i16).to_be_bytes());
    frame[2..4].copy_from_slice(&version.to_be_bytes());
    let frame = Bytes::from(frame);
    match sluice::handlers::forward_legacy_frame(
        spec.key,
        version,
        frame.clone(),
        DECOMPRESSED_MAX,
        DOWN_CONVERSION_MAX,
    ) {
        Some(Ok(body)) => decode_body(spec.key, spec.key.valid_versions().min, body),
        Some(Err(_)) => {}
        None => decode(spec.key, version, frame),
    }
});

/// Small bounds so a run spends its time parsing, not inflating.
const DECOMPRESSED_MAX: usize = 1 << 20;
const DOWN_CONVERSION_MAX: usize = 1 << 20;

/// What a handler of the forwarded version decodes.
fn decode_body(key: ApiKey, version: i16, mut body: Bytes) {
    let _ = RequestKind::decode(key, &mut body, version);
}

fn decode(key: ApiKey, version: i16, mut buf: Bytes) {
    let Ok(header) = RequestHeader::decode(&mut buf, key.request_header_version(version)) else {
        return;
    };
    assert_eq!(header.request_api_key, key as i16);
    assert_eq!(header.request_api_version, version);
    let before = buf.len();
    if RequestKind::decode(key, &mut buf, version).is_ok() {
        assert!(buf.len() <= before, "a decoder never grows its input");
    }
}
