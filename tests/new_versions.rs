//! The newest request versions Kafka 3.9 served, sent as kafka-protocol
//! encodes them over raw sockets: what each version means, not only that
//! it decodes. (KIP-951's leader hints need a follower: tests/cluster.rs.)

mod common;

use bytes::Bytes;
use common::raw::{self, err, RawClient};
use common::*;
use kafka_protocol::messages::*;
use uuid::Uuid;

const UNKNOWN_TOPIC_ID: i16 = 100;
const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;

fn batch(value: &[u8]) -> Bytes {
    sluice::record::build::build_batch(0, &[(None, Some(value), now_ms(), &[])])
}

/// ListOffsets v8's EARLIEST_LOCAL (-4) is the log start (nothing is tiered)
/// and v9's LATEST_TIERED (-5) is -1 (nothing was tiered), as Kafka answers
/// a topic without remote storage; an older version cannot have meant them.
#[test]
fn list_offsets_earliest_local_and_latest_tiered() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "tiers", 1, &[]);
    let mut c = RawClient::connect(&bs);
    for v in [b"a", b"b", b"c"] {
        assert_eq!(c.produce_batch("tiers", 0, batch(v)).0, err::NONE);
    }
    let ask = |c: &mut RawClient, version: i16, timestamp: i64| {
        let r: ListOffsetsResponse =
            c.call(version, &raw::list_offsets_request("tiers", 0, timestamp));
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    assert_eq!(ask(&mut c, 8, -4), (err::NONE, 0, -1));
    assert_eq!(ask(&mut c, 9, -4), (err::NONE, 0, -1));
    assert_eq!(ask(&mut c, 9, -5), (err::NONE, -1, -1));
    assert_eq!(ask(&mut c, 9, -1), (err::NONE, 3, -1));
    assert_eq!(ask(&mut c, 9, -2), (err::NONE, 0, -1));
    assert_eq!(ask(&mut c, 7, -4), (err::UNSUPPORTED_VERSION, -1, -1));
    assert_eq!(ask(&mut c, 8, -5), (err::UNSUPPORTED_VERSION, -1, -1));
}

/// The id Metadata gives `topic`.
fn topic_id(c: &mut RawClient, topic: &str) -> Uuid {
    let wanted =
        metadata_request::MetadataRequestTopic::default().with_name(Some(raw::topic_name(topic)));
    let request = MetadataRequest::default().with_topics(Some(vec![wanted]));
    let response: MetadataResponse = c.call(12, &request);
    response.topics[0].topic_id
}

/// A Fetch (v13+) of `partitions` of the topic with id `id`, no waiting.
fn fetch_by_id(id: Uuid, partitions: &[(i32, i64)]) -> FetchRequest {
    let mut request = raw::fetch_request("", partitions, 0);
    request.topics[0].topic = Default::default();
    request.topics[0].topic_id = id;
    request
}

/// Fetch v13-v17 name topics by id (KIP-516) and answer by id; an id the
/// broker does not know is UNKNOWN_TOPIC_ID; a session made by ids refuses
/// a request by names (FETCH_SESSION_TOPIC_ID_ERROR), as Kafka's does.
#[test]
fn fetch_names_topics_by_id() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "by-id", 1, &[]);
    let mut c = RawClient::connect(&bs);
    assert_eq!(c.produce_batch("by-id", 0, batch(b"one")).0, err::NONE);
    let id = topic_id(&mut c, "by-id");
    assert!(!id.is_nil());
    for version in 13..=17 {
        let mut request = fetch_by_id(id, &[(0, 0)]);
        // v15+ carries the consumer's replica id in replica_state.
        request.replica_state.replica_id = BrokerId(-1);
        let r: FetchResponse = c.call(version, &request);
        assert_eq!(r.error_code, err::NONE, "v{version}");
        assert_eq!(r.responses.len(), 1, "v{version}");
        assert_eq!(r.responses[0].topic_id, id, "v{version}");
        let p = &r.responses[0].partitions[0];
        assert_eq!(
            (p.error_code, p.high_watermark),
            (err::NONE, 1),
            "v{version}"
        );
        assert_eq!(raw::decode_records(&p.records).len(), 1, "v{version}");
        assert!(r.node_endpoints.is_empty(), "v{version}: no leader moved");
    }

    // An unknown id, beside a known one: the known one is served.
    let unknown = Uuid::from_u128(0x5eed);
    let mut request = fetch_by_id(id, &[(0, 0)]);
    let mut other = request.topics[0].clone();
    other.topic_id = unknown;
    request.topics.push(other);
    let r: FetchResponse = c.call(13, &request);
    let answered: Vec<(Uuid, i16, usize)> = r
        .responses
        .iter()
        .map(|t| {
            let p = &t.partitions[0];
            (
                t.topic_id,
                p.error_code,
                raw::decode_records(&p.records).len(),
            )
        })
        .collect();
    assert_eq!(
        answered,
        vec![(id, err::NONE, 1), (unknown, UNKNOWN_TOPIC_ID, 0)]
    );

    // A session made by ids takes only requests by ids.
    let full = fetch_by_id(id, &[(0, 1)])
        .with_session_id(0)
        .with_session_epoch(0);
    let r: FetchResponse = c.call(13, &full);
    assert_eq!(r.error_code, err::NONE);
    let session = r.session_id;
    assert_ne!(session, 0, "a session was made");
    let by_name = raw::fetch_request("by-id", &[(0, 1)], 0)
        .with_session_id(session)
        .with_session_epoch(1);
    let r: FetchResponse = c.call(12, &by_name);
    assert_eq!(r.error_code, FETCH_SESSION_TOPIC_ID_ERROR);
    let next = fetch_by_id(id, &[(0, 1)])
        .with_session_id(session)
        .with_session_epoch(1);
    let r: FetchResponse = c.call(16, &next);
    assert_eq!(r.error_code, err::NONE, "the session goes on by ids");
}

/// Produce v10 and v11 append like v9 (a leader answers; KIP-951's hints
/// only come with NOT_LEADER_OR_FOLLOWER).
#[test]
fn produce_v10_and_v11_append() {
    let broker = Broker::start(1);
    let bs = broker.bootstrap();
    create_topic(&bs, "p11", 1, &[]);
    let mut c = RawClient::connect(&bs);
    for (version, expected) in [(10, 0), (11, 1)] {
        let r: ProduceResponse = c.call(
            version,
            &raw::produce_request("p11", 1, vec![(0, batch(b"x"))]),
        );
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (err::NONE, expected));
        assert_eq!(p.current_leader, Default::default(), "v{version}");
        assert!(r.node_endpoints.is_empty(), "v{version}");
    }
    assert_eq!(c.log_end_offset("p11", 0), 2);
}
