//! The records of `__transaction_state`, in Kafka's own formats
//! (TransactionLogKey, TransactionLogValue), so the topic reads the same as
//! a Kafka broker's:
//!
//! - key version 0: the transactional id;
//! - value version 0: producer id, epoch, timeout, state id, the
//!   partitions by topic (null when none), last update and start
//!   timestamps; version 1 is the same fields in the flexible encoding with
//!   tagged PreviousProducerId (tag 0), NextProducerId (1) and
//!   ClientTransactionVersion (2). We write version 1 when a producer id
//!   moved (the first two tags), else version 0, and ignore the third.
//!
//! A null value is a tombstone: the id expired. Pure functions over bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Buf, BufMut};

use crate::record::kv::{
    get_i16, get_i32, get_i64, get_i8, get_str, need, put_str, take_str, ReadError,
};

use super::state::{TxnMetadata, TxnState};
use crate::shard::TopicPartition;

const KEY_VERSION: i16 = 0;
/// TransactionLogValue's tags (v1+): PreviousProducerId, NextProducerId.
const TAG_PREVIOUS_PRODUCER_ID: u32 = 0;
const TAG_NEXT_PRODUCER_ID: u32 = 1;

/// One record of the topic.
#[derive(Clone, Debug, PartialEq)]
pub struct TxnRecord {
    pub transactional_id: String,
    /// `None`: the id is gone.
    pub value: Option<TxnMetadata>,
}

/// Why a record of the topic could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("record has no key")]
    NoKey,
    #[error("record truncated")]
    Truncated,
    #[error("unknown {0} version {1}")]
    Version(&'static str, i16),
    #[error("unknown transaction state {0}")]
    State(i8),
    #[error("string is not UTF-8")]
    Utf8,
}

impl From<ReadError> for DecodeError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Truncated => DecodeError::Truncated,
            ReadError::Utf8 => DecodeError::Utf8,
        }
    }
}

pub fn key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.put_i16(KEY_VERSION);
    put_str(&mut out, transactional_id);
    out
}

/// The partitions grouped by topic, as the value lists them.
fn by_topic(partitions: &std::collections::BTreeSet<TopicPartition>) -> BTreeMap<&str, Vec<i32>> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        topics.entry(&tp.topic).or_default().push(tp.partition);
    }
    topics
}

/// Version 0 unless the value has a previous or next producer id, which
/// only version 1's tagged fields hold (Sluice nodes read both).
pub fn value(m: &TxnMetadata) -> Vec<u8> {
    if m.last_producer_id >= 0 || m.next_producer_id >= 0 {
        return value_v1(m);
    }
    let mut out = Vec::with_capacity(64);
    put_head(&mut out, 0, m);
    if m.partitions.is_empty() {
        out.put_i32(-1);
    } else {
        let topics = by_topic(&m.partitions);
        out.put_i32(topics.len() as i32);
        for (topic, ids) in topics {
            put_str(&mut out, topic);
            out.put_i32(ids.len() as i32);
            for id in ids {
                out.put_i32(id);
            }
        }
    }
    out.put_i64(m.last_update_ms);
    out.put_i64(m.txn_start_ms);
    out
}

/// Kafka's flexible TransactionLogValue v1, with the producer ids that
/// are set as tagged fields.
fn value_v1(m: &TxnMetadata) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    put_head(&mut out, 1, m);
    let topics = by_topic(&m.partitions);
    put_uvarint(&mut out, topics.len() as u32 + 1);
    for (topic, ids) in topics {
        put_uvarint(&mut out, topic.len() as u32 + 1);
        out.put_slice(topic.as_bytes());
        put_uvarint(&mut out, ids.len() as u32 + 1);
        for id in ids {
            out.put_i32(id);
        }
        put_uvarint(&mut out, 0); // the topic's tagged fields
    }
    out.put_i64(m.last_update_ms);
    out.put_i64(m.txn_start_ms);
    let tagged: Vec<(u32, i64)> = [
        (TAG_PREVIOUS_PRODUCER_ID, m.last_producer_id),
        (TAG_NEXT_PRODUCER_ID, m.next_producer_id),
    ]
    .into_iter()
    .filter(|&(_, id)| id >= 0)
    .collect();
    put_uvarint(&mut out, tagged.len() as u32);
    for (tag, id) in tagged {
        put_uvarint(&mut out, tag);
        put_uvarint(&mut out, 8);
        out.put_i64(id);
    }
    out
}

