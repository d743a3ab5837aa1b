//! The Fetch response, framed by hand so record bytes can follow as file
//! slices: every size is known before any record byte is sent.
//!
//! Mirrors kafka-protocol's encoding of FetchResponse v4-v17 (checked byte
//! for byte by the tests below); the records field is the last of each
//! partition, which is what lets the file data slot in between head bytes.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::handlers::leader_hint::NodeHint;
use crate::handlers::Piece;

/// Flexible (compact) encodings start at v12 for Fetch.
const FLEXIBLE_SINCE: i16 = 12;
/// Topics are named by id from v13 (KIP-516).
const TOPIC_IDS_SINCE: i16 = 13;
/// `node_endpoints` (KIP-951) is a response tag from v16.
const NODE_ENDPOINTS_SINCE: i16 = 16;
/// The newest version framed here, the newest served (v18's answer is
/// v17's: only the request gained a field).
const VERSION_MAX: i16 = super::SPEC.max;

pub struct PartitionFrame {
    pub partition: i32,
    pub error: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// (producer id, first offset) of the aborted transactions in range,
    /// for read_committed; `None` (null) for read_uncommitted.
    pub aborted: Option<Vec<(i64, i64)>>,
    /// A follower's log diverges from this leader's (KIP-320): the epoch
    /// and end offset to truncate to. Sent from v12 (a tagged field).
    pub diverging: Option<(i32, i64)>,
    /// KIP-951 (v16+): the partition's current (leader id, leader epoch),
    /// for an answer that says this broker does not lead it. A tagged
    /// field, left out when unknown (-1, -1) as Kafka leaves its default.
    pub current_leader: Option<(i32, i32)>,
    /// KIP-392 (v11+): the replica to read from instead (-1: this one).
    pub preferred_read_replica: i32,
    /// Whole batches: in-memory bytes or file slices, in order.
    pub records: Vec<Piece>,
}

pub struct TopicFrame {
    /// The topic's name, sent before v13.
    pub name: Bytes,
    /// The topic's id, sent from v13.
    pub id: Uuid,
    pub partitions: Vec<PartitionFrame>,
}

/// Writes `ms` into an encoded body's throttle_time_ms, its first field
/// (written as 0 by [`encode`]); only a throttled response pays the copy of
/// its first piece.
pub fn set_throttle(body: &mut [Piece], ms: i32) {
    let Some(Piece::Bytes(head)) = body.first_mut() else {
        panic!("an encoded fetch body starts with its framing bytes");
    };
    assert!(head.len() >= 4, "the framing starts with throttle_time_ms");
    let mut copy = BytesMut::from(&head[..]);
    copy[..4].copy_from_slice(&ms.to_be_bytes());
    *head = copy.freeze();
}

/// Encodes the response body (no size prefix, no response header) as
/// pieces: framing bytes interleaved with the records. `nodes` are the
/// leaders' endpoints of KIP-951 (sent from v16).
pub fn encode(
    version: i16,
    error: i16,
    session_id: i32,
    topics: Vec<TopicFrame>,
    nodes: Vec<NodeHint>,
) -> Vec<Piece> {
    assert!(
        (4..=VERSION_MAX).contains(&version),
        "Fetch v{version} is not framed here"
    );
    let flexible = version >= FLEXIBLE_SINCE;
    let mut pieces = Vec::new();
    // Sized for the whole framing up front: a thousand partitions' frames
    // would otherwise grow it by doubling, ten copies to ~45 KB.
    let mut head = BytesMut::with_capacity(framing_estimate(&topics));
    head.put_i32(0); // throttle_time_ms
    crate::stats::count_error(crate::stats::CountedApi::Fetch, error);
    if version >= 7 {
        head.put_i16(error);
        head.put_i32(session_id);
    }
    put_len(&mut head, topics.len(), flexible);
    for topic in topics {
        if version >= TOPIC_IDS_SINCE {
            head.put_slice(topic.id.as_bytes());
        } else {
            put_str(&mut head, &topic.name, flexible);
        }
        put_len(&mut head, topic.partitions.len(), flexible);
        for p in topic.partitions {
            crate::stats::count_error(crate::stats::CountedApi::Fetch, p.error);
            head.put_i32(p.partition);
            head.put_i16(p.error);
            head.put_i64(p.high_watermark);
            head.put_i64(p.last_stable_offset);
            if version >= 5 {
                head.put_i64(p.log_start_offset);
            }
            put_aborted(&mut head, p.aborted.as_deref(), flexible);
            if version >= 11 {
                head.put_i32(p.preferred_read_replica);
            }
            let records_len: usize = p.records.iter().map(Piece::len).sum();
            put_bytes_len(&mut head, records_len, flexible);
            if !p.records.is_empty() {
                pieces.push(Piece::Bytes(head.split().freeze()));
                pieces.extend(p.records);
            }
            if flexible {
                put_partition_tags(&mut head, p.diverging, p.current_leader);
            }
        }
        if flexible {
            put_uvarint(&mut head, 0); // topic tagged fields
        }
    }
    if flexible {
        put_response_tags(&mut head, version, &nodes);
    }
    pieces.push(Piece::Bytes(head.freeze()));
    pieces
}

