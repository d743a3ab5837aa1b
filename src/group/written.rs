//! What `__consumer_offsets` holds of a group's membership (a consumer
//! protocol or a share group), record by record, as this coordinator last
//! wrote or replayed it, so that a write carries only the records that
//! differ from it: a heartbeat that moved one member writes that member's
//! record, not the group, and a member gone leaves a tombstone. Without it
//! a group of `n` members would write `n` members per heartbeat, `n`² per
//! rebalance.
//!
//! What is noted is the encoded value, compared byte for byte: nothing can
//! change a member without changing its encoding, so no change can be
//! missed by a path that forgot to say it changed something.

use std::collections::BTreeMap;

use super::records::{DecodeError, Part, Protocol};

/// A membership as its records: the group's own, one per member, one per
/// member's target (none for a share group); each written and read back.
pub trait Recorded: Default {
    type Member;
    type Target;
    fn own_record(&self) -> Vec<u8>;
    /// Reads the group's own record into `group` (made if there is none);
    /// true if it was a whole group of an older layout, which replaced it.
    fn read_own(group: &mut Option<Self>, b: &[u8], now_ms: i64) -> Result<bool, DecodeError>;
    fn members(&self) -> &BTreeMap<String, Self::Member>;
    fn members_mut(&mut self) -> &mut BTreeMap<String, Self::Member>;
    fn encode_member(out: &mut Vec<u8>, member: &Self::Member);
    /// A member's record, heard from at `now_ms`.
    fn read_member(b: &[u8], id: &str, now_ms: i64) -> Result<Self::Member, DecodeError>;
    fn targets(&self) -> Option<&BTreeMap<String, Self::Target>>;
    fn targets_mut(&mut self) -> Option<&mut BTreeMap<String, Self::Target>>;
    fn encode_target(out: &mut Vec<u8>, target: &Self::Target);
    fn read_target(b: &[u8]) -> Result<Self::Target, DecodeError>;
}

/// Applies one replayed record to the group (`None`: none of this
/// protocol) and to what is noted as written of it. An unreadable record
/// changes nothing.
pub fn replay<G: Recorded>(
    group: &mut Option<G>,
    written: &mut Written,
    part: Part,
    value: Option<&[u8]>,
    now_ms: i64,
) -> Result<(), DecodeError> {
    let Some(bytes) = value else {
        match &part {
            Part::Group => *group = None,
            Part::Member(id) => {
                group.as_mut().map(|g| g.members_mut().remove(id));
            }
            Part::Target(id) => {
                group
                    .as_mut()
                    .and_then(G::targets_mut)
                    .map(|t| t.remove(id));
            }
        }
        written.replayed(part, None);
        return Ok(());
    };
    match &part {
        Part::Group => {
            if G::read_own(group, bytes, now_ms)? {
                written.unknown(group.as_ref().expect("a whole group read"));
                return Ok(());
            }
        }
        Part::Member(id) => {
            let member = G::read_member(bytes, id, now_ms)?;
            let g = group.get_or_insert_with(G::default);
            g.members_mut().insert(id.clone(), member);
        }
        Part::Target(id) => {
            let target = G::read_target(bytes)?;
            let g = group.get_or_insert_with(G::default);
            let Some(targets) = g.targets_mut() else {
                return Ok(());
            };
            targets.insert(id.clone(), target);
        }
    }
    written.replayed(part, Some(bytes));
    Ok(())
}

/// One record to write: `None` is a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub protocol: Protocol,
    pub part: Part,
    pub value: Option<Vec<u8>>,
}

/// The values the log holds, by part; a part absent holds nothing.
#[derive(Debug)]
pub struct Written {
    protocol: Protocol,
    group: Option<Vec<u8>>,
    members: BTreeMap<String, Vec<u8>>,
    targets: BTreeMap<String, Vec<u8>>,
}

/// Noted for a part whose record in the log is not known (a write that
/// failed, a record of an older layout): no encoding is empty (each starts
/// with its version), so the part is written again, or its tombstone.
const UNKNOWN: Vec<u8> = Vec::new();