/// The fields both value versions start with, in the same encoding.
fn put_head(out: &mut Vec<u8>, version: i16, m: &TxnMetadata) {
    out.put_i16(version);
    out.put_i64(m.producer_id);
    out.put_i16(m.producer_epoch);
    out.put_i32(m.timeout_ms);
    out.put_i8(m.state.id());
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<TxnRecord, DecodeError> {
    let mut k = key.ok_or(DecodeError::NoKey)?;
    let version = get_i16(&mut k)?;
    if version != KEY_VERSION {
        return Err(DecodeError::Version("key", version));
    }
    let transactional_id = get_str(&mut k)?;
    let value = value.map(decode_value).transpose()?;
    Ok(TxnRecord {
        transactional_id,
        value,
    })
}

fn decode_value(mut b: &[u8]) -> Result<TxnMetadata, DecodeError> {
    let version = get_i16(&mut b)?;
    let flexible = match version {
        0 => false,
        1 => true,
        v => return Err(DecodeError::Version("value", v)),
    };
    let producer_id = get_i64(&mut b)?;
    let producer_epoch = get_i16(&mut b)?;
    let timeout_ms = get_i32(&mut b)?;
    let state_id = get_i8(&mut b)?;
    let state = TxnState::from_id(state_id).ok_or(DecodeError::State(state_id))?;
    let mut partitions = std::collections::BTreeSet::new();
    let topics = if flexible {
        get_uvarint(&mut b)? as i64 - 1
    } else {
        i64::from(get_i32(&mut b)?)
    };
    for _ in 0..topics.max(0) {
        let topic: Arc<str> = if flexible {
            Arc::from(get_compact_str(&mut b)?)
        } else {
            Arc::from(get_str(&mut b)?)
        };
        let count = if flexible {
            get_uvarint(&mut b)? as i64 - 1
        } else {
            i64::from(get_i32(&mut b)?)
        };
        for _ in 0..count.max(0) {
            partitions.insert(TopicPartition {
                topic: topic.clone(),
                partition: get_i32(&mut b)?,
            });
        }
        if flexible {
            skip_tagged_fields(&mut b, |_, _| Ok(()))?;
        }
    }
    let last_update_ms = get_i64(&mut b)?;
    let txn_start_ms = get_i64(&mut b)?;
    let mut last_producer_id = -1;
    let mut next_producer_id = -1;
    if flexible {
        skip_tagged_fields(&mut b, |tag, mut field| {
            match tag {
                TAG_PREVIOUS_PRODUCER_ID => last_producer_id = get_i64(&mut field)?,
                TAG_NEXT_PRODUCER_ID => next_producer_id = get_i64(&mut field)?,
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(TxnMetadata {
        producer_id,
        last_producer_id,
        producer_epoch,
        last_producer_epoch: -1,
        next_producer_id,
        timeout_ms,
        state,
        partitions,
        txn_start_ms,
        last_update_ms,
    })
}

/// An unsigned varint of at most 5 bytes (Kafka's flexible lengths).
fn get_uvarint(b: &mut &[u8]) -> Result<u32, DecodeError> {
    let mut out: u32 = 0;
    for i in 0..5 {
        need(b, 1)?;
        let byte = b.get_u8();
        out |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(DecodeError::Truncated)
}

fn get_compact_str(b: &mut &[u8]) -> Result<String, DecodeError> {
    let len = get_uvarint(b)?.saturating_sub(1) as usize;
    Ok(take_str(b, len)?)
}

/// Walks a tagged-field section, handing each field's bytes to `field`.
fn skip_tagged_fields(
    b: &mut &[u8],
    mut field: impl FnMut(u32, &[u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let count = get_uvarint(b)?;
    for _ in 0..count {
        let tag = get_uvarint(b)?;
        let size = get_uvarint(b)? as usize;
        need(b, size)?;
        field(tag, &b[..size])?;
        b.advance(size);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TxnMetadata {
        let mut m = TxnMetadata::new(42, 60_000, 1000);
        m.producer_epoch = 3;
        m.state = TxnState::Ongoing;
        m.txn_start_ms = 900;
        for (t, p) in [("a", 1), ("a", 0), ("b", 7)] {
            m.partitions.insert(TopicPartition {
                topic: Arc::from(t),
                partition: p,
            });
        }
        m
    }

    #[test]
    fn records_round_trip() {
        let m = sample();
        let got = decode(Some(&key("tx")), Some(&value(&m))).unwrap();
        assert_eq!(got.transactional_id, "tx");
        assert_eq!(got.value, Some(m));
        let mut empty = TxnMetadata::new(1, 5, 6);
        empty.producer_epoch = 0;
        let got = decode(Some(&key("e")), Some(&value(&empty))).unwrap();
        assert_eq!(got.value, Some(empty));
        assert_eq!(decode(Some(&key("gone")), None).unwrap().value, None);
    }

    #[test]
    fn producer_id_moves_round_trip_through_v1() {
        let mut m = sample();
        m.last_producer_id = 41;
        let got = decode(Some(&key("tx")), Some(&value(&m))).unwrap();
        assert_eq!(value(&m)[..2], [0, 1]);
        assert_eq!(got.value, Some(m.clone()));
        m.last_producer_id = -1;
        m.next_producer_id = 43;
        m.partitions.clear();
        let got = decode(Some(&key("tx")), Some(&value(&m))).unwrap();
        assert_eq!(got.value, Some(m));
    }

    #[test]
    fn value_v0_is_kafkas_layout() {
        let v = value(&sample());
        // version, producer id, epoch, timeout, state
        assert_eq!(&v[..2], &[0, 0]);
        assert_eq!(&v[2..10], &42i64.to_be_bytes());
        assert_eq!(&v[10..12], &3i16.to_be_bytes());
        assert_eq!(&v[12..16], &60_000i32.to_be_bytes());
        assert_eq!(v[16], 1);
        // two topics; "a" with partitions 0 and 1 in order
        assert_eq!(&v[17..21], &2i32.to_be_bytes());
        assert_eq!(&v[21..24], &[0, 1, b'a']);
        assert_eq!(&v[24..28], &2i32.to_be_bytes());
        assert_eq!(&v[28..36], &[0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn value_v1_flexible_is_read_with_its_tagged_fields() {
        let mut v = Vec::new();
        v.put_i16(1);
        v.put_i64(42);
        v.put_i16(3);
        v.put_i32(60_000);
        v.put_i8(2); // PrepareCommit
        v.put_u8(2); // one topic
        v.put_u8(2); // "t"
        v.put_u8(b't');
        v.put_u8(2); // one partition
        v.put_i32(5);
        v.put_u8(0); // topic tagged fields
        v.put_i64(1000);
        v.put_i64(900);
        v.put_u8(2); // two tagged fields
        v.put_u8(0); // PreviousProducerId
        v.put_u8(8);
        v.put_i64(41);
        v.put_u8(2); // ClientTransactionVersion
        v.put_u8(2);
        v.put_i16(2);
        let got = decode(Some(&key("x")), Some(&v)).unwrap().value.unwrap();
        assert_eq!(got.state, TxnState::PrepareCommit);
        assert_eq!((got.producer_id, got.last_producer_id), (42, 41));
        assert_eq!(got.partitions.len(), 1);
        assert_eq!((got.last_update_ms, got.txn_start_ms), (1000, 900));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(decode(None, None), Err(DecodeError::NoKey));
        assert!(decode(Some(&[0, 1]), None).is_err());
        assert!(decode(Some(&[0, 0, 0, 1]), None).is_err());
        let v = value(&sample());
        for cut in 0..v.len() {
            assert!(decode(Some(&key("x")), Some(&v[..cut])).is_err());
        }
        let mut bad_state = v.clone();
        bad_state[16] = 9;
        assert_eq!(
            decode(Some(&key("x")), Some(&bad_state)),
            Err(DecodeError::State(9))
        );
    }
}
