//! The records of `__consumer_offsets`, in Kafka's own formats, so the
//! topic reads the same as a Kafka broker's:
//!
//! - key version 0/1: an offset commit key (group, topic, partition), value
//!   `OffsetCommitValue` (we write v3: offset, leader epoch, metadata,
//!   commit timestamp);
//! - key version 2: a group metadata key (group), value
//!   `GroupMetadataValue` (we write v3);
//! - key versions 1000, 1002 and 1003 (Sluice's own, far from Kafka's,
//!   which are small numbers): a consumer protocol group (KIP-848), as
//!   Kafka keeps it, in one record for the group (its epochs, assignor and
//!   topics), one per member and one per member's target assignment
//!   (`consumer_protocol::record`), so a heartbeat writes only what it
//!   changed (`written`);
//! - key versions 1004 and 1005 (Sluice's own): a share group's membership
//!   (KIP-932), one record for the group (its epoch and topics) and one per
//!   member (`share_record`);
//! - key version 1001 (Sluice's own): a share group's partition state
//!   (KIP-932): its start offset and the ranges past it done with, which
//!   Kafka keeps in `__share_group_state` (`share_state::ShareSnapshot`).
//!
//! A null value is a tombstone: the offset or the group is deleted.
//! Pure functions over bytes; nothing here knows about shards or logs.

use bytes::{Buf, BufMut, Bytes};

use super::ShareSnapshot as Snapshot;

use crate::record::kv::{
    get_i16, get_i32, get_i64, get_nullable_str, get_str, need, put_str, ReadError,
};

/// What one record of the topic says.
#[derive(Clone, Debug, PartialEq)]
pub enum OffsetsRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        /// `None` deletes the committed offset.
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        /// `None` deletes the group.
        value: Option<GroupValue>,
    },
    /// One part of a consumer protocol or share group's membership, still
    /// encoded; `None` deletes it.
    Membership {
        protocol: Protocol,
        group: String,
        part: Part,
        value: Option<Vec<u8>>,
    },
    /// A share group's state of one partition; `None` deletes it.
    ShareState {
        group: String,
        topic: String,
        partition: i32,
        value: Option<Snapshot>,
    },
}

/// Whose membership records: the protocols whose groups are written a
/// record per part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// KIP-848's consumer groups.
    Consumer,
    /// KIP-932's share groups, which have no target records.
    Share,
}

/// Which record of a group's membership: each is a key of its own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The group's own: its epochs and subscribed topics (in an older
    /// consumer group record, the whole group).
    Group,
    /// One member, by id.
    Member(String),
    /// One member's target assignment, by member id.
    Target(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
/// Sluice's own keys of consumer protocol and share groups' records.
const CONSUMER_GROUP_KEY_VERSION: i16 = 1000;
const CONSUMER_MEMBER_KEY_VERSION: i16 = 1002;
const CONSUMER_TARGET_KEY_VERSION: i16 = 1003;
const SHARE_GROUP_KEY_VERSION: i16 = 1004;
const SHARE_MEMBER_KEY_VERSION: i16 = 1005;
/// Sluice's own key of a share group's partition state.
const SHARE_STATE_KEY_VERSION: i16 = 1001;
/// Version 1 added the state epoch at the end; version 0 reads as epoch 0.
/// 1 added the state epoch; 2 the ranges delivered and not done with.
const SHARE_STATE_VALUE_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + group.len() + topic.len());
    out.put_i16(OFFSET_KEY_VERSION);
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.put_i32(partition);
    out
}

pub fn group_key(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.put_i16(GROUP_KEY_VERSION);
    put_str(&mut out, group);
    out
}

