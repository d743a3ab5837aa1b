//! A consumer protocol group's records in `__consumer_offsets` (Sluice's
//! own format, under its own key versions), laid out as Kafka lays out
//! its own: one record of the group (its epochs, assignor and subscribed
//! topics), one per member, one per member's target assignment, each
//! under its own key (`records::Part`). What a coordinator that
//! takes the group over needs so that its members go on at their epochs,
//! owning what they owned, rather than joining again. Written after every
//! heartbeat that changed them, before the answer: only the records that
//! changed (`written`), so a heartbeat costs a record, not the group.
//! What only runs while a coordinator holds the group (when a member was
//! last heard, what it was last told, revocation deadlines) starts afresh
//! at load: every member gets a whole session, and is told its assignment.
//!
//! Versions 0 and 1 of the group record held the whole group; they still
//! load, and the group's first write after such a load writes every
//! record anew.

use std::collections::BTreeMap;

use bytes::BufMut;
use uuid::Uuid;

use super::classic::ClassicMember;
use super::{Assignment, ConsumerGroup, Member, TopicShape};
use crate::group::records::{get_bytes, get_version, put_bytes, put_nullable_str, DecodeError};
use crate::group::written::Recorded;
use crate::record::kv::{get_i32, get_i8, get_nullable_str, get_str, need, put_str};

/// Version 1 of the whole group added the classic protocol's part of a
/// member; version 2 is the group's own record, its members and targets
/// in records of their own.
const GROUP_VALUE_VERSION: i16 = 2;
const MEMBER_VALUE_VERSION: i16 = 0;
const TARGET_VALUE_VERSION: i16 = 0;

impl Recorded for ConsumerGroup {
    type Member = Member;
    type Target = Assignment;

    /// Its epochs, assignor and subscribed topics.
    fn own_record(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.put_i16(GROUP_VALUE_VERSION);
        put_group_fields(&mut out, self);
        out
    }

    /// Versions 0 and 1 held the whole group: it replaces `group`.
    fn read_own(group: &mut Option<Self>, mut b: &[u8], now_ms: i64) -> Result<bool, DecodeError> {
        let b = &mut b;
        let version = get_version(b, "consumer group value", GROUP_VALUE_VERSION)?;
        if version < GROUP_VALUE_VERSION {
            *group = Some(decode_whole(b, version, now_ms)?);
            return Ok(true);
        }
        let fields = decode_group_fields(b)?;
        let g = group.get_or_insert_with(ConsumerGroup::default);
        (g.epoch, g.target_epoch, g.assignor) =
            (fields.epoch, fields.target_epoch, fields.assignor);
        g.shapes = fields.shapes;
        Ok(false)
    }

    fn members(&self) -> &BTreeMap<String, Member> {
        &self.members
    }

    fn members_mut(&mut self) -> &mut BTreeMap<String, Member> {
        &mut self.members
    }

    fn encode_member(out: &mut Vec<u8>, member: &Member) {
        out.put_i16(MEMBER_VALUE_VERSION);
        put_member(out, member);
    }

    fn read_member(mut b: &[u8], _: &str, now_ms: i64) -> Result<Member, DecodeError> {
        let b = &mut b;
        get_version(b, "consumer group member value", MEMBER_VALUE_VERSION)?;
        get_member(b, true, now_ms)
    }

    fn targets(&self) -> Option<&BTreeMap<String, Assignment>> {
        Some(&self.target)
    }

    fn targets_mut(&mut self) -> Option<&mut BTreeMap<String, Assignment>> {
        Some(&mut self.target)
    }

    fn encode_target(out: &mut Vec<u8>, target: &Assignment) {
        out.put_i16(TARGET_VALUE_VERSION);
        put_assignment(out, target);
    }

    fn read_target(mut b: &[u8]) -> Result<Assignment, DecodeError> {
        let b = &mut b;
        get_version(b, "consumer group target value", TARGET_VALUE_VERSION)?;
        get_assignment(b)
    }
}

fn put_group_fields(out: &mut Vec<u8>, group: &ConsumerGroup) {
    out.put_i32(group.epoch);
    out.put_i32(group.target_epoch);
    put_str(out, group.assignor);
    put_shapes(out, &group.shapes);
}

