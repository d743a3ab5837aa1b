//! Malformed frames, corrupt batches, oversized batches and version negotiation on raw sockets.

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::raw::{self, err, RawClient};
use common::*;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::Decodable;

/// socket.request.max.bytes: 100 MiB.
const MAX_REQUEST: i32 = 100 * 1024 * 1024;

/// ApiVersions on `c` succeeds with v3.
fn assert_api_versions_ok(c: &mut RawClient) {
    let resp: ApiVersionsResponse = c.call(3, &raw::api_versions_request());
    assert_eq!(resp.error_code, err::NONE);
    assert!(!resp.api_keys.is_empty());
}

/// The broker still serves other clients: a fresh raw connection negotiates
/// versions, and librdkafka produces and consumes a message.
fn assert_broker_serves(bs: &str, topic: &str) {
    let mut fresh = RawClient::connect(bs);
    assert_api_versions_ok(&mut fresh);
    let d = produce_values(bs, topic, None, &["still alive".to_string()]);
    let got = consume_all(bs, topic, 1, d.len(), Duration::from_secs(30));
    assert_eq!(payload_str(&got[0]), "still alive");
}

/// Sends `bytes` on a new connection, asserts the broker closes that connection,
/// and that an already-open connection and new clients are unaffected.
fn assert_closes_only_that_connection(bytes: &[u8], what: &str) {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let mut bystander = RawClient::connect(&bs);
    assert_api_versions_ok(&mut bystander);

    let mut bad = RawClient::connect(&bs);
    // The broker may close before reading everything; a failed write is fine.
    let _ = bad.send_bytes(bytes);
    assert!(bad.is_closed(), "{what}: broker kept the connection open");

    assert_api_versions_ok(&mut bystander);
    assert_broker_serves(&bs, "after-bad-input");
}

/// A frame announcing more than socket.request.max.bytes (100 MiB) closes that connection only.
#[test]
fn oversized_frame_closes_connection() {
    let mut frame = BytesMut::new();
    frame.put_i32(MAX_REQUEST + 1);
    // The start of a plausible ApiVersions header; the rest never comes.
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(3);
    frame.put_i32(1);
    assert_closes_only_that_connection(&frame, "size 100 MiB + 1");
}

/// A frame with a negative size closes that connection only.
#[test]
fn negative_size_closes_connection() {
    let mut frame = BytesMut::new();
    frame.put_i32(-1);
    frame.put_slice(&[0u8; 16]);
    assert_closes_only_that_connection(&frame, "size -1");
}

/// A well-sized frame with an unknown API key closes that connection only.
#[test]
fn unknown_api_key_closes_connection() {
    let mut body = BytesMut::new();
    body.put_i16(0x7777); // no such API
    body.put_i16(0);
    body.put_i32(42); // correlation id
    body.put_i16(4);
    body.put_slice(b"test");
    body.put_slice(&[0xAB; 32]);
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    assert_closes_only_that_connection(&frame, "unknown api key");
}

/// A well-sized frame whose header cannot be parsed (client id longer than the frame) closes that connection only.
#[test]
fn unparseable_header_closes_connection() {
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::Metadata as i16);
    body.put_i16(1);
    body.put_i32(43);
    body.put_i16(1000); // client id length, but only 6 bytes follow
    body.put_slice(b"\xde\xad\xbe\xef\x00\x01");
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    assert_closes_only_that_connection(&frame, "unparseable header");
}

/// A frame of pure garbage bytes (valid size) closes that connection only.
#[test]
fn garbage_frame_closes_connection() {
    let garbage: Vec<u8> = (0..64u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 0x80)
        .collect();
    let mut frame = BytesMut::new();
    frame.put_i32(garbage.len() as i32);
    frame.put_slice(&garbage);
    assert_closes_only_that_connection(&frame, "garbage frame");
}

fn three_records(ts: i64) -> Bytes {
    sluice::record::build::build_batch(
        0,
        &[
            (Some(b"k0"), Some(b"v0"), ts, &[]),
            (Some(b"k1"), Some(b"v1"), ts, &[("h", Some(b"x"))]),
            (None, None, ts, &[]),
        ],
    )
}

