//! What a partition's leader knows of its followers (Kafka's Partition and
//! Replica state on the leader): each follower's log end from its fetches,
//! when it was last caught up, the high watermark over the ISR, and which
//! ISR change to propose. Pure: the clock and the log end come in as
//! arguments.

use std::collections::BTreeMap;

use crate::controller::image::PartitionState;

/// One follower as the leader sees it.
#[derive(Clone, Debug)]
pub struct FollowerProgress {
    /// The offset its last fetch asked for (its log end); -1 until it
    /// fetches from this leader.
    pub log_end: i64,
    /// The log start its last fetch told (-1 until one does): what
    /// DeleteRecords' low watermark waits for.
    pub log_start: i64,
    /// Kafka's lastCaughtUpTimeMs: the last time its log end was at least
    /// the leader's.
    pub last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end when the follower last fetched.
    leader_end_at_last_fetch: i64,
}

#[derive(Debug)]
pub struct LeaderState {
    pub node_id: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The ISR as the metadata log has it.
    pub isr: Vec<i32>,
    pub replicas: Vec<i32>,
    followers: BTreeMap<i32, FollowerProgress>,
    /// An ISR change sent to the controller and not yet seen applied.
    pub proposed: Option<Vec<i32>>,
    /// The log end when this leadership began: a follower joins the ISR
    /// only once it has everything before it.
    pub epoch_start: i64,
    /// The topic's `min.insync.replicas`, as the shard last applied it.
    pub min_insync: usize,
    /// The leader this replica followed when it took over, if any.
    pub previous_leader: Option<i32>,
}

impl LeaderState {
    /// Leadership at `state`'s epoch, taken at `now_ms`. Followers start
    /// unknown but caught up (Kafka resets them so on election): an ISR
    /// member gets the full lag time to show up.
    pub fn new(node_id: i32, state: &PartitionState, now_ms: i64) -> LeaderState {
        let followers = state
            .replicas
            .iter()
            .filter(|&&r| r != node_id)
            .map(|&r| {
                let progress = FollowerProgress {
                    log_end: -1,
                    log_start: -1,
                    last_caught_up_ms: now_ms,
                    last_fetch_ms: now_ms,
                    leader_end_at_last_fetch: -1,
                };
                (r, progress)
            })
            .collect();
        LeaderState {
            node_id,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            isr: state.isr.clone(),
            replicas: state.replicas.clone(),
            followers,
            proposed: None,
            epoch_start: 0,
            min_insync: 1,
            previous_leader: None,
        }
    }

    /// The metadata log changed the partition but kept this leadership.
    pub fn update(&mut self, state: &PartitionState, now_ms: i64) {
        assert_eq!(state.leader_epoch, self.leader_epoch, "same leadership");
        if state.partition_epoch != self.partition_epoch {
            // Whatever was proposed either landed or lost to this change.
            self.proposed = None;
        }
        self.partition_epoch = state.partition_epoch;
        self.isr = state.isr.clone();
        for &r in &state.replicas {
            if r != self.node_id {
                self.followers.entry(r).or_insert(FollowerProgress {
                    log_end: -1,
                    log_start: -1,
                    last_caught_up_ms: now_ms,
                    last_fetch_ms: now_ms,
                    leader_end_at_last_fetch: -1,
                });
            }
        }
        self.followers.retain(|r, _| state.replicas.contains(r));
        self.replicas = state.replicas.clone();
    }

    pub fn is_replica(&self, node: i32) -> bool {
        self.followers.contains_key(&node)
    }

    pub fn follower(&self, node: i32) -> Option<&FollowerProgress> {
        self.followers.get(&node)
    }