/// Subscribed topics, by name: their ids and partition counts.
pub(crate) fn put_shapes(out: &mut Vec<u8>, shapes: &BTreeMap<String, TopicShape>) {
    out.put_i32(shapes.len() as i32);
    for (name, shape) in shapes {
        put_str(out, name);
        out.put_slice(shape.id.as_bytes());
        out.put_i32(shape.partitions);
    }
}

pub(crate) fn get_shapes(b: &mut &[u8]) -> Result<BTreeMap<String, TopicShape>, DecodeError> {
    let mut shapes = BTreeMap::new();
    for _ in 0..count(b)? {
        let name = get_str(b)?;
        let shape = TopicShape {
            id: get_uuid(b)?,
            partitions: get_i32(b)?,
        };
        shapes.insert(name, shape);
    }
    Ok(shapes)
}

/// The group record's own fields (all of a version-2 record); a group
/// with no members yet.
fn decode_group_fields(b: &mut &[u8]) -> Result<ConsumerGroup, DecodeError> {
    let mut group = ConsumerGroup {
        epoch: get_i32(b)?,
        target_epoch: get_i32(b)?,
        ..ConsumerGroup::default()
    };
    group.assignor = match get_str(b)?.as_str() {
        super::assignor::RANGE => super::assignor::RANGE,
        _ => super::assignor::UNIFORM,
    };
    group.shapes = get_shapes(b)?;
    Ok(group)
}

/// A group record of version 0 or 1: the whole group in one record.
fn decode_whole(b: &mut &[u8], version: i16, now_ms: i64) -> Result<ConsumerGroup, DecodeError> {
    let mut group = decode_group_fields(b)?;
    for _ in 0..count(b)? {
        let member = get_str(b)?;
        group.target.insert(member, get_assignment(b)?);
    }
    for _ in 0..count(b)? {
        let m = get_member(b, version >= 1, now_ms)?;
        group.members.insert(m.id.clone(), m);
    }
    Ok(group)
}

fn put_member(out: &mut Vec<u8>, m: &Member) {
    put_str(out, &m.id);
    put_nullable_str(out, m.instance_id.as_deref());
    put_str(out, &m.client_id);
    put_str(out, &m.client_host);
    out.put_i32(m.epoch);
    out.put_i32(m.previous_epoch);
    out.put_i32(m.rebalance_timeout_ms);
    put_strs(out, m.subscribed.iter());
    put_strs(out, m.names.iter());
    put_nullable_str(out, m.regex.as_deref());
    put_nullable_str(out, m.assignor.as_deref());
    put_assignment(out, &m.assigned);
    put_assignment(out, &m.revoking);
    out.put_i8(i8::from(m.departed));
    put_classic(out, m.classic.as_ref());
}

fn put_classic(out: &mut Vec<u8>, classic: Option<&ClassicMember>) {
    let Some(c) = classic else {
        out.put_i8(0);
        return;
    };
    out.put_i8(1);
    out.put_i32(c.session_timeout_ms);
    out.put_i32(c.protocols.len() as i32);
    for (name, metadata) in &c.protocols {
        put_str(out, name);
        put_bytes(out, metadata);
    }
}

fn get_classic(b: &mut &[u8]) -> Result<Option<ClassicMember>, DecodeError> {
    if get_i8(b)? == 0 {
        return Ok(None);
    }
    let session_timeout_ms = get_i32(b)?;
    let protocols = (0..count(b)?)
        .map(|_| Ok((get_str(b)?, get_bytes(b)?)))
        .collect::<Result<_, DecodeError>>()?;
    Ok(Some(ClassicMember {
        session_timeout_ms,
        protocols,
        deadline_ms: None,
    }))
}

pub(crate) fn put_strs<'a>(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = &'a String>) {
    out.put_i32(items.len() as i32);
    for item in items {
        put_str(out, item);
    }
}

pub(crate) fn put_assignment(out: &mut Vec<u8>, a: &Assignment) {
    out.put_i32(a.len() as i32);
    for (topic, partitions) in a {
        out.put_slice(topic.as_bytes());
        out.put_i32(partitions.len() as i32);
        for p in partitions {
            out.put_i32(*p);
        }
    }
}

