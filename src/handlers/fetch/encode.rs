//! The Fetch response, framed by hand so record bytes can follow as file
//! slices: every size is known before any record byte is sent.
//!
//! Mirrors kafka-protocol's encoding of FetchResponse v4-v12 (checked byte
//! for byte by the tests below); the records field is the last of each
//! partition, which is what lets the file data slot in between head bytes.

use bytes::{BufMut, Bytes, BytesMut};

use crate::handlers::Piece;

/// Flexible (compact) encodings start at v12 for Fetch.
const FLEXIBLE_SINCE: i16 = 12;

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
    /// Whole batches: in-memory bytes or file slices, in order.
    pub records: Vec<Piece>,
}

pub struct TopicFrame {
    pub name: Bytes,
    pub partitions: Vec<PartitionFrame>,
}

/// Encodes the response body (no size prefix, no response header) as
/// pieces: framing bytes interleaved with the records.
pub fn encode(version: i16, error: i16, session_id: i32, topics: Vec<TopicFrame>) -> Vec<Piece> {
    assert!(
        (4..=FLEXIBLE_SINCE).contains(&version),
        "Fetch v{version} is not framed here"
    );
    let flexible = version >= FLEXIBLE_SINCE;
    let mut pieces = Vec::new();
    let mut head = BytesMut::with_capacity(64);
    head.put_i32(0); // throttle_time_ms
    if version >= 7 {
        head.put_i16(error);
        head.put_i32(session_id);
    }
    put_len(&mut head, topics.len(), flexible);
    for topic in topics {
        put_str(&mut head, &topic.name, flexible);
        put_len(&mut head, topic.partitions.len(), flexible);
        for p in topic.partitions {
            head.put_i32(p.partition);
            head.put_i16(p.error);
            head.put_i64(p.high_watermark);
            head.put_i64(p.last_stable_offset);
            if version >= 5 {
                head.put_i64(p.log_start_offset);
            }
            put_aborted(&mut head, p.aborted.as_deref(), flexible);
            if version >= 11 {
                head.put_i32(-1); // preferred_read_replica
            }
            let records_len: usize = p.records.iter().map(Piece::len).sum();
            put_bytes_len(&mut head, records_len, flexible);
            if !p.records.is_empty() {
                pieces.push(Piece::Bytes(head.split().freeze()));
                pieces.extend(p.records);
            }
            if flexible {
                put_partition_tags(&mut head, p.diverging);
            }
        }
        if flexible {
            put_uvarint(&mut head, 0); // topic tagged fields
        }
    }
    if flexible {
        put_uvarint(&mut head, 0); // response tagged fields
    }
    pieces.push(Piece::Bytes(head.freeze()));
    pieces
}

/// The partition's tagged fields: only `diverging_epoch` (tag 0), an
/// EpochEndOffset struct of 13 bytes (epoch, end offset, no tags).
fn put_partition_tags(buf: &mut BytesMut, diverging: Option<(i32, i64)>) {
    let Some((epoch, end_offset)) = diverging else {
        put_uvarint(buf, 0);
        return;
    };
    put_uvarint(buf, 1); // one tagged field
    put_uvarint(buf, 0); // tag: diverging_epoch
    put_uvarint(buf, 13); // its size
    buf.put_i32(epoch);
    buf.put_i64(end_offset);
    put_uvarint(buf, 0); // the struct's own tagged fields
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// An array length: i32, or (flexible) unsigned varint of length + 1.
fn put_len(buf: &mut BytesMut, len: usize, flexible: bool) {
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
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
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

    fn reference(version: i16, records: &[Option<&[u8]>]) -> Vec<u8> {
        let mut topic = FetchableTopicResponse::default();
        topic.topic = TopicName(StrBytes::from_static_str("orders"));
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
                p.preferred_read_replica = BrokerId(-1);
                if let Some((epoch, end_offset)) = diverging(i).filter(|_| version >= 12) {
                    p.diverging_epoch = EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end_offset);
                }
                p.records = Some(Bytes::copy_from_slice(r.unwrap_or(&[])));
                p
            })
            .collect();
        let mut response = FetchResponse::default();
        response.responses = vec![topic, FetchableTopicResponse::default()];
        response.responses[1].topic = TopicName(StrBytes::from_static_str("empty"));
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
                partitions,
            },
            TopicFrame {
                name: Bytes::from_static(b"empty"),
                partitions: Vec::new(),
            },
        ];
        let mut out = Vec::new();
        for piece in encode(version, 0, 0, topics) {
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
        for version in 4..=12 {
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