/// The framing bytes a response of `topics` needs without aborted
/// transactions, tags or node endpoints (which are rare: the buffer grows
/// for them).
fn framing_estimate(topics: &[TopicFrame]) -> usize {
    /// throttle, error, session id, topic count, tags.
    const RESPONSE: usize = 16;
    /// id or name length, partition count, tags; the name itself is added.
    const TOPIC: usize = 24;
    /// index, error, three offsets, aborted (null), preferred read
    /// replica, records length, tags.
    const PARTITION: usize = 4 + 2 + 3 * 8 + 4 + 4 + 4 + 1;
    topics.iter().fold(RESPONSE, |size, t| {
        size + TOPIC + t.name.len() + t.partitions.len() * PARTITION
    })
}

/// The response's tagged fields: only `node_endpoints` (tag 0, v16+), when
/// there are any.
fn put_response_tags(buf: &mut BytesMut, version: i16, nodes: &[NodeHint]) {
    if version < NODE_ENDPOINTS_SINCE || nodes.is_empty() {
        put_uvarint(buf, 0);
        return;
    }
    let mut field = BytesMut::new();
    put_len(&mut field, nodes.len(), true);
    for n in nodes {
        field.put_i32(n.id);
        put_str(&mut field, n.host.as_bytes(), true);
        field.put_i32(n.port);
        match &n.rack {
            Some(rack) => put_str(&mut field, rack.as_bytes(), true),
            None => put_uvarint(&mut field, 0), // null compact string
        }
        put_uvarint(&mut field, 0); // the struct's own tagged fields
    }
    put_uvarint(buf, 1); // one tagged field
    put_uvarint(buf, 0); // tag: node_endpoints
    put_uvarint(buf, field.len() as u64);
    buf.put_slice(&field);
}

/// The partition's tagged fields, in tag order: `diverging_epoch` (tag 0),
/// an EpochEndOffset struct of 13 bytes (epoch, end offset, no tags), and
/// `current_leader` (tag 1), a LeaderIdAndEpoch struct of 9 bytes.
fn put_partition_tags(
    buf: &mut BytesMut,
    diverging: Option<(i32, i64)>,
    current_leader: Option<(i32, i32)>,
) {
    let current_leader = current_leader.filter(|&l| l != (-1, -1));
    put_uvarint(
        buf,
        u64::from(diverging.is_some()) + u64::from(current_leader.is_some()),
    );
    if let Some((epoch, end_offset)) = diverging {
        put_uvarint(buf, 0); // tag: diverging_epoch
        put_uvarint(buf, 13); // its size
        buf.put_i32(epoch);
        buf.put_i64(end_offset);
        put_uvarint(buf, 0); // the struct's own tagged fields
    }
    if let Some((leader_id, leader_epoch)) = current_leader {
        put_uvarint(buf, 1); // tag: current_leader
        put_uvarint(buf, 9); // its size
        buf.put_i32(leader_id);
        buf.put_i32(leader_epoch);
        put_uvarint(buf, 0); // the struct's own tagged fields
    }
}

pub(in crate::handlers) fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// An array length: i32, or (flexible) unsigned varint of length + 1.
pub(in crate::handlers) fn put_len(buf: &mut BytesMut, len: usize, flexible: bool) {
    if flexible {
        put_uvarint(buf, len as u64 + 1);
    } else {
        buf.put_i32(i32::try_from(len).expect("array length fits i32"));
    }
}

/// The nullable aborted_transactions array.
fn put_aborted(buf: &mut BytesMut, aborted: Option<&[(i64, i64)]>, flexible: bool) {
    let Some(aborted) = aborted else {
        if flexible {
            put_uvarint(buf, 0);
        } else {
            buf.put_i32(-1);
        }
        return;
    };
    put_len(buf, aborted.len(), flexible);
    for &(producer_id, first_offset) in aborted {
        buf.put_i64(producer_id);
        buf.put_i64(first_offset);
        if flexible {
            put_uvarint(buf, 0); // tagged fields
        }
    }
}

fn put_bytes_len(buf: &mut BytesMut, len: usize, flexible: bool) {
    put_len(buf, len, flexible);
}