fn get_member(b: &mut &[u8], with_classic: bool, now_ms: i64) -> Result<Member, DecodeError> {
    let mut member = Member {
        id: get_str(b)?,
        instance_id: get_nullable_str(b)?,
        client_id: get_str(b)?,
        client_host: get_str(b)?,
        epoch: get_i32(b)?,
        previous_epoch: get_i32(b)?,
        rebalance_timeout_ms: get_i32(b)?,
        subscribed: get_strs(b)?.into_iter().collect(),
        names: get_strs(b)?.into_iter().collect(),
        regex: get_nullable_str(b)?,
        assignor: get_nullable_str(b)?,
        assigned: get_assignment(b)?,
        revoking: get_assignment(b)?,
        departed: get_i8(b)? != 0,
        revoke_deadline_ms: None,
        told: None,
        last_seen_ms: now_ms,
        classic: None,
    };
    if with_classic {
        member.classic = get_classic(b)?;
    }
    Ok(member)
}

/// A count, which the bytes left must be able to hold (at least a byte
/// each), so a corrupt one cannot make a huge allocation or loop.
fn count(b: &mut &[u8]) -> Result<usize, DecodeError> {
    let n = get_i32(b)?.max(0) as usize;
    need(b, n)?;
    Ok(n)
}

pub(crate) fn get_strs(b: &mut &[u8]) -> Result<Vec<String>, DecodeError> {
    (0..count(b)?).map(|_| Ok(get_str(b)?)).collect()
}

fn get_uuid(b: &mut &[u8]) -> Result<Uuid, DecodeError> {
    need(b, 16)?;
    let (id, rest) = b.split_at(16);
    *b = rest;
    Ok(Uuid::from_slice(id).expect("16 bytes"))
}