pub fn membership_key(protocol: Protocol, group: &str, part: &Part) -> Vec<u8> {
    let (version, member) = match (protocol, part) {
        (Protocol::Consumer, Part::Group) => (CONSUMER_GROUP_KEY_VERSION, None),
        (Protocol::Consumer, Part::Member(id)) => (CONSUMER_MEMBER_KEY_VERSION, Some(id)),
        (Protocol::Consumer, Part::Target(id)) => (CONSUMER_TARGET_KEY_VERSION, Some(id)),
        (Protocol::Share, Part::Group) => (SHARE_GROUP_KEY_VERSION, None),
        (Protocol::Share, Part::Member(id)) => (SHARE_MEMBER_KEY_VERSION, Some(id)),
        (Protocol::Share, Part::Target(_)) => unreachable!("share groups keep no targets"),
    };
    let mut out = Vec::with_capacity(6 + group.len() + member.map_or(0, |m| m.len()));
    out.put_i16(version);
    put_str(&mut out, group);
    if let Some(member) = member {
        put_str(&mut out, member);
    }
    out
}

pub fn share_state_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + group.len() + topic.len());
    out.put_i16(SHARE_STATE_KEY_VERSION);
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.put_i32(partition);
    out
}

pub fn share_state_value(v: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(26 + v.done.len() * 16 + v.delivered.len() * 18);
    out.put_i16(SHARE_STATE_VALUE_VERSION);
    out.put_i32(v.leader_epoch);
    out.put_i64(v.start);
    out.put_i32(i32::try_from(v.done.len()).expect("a bounded window"));
    for (first, last) in &v.done {
        out.put_i64(*first);
        out.put_i64(*last);
    }
    out.put_i32(v.state_epoch);
    out.put_i32(i32::try_from(v.delivered.len()).expect("a bounded window"));
    for (first, last, deliveries) in &v.delivered {
        out.put_i64(*first);
        out.put_i64(*last);
        out.put_i16(*deliveries);
    }
    out
}

fn decode_share_state_value(mut b: &[u8]) -> Result<Snapshot, DecodeError> {
    let version = get_version(&mut b, "share state value", SHARE_STATE_VALUE_VERSION)?;
    let leader_epoch = get_i32(&mut b)?;
    let start = get_i64(&mut b)?;
    let count = get_i32(&mut b)?;
    // Each range is 16 bytes: a count past what is left is corrupt.
    if count < 0 || count as usize > b.len() / 16 {
        return Err(DecodeError::Truncated);
    }
    let mut done = Vec::with_capacity(count as usize);
    for _ in 0..count {
        done.push((get_i64(&mut b)?, get_i64(&mut b)?));
    }
    let state_epoch = if version >= 1 { get_i32(&mut b)? } else { 0 };
    let mut delivered = Vec::new();
    if version >= 2 {
        let count = get_i32(&mut b)?;
        // Each range is 18 bytes: a count past what is left is corrupt.
        if count < 0 || count as usize > b.len() / 18 {
            return Err(DecodeError::Truncated);
        }
        delivered.reserve(count as usize);
        for _ in 0..count {
            delivered.push((get_i64(&mut b)?, get_i64(&mut b)?, get_i16(&mut b)?));
        }
    }
    Ok(Snapshot {
        leader_epoch,
        state_epoch,
        start,
        done,
        delivered,
    })
}

pub fn offset_value(v: &OffsetValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + v.metadata.len());
    out.put_i16(OFFSET_VALUE_VERSION);
    out.put_i64(v.offset);
    out.put_i32(v.leader_epoch);
    put_str(&mut out, &v.metadata);
    out.put_i64(v.commit_timestamp);
    out
}

