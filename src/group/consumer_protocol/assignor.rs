//! Server-side assignors of the consumer group protocol (KIP-848): the
//! coordinator, not a member, decides who owns which partition.
//!
//! `uniform` (Kafka's default) spreads every subscribed partition over the
//! members subscribed to its topic, as evenly as the subscriptions allow,
//! keeping each partition where the last target put it while that owner is
//! under its share, so a member joining or leaving moves few partitions.
//! `range` gives each member a contiguous run of every topic it subscribes
//! to, as the classic range assignor does.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::Assignment;

/// The assignors served, by the names clients ask for.
pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// One topic members may subscribe to: its id and partition count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicShape {
    pub id: Uuid,
    pub partitions: i32,
}

/// Who subscribes to which topic, and the topics that exist.
pub struct AssignInput<'a> {
    /// Member id -> the topic names it subscribes to.
    pub subscriptions: BTreeMap<&'a str, &'a BTreeSet<String>>,
    /// Topic name -> its shape; a subscribed topic missing here does not
    /// exist (yet), and nothing of it is assigned.
    pub topics: &'a BTreeMap<String, TopicShape>,
    /// The last target, which `uniform` keeps where it can.
    pub previous: &'a BTreeMap<String, Assignment>,
}

/// A target assignment for every member (empty ones included).
pub fn assign(name: &str, input: &AssignInput<'_>) -> BTreeMap<String, Assignment> {
    if name == RANGE {
        range(input)
    } else {
        uniform(input)
    }
}

/// The members subscribed to topic `name`, in member id order.
fn subscribers<'a>(input: &AssignInput<'a>, name: &str) -> Vec<&'a str> {
    input
        .subscriptions
        .iter()
        .filter(|(_, topics)| topics.contains(name))
        .map(|(id, _)| *id)
        .collect()
}

/// Each subscribed (topic id, partition), in topic name then partition
/// order, with the members that may own it.
fn candidates<'a>(input: &AssignInput<'a>) -> Vec<((Uuid, i32), Vec<&'a str>)> {
    let mut out = Vec::new();
    for (name, shape) in input.topics {
        let members = subscribers(input, name);
        if members.is_empty() {
            continue;
        }
        for partition in 0..shape.partitions {
            out.push(((shape.id, partition), members.clone()));
        }
    }
    out
}

fn empty_targets(input: &AssignInput<'_>) -> BTreeMap<String, Assignment> {
    input
        .subscriptions
        .keys()
        .map(|id| (id.to_string(), Assignment::new()))
        .collect()
}

fn uniform(input: &AssignInput<'_>) -> BTreeMap<String, Assignment> {
    let partitions = candidates(input);
    let members = input.subscriptions.len().max(1);
    // Each member's share of all partitions, rounded up: with equal
    // subscriptions exactly balanced, with unequal ones a bound that the
    // least-loaded pass below evens out.
    let cap = partitions.len().div_ceil(members);
    let previous_owner: BTreeMap<(Uuid, i32), &str> = input
        .previous
        .iter()
        .flat_map(|(member, a)| {
            a.iter().flat_map(move |(topic, ps)| {
                ps.iter().map(move |p| ((*topic, *p), member.as_str()))
            })
        })
        .collect();
    let mut targets = empty_targets(input);
    let mut load: BTreeMap<&str, usize> = input.subscriptions.keys().map(|id| (*id, 0)).collect();
    let mut unplaced = Vec::new();
    for (tp, members) in &partitions {
        match previous_owner.get(tp) {
            Some(owner) if members.contains(owner) && load[owner] < cap => {
                *load.get_mut(owner).expect("a subscribed member") += 1;
                place(&mut targets, owner, *tp);
            }
            _ => unplaced.push((*tp, members)),
        }
    }
    for (tp, members) in unplaced {
        let least = members
            .iter()
            .min_by_key(|m| (load[*m], **m))
            .expect("a partition with candidates");
        *load.get_mut(least).expect("a subscribed member") += 1;
        place(&mut targets, least, tp);
    }
    targets
}