pub(crate) fn get_assignment(b: &mut &[u8]) -> Result<Assignment, DecodeError> {
    let mut a = Assignment::new();
    for _ in 0..count(b)? {
        let topic = get_uuid(b)?;
        let partitions = (0..count(b)?)
            .map(|_| Ok(get_i32(b)?))
            .collect::<Result<_, DecodeError>>()?;
        a.insert(topic, partitions);
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::super::{Heartbeat, Limits, JOINING_EPOCH};
    use super::*;
    use crate::group::records::{Part, Protocol};
    use crate::group::written::{replay, Change, Written};

    /// A group of two members, one static and one classic, with a target.
    fn two_members() -> ConsumerGroup {
        let topic = Uuid::from_u128(9);
        let topics = BTreeMap::from([(
            "t".to_string(),
            TopicShape {
                id: topic,
                partitions: 3,
            },
        )]);
        let limits = Limits {
            max_size: 10,
            session_timeout_ms: 1_000,
        };
        let mut g = ConsumerGroup::default();
        for (id, instance) in [("a", Some("i-a")), ("b", None)] {
            let beat = Heartbeat {
                member_id: id.into(),
                member_epoch: JOINING_EPOCH,
                instance_id: instance.map(Into::into),
                rebalance_timeout_ms: 500,
                subscribed: Some(BTreeSet::from(["t".to_string()])),
                names: BTreeSet::from(["t".to_string()]),
                regex: Some("t.*".into()),
                ..Heartbeat::default()
            };
            g.heartbeat(beat, &topics, &limits, 0).unwrap();
        }
        g.members.get_mut("b").unwrap().classic = Some(ClassicMember {
            session_timeout_ms: 10_000,
            protocols: vec![("range".into(), bytes::Bytes::from_static(b"\0\x01sub"))],
            deadline_ms: None,
        });
        g
    }

    /// The group and what is noted written of it, after replaying `changes`.
    fn replayed(changes: &[Change], now_ms: i64) -> (Option<ConsumerGroup>, Written) {
        let (mut group, mut written) = (None, Written::new(Protocol::Consumer));
        for c in changes {
            let value = c.value.as_deref();
            replay(&mut group, &mut written, c.part.clone(), value, now_ms).unwrap();
        }
        (group, written)
    }

    fn assert_same(back: &ConsumerGroup, g: &ConsumerGroup) {
        assert_eq!(back.epoch, g.epoch);
        assert_eq!(back.target_epoch, g.target_epoch);
        assert_eq!(back.assignor, g.assignor);
        assert_eq!(back.shapes, g.shapes);
        assert_eq!(back.target, g.target);
        assert_eq!(back.members.len(), g.members.len());
        for (id, m) in &g.members {
            let n = &back.members[id];
            assert_eq!(
                (&n.instance_id, n.epoch, &n.subscribed, &n.names, &n.regex),
                (&m.instance_id, m.epoch, &m.subscribed, &m.names, &m.regex)
            );
            assert_eq!((&n.assigned, &n.revoking), (&m.assigned, &m.revoking));
            assert_eq!(n.classic, m.classic);
            assert_eq!(n.last_seen_ms, 50, "a whole session from the load");
        }
    }

    #[test]
    fn a_group_comes_back_as_it_was_written() {
        let g = two_members();
        let changes = Written::new(Protocol::Consumer).changes(Some(&g));
        // The group, each member, each member's target.
        assert_eq!(changes.len(), 1 + 2 + 2, "{changes:?}");
        let (back, mut written) = replayed(&changes, 50);
        let back = back.expect("a group");
        assert_same(&back, &g);
        assert!(
            written.changes(Some(&back)).is_empty(),
            "what was read back is what the log holds"
        );
        for c in &changes {
            let bytes = c.value.as_deref().unwrap();
            for cut in 0..bytes.len() {
                let mut written = Written::new(Protocol::Consumer);
                let cut_value = Some(&bytes[..cut]);
                let read =
                    replay::<ConsumerGroup>(&mut None, &mut written, c.part.clone(), cut_value, 0);
                assert!(read.is_err(), "{:?} cut at {cut}", c.part);
            }
        }
        // Tombstones take every part away again.
        let tombstones = written.tombstones();
        assert_eq!(tombstones.len(), changes.len());
        assert!(tombstones.iter().all(|c| c.value.is_none()));
        let (own, parts): (Vec<&Change>, Vec<&Change>) =
            tombstones.iter().partition(|c| c.part == Part::Group);
        let mut group = Some(back);
        for c in parts {
            replay(&mut group, &mut written, c.part.clone(), None, 0).unwrap();
        }
        let emptied = group
            .as_ref()
            .expect("the group's own record is still there");
        assert!(emptied.members.is_empty() && emptied.target.is_empty());
        assert_eq!(own.len(), 1);
        replay(&mut group, &mut written, Part::Group, None, 0).unwrap();
        assert!(group.is_none());
        assert!(
            written.changes::<ConsumerGroup>(None).is_empty(),
            "nothing left to delete"
        );
    }

    /// The record of versions 0 and 1: the whole group in one.
    fn whole_v1(g: &ConsumerGroup) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_i16(1);
        put_group_fields(&mut out, g);
        out.put_i32(g.target.len() as i32);
        for (member, assignment) in &g.target {
            put_str(&mut out, member);
            put_assignment(&mut out, assignment);
        }
        out.put_i32(g.members.len() as i32);
        for m in g.members.values() {
            put_member(&mut out, m);
        }
        out
    }

    #[test]
    fn a_whole_group_record_of_before_still_loads_and_is_written_anew() {
        let g = two_members();
        let (mut group, mut written) = (None, Written::new(Protocol::Consumer));
        let old = whole_v1(&g);
        replay(&mut group, &mut written, Part::Group, Some(&old), 50).unwrap();
        let back = group.expect("a group");
        assert_same(&back, &g);
        let changes = written.changes(Some(&back));
        assert_eq!(changes.len(), 1 + 2 + 2, "every part anew: {changes:?}");
        assert!(changes.iter().all(|c| c.value.is_some()));
        // What the log then holds, replayed after the old record, is the
        // group again (the new group record keeps what the old one held
        // until each part's own record replaces it).
        let mut group = None;
        let mut written = Written::new(Protocol::Consumer);
        replay(&mut group, &mut written, Part::Group, Some(&old), 50).unwrap();
        for c in &changes {
            let value = c.value.as_deref();
            replay(&mut group, &mut written, c.part.clone(), value, 50).unwrap();
        }
        assert_same(group.as_ref().unwrap(), &g);
    }
}