pub fn group_value(v: &GroupValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut out, &v.protocol_type);
    out.put_i32(v.generation);
    put_nullable_str(&mut out, v.protocol.as_deref());
    put_nullable_str(&mut out, v.leader.as_deref());
    out.put_i64(v.state_timestamp);
    out.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut out, &m.member_id);
        put_nullable_str(&mut out, m.instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.put_i32(m.rebalance_timeout_ms);
        out.put_i32(m.session_timeout_ms);
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

/// Why a record of the topic could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record has no key")]
    NoKey,
    #[error("record truncated")]
    Truncated,
    #[error("unknown {0} version {1}")]
    Version(&'static str, i16),
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

pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<OffsetsRecord, DecodeError> {
    let mut k = key.ok_or(DecodeError::NoKey)?;
    match get_i16(&mut k)? {
        0 | 1 => {
            let group = get_str(&mut k)?;
            let topic = get_str(&mut k)?;
            let partition = get_i32(&mut k)?;
            let value = value.map(decode_offset_value).transpose()?;
            Ok(OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group = get_str(&mut k)?;
            let value = value.map(decode_group_value).transpose()?;
            Ok(OffsetsRecord::Group { group, value })
        }
        version @ (CONSUMER_GROUP_KEY_VERSION
        | CONSUMER_MEMBER_KEY_VERSION
        | CONSUMER_TARGET_KEY_VERSION
        | SHARE_GROUP_KEY_VERSION
        | SHARE_MEMBER_KEY_VERSION) => {
            let group = get_str(&mut k)?;
            let (protocol, part) = match version {
                CONSUMER_GROUP_KEY_VERSION => (Protocol::Consumer, Part::Group),
                CONSUMER_MEMBER_KEY_VERSION => (Protocol::Consumer, Part::Member(get_str(&mut k)?)),
                CONSUMER_TARGET_KEY_VERSION => (Protocol::Consumer, Part::Target(get_str(&mut k)?)),
                SHARE_GROUP_KEY_VERSION => (Protocol::Share, Part::Group),
                _ => (Protocol::Share, Part::Member(get_str(&mut k)?)),
            };
            let value = value.map(<[u8]>::to_vec);
            Ok(OffsetsRecord::Membership {
                protocol,
                group,
                part,
                value,
            })
        }
        SHARE_STATE_KEY_VERSION => {
            let group = get_str(&mut k)?;
            let topic = get_str(&mut k)?;
            let partition = get_i32(&mut k)?;
            let value = value.map(decode_share_state_value).transpose()?;
            Ok(OffsetsRecord::ShareState {
                group,
                topic,
                partition,
                value,
            })
        }
        v => Err(DecodeError::Version("key", v)),
    }
}

fn decode_offset_value(mut b: &[u8]) -> Result<OffsetValue, DecodeError> {
    let version = get_version(&mut b, "offset value", OFFSET_VALUE_VERSION)?;
    let offset = get_i64(&mut b)?;
    let leader_epoch = if version >= 3 { get_i32(&mut b)? } else { -1 };
    let metadata = get_str(&mut b)?;
    let commit_timestamp = get_i64(&mut b)?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    })
}

fn decode_group_value(mut b: &[u8]) -> Result<GroupValue, DecodeError> {
    let version = get_version(&mut b, "group value", GROUP_VALUE_VERSION)?;
    let protocol_type = get_str(&mut b)?;
    let generation = get_i32(&mut b)?;
    let protocol = get_nullable_str(&mut b)?;
    let leader = get_nullable_str(&mut b)?;
    let state_timestamp = if version >= 2 { get_i64(&mut b)? } else { -1 };
    let count = get_i32(&mut b)?.max(0);
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = get_str(&mut b)?;
        let instance_id = if version >= 3 {
            get_nullable_str(&mut b)?
        } else {
            None
        };
        let client_id = get_str(&mut b)?;
        let client_host = get_str(&mut b)?;
        let rebalance_timeout_ms = if version >= 1 { get_i32(&mut b)? } else { -1 };
        let session_timeout_ms = get_i32(&mut b)?;
        let subscription = get_bytes(&mut b)?;
        let assignment = get_bytes(&mut b)?;
        members.push(MemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

/// A value's version, which must be one this broker reads: 0 to `max`.
pub(super) fn get_version(b: &mut &[u8], what: &'static str, max: i16) -> Result<i16, DecodeError> {
    let version = get_i16(b)?;
    if !(0..=max).contains(&version) {
        return Err(DecodeError::Version(what, version));
    }
    Ok(version)
}

pub(super) fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.put_i16(-1),
    }
}

pub(super) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.put_i32(b.len() as i32);
    out.extend_from_slice(b);
}

