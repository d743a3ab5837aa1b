//! A share group's membership in `__consumer_offsets` (Sluice's own
//! format, under its own key versions), laid out as Kafka's share group
//! records: one record of the group (its epoch and subscribed topics) and
//! one per member (its epoch, subscription and partitions). A coordinator
//! that takes the group over answers its members at their epochs with
//! their partitions, rather than making every one of them join again.
//! Written after every heartbeat that changed them, before the answer,
//! only the records that changed (`written`). When a member was last heard
//! starts afresh at load: every member gets a whole session.

use std::collections::BTreeMap;

use bytes::BufMut;

use super::consumer_protocol::record::{
    get_assignment, get_shapes, get_strs, put_assignment, put_shapes, put_strs,
};
use super::records::{get_version, put_nullable_str, DecodeError};
use super::share_protocol::{ShareGroup, ShareMember};
use super::written::Recorded;
use crate::record::kv::{get_i32, get_nullable_str, get_str, put_str};

const GROUP_VALUE_VERSION: i16 = 0;
const MEMBER_VALUE_VERSION: i16 = 0;

impl Recorded for ShareGroup {
    type Member = ShareMember;
    type Target = ();

    /// Its epoch and the topics its assignment was made for.
    fn own_record(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        out.put_i16(GROUP_VALUE_VERSION);
        out.put_i32(self.epoch);
        put_shapes(&mut out, &self.shapes);
        out
    }

    fn read_own(group: &mut Option<Self>, mut b: &[u8], _: i64) -> Result<bool, DecodeError> {
        let b = &mut b;
        get_version(b, "share group value", GROUP_VALUE_VERSION)?;
        let epoch = get_i32(b)?;
        let shapes = get_shapes(b)?;
        let g = group.get_or_insert_with(ShareGroup::default);
        (g.epoch, g.shapes) = (epoch, shapes);
        Ok(false)
    }

    fn members(&self) -> &BTreeMap<String, ShareMember> {
        &self.members
    }

    fn members_mut(&mut self) -> &mut BTreeMap<String, ShareMember> {
        &mut self.members
    }

    fn encode_member(out: &mut Vec<u8>, m: &ShareMember) {
        out.put_i16(MEMBER_VALUE_VERSION);
        out.put_i32(m.epoch);
        put_nullable_str(out, m.rack_id.as_deref());
        put_str(out, &m.client_id);
        put_str(out, &m.client_host);
        put_strs(out, m.subscribed.iter());
        put_assignment(out, &m.assignment);
    }

    fn read_member(mut b: &[u8], id: &str, now_ms: i64) -> Result<ShareMember, DecodeError> {
        let b = &mut b;
        get_version(b, "share group member value", MEMBER_VALUE_VERSION)?;
        Ok(ShareMember {
            id: id.to_string(),
            epoch: get_i32(b)?,
            rack_id: get_nullable_str(b)?,
            client_id: get_str(b)?,
            client_host: get_str(b)?,
            subscribed: get_strs(b)?.into_iter().collect(),
            assignment: get_assignment(b)?,
            last_seen_ms: now_ms,
        })
    }

    fn targets(&self) -> Option<&BTreeMap<String, ()>> {
        None
    }

    fn targets_mut(&mut self) -> Option<&mut BTreeMap<String, ()>> {
        None
    }

    fn encode_target(_: &mut Vec<u8>, _: &()) {}

    fn read_target(_: &[u8]) -> Result<(), DecodeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::group::consumer_protocol::{TopicShape, JOINING_EPOCH};
    use crate::group::records::Part;
    use crate::group::records::Protocol;
    use crate::group::share_protocol::{ShareBeat, ShareLimits};
    use crate::group::written::{replay, Written};

    fn three_members_one_gone() -> ShareGroup {
        let topics = BTreeMap::from([(
            "t".to_string(),
            TopicShape {
                id: uuid::Uuid::from_u128(3),
                partitions: 4,
            },
        )]);
        let limits = ShareLimits {
            max_size: 10,
            session_timeout_ms: 1_000,
        };
        let mut g = ShareGroup::default();
        for (id, rack) in [("a", Some("r1")), ("b", None), ("c", None)] {
            let beat = ShareBeat {
                member_id: id.into(),
                member_epoch: JOINING_EPOCH,
                rack_id: rack.map(Into::into),
                subscribed: Some(BTreeSet::from(["t".to_string()])),
                client_id: format!("client-{id}"),
                client_host: "/127.0.0.1".into(),
            };
            g.heartbeat(beat, &topics, &limits, 0).unwrap();
        }
        let leave = ShareBeat {
            member_id: "c".into(),
            member_epoch: crate::group::consumer_protocol::LEAVING_EPOCH,
            ..ShareBeat::default()
        };
        g.heartbeat(leave, &topics, &limits, 0).unwrap();
        g
    }

    fn replay_all(
        changes: &[crate::group::written::Change],
        group: &mut Option<ShareGroup>,
        written: &mut Written,
    ) {
        for c in changes {
            assert_eq!(c.protocol, Protocol::Share);
            replay(group, written, c.part.clone(), c.value.as_deref(), 50).unwrap();
        }
    }

    #[test]
    fn a_share_group_comes_back_as_it_was_written() {
        let mut g = three_members_one_gone();
        let mut written = Written::new(Protocol::Share);
        let first = written.changes(Some(&g));
        assert_eq!(first.len(), 1 + 2, "the group and its two members");

        // A member catching up with the epoch writes only itself.
        g.members.get_mut("a").unwrap().epoch = g.epoch;
        let caught_up = written.changes(Some(&g));
        let a = Part::Member("a".into());
        assert_eq!(caught_up.iter().map(|c| &c.part).collect::<Vec<_>>(), [&a]);

        let (mut back, mut replayed) = (None, Written::new(Protocol::Share));
        replay_all(&first, &mut back, &mut replayed);
        replay_all(&caught_up, &mut back, &mut replayed);
        let back = back.expect("a share group");
        assert_eq!((back.epoch, &back.shapes), (g.epoch, &g.shapes));
        assert_eq!(
            back.members.keys().collect::<Vec<_>>(),
            g.members.keys().collect::<Vec<_>>()
        );
        for (id, m) in &g.members {
            let n = &back.members[id];
            assert_eq!(
                (
                    n.epoch,
                    &n.rack_id,
                    &n.client_id,
                    &n.subscribed,
                    &n.assignment
                ),
                (
                    m.epoch,
                    &m.rack_id,
                    &m.client_id,
                    &m.subscribed,
                    &m.assignment
                )
            );
            assert_eq!(n.last_seen_ms, 50, "a whole session from the load");
        }
        assert!(
            replayed.changes(Some(&back)).is_empty(),
            "in step with the log"
        );

        for c in first.iter().chain(&caught_up) {
            let bytes = c.value.as_deref().unwrap();
            for cut in 0..bytes.len() {
                let mut w = Written::new(Protocol::Share);
                let read =
                    replay::<ShareGroup>(&mut None, &mut w, c.part.clone(), Some(&bytes[..cut]), 0);
                assert!(read.is_err(), "{:?} cut at {cut}", c.part);
            }
        }

        // Gone: tombstones for the group and both members.
        let gone = replayed.changes::<ShareGroup>(None);
        assert_eq!(gone.len(), 3);
        let mut group = Some(back);
        replay_all(&gone, &mut group, &mut replayed);
        assert!(group.is_none());
    }
}