impl Written {
    /// Nothing written yet.
    pub fn new(protocol: Protocol) -> Written {
        Written {
            protocol,
            group: None,
            members: BTreeMap::new(),
            targets: BTreeMap::new(),
        }
    }

    /// The records that bring the log to `group` (`None`: the group is
    /// gone), noted as written: the caller writes them, and calls
    /// [`Written::failed`] if that fails.
    pub fn changes<G: Recorded>(&mut self, group: Option<&G>) -> Vec<Change> {
        let mut out = Vec::new();
        let value = group.map(G::own_record);
        if value != self.group {
            self.group.clone_from(&value);
            out.push(self.change(Part::Group, value));
        }
        let (no_members, no_targets) = (BTreeMap::new(), BTreeMap::new());
        let members = group.map_or(&no_members, G::members);
        let targets = group.and_then(G::targets).unwrap_or(&no_targets);
        let protocol = self.protocol;
        diff(
            &mut self.members,
            members,
            G::encode_member,
            &mut |id, value| {
                out.push(Change {
                    protocol,
                    part: Part::Member(id),
                    value,
                })
            },
        );
        diff(
            &mut self.targets,
            targets,
            G::encode_target,
            &mut |id, value| {
                out.push(Change {
                    protocol,
                    part: Part::Target(id),
                    value,
                })
            },
        );
        out
    }

    fn change(&self, part: Part, value: Option<Vec<u8>>) -> Change {
        Change {
            protocol: self.protocol,
            part,
            value,
        }
    }

    /// A tombstone for every record the group has, noted as written (the
    /// group deleted).
    pub fn tombstones(&mut self) -> Vec<Change> {
        let mut out = Vec::new();
        if self.group.take().is_some() {
            out.push(self.change(Part::Group, None));
        }
        let members = std::mem::take(&mut self.members).into_keys();
        out.extend(members.map(|id| self.change(Part::Member(id), None)));
        let targets = std::mem::take(&mut self.targets).into_keys();
        out.extend(targets.map(|id| self.change(Part::Target(id), None)));
        out
    }

    /// `changes` were not written: what they touched is unknown in the
    /// log, so the next write writes it again.
    pub fn failed(&mut self, changes: &[Change]) {
        for change in changes.iter().filter(|c| c.protocol == self.protocol) {
            match &change.part {
                Part::Group => self.group = Some(UNKNOWN),
                Part::Member(id) => {
                    self.members.insert(id.clone(), UNKNOWN);
                }
                Part::Target(id) => {
                    self.targets.insert(id.clone(), UNKNOWN);
                }
            }
        }
    }

    /// A record read back from the log.
    pub fn replayed(&mut self, part: Part, value: Option<&[u8]>) {
        let value = value.map(<[u8]>::to_vec);
        match part {
            Part::Group => self.group = value,
            Part::Member(id) => put(&mut self.members, id, value),
            Part::Target(id) => put(&mut self.targets, id, value),
        }
    }

    /// The group was read from one record of an older layout: each of its
    /// parts is written anew at the next write (which also replaces that
    /// record, under the same key).
    pub fn unknown<G: Recorded>(&mut self, group: &G) {
        let unknown = |ids: Vec<&String>| ids.into_iter().map(|id| (id.clone(), UNKNOWN)).collect();
        self.group = Some(UNKNOWN);
        self.members = unknown(group.members().keys().collect());
        self.targets = unknown(group.targets().into_iter().flat_map(|t| t.keys()).collect());
    }
}

fn put(map: &mut BTreeMap<String, Vec<u8>>, id: String, value: Option<Vec<u8>>) {
    match value {
        Some(v) => map.insert(id, v),
        None => map.remove(&id),
    };
}