    /// A fetch from follower `node` at `fetch_offset`, its log starting at
    /// `log_start` (-1: not told), while the leader's log ends at
    /// `leader_end` (Kafka's updateFetchState). True when the follower's log
    /// start moved, which a DeleteRecords may be waiting for.
    pub fn on_fetch(
        &mut self,
        node: i32,
        fetch_offset: i64,
        log_start: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> bool {
        let Some(f) = self.followers.get_mut(&node) else {
            return false;
        };
        let start_moved = log_start >= 0 && log_start != f.log_start;
        if log_start >= 0 {
            f.log_start = log_start;
        }
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.leader_end_at_last_fetch {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end = fetch_offset;
        f.last_fetch_ms = now_ms;
        f.leader_end_at_last_fetch = leader_end;
        start_moved
    }

    /// The follower a consumer at `offset` reads from instead of this
    /// leader (KIP-392, Kafka's RackAwareReplicaSelector): none when the
    /// leader is in the consumer's rack (`leader_in_rack`); else the ISR
    /// member `in_rack` accepts (in the consumer's rack, on a live broker)
    /// whose log holds `offset`, the most caught up (log end, then last
    /// caught up; the lowest id of equals); none if there is no such one.
    pub fn preferred_read_replica(
        &self,
        offset: i64,
        leader_in_rack: bool,
        in_rack: impl Fn(i32) -> bool,
    ) -> Option<i32> {
        if leader_in_rack {
            return None;
        }
        self.followers
            .iter()
            .filter(|&(&id, f)| {
                self.isr.contains(&id)
                    && f.log_end >= offset
                    && f.log_start <= offset
                    && in_rack(id)
            })
            .max_by_key(|&(&id, f)| (f.log_end, f.last_caught_up_ms, std::cmp::Reverse(id)))
            .map(|(&id, _)| id)
    }

    /// DeleteRecords' low watermark (Kafka's lowWatermarkIfLeader): the
    /// lowest log start among this replica (`own_start`) and the followers
    /// on `live` brokers; one that has not told its start yet holds it at
    /// -1. A dead follower takes the start from the leader when it is back.
    pub fn low_watermark(&self, own_start: i64, live: impl Fn(i32) -> bool) -> i64 {
        self.followers
            .iter()
            .filter(|(&node, _)| live(node))
            .map(|(_, f)| f.log_start)
            .fold(own_start, i64::min)
    }

    /// The ISR the high watermark must wait for: the committed one plus
    /// members being added (Kafka's maximal ISR), so the high watermark
    /// never passes a replica that may be in the ISR.
    fn maximal_isr(&self) -> impl Iterator<Item = i32> + '_ {
        let adding = self
            .proposed
            .iter()
            .flatten()
            .filter(|r| !self.isr.contains(r));
        self.isr.iter().chain(adding).copied()
    }

    /// The high watermark the ISR allows: the least log end among its
    /// members; `None` while a member's log end is unknown.
    ///
    /// While the ISR is smaller than `min.insync.replicas`, a replica out of
    /// it may be eligible to lead (KIP-966), so nothing it does not hold
    /// may be seen (consumers read, and commit, only below the high
    /// watermark): the least log end of the replicas out of the ISR too.
    /// The previous leader, not heard from in this leadership, holds what
    /// this replica had when it took over (`epoch_start`: all of it came
    /// from there); another one not heard from holds the watermark.
    pub fn high_watermark(&self, leader_end: i64) -> Option<i64> {
        let mut hw = leader_end;
        for r in self.maximal_isr().filter(|&r| r != self.node_id) {
            let end = self.followers.get(&r).map_or(-1, |f| f.log_end);
            if end < 0 {
                return None;
            }
            hw = hw.min(end);
        }
        if self.isr.len() < self.min_insync {
            let outside = self
                .replicas
                .iter()
                .filter(|&&r| r != self.node_id && !self.isr.contains(&r));
            for &r in outside {
                let end = match self.followers.get(&r).map_or(-1, |f| f.log_end) {
                    end if end >= 0 => end,
                    _ if self.previous_leader == Some(r) => self.epoch_start,
                    _ => return None,
                };
                hw = hw.min(end);
            }
        }
        Some(hw)
    }

    /// Follower `node`, out of the ISR, has caught up to the high watermark
    /// and to this leadership's first offset (Kafka's isFollowerInSync,
    /// checked on that follower's own fetch): the ISR to propose with it.
    pub fn expansion(&self, node: i32, high_watermark: i64) -> Option<Vec<i32>> {
        if self.proposed.is_some() || self.isr.contains(&node) {
            return None;
        }
        let f = self.followers.get(&node)?;
        if f.log_end < high_watermark || f.log_end < self.epoch_start {
            return None;
        }
        let mut isr = self.isr.clone();
        isr.push(node);
        Some(isr)
    }

    /// ISR members not caught up to the leader's log end for `lag_ms`: the
    /// ISR to propose without them. A member at the log end is never
    /// behind, however long ago it last fetched.
    pub fn shrink(&self, now_ms: i64, lag_ms: i64, leader_end: i64) -> Option<Vec<i32>> {
        if self.proposed.is_some() {
            return None;
        }
        let lagging = |r: &i32| {
            self.followers.get(r).is_some_and(|f| {
                f.log_end != leader_end && now_ms.saturating_sub(f.last_caught_up_ms) > lag_ms
            })
        };
        if !self.isr.iter().any(lagging) {
            return None;
        }
        let isr: Vec<i32> = self.isr.iter().copied().filter(|r| !lagging(r)).collect();
        assert!(isr.contains(&self.node_id), "the leader never lags itself");
        Some(isr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(replicas: &[i32], isr: &[i32]) -> PartitionState {
        PartitionState {
            replicas: replicas.to_vec(),
            leader: 1,
            leader_epoch: 3,
            partition_epoch: 7,
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn high_watermark_waits_for_every_isr_member() {
        let mut l = LeaderState::new(1, &state(&[1, 2, 3], &[1, 2, 3]), 0);
        assert_eq!(l.high_watermark(10), None, "followers unknown");
        l.on_fetch(2, 10, -1, 10, 1);
        assert_eq!(l.high_watermark(10), None);
        l.on_fetch(3, 4, -1, 10, 1);
        assert_eq!(l.high_watermark(10), Some(4));
        l.on_fetch(3, 10, -1, 10, 2);
        assert_eq!(l.high_watermark(12), Some(10));
    }

    #[test]
    fn a_consumer_reads_from_the_most_caught_up_isr_member_in_its_rack() {
        let mut l = LeaderState::new(1, &state(&[1, 2, 3, 4], &[1, 2, 3]), 0);
        let rack_b = |id: i32| id != 1;
        // Followers not heard from hold nothing yet.
        assert_eq!(l.preferred_read_replica(5, false, rack_b), None);
        l.on_fetch(2, 8, 0, 10, 1);
        l.on_fetch(3, 10, 0, 10, 1);
        l.on_fetch(4, 10, 0, 10, 1);
        assert_eq!(
            l.preferred_read_replica(5, false, rack_b),
            Some(3),
            "4 is out of the ISR"
        );
        assert_eq!(
            l.preferred_read_replica(5, true, rack_b),
            None,
            "the leader is in the rack"
        );
        assert_eq!(
            l.preferred_read_replica(9, false, |id| id == 2),
            None,
            "2 ends at 8"
        );
        assert_eq!(l.preferred_read_replica(5, false, |id| id == 2), Some(2));
        assert_eq!(
            l.preferred_read_replica(5, false, |_| false),
            None,
            "no replica in the rack"
        );
        l.on_fetch(2, 10, 6, 10, 2);
        assert_eq!(
            l.preferred_read_replica(5, false, |id| id == 2),
            None,
            "2 starts at 6"
        );
        // Equal log ends: the one caught up last.
        assert_eq!(l.preferred_read_replica(7, false, rack_b), Some(2));
    }

    #[test]
    fn a_leader_alone_in_the_isr_has_its_log_end() {
        let l = LeaderState::new(1, &state(&[1, 2, 3], &[1]), 0);
        assert_eq!(l.high_watermark(42), Some(42));
    }

    #[test]
    fn below_min_insync_the_replicas_out_of_the_isr_bound_the_high_watermark() {
        let mut l = LeaderState::new(1, &state(&[1, 2, 3], &[1]), 0);
        l.min_insync = 2;
        assert_eq!(l.high_watermark(42), None, "2 and 3 not heard from");
        l.on_fetch(2, 30, -1, 42, 1);
        l.on_fetch(3, 35, -1, 42, 1);
        assert_eq!(l.high_watermark(42), Some(30), "what 2 and 3 hold");
        l.update(&state(&[1, 2, 3], &[1, 2]), 0);
        l.on_fetch(2, 40, -1, 42, 2);
        assert_eq!(
            l.high_watermark(42),
            Some(40),
            "in sync again: 3 no longer counts"
        );
    }

    #[test]
    fn the_previous_leader_holds_what_this_one_had_when_it_took_over() {
        let mut l = LeaderState::new(1, &state(&[1, 2, 3], &[1, 3]), 0);
        (l.min_insync, l.epoch_start, l.previous_leader) = (3, 30, Some(2));
        l.on_fetch(3, 32, -1, 32, 1);
        assert_eq!(l.high_watermark(32), Some(30));
        l.previous_leader = None;
        assert_eq!(l.high_watermark(32), None);
    }

    #[test]
    fn a_caught_up_follower_is_proposed_into_the_isr() {
        let mut l = LeaderState::new(1, &state(&[1, 2, 3], &[1, 2]), 0);
        l.on_fetch(2, 10, -1, 10, 1);
        l.on_fetch(3, 5, -1, 10, 1);
        assert_eq!(l.expansion(3, 10), None, "3 is behind the high watermark");
        assert_eq!(l.expansion(2, 10), None, "2 is in the ISR already");
        l.on_fetch(3, 10, -1, 10, 2);
        assert_eq!(l.expansion(3, 10), Some(vec![1, 2, 3]));
        l.epoch_start = 11;
        assert_eq!(l.expansion(3, 10), None, "not yet at this epoch's start");
        l.epoch_start = 0;
        l.proposed = Some(vec![1, 2, 3]);
        assert_eq!(l.expansion(3, 10), None, "one proposal at a time");
        l.on_fetch(2, 10, -1, 20, 3);
        assert_eq!(
            l.high_watermark(20),
            Some(10),
            "a member being added holds the high watermark back"
        );
    }

    #[test]
    fn a_lagging_member_is_proposed_out_and_a_current_one_stays() {
        let mut l = LeaderState::new(1, &state(&[1, 2, 3], &[1, 2, 3]), 0);
        l.on_fetch(2, 10, -1, 10, 100);
        l.on_fetch(3, 4, -1, 10, 100);
        assert_eq!(l.shrink(20_000, 30_000, 10), None, "within the lag time");
        assert_eq!(l.shrink(40_000, 30_000, 10), Some(vec![1, 2]));
        l.on_fetch(3, 10, -1, 10, 39_000);
        assert_eq!(l.shrink(40_000, 30_000, 10), None, "caught up a second ago");
        // Behind now, but at the leader end its previous fetch saw: caught
        // up as of that fetch.
        l.on_fetch(3, 12, -1, 20, 60_000);
        assert_eq!(l.follower(3).unwrap().last_caught_up_ms, 39_000);
    }

    #[test]
    fn the_low_watermark_waits_for_every_live_follower_to_tell_its_start() {
        let mut l = LeaderState::new(1, &state(&[1, 2, 3], &[1, 2, 3]), 0);
        let all = |_| true;
        assert_eq!(l.low_watermark(5, all), -1, "no follower told its start");
        assert!(l.on_fetch(2, 10, 5, 10, 1));
        assert!(!l.on_fetch(2, 10, 5, 10, 2), "the same start again");
        assert!(l.on_fetch(3, 10, 2, 10, 1));
        assert_eq!(l.low_watermark(5, all), 2);
        assert_eq!(
            l.low_watermark(5, |n| n != 3),
            5,
            "a dead follower is not waited for"
        );
        assert!(!l.on_fetch(3, 10, -1, 10, 3), "a fetch that does not tell");
        assert_eq!(l.follower(3).unwrap().log_start, 2);
        assert!(l.on_fetch(3, 10, 7, 10, 4));
        assert_eq!(
            l.low_watermark(5, all),
            5,
            "the leader's own start is the most"
        );
    }

    #[test]
    fn a_new_partition_epoch_clears_the_proposal_and_replicas_follow_the_image() {
        let mut l = LeaderState::new(1, &state(&[1, 2, 3], &[1, 2, 3]), 0);
        l.proposed = Some(vec![1, 2]);
        let mut next = state(&[1, 2, 4], &[1, 2]);
        next.partition_epoch = 8;
        l.update(&next, 5);
        assert_eq!(l.proposed, None);
        assert!(l.is_replica(4) && !l.is_replica(3));
        assert_eq!(l.isr, vec![1, 2]);
    }
}