/// A batch with a bad CRC is rejected with CORRUPT_MESSAGE and the log end offset does not move.
#[test]
fn corrupt_crc_is_rejected() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "crc";
    create_topic(&bs, topic, 1, &[]);
    let mut c = RawClient::connect(&bs);

    assert_eq!(
        c.produce_batch(topic, 0, three_records(now_ms())),
        (err::NONE, 0),
        "valid batch"
    );
    assert_eq!(c.log_end_offset(topic, 0), 3);

    // v2 batch layout: baseOffset(8) batchLength(4) leaderEpoch(4) magic(1) crc(4) attributes...
    let good = three_records(now_ms());
    let mut bad_crc = good.to_vec();
    bad_crc[17] ^= 0xFF;
    let mut bad_payload = good.to_vec();
    let last = bad_payload.len() - 3;
    bad_payload[last] ^= 0x55;
    for (what, batch) in [("crc field", bad_crc), ("payload byte", bad_payload)] {
        let (code, _) = c.produce_batch(topic, 0, Bytes::from(batch));
        assert_eq!(code, err::CORRUPT_MESSAGE, "corrupted {what}");
        assert_eq!(
            c.log_end_offset(topic, 0),
            3,
            "log end offset after corrupted {what}"
        );
    }

    // The connection and partition still work.
    assert_eq!(
        c.produce_batch(topic, 0, good),
        (err::NONE, 3),
        "valid batch after corrupt ones"
    );
    let got = consume_all(&bs, topic, 1, 6, Duration::from_secs(30));
    let offsets: Vec<i64> = got.iter().map(rdkafka::Message::offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4, 5]);
}

/// A batch larger than the topic's max.message.bytes is rejected with MESSAGE_TOO_LARGE and nothing is written.
#[test]
fn batch_over_max_message_bytes_is_rejected() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let topic = "small-max";
    create_topic(&bs, topic, 1, &[("max.message.bytes", "1024")]);
    let mut c = RawClient::connect(&bs);

    let big_value = vec![b'x'; 4000];
    let big = sluice::record::build::build_batch(0, &[(None, Some(&big_value[..]), now_ms(), &[])]);
    assert!(big.len() > 1024);
    assert_eq!(c.produce_batch(topic, 0, big).0, err::MESSAGE_TOO_LARGE);
    assert_eq!(c.log_end_offset(topic, 0), 0, "nothing written");

    let small = sluice::record::build::build_batch(0, &[(None, Some(&b"fits"[..]), now_ms(), &[])]);
    assert!(small.len() < 1024);
    assert_eq!(
        c.produce_batch(topic, 0, small),
        (err::NONE, 0),
        "a batch under the limit is accepted"
    );
    assert_eq!(c.log_end_offset(topic, 0), 1);
}

