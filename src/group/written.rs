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
//! missed by a path that forgot to say it changed something. A write looks
//! at every member unless the group knows which ones changed ([`Touched`]:
//! a heartbeat that moved only its own member), so a rebalance of `n`
//! members costs `n` encodings, not `n`²; debug builds check the narrow
//! look against the whole one.

use std::collections::{BTreeMap, BTreeSet};

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

/// The members (and their targets) that may differ from what was
/// written: all of them, or only those named.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Touched {
    #[default]
    All,
    Only(BTreeSet<String>),
}

/// What a group keeps for [`Touched`]: the members its heartbeats changed
/// since it was last written, and how many of its changes (a counter the
/// group bumps at each) those account for. Any other change (a new epoch,
/// an expiry) leaves changes unaccounted, and the next write looks at all.
#[derive(Clone, Debug, Default)]
pub struct Touches {
    ids: BTreeSet<String>,
    accounted: u64,
    written_at: u64,
}

impl Touches {
    /// A heartbeat of `member` took the group's counter from `before` to
    /// `after`; with no new epoch (`same_epochs`) it changed that member
    /// only.
    pub fn heartbeat(&mut self, member: String, (before, after): (u64, u64), same_epochs: bool) {
        if after != before && same_epochs {
            self.ids.insert(member);
            self.accounted += after - before;
        }
    }

    /// Another member a change accounted for changed too.
    pub fn also(&mut self, member: String) {
        self.ids.insert(member);
    }

    /// What changed since the last call, the group's counter at `changes`
    /// now; taken as the group is written.
    pub fn take(&mut self, changes: u64) -> Touched {
        let only = changes - self.written_at == self.accounted;
        let ids = std::mem::take(&mut self.ids);
        (self.accounted, self.written_at) = (0, changes);
        if only {
            Touched::Only(ids)
        } else {
            Touched::All
        }
    }
}

/// One record to write: `None` is a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub protocol: Protocol,
    pub part: Part,
    pub value: Option<Vec<u8>>,
}