fn range(input: &AssignInput<'_>) -> BTreeMap<String, Assignment> {
    let mut targets = empty_targets(input);
    for (name, shape) in input.topics {
        let members = subscribers(input, name);
        if members.is_empty() {
            continue;
        }
        let per = shape.partitions as usize / members.len();
        let extra = shape.partitions as usize % members.len();
        let mut next = 0i32;
        for (i, member) in members.iter().enumerate() {
            let count = per + usize::from(i < extra);
            for _ in 0..count {
                place(&mut targets, member, (shape.id, next));
                next += 1;
            }
        }
    }
    targets
}

fn place(
    targets: &mut BTreeMap<String, Assignment>,
    member: &str,
    (topic, partition): (Uuid, i32),
) {
    let assignment = targets.get_mut(member).expect("every member has a target");
    assignment.entry(topic).or_default().insert(partition);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(shapes: &[(&str, u128, i32)]) -> BTreeMap<String, TopicShape> {
        shapes
            .iter()
            .map(|(n, id, p)| {
                let shape = TopicShape {
                    id: Uuid::from_u128(*id),
                    partitions: *p,
                };
                (n.to_string(), shape)
            })
            .collect()
    }

    fn subs(entries: &[(&str, &[&str])]) -> Vec<(String, BTreeSet<String>)> {
        entries
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    fn run(
        name: &str,
        s: &[(String, BTreeSet<String>)],
        t: &BTreeMap<String, TopicShape>,
        previous: &BTreeMap<String, Assignment>,
    ) -> BTreeMap<String, Assignment> {
        let input = AssignInput {
            subscriptions: s.iter().map(|(m, ts)| (m.as_str(), ts)).collect(),
            topics: t,
            previous,
        };
        assign(name, &input)
    }

    #[test]
    fn uniform_balances_and_keeps_what_it_can() {
        let t = topics(&[("a", 1, 4), ("b", 2, 2)]);
        let two = subs(&[("m1", &["a", "b"]), ("m2", &["a", "b"])]);
        let first = run(UNIFORM, &two, &t, &BTreeMap::new());
        assert_eq!(count(&first["m1"]), 3);
        assert_eq!(count(&first["m2"]), 3);
        let three = subs(&[
            ("m1", &["a", "b"]),
            ("m2", &["a", "b"]),
            ("m3", &["a", "b"]),
        ]);
        let second = run(UNIFORM, &three, &t, &first);
        for m in ["m1", "m2", "m3"] {
            assert_eq!(count(&second[m]), 2, "{m}: {second:?}");
        }
        // m1 and m2 each gave up one partition, nothing else moved.
        for m in ["m1", "m2"] {
            let kept: usize = second[m]
                .iter()
                .map(|(t, ps)| {
                    first[m]
                        .get(t)
                        .map_or(0, |old| ps.intersection(old).count())
                })
                .sum();
            assert_eq!(kept, 2, "{m} kept its own");
        }
    }

    #[test]
    fn a_partition_goes_only_to_a_subscriber_and_missing_topics_to_no_one() {
        let t = topics(&[("a", 1, 3)]);
        let s = subs(&[("m1", &["a", "ghost"]), ("m2", &["ghost"])]);
        let out = run(UNIFORM, &s, &t, &BTreeMap::new());
        assert_eq!(count(&out["m1"]), 3);
        assert_eq!(count(&out["m2"]), 0);
    }

    #[test]
    fn range_gives_contiguous_runs() {
        let t = topics(&[("a", 1, 5)]);
        let s = subs(&[("m1", &["a"]), ("m2", &["a"])]);
        let out = run(RANGE, &s, &t, &BTreeMap::new());
        let a = Uuid::from_u128(1);
        assert_eq!(out["m1"][&a], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["m2"][&a], BTreeSet::from([3, 4]));
    }
}