fn put_str(buf: &mut BytesMut, s: &[u8], flexible: bool) {
    if flexible {
        put_uvarint(buf, s.len() as u64 + 1);
    } else {
        buf.put_i16(i16::try_from(s.len()).expect("topic names are short"));
    }
    buf.put_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
        PartitionData,
    };
    use kafka_protocol::messages::{BrokerId, FetchResponse, ProducerId, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    /// Partition 0 answers read_uncommitted (null), the others name
    /// aborted transactions (none for partition 1).
    fn aborted(partition: usize) -> Option<Vec<(i64, i64)>> {
        match partition {
            0 => None,
            1 => Some(Vec::new()),
            n => Some((0..n as i64).map(|k| (1000 + k, 50 + k)).collect()),
        }
    }

    /// Partition 1 tells a follower where its log diverges.
    fn diverging(partition: usize) -> Option<(i32, i64)> {
        (partition == 1).then_some((4, 321))
    }

    /// Partition 2 points the consumer at replica 3 (v11+, KIP-392); the
    /// others at none.
    fn preferred(partition: usize, version: i16) -> i32 {
        if partition == 2 && version >= 11 {
            3
        } else {
            -1
        }
    }

    /// Partition 1 also names its current leader (v16+); partition 0 has
    /// an unknown one, which is not sent.
    fn current_leader(partition: usize, version: i16) -> Option<(i32, i32)> {
        match partition {
            _ if version < 16 => None,
            0 => Some((-1, -1)),
            1 => Some((3, 9)),
            _ => None,
        }
    }

    fn topic_id(name: &str) -> Uuid {
        Uuid::from_u128(name.len() as u128 * 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10)
    }

    /// The leaders' endpoints (v16+), one with a rack and one without.
    fn nodes(version: i16) -> Vec<NodeHint> {
        if version < 16 {
            return Vec::new();
        }
        vec![
            NodeHint {
                id: 3,
                host: "broker-3.example".into(),
                port: 9093,
                rack: Some("rack-a".into()),
            },
            NodeHint {
                id: 5,
                host: "b5".into(),
                port: 19092,
                rack: None,
            },
        ]
    }

    fn reference(version: i16, records: &[Option<&[u8]>]) -> Vec<u8> {
        let mut topic = FetchableTopicResponse::default();
        if version >= 13 {
            topic.topic_id = topic_id("orders");
        } else {
            topic.topic = TopicName(StrBytes::from_static_str("orders"));
        }
        topic.partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut p = PartitionData::default();
                p.partition_index = i as i32;
                p.error_code = if r.is_none() { 1 } else { 0 };
                p.high_watermark = 100 + i as i64;
                p.last_stable_offset = 90 + i as i64;
                p.log_start_offset = 7;
                p.aborted_transactions = aborted(i).map(|list| {
                    list.into_iter()
                        .map(|(pid, first)| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(pid))
                                .with_first_offset(first)
                        })
                        .collect()
                });
                p.preferred_read_replica = BrokerId(preferred(i, version));
                if let Some((epoch, end_offset)) = diverging(i).filter(|_| version >= 12) {
                    p.diverging_epoch = EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end_offset);
                }
                if let Some((leader, epoch)) = current_leader(i, version) {
                    p.current_leader = LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(epoch);
                }
                p.records = Some(Bytes::copy_from_slice(r.unwrap_or(&[])));
                p
            })
            .collect();
        let mut response = FetchResponse::default();
        response.responses = vec![topic, FetchableTopicResponse::default()];
        if version >= 13 {
            response.responses[1].topic_id = topic_id("empty");
        } else {
            response.responses[1].topic = TopicName(StrBytes::from_static_str("empty"));
        }
        response.node_endpoints = nodes(version)
            .into_iter()
            .map(|n| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(n.id))
                    .with_host(StrBytes::from_string(n.host))
                    .with_port(n.port)
                    .with_rack(n.rack.map(StrBytes::from_string))
            })
            .collect();
        let mut buf = BytesMut::new();
        response.encode(&mut buf, version).unwrap();
        buf.to_vec()
    }

    fn ours(version: i16, records: &[Option<&[u8]>]) -> Vec<u8> {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| PartitionFrame {
                partition: i as i32,
                error: if r.is_none() { 1 } else { 0 },
                high_watermark: 100 + i as i64,
                last_stable_offset: 90 + i as i64,
                log_start_offset: 7,
                aborted: aborted(i),
                diverging: diverging(i),
                current_leader: current_leader(i, version),
                preferred_read_replica: preferred(i, version),
                records: match r {
                    Some(r) if !r.is_empty() => {
                        let (a, b) = r.split_at(r.len() / 2);
                        vec![
                            Piece::Bytes(Bytes::copy_from_slice(a)),
                            Piece::Bytes(Bytes::copy_from_slice(b)),
                        ]
                    }
                    _ => Vec::new(),
                },
            })
            .collect();
        let topics = vec![
            TopicFrame {
                name: Bytes::from_static(b"orders"),
                id: topic_id("orders"),
                partitions,
            },
            TopicFrame {
                name: Bytes::from_static(b"empty"),
                id: topic_id("empty"),
                partitions: Vec::new(),
            },
        ];
        let mut out = Vec::new();
        for piece in encode(version, 0, 0, topics, nodes(version)) {
            match piece {
                Piece::Bytes(b) => out.extend_from_slice(&b),
                Piece::File(_) => unreachable!("test uses bytes only"),
            }
        }
        out
    }

    #[test]
    fn matches_kafka_protocol_for_every_version() {
        let big = vec![9u8; 300];
        let cases: [&[Option<&[u8]>]; 3] = [
            &[],
            &[Some(b"abcdef"), None, Some(b"")],
            &[Some(&big), Some(b"x")],
        ];
        for version in 4..=VERSION_MAX {
            for case in cases {
                assert_eq!(
                    ours(version, case),
                    reference(version, case),
                    "v{version} {case:?}"
                );
            }
        }
    }
}