/// The values the log holds, by part; a part absent holds nothing.
#[derive(Clone, Debug)]
pub struct Written {
    protocol: Protocol,
    group: Option<Vec<u8>>,
    members: BTreeMap<String, Vec<u8>>,
    targets: BTreeMap<String, Vec<u8>>,
    /// The next write looks at every member, whatever the group says
    /// changed: some part is [`UNKNOWN`], or all were deleted.
    look_at_all: bool,
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
            look_at_all: false,
        }
    }

    /// Every record that brings the log to `group`.
    #[cfg(test)]
    pub fn changes<G: Recorded>(&mut self, group: Option<&G>) -> Vec<Change> {
        self.changes_within(group, &Touched::All)
    }

    /// The records that bring the log to `group` (`None`: the group is
    /// gone), looking only at the members `touched` names (and the group's
    /// own record), noted as written: the caller writes them, and calls
    /// [`Written::failed`] if that fails.
    pub fn changes_within<G: Recorded>(
        &mut self,
        group: Option<&G>,
        touched: &Touched,
    ) -> Vec<Change> {
        let touched = if self.look_at_all || group.is_none() {
            &Touched::All
        } else {
            touched
        };
        #[cfg(debug_assertions)]
        let whole = (touched != &Touched::All).then(|| self.clone().look(group, &Touched::All));
        let out = self.look(group, touched);
        if touched == &Touched::All {
            self.look_at_all = false;
        }
        #[cfg(debug_assertions)]
        if let Some(whole) = whole {
            assert_eq!(
                sorted(&out),
                sorted(&whole),
                "a change the group did not name"
            );
        }
        out
    }

    fn look<G: Recorded>(&mut self, group: Option<&G>, touched: &Touched) -> Vec<Change> {
        let mut out = Vec::new();
        let value = group.map(G::own_record);
        if value != self.group {
            self.group.clone_from(&value);
            out.push(self.change(Part::Group, value));
        }
        let (no_members, no_targets) = (BTreeMap::new(), BTreeMap::new());
        let members = group.map_or(&no_members, G::members);
        let targets = group.and_then(G::targets).unwrap_or(&no_targets);
        let members = diff(&mut self.members, members, touched, G::encode_member);
        let targets = diff(&mut self.targets, targets, touched, G::encode_target);
        let members = members.into_iter().map(|(id, v)| (Part::Member(id), v));
        let targets = targets.into_iter().map(|(id, v)| (Part::Target(id), v));
        for (part, value) in members.chain(targets) {
            out.push(self.change(part, value));
        }
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
        // Whatever the group holds next is written whole.
        self.look_at_all = true;
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

    /// The records of `parts` were not written: what they held is unknown
    /// in the log, so the next write writes it again.
    pub fn failed(&mut self, parts: &[(Protocol, Part)]) {
        let mine = || parts.iter().filter(|(p, _)| *p == self.protocol);
        self.look_at_all |= mine().next().is_some();
        for (_, part) in mine() {
            match part {
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
        self.look_at_all = true;
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

/// The (id, value) of one kind of part that differ between `written` and
/// `now`, of the ids `touched` names, noted as written. Each item is
/// encoded into one scratch buffer: an unchanged one costs no allocation.
fn diff<T>(
    written: &mut BTreeMap<String, Vec<u8>>,
    now: &BTreeMap<String, T>,
    touched: &Touched,
    encode: fn(&mut Vec<u8>, &T),
) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    // The new value of `id`, noted, if it differs from what was written.
    let mut differs = |written: &mut BTreeMap<String, Vec<u8>>, id: &String, item: &T| {
        scratch.clear();
        encode(&mut scratch, item);
        let differs = written.get(id) != Some(&scratch);
        if differs {
            written.insert(id.clone(), scratch.clone());
        }
        differs.then(|| (id.clone(), Some(scratch.clone())))
    };
    match touched {
        Touched::All => {
            out.extend(
                now.iter()
                    .filter_map(|(id, item)| differs(written, id, item)),
            );
            let gone: Vec<String> = written
                .keys()
                .filter(|id| !now.contains_key(*id))
                .cloned()
                .collect();
            for id in gone {
                written.remove(&id);
                out.push((id, None));
            }
        }
        Touched::Only(ids) => {
            for id in ids {
                match now.get(id) {
                    Some(item) => out.extend(differs(written, id, item)),
                    None if written.remove(id).is_some() => out.push((id.clone(), None)),
                    None => {}
                }
            }
        }
    }
    out
}

/// Changes in one order, to compare two lists of them.
#[cfg(debug_assertions)]
fn sorted(changes: &[Change]) -> Vec<(&Part, &Option<Vec<u8>>)> {
    let mut all: Vec<_> = changes.iter().map(|c| (&c.part, &c.value)).collect();
    all.sort();
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::consumer_protocol::{Assignment, ConsumerGroup, Member};

    /// A group of `n` members, each with a target, all noted written.
    fn written_group(n: usize) -> (ConsumerGroup, Written) {
        let mut g = ConsumerGroup::default();
        (g.epoch, g.target_epoch) = (3, 3);
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

    /// Which records `changes` are, as a failed write names them.
    fn which(changes: &[Change]) -> Vec<(Protocol, Part)> {
        changes
            .iter()
            .map(|c| (c.protocol, c.part.clone()))
            .collect()
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
    fn a_narrow_look_finds_what_a_whole_one_does() {
        let (mut g, mut written) = written_group(5);
        g.members.get_mut("m-1").unwrap().epoch = 4;
        g.members.remove("m-2");
        let only = Touched::Only(["m-1".to_string(), "m-2".to_string()].into());
        let member = |id: &str| Part::Member(id.into());
        assert_eq!(
            parts(&written.changes_within(Some(&g), &only)),
            [(member("m-1"), true), (member("m-2"), false)]
        );
        assert!(written.changes(Some(&g)).is_empty());
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "a change the group did not name")]
    fn a_change_outside_the_named_members_is_caught() {
        let (mut g, mut written) = written_group(3);
        g.members.get_mut("m-2").unwrap().epoch = 9;
        let only = Touched::Only(["m-1".to_string()].into());
        written.changes_within(Some(&g), &only);
    }

    #[test]
    fn after_a_failed_write_every_member_is_looked_at() {
        let (mut g, mut written) = written_group(3);
        g.members.get_mut("m-1").unwrap().epoch = 4;
        let failed = written.changes(Some(&g));
        written.failed(&which(&failed));
        // The next write names another member only: m-1 is written again
        // all the same.
        g.members.get_mut("m-0").unwrap().epoch = 4;
        let only = Touched::Only(["m-0".to_string()].into());
        let member = |id: &str| Part::Member(id.into());
        assert_eq!(
            parts(&written.changes_within(Some(&g), &only)),
            [(member("m-0"), true), (member("m-1"), true)]
        );
    }

    #[test]
    fn what_failed_to_be_written_is_written_again() {
        let (mut g, mut written) = written_group(3);
        g.members.get_mut("m-1").unwrap().epoch = 4;
        g.members.remove("m-2");
        let failed = written.changes(Some(&g));
        assert_eq!(failed.len(), 2);
        written.failed(&which(&failed));
        assert_eq!(parts(&written.changes(Some(&g))), parts(&failed));

        // Gone altogether: a tombstone for each record the log holds.
        let tombstones = written.changes::<ConsumerGroup>(None);
        assert_eq!(tombstones.len(), 1 + 2 + 3, "{:?}", parts(&tombstones));
        assert!(tombstones.iter().all(|c| c.value.is_none()));
        written.failed(&which(&tombstones));
        assert_eq!(parts(&written.tombstones()), parts(&tombstones));
        assert!(written.tombstones().is_empty());
    }
}