pub(super) fn get_bytes(b: &mut &[u8]) -> Result<Bytes, DecodeError> {
    let len = get_i32(b)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    let len = len as usize;
    need(b, len)?;
    let out = Bytes::copy_from_slice(&b[..len]);
    b.advance(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_records_round_trip() {
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 1000,
        };
        let key = offset_key("g", "t", 7);
        let got = decode(Some(&key), Some(&offset_value(&v))).unwrap();
        assert_eq!(
            got,
            OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 7,
                value: Some(v)
            }
        );
        let tombstone = decode(Some(&key), None).unwrap();
        assert!(matches!(
            tombstone,
            OffsetsRecord::Offset { value: None, .. }
        ));
    }

    #[test]
    fn group_records_round_trip() {
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp: 9,
            members: vec![MemberValue {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300,
                session_timeout_ms: 100,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let got = decode(Some(&group_key("g")), Some(&group_value(&v))).unwrap();
        assert_eq!(
            got,
            OffsetsRecord::Group {
                group: "g".into(),
                value: Some(v)
            }
        );
    }

    #[test]
    fn share_state_records_round_trip() {
        let v = Snapshot {
            leader_epoch: 7,
            state_epoch: 2,
            start: 100,
            done: vec![(102, 104), (110, 110)],
            delivered: vec![(100, 101, 2), (105, 105, 1)],
        };
        let key = share_state_key("g", "t", 3);
        let value = share_state_value(&v);
        let record = decode(Some(&key), Some(&value)).expect("decodes");
        let state = |value| OffsetsRecord::ShareState {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: Some(value),
        };
        assert_eq!(record, state(v.clone()));
        assert!(decode(Some(&key), Some(&value[..value.len() - 1])).is_err());
        // A version 1 value (before delivery counts) reads as none kept,
        // and a version 0 value (before state epochs) as state epoch 0.
        let v1_len = value.len() - 4 - 2 * 18;
        let mut v1 = value[..v1_len].to_vec();
        v1[..2].copy_from_slice(&1i16.to_be_bytes());
        let none_delivered = Snapshot {
            delivered: Vec::new(),
            ..v.clone()
        };
        assert_eq!(
            decode(Some(&key), Some(&v1)).expect("decodes"),
            state(none_delivered.clone())
        );
        let mut v0 = v1[..v1_len - 4].to_vec();
        v0[..2].copy_from_slice(&0i16.to_be_bytes());
        let old = decode(Some(&key), Some(&v0)).expect("decodes");
        assert_eq!(
            old,
            state(Snapshot {
                state_epoch: 0,
                ..none_delivered
            })
        );
    }

    #[test]
    fn membership_keys_name_their_protocol_and_part() {
        let parts = [
            (Protocol::Consumer, Part::Group),
            (Protocol::Consumer, Part::Member("m-1".into())),
            (Protocol::Consumer, Part::Target("m-1".into())),
            (Protocol::Share, Part::Group),
            (Protocol::Share, Part::Member("m-1".into())),
        ];
        for (protocol, part) in parts {
            let key = membership_key(protocol, "g", &part);
            let got = decode(Some(&key), Some(b"v")).unwrap();
            let value = Some(b"v".to_vec());
            let group = "g".to_string();
            let want = OffsetsRecord::Membership {
                protocol,
                group,
                part,
                value,
            };
            assert_eq!(got, want);
        }
        let member = membership_key(Protocol::Share, "g", &Part::Member("m".into()));
        assert!(decode(Some(&member[..member.len() - 1]), None).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(None, None).is_err());
        assert!(decode(Some(&[0, 1, 0]), None).is_err());
        assert!(decode(Some(&[0, 9]), None).is_err());
        let key = offset_key("g", "t", 0);
        assert!(decode(Some(&key), Some(&[0, 3, 1])).is_err());
    }
}