/// ApiVersions v0-v4 list the supported ranges; a too-new version gets
/// UNSUPPORTED_VERSION in a v0 response listing ApiVersions' own range, as
/// Kafka's does.
#[test]
fn api_versions_negotiation() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    let mut c = RawClient::connect(&bs);

    // (api, min the broker must accept, max the broker must accept)
    let required: &[(ApiKey, i16, i16)] = &[
        (ApiKey::Produce, 0, 13),
        (ApiKey::Fetch, 0, 18),
        (ApiKey::ListOffsets, 0, 10),
        (ApiKey::Metadata, 0, 13),
        (ApiKey::ApiVersions, 0, 4),
        (ApiKey::CreateTopics, 0, 7),
        (ApiKey::DeleteTopics, 0, 6),
        (ApiKey::CreatePartitions, 0, 3),
        (ApiKey::DescribeConfigs, 0, 4),
        (ApiKey::AlterConfigs, 0, 2),
        (ApiKey::IncrementalAlterConfigs, 0, 1),
        (ApiKey::OffsetCommit, 0, 9),
        (ApiKey::OffsetFetch, 0, 9),
        (ApiKey::InitProducerId, 0, 5),
        (ApiKey::DescribeProducers, 0, 0),
        (ApiKey::TxnOffsetCommit, 0, 4),
        (ApiKey::DescribeCluster, 0, 2),
        (ApiKey::DescribeTopicPartitions, 0, 0),
        (ApiKey::UpdateFeatures, 0, 2),
        (ApiKey::AlterReplicaLogDirs, 1, 2),
        (ApiKey::ListConfigResources, 0, 1),
        (ApiKey::ElectLeaders, 0, 2),
        (ApiKey::OffsetForLeaderEpoch, 0, 4),
        (ApiKey::WriteTxnMarkers, 0, 1),
        (ApiKey::AddPartitionsToTxn, 0, 5),
        (ApiKey::AddOffsetsToTxn, 0, 4),
        (ApiKey::EndTxn, 0, 4),
        (ApiKey::DescribeTransactions, 0, 0),
        (ApiKey::ListTransactions, 0, 2),
        (ApiKey::DescribeClientQuotas, 0, 1),
        (ApiKey::AlterClientQuotas, 0, 1),
        (ApiKey::FindCoordinator, 0, 6),
        (ApiKey::JoinGroup, 0, 9),
        (ApiKey::SyncGroup, 0, 5),
        (ApiKey::Heartbeat, 0, 4),
        (ApiKey::LeaveGroup, 0, 5),
        (ApiKey::ListGroups, 0, 5),
        (ApiKey::DescribeGroups, 0, 6),
        (ApiKey::DeleteGroups, 0, 2),
        (ApiKey::OffsetDelete, 0, 0),
    ];
    for v in 0..=4 {
        let resp: ApiVersionsResponse = c.call(v, &raw::api_versions_request());
        assert_eq!(resp.error_code, err::NONE, "ApiVersions v{v}");
        for &(api, lo, hi) in required {
            let entry = resp
                .api_keys
                .iter()
                .find(|k| k.api_key == api as i16)
                .unwrap_or_else(|| panic!("ApiVersions v{v}: {api:?} not listed"));
            assert!(
                entry.min_version <= lo && entry.max_version >= hi,
                "ApiVersions v{v}: {api:?} advertised {}..={}, need {lo}..={hi}",
                entry.min_version,
                entry.max_version
            );
        }
        for k in &resp.api_keys {
            assert!(
                k.min_version <= k.max_version,
                "bad range for api {}",
                k.api_key
            );
        }
    }

    // ApiVersions v99: header v2 (as for v3+), body as for v3.
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::ApiVersions as i16);
    body.put_i16(99);
    body.put_i32(4242); // correlation id
    body.put_i16(5);
    body.put_slice(b"tests");
    body.put_u8(0); // header tagged fields
    body.put_u8(1 + 6);
    body.put_slice(b"sluice");
    body.put_u8(1 + 3);
    body.put_slice(b"0.1");
    body.put_u8(0); // body tagged fields
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    c.send_bytes(&frame).expect("send ApiVersions v99");
    let mut resp = c.read_frame().expect("a response to ApiVersions v99");
    let header = kafka_protocol::messages::ResponseHeader::decode(&mut resp, 0).unwrap();
    assert_eq!(header.correlation_id, 4242);
    // Kafka clients decode this error response as v0.
    let resp = ApiVersionsResponse::decode(&mut resp, 0).expect("decode as ApiVersions v0");
    assert_eq!(resp.error_code, err::UNSUPPORTED_VERSION);
    let av = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .expect("ApiVersions listed in the error response");
    assert_eq!(
        (av.min_version, av.max_version),
        (0, 4),
        "ApiVersions' range in the error response"
    );
    assert_eq!(resp.api_keys.len(), 1, "only ApiVersions is listed");

    // The client can retry with a supported version on the same connection.
    assert_api_versions_ok(&mut c);
}

/// A tiny Metadata frame claiming 2^31 topics (a ~150 GB array if trusted)
/// closes that connection only; the broker neither aborts nor grows.
#[test]
fn huge_array_count_closes_connection() {
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::Metadata as i16);
    body.put_i16(1);
    body.put_i32(7); // correlation id
    body.put_i16(4);
    body.put_slice(b"test");
    body.put_i32(i32::MAX); // topics array length
    body.put_slice(b"abc");
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    assert_closes_only_that_connection(&frame, "array of i32::MAX topics");
}
