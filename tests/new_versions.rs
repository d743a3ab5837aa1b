//! The newest request versions Kafka 3.9 served, sent as kafka-protocol
//! encodes them over raw sockets: what each version means, not only that
//! it decodes. (KIP-951's leader hints need a follower: tests/cluster.rs.)

mod common;

use bytes::Bytes;
use common::raw::{self, err, RawClient};
use common::*;
use kafka_protocol::messages::*;

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
