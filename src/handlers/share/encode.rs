//! The ShareFetch response (v1), framed by hand as Fetch's is, so record
//! bytes follow as file slices. Mirrors kafka-protocol's encoding (checked
//! byte for byte by the test below). Unlike Fetch's, a partition's records
//! are followed by its acquired records, so each partition's frame
//! resumes after the slices.

use bytes::{BufMut, BytesMut};
use uuid::Uuid;

use crate::handlers::fetch::encode::{put_len, put_uvarint};
use crate::handlers::Piece;
use crate::share::partition::Acquired;

pub struct PartitionFrame {
    pub partition: i32,
    pub error: i16,
    pub ack_error: i16,
    /// Whole batches: file slices (or bytes), in order.
    pub records: Vec<Piece>,
    pub acquired: Vec<Acquired>,
}

pub struct TopicFrame {
    pub id: Uuid,
    pub partitions: Vec<PartitionFrame>,
}

/// The response body (no size prefix, no response header) as pieces.
pub fn encode(error: i16, lock_timeout_ms: i32, topics: Vec<TopicFrame>) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut head = BytesMut::with_capacity(64 + topics.len() * 64);
    head.put_i32(0); // throttle_time_ms
    head.put_i16(error);
    put_uvarint(&mut head, 0); // error_message: null
    head.put_i32(lock_timeout_ms);
    put_len(&mut head, topics.len(), true);
    for topic in topics {
        head.put_slice(topic.id.as_bytes());
        put_len(&mut head, topic.partitions.len(), true);
        for p in topic.partitions {
            head.put_i32(p.partition);
            head.put_i16(p.error);
            put_uvarint(&mut head, 0); // error_message: null
            head.put_i16(p.ack_error);
            put_uvarint(&mut head, 0); // acknowledge_error_message: null
            head.put_i32(-1); // current_leader: unknown
            head.put_i32(-1);
            put_uvarint(&mut head, 0); // its tagged fields
                                       // Empty, never null: the Java client reads a null as a failure.
            let records_len: usize = p.records.iter().map(Piece::len).sum();
            put_len(&mut head, records_len, true);
            if !p.records.is_empty() {
                pieces.push(Piece::Bytes(head.split().freeze()));
                pieces.extend(p.records);
            }
            put_len(&mut head, p.acquired.len(), true);
            for a in &p.acquired {
                head.put_i64(a.first);
                head.put_i64(a.last);
                head.put_i16(a.deliveries);
                put_uvarint(&mut head, 0); // tagged fields
            }
            put_uvarint(&mut head, 0); // partition tagged fields
        }
        put_uvarint(&mut head, 0); // topic tagged fields
    }
    put_len(&mut head, 0, true); // node_endpoints
    put_uvarint(&mut head, 0); // response tagged fields
    pieces.push(Piece::Bytes(head.freeze()));
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::share_fetch_response::{
        AcquiredRecords, PartitionData, ShareFetchableTopicResponse,
    };
    use kafka_protocol::messages::ShareFetchResponse;
    use kafka_protocol::protocol::Encodable;

    fn flat(pieces: Vec<Piece>) -> Vec<u8> {
        pieces
            .into_iter()
            .flat_map(|p| match p {
                Piece::Bytes(b) => b.to_vec(),
                Piece::File(_) => panic!("bytes only here"),
            })
            .collect()
    }

    #[test]
    fn framing_matches_kafka_protocol() {
        let id = Uuid::from_u128(0x1234);
        let records = Bytes::from_static(b"batch-bytes");
        let ours = encode(
            0,
            30_000,
            vec![TopicFrame {
                id,
                partitions: vec![
                    PartitionFrame {
                        partition: 0,
                        error: 0,
                        ack_error: 121,
                        records: vec![Piece::Bytes(records.clone())],
                        acquired: vec![Acquired {
                            first: 5,
                            last: 9,
                            deliveries: 2,
                        }],
                    },
                    PartitionFrame {
                        partition: 1,
                        error: 6,
                        ack_error: 0,
                        records: Vec::new(),
                        acquired: Vec::new(),
                    },
                ],
            }],
        );
        let mut theirs = ShareFetchResponse::default();
        theirs.acquisition_lock_timeout_ms = 30_000;
        let mut topic = ShareFetchableTopicResponse::default();
        topic.topic_id = id;
        let mut p0 = PartitionData::default();
        p0.acknowledge_error_code = 121;
        p0.current_leader.leader_id = -1;
        p0.current_leader.leader_epoch = -1;
        p0.records = Some(records);
        let mut acquired = AcquiredRecords::default();
        acquired.first_offset = 5;
        acquired.last_offset = 9;
        acquired.delivery_count = 2;
        p0.acquired_records = vec![acquired];
        let mut p1 = PartitionData::default();
        p1.partition_index = 1;
        p1.error_code = 6;
        p1.current_leader.leader_id = -1;
        p1.current_leader.leader_epoch = -1;
        p1.records = Some(Bytes::new());
        topic.partitions = vec![p0, p1];
        theirs.responses = vec![topic];
        let mut buf = BytesMut::new();
        theirs.encode(&mut buf, 1).expect("encodes");
        assert_eq!(flat(ours), buf.to_vec());
    }
}