/// The records of one kind of part that differ between `written` and
/// `now`, to `out` (id, value), noted as written. Each item is encoded
/// into one scratch buffer: an unchanged one costs no allocation.
fn diff<T>(
    written: &mut BTreeMap<String, Vec<u8>>,
    now: &BTreeMap<String, T>,
    encode: fn(&mut Vec<u8>, &T),
    out: &mut dyn FnMut(String, Option<Vec<u8>>),
) {
    let mut scratch = Vec::new();
    for (id, item) in now {
        scratch.clear();
        encode(&mut scratch, item);
        if written.get(id) != Some(&scratch) {
            written.insert(id.clone(), scratch.clone());
            out(id.clone(), Some(scratch.clone()));
        }
    }
    let gone: Vec<String> = written
        .keys()
        .filter(|id| !now.contains_key(*id))
        .cloned()
        .collect();
    for id in gone {
        written.remove(&id);
        out(id, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::consumer_protocol::{Assignment, ConsumerGroup, Member};

    /// A group of `n` members, each with a target, all noted written.
    fn written_group(n: usize) -> (ConsumerGroup, Written) {
        let mut g = ConsumerGroup {
            epoch: 3,
            target_epoch: 3,
            ..ConsumerGroup::default()
        };
        for i in 0..n {
            let id = format!("m-{i}");
            let topic = uuid::Uuid::from_u128(1);
            let assigned = Assignment::from([(topic, [i as i32].into())]);
            g.target.insert(id.clone(), assigned.clone());
            g.members.insert(id.clone(), member(&id, assigned));
        }
        let mut written = Written::new(Protocol::Consumer);
        assert_eq!(written.changes(Some(&g)).len(), 1 + 2 * n);
        (g, written)
    }

    fn member(id: &str, assigned: Assignment) -> Member {
        Member {
            id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            epoch: 3,
            previous_epoch: 2,
            rebalance_timeout_ms: 1_000,
            subscribed: ["t".to_string()].into(),
            names: ["t".to_string()].into(),
            regex: None,
            assignor: None,
            assigned,
            revoking: Assignment::new(),
            revoke_deadline_ms: None,
            told: None,
            departed: false,
            last_seen_ms: 0,
            classic: None,
        }
    }

    fn parts(changes: &[Change]) -> Vec<(Part, bool)> {
        changes
            .iter()
            .map(|c| (c.part.clone(), c.value.is_some()))
            .collect()
    }

    #[test]
    fn a_change_writes_only_the_records_it_changed() {
        let (mut g, mut written) = written_group(100);
        assert!(written.changes(Some(&g)).is_empty(), "nothing changed");

        // What is not written (when a member was last heard) writes nothing.
        g.members.get_mut("m-7").unwrap().last_seen_ms = 99;
        assert!(written.changes(Some(&g)).is_empty());

        // One member's epoch: that member's record.
        g.members.get_mut("m-7").unwrap().epoch = 4;
        let member = |id: &str| Part::Member(id.into());
        let target = |id: &str| Part::Target(id.into());
        assert_eq!(parts(&written.changes(Some(&g))), [(member("m-7"), true)]);

        // A member gone, its partition given to another, a new epoch.
        g.members.remove("m-9");
        let freed = g.target.remove("m-9").unwrap();
        g.target.get_mut("m-8").unwrap().extend(freed);
        g.epoch = 4;
        assert_eq!(
            parts(&written.changes(Some(&g))),
            [
                (Part::Group, true),
                (member("m-9"), false),
                (target("m-8"), true),
                (target("m-9"), false),
            ]
        );
        assert!(written.changes(Some(&g)).is_empty());
    }

    #[test]
    fn what_failed_to_be_written_is_written_again() {
        let (mut g, mut written) = written_group(3);
        g.members.get_mut("m-1").unwrap().epoch = 4;
        g.members.remove("m-2");
        let failed = written.changes(Some(&g));
        assert_eq!(failed.len(), 2);
        written.failed(&failed);
        assert_eq!(parts(&written.changes(Some(&g))), parts(&failed));

        // Gone altogether: a tombstone for each record the log holds.
        let tombstones = written.changes::<ConsumerGroup>(None);
        assert_eq!(tombstones.len(), 1 + 2 + 3, "{:?}", parts(&tombstones));
        assert!(tombstones.iter().all(|c| c.value.is_none()));
        written.failed(&tombstones);
        assert_eq!(parts(&written.tombstones()), parts(&tombstones));
        assert!(written.tombstones().is_empty());
    }
}
