//! A consumer protocol group's membership as one record of
//! `__consumer_offsets` (Sluice's own format, under its own key version):
//! what a coordinator that takes the group over needs so that its members
//! go on at their epochs, owning what they owned, rather than joining
//! again. Written after every heartbeat that changed it, before the answer.
//! What only runs while a coordinator holds the group (when a member was
//! last heard, what it was last told, revocation deadlines) starts afresh
//! at load: every member gets a whole session, and is told its assignment.

use bytes::BufMut;
use uuid::Uuid;

use super::classic::ClassicMember;
use super::{Assignment, ConsumerGroup, Member, TopicShape};
use crate::group::records::{get_bytes, put_bytes, put_nullable_str, DecodeError};
use crate::record::kv::{get_i16, get_i32, get_i8, get_nullable_str, get_str, need, put_str};

/// Version 1 added the classic protocol's part of a member; version 0
/// records (none has it) still load.
const VALUE_VERSION: i16 = 1;

pub fn encode(group: &ConsumerGroup) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.put_i16(VALUE_VERSION);
    out.put_i32(group.epoch);
    out.put_i32(group.target_epoch);
    put_str(&mut out, group.assignor);
    out.put_i32(group.shapes.len() as i32);
    for (name, shape) in &group.shapes {
        put_str(&mut out, name);
        out.put_slice(shape.id.as_bytes());
        out.put_i32(shape.partitions);
    }
    out.put_i32(group.target.len() as i32);
    for (member, assignment) in &group.target {
        put_str(&mut out, member);
        put_assignment(&mut out, assignment);
    }
    out.put_i32(group.members.len() as i32);
    for m in group.members.values() {
        put_member(&mut out, m);
    }
    out
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

fn put_strs<'a>(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = &'a String>) {
    out.put_i32(items.len() as i32);
    for item in items {
        put_str(out, item);
    }
}

fn put_assignment(out: &mut Vec<u8>, a: &Assignment) {
    out.put_i32(a.len() as i32);
    for (topic, partitions) in a {
        out.put_slice(topic.as_bytes());
        out.put_i32(partitions.len() as i32);
        for p in partitions {
            out.put_i32(*p);
        }
    }
}

/// The group a record holds, its members heard from at `now_ms`.
pub fn decode(mut b: &[u8], now_ms: i64) -> Result<ConsumerGroup, DecodeError> {
    let b = &mut b;
    let version = get_i16(b)?;
    if !(0..=VALUE_VERSION).contains(&version) {
        return Err(DecodeError::Version("consumer group value", version));
    }
    let mut group = ConsumerGroup {
        epoch: get_i32(b)?,
        target_epoch: get_i32(b)?,
        ..ConsumerGroup::default()
    };
    group.assignor = match get_str(b)?.as_str() {
        super::assignor::RANGE => super::assignor::RANGE,
        _ => super::assignor::UNIFORM,
    };
    for _ in 0..count(b)? {
        let name = get_str(b)?;
        let shape = TopicShape {
            id: get_uuid(b)?,
            partitions: get_i32(b)?,
        };
        group.shapes.insert(name, shape);
    }
    for _ in 0..count(b)? {
        let member = get_str(b)?;
        group.target.insert(member, get_assignment(b)?);
    }
    for _ in 0..count(b)? {
        let m = get_member(b, version, now_ms)?;
        group.members.insert(m.id.clone(), m);
    }
    Ok(group)
}

fn get_member(b: &mut &[u8], version: i16, now_ms: i64) -> Result<Member, DecodeError> {
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
    if version >= 1 {
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

fn get_strs(b: &mut &[u8]) -> Result<Vec<String>, DecodeError> {
    (0..count(b)?).map(|_| Ok(get_str(b)?)).collect()
}

fn get_uuid(b: &mut &[u8]) -> Result<Uuid, DecodeError> {
    need(b, 16)?;
    let (id, rest) = b.split_at(16);
    *b = rest;
    Ok(Uuid::from_slice(id).expect("16 bytes"))
}

fn get_assignment(b: &mut &[u8]) -> Result<Assignment, DecodeError> {
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

    #[test]
    fn a_group_comes_back_as_it_was_written() {
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
        let back = decode(&encode(&g), 50).unwrap();
        assert_eq!(back.epoch, g.epoch);
        assert_eq!(back.target_epoch, g.target_epoch);
        assert_eq!(back.assignor, g.assignor);
        assert_eq!(back.shapes, g.shapes);
        assert_eq!(back.target, g.target);
        assert_eq!(back.members.len(), 2);
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
        let bytes = encode(&g);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], 0).is_err(), "cut at {cut}");
        }
    }
}
