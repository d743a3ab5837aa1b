//! Incremental fetch sessions (KIP-227): a fetcher names its partitions
//! once, then each request carries only the partitions whose position
//! changed and each answer only the partitions with something new, so a
//! follower of thousands of idle partitions sends and gets a few bytes.
//!
//! Sessions live on the core that serves the connection (`Services::
//! fetch_sessions`); a fetcher that reconnects elsewhere gets
//! FETCH_SESSION_ID_NOT_FOUND and starts a new one, as clients expect.
//!
//! From v13 requests name topics by id (KIP-516). A session remembers
//! whether it was made by ids, and a request of the other kind gets
//! FETCH_SESSION_TOPIC_ID_ERROR, as in Kafka's FetchManager. Ids are
//! resolved to names here; an id this broker does not know stays in the
//! session under a name no topic can have, and is answered
//! UNKNOWN_TOPIC_ID.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::FetchRequest;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::metadata::Topics;
use crate::shard::{ReadOutcome, Seen, TopicPartition};

/// The first Fetch version that names topics by id.
pub const TOPIC_IDS_SINCE: i16 = 13;

/// Kafka's INITIAL_EPOCH and FINAL_EPOCH.
const INITIAL_EPOCH: i32 = 0;
const FINAL_EPOCH: i32 = -1;

/// What one partition of a session asks for, and what it was last told.
#[derive(Clone, Debug)]
pub struct SessionPartition {
    /// The id the request named the topic by (v13+), nil before v13.
    pub topic_id: Uuid,
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    /// A follower's log start (-1 from a consumer): the leader's
    /// DeleteRecords waits on it.
    pub log_start_offset: i64,
    /// The high watermark a follower knows (v18, KIP-1166): what it said,
    /// raised by every answer since; -1 none, [`NOT_TOLD`] for older
    /// versions and consumers.
    pub replica_high_watermark: i64,
    /// (high watermark, last stable offset, log start) last answered; a
    /// partition is left out of an answer while they stay the same and it
    /// has no records.
    sent: Option<Told>,
    /// The partition's state when the last answer that went out found
    /// nothing past `fetch_offset` (no records, no error): while it stays
    /// so, reading again would find the same, and the read is skipped (a
    /// follower's fetch names every partition it follows, and one append
    /// moves one of them). Cleared whenever the request names the partition.
    quiet: Option<Seen>,
}

impl SessionPartition {
    /// The state under which this partition last read as nothing new, and
    /// what its answer told then, if it did.
    pub fn quiet(&self) -> Option<(Seen, Told)> {
        Some((self.quiet?, self.sent?))
    }
}

struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    /// Made by a request that named topics by id (v13+): every later one
    /// must too, and one before v13 must not.
    uses_topic_ids: bool,
    partitions: BTreeMap<TopicPartition, SessionPartition>,
    last_used_ms: i64,
}

impl Session {
    /// Names the partitions of ids that were unknown when a request named
    /// them, once this broker knows the id, as Kafka's FetchSession resolves
    /// them again on every request: a topic just made can reach a leader's
    /// metadata after its followers' (or a consumer's) first fetch, and an
    /// incremental fetch does not name an unchanged partition again.
    fn resolve_unknown_ids(&mut self, topics: &Topics) {
        let unknown: Vec<TopicPartition> = self
            .partitions
            .keys()
            .filter(|tp| tp.topic.starts_with(UNKNOWN_ID_PREFIX))
            .cloned()
            .collect();
        for tp in unknown {
            let id = self.partitions[&tp].topic_id;
            let Some(name) = topics.name_of(id) else {
                continue;
            };
            let mut p = self.partitions.remove(&tp).expect("listed above");
            // Nothing was told of it under its name: answered next.
            p.sent = None;
            p.quiet = None;
            let named = TopicPartition {
                topic: Arc::from(name),
                partition: tp.partition,
            };
            self.partitions.insert(named, p);
        }
    }
}

/// Fetch v18's high watermark of a replica that does not say it.
pub const NOT_TOLD: i64 = i64::MAX;

/// How the name of a topic id this broker does not know starts: `?` is in
/// no topic name.
const UNKNOWN_ID_PREFIX: char = '?';

/// One shard's sessions, bounded in number; the least recently used one
/// idle past `idle_ms` makes room for a new one.
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    max: usize,
    idle_ms: i64,
}

/// What a request resolves to.
pub enum Resolved {
    /// Answer every listed partition; `session_id` 0 means sessionless.
    Full {
        session_id: i32,
        partitions: Vec<(TopicPartition, SessionPartition)>,
    },
    /// Fetch every partition of the session, answer only changed ones.
    Incremental {
        session_id: i32,
        partitions: Vec<(TopicPartition, SessionPartition)>,
    },
    /// A top-level error (FETCH_SESSION_ID_NOT_FOUND,
    /// INVALID_FETCH_SESSION_EPOCH).
    Refused(i16),
}

impl FetchSessions {
    pub fn new(max: usize, idle_ms: i64) -> FetchSessions {
        FetchSessions {
            sessions: HashMap::new(),
            max,
            idle_ms,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Kafka's FetchManager.newContext: a sessionless full fetch, a new
    /// session, or the next step of an existing one.
    pub fn resolve(
        &mut self,
        request: &FetchRequest,
        version: i16,
        topics: &Topics,
        now_ms: i64,
    ) -> Resolved {
        let by_id = version >= TOPIC_IDS_SINCE;
        let listed = listed(request, by_id, topics);
        let (id, epoch) = (request.session_id, request.session_epoch);
        if epoch == FINAL_EPOCH {
            self.sessions.remove(&id);
            return Resolved::Full {
                session_id: 0,
                partitions: listed,
            };
        }
        if epoch == INITIAL_EPOCH {
            self.sessions.remove(&id);
            let session_id = self.create(&listed, by_id, now_ms);
            return Resolved::Full {
                session_id,
                partitions: listed,
            };
        }
        let Some(session) = self.sessions.get_mut(&id) else {
            return Resolved::Refused(ResponseError::FetchSessionIdNotFound.code());
        };
        if session.next_epoch != epoch {
            return Resolved::Refused(ResponseError::InvalidFetchSessionEpoch.code());
        }
        if session.uses_topic_ids != by_id {
            return Resolved::Refused(ResponseError::FetchSessionTopicIdError.code());
        }
        session.next_epoch = next_epoch(epoch);
        session.last_used_ms = now_ms;
        for forgotten in &request.forgotten_topics_data {
            let topic = if by_id {
                topic_by_id(topics, forgotten.topic_id)
            } else {
                Arc::from(forgotten.topic.0.as_str())
            };
            for &partition in &forgotten.partitions {
                session.partitions.remove(&TopicPartition {
                    topic: topic.clone(),
                    partition,
                });
            }
        }
        for (tp, mut p) in listed {
            if let Some(old) = session.partitions.get(&tp) {
                p.sent = old.sent;
            }
            session.partitions.insert(tp, p);
        }
        if by_id {
            session.resolve_unknown_ids(topics);
        }
        Resolved::Incremental {
            session_id: id,
            partitions: session
                .partitions
                .iter()
                .map(|(tp, p)| (tp.clone(), p.clone()))
                .collect(),
        }
    }

    /// Whether `tp`'s answer goes out in an incremental response (Kafka's
    /// maybeUpdateResponseData), changing nothing: the answer may yet be
    /// thrown away for a quota (see [`FetchSessions::mark`]).
    pub fn would_answer(
        &self,
        session_id: i32,
        tp: &TopicPartition,
        outcome: &ReadOutcome,
    ) -> bool {
        let Some(p) = self
            .sessions
            .get(&session_id)
            .and_then(|s| s.partitions.get(tp))
        else {
            return true;
        };
        p.sent != Some(told(outcome))
            || outcome.bytes > 0
            || outcome.error != 0
            || outcome.diverging.is_some()
            || outcome.preferred_read_replica >= 0
    }

    /// Records what an answer that went out told of `tp`, so an unchanged
    /// partition is left out of the next incremental answer, and whether
    /// it read as nothing new (see [`quiet`]). Not called for a throttled
    /// (empty) answer, which told nothing, as in Kafka.
    pub fn mark(&mut self, session_id: i32, tp: &TopicPartition, told: Told, quiet: Option<Seen>) {
        if let Some(p) = self
            .sessions
            .get_mut(&session_id)
            .and_then(|s| s.partitions.get_mut(tp))
        {
            p.sent = Some(told);
            p.quiet = quiet;
            // The follower knows the high watermark once told: it does not
            // name the partition again to say so.
            if p.replica_high_watermark != NOT_TOLD {
                p.replica_high_watermark = p.replica_high_watermark.max(told.0);
            }
        }
    }

    /// Forgets a session made by this request's full fetch, whose answer
    /// was throttled: Kafka creates the session only with an answer that
    /// carries the partitions, and a throttled one answers session id 0.
    pub fn forget(&mut self, session_id: i32) {
        self.sessions.remove(&session_id);
    }

    /// A new session holding `partitions`, or 0 when none can be made room for.
    fn create(
        &mut self,
        partitions: &[(TopicPartition, SessionPartition)],
        uses_topic_ids: bool,
        now_ms: i64,
    ) -> i32 {
        if self.sessions.len() >= self.max && !self.evict_idle(now_ms) {
            return 0;
        }
        let id = loop {
            // Positive, never 0 (which means no session).
            let id = (uuid::Uuid::new_v4().as_u128() as u32 >> 1) as i32;
            if id != 0 && !self.sessions.contains_key(&id) {
                break id;
            }
        };
        let session = Session {
            next_epoch: next_epoch(INITIAL_EPOCH),
            uses_topic_ids,
            partitions: partitions.iter().cloned().collect(),
            last_used_ms: now_ms,
        };
        self.sessions.insert(id, session);
        assert!(self.sessions.len() <= self.max, "sessions are bounded");
        id
    }

    fn evict_idle(&mut self, now_ms: i64) -> bool {
        let oldest = self
            .sessions
            .iter()
            .filter(|(_, s)| now_ms.saturating_sub(s.last_used_ms) >= self.idle_ms)
            .min_by_key(|(_, s)| s.last_used_ms)
            .map(|(&id, _)| id);
        oldest.is_some_and(|id| self.sessions.remove(&id).is_some())
    }
}

/// What an answer tells of a partition besides its records: (high
/// watermark, last stable offset, log start).
pub type Told = (i64, i64, i64);

/// The state `outcome` was read under, if it found nothing past the
/// fetch offset: no records, no error, no divergence, no other replica to
/// read from. `cut`: the read was held to the response budget, which may
/// have dropped its records.
pub fn quiet(outcome: &ReadOutcome, cut: bool) -> Option<Seen> {
    let nothing = outcome.bytes == 0
        && outcome.error == 0
        && outcome.diverging.is_none()
        && outcome.preferred_read_replica < 0;
    outcome.stands().filter(|_| nothing && !cut)
}

/// What `outcome`'s answer tells of its partition.
pub fn told(outcome: &ReadOutcome) -> Told {
    (
        outcome.high_watermark,
        outcome.last_stable_offset,
        outcome.log_start_offset,
    )
}

/// Epochs wrap to 1, never back to the initial or final epoch.
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// The name a topic id stands for here: the topic's, or, for an id this
/// broker does not know, one no topic can have (`?` is not allowed in
/// topic names), so it keeps its own place in a session.
fn topic_by_id(topics: &Topics, id: Uuid) -> Arc<str> {
    match topics.name_of(id) {
        Some(name) => Arc::from(name),
        None => Arc::from(format!("{UNKNOWN_ID_PREFIX}{id}")),
    }
}

/// The partitions a request names (by id from v13), with what it asks of
/// each.
fn listed(
    request: &FetchRequest,
    by_id: bool,
    topics: &Topics,
) -> Vec<(TopicPartition, SessionPartition)> {
    // Sized up front: a consumer without a session names every partition
    // it reads (a thousand, in a wide fetch), and growing by doubling
    // copies them all again.
    let count = request.topics.iter().map(|t| t.partitions.len()).sum();
    let mut listed = Vec::with_capacity(count);
    for t in &request.topics {
        let (topic, topic_id): (Arc<str>, Uuid) = if by_id {
            (topic_by_id(topics, t.topic_id), t.topic_id)
        } else {
            (Arc::from(t.topic.0.as_str()), Uuid::nil())
        };
        for p in &t.partitions {
            let tp = TopicPartition {
                topic: topic.clone(),
                partition: p.partition,
            };
            let wanted = SessionPartition {
                topic_id,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
                log_start_offset: p.log_start_offset,
                // The field's default before v18 is NOT_TOLD.
                replica_high_watermark: p.high_watermark,
                sent: None,
                quiet: None,
            };
            listed.push((tp, wanted));
        }
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn request(id: i32, epoch: i32, parts: &[(i32, i64)], forget: &[i32]) -> FetchRequest {
        let topic = FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(
                parts
                    .iter()
                    .map(|&(p, offset)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(offset)
                    })
                    .collect(),
            );
        let forgotten = ForgottenTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(forget.to_vec());
        FetchRequest::default()
            .with_session_id(id)
            .with_session_epoch(epoch)
            .with_topics(vec![topic])
            .with_forgotten_topics_data(vec![forgotten])
    }

    impl FetchSessions {
        /// An answer that goes out: whether `tp` is in it, recorded.
        fn answer(&mut self, session_id: i32, tp: &TopicPartition, outcome: &ReadOutcome) -> bool {
            let shown = self.would_answer(session_id, tp, outcome);
            self.mark(session_id, tp, told(outcome), quiet(outcome, false));
            shown
        }

        /// A request of v12, which names topics.
        fn by_name(&mut self, request: &FetchRequest, now_ms: i64) -> Resolved {
            self.resolve(request, 12, &Topics::default(), now_ms)
        }
    }

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from("t"),
            partition: p,
        }
    }

    fn outcome(hw: i64, bytes: u64) -> ReadOutcome {
        ReadOutcome {
            error: 0,
            high_watermark: hw,
            last_stable_offset: hw,
            aborted: None,
            log_start_offset: 0,
            slices: Vec::new(),
            bytes,
            diverging: None,
            seen: None,
            unchanged: false,
            preferred_read_replica: -1,
            held_back: false,
        }
    }

    fn offsets(r: &Resolved) -> Vec<(i32, i64)> {
        match r {
            Resolved::Full { partitions, .. } | Resolved::Incremental { partitions, .. } => {
                partitions
                    .iter()
                    .map(|(tp, p)| (tp.partition, p.fetch_offset))
                    .collect()
            }
            Resolved::Refused(_) => Vec::new(),
        }
    }

    #[test]
    fn a_session_carries_unnamed_partitions_and_answers_only_changes() {
        let mut s = FetchSessions::new(10, 1000);
        let Resolved::Full { session_id: id, .. } =
            s.by_name(&request(0, 0, &[(0, 5), (1, 7)], &[]), 0)
        else {
            panic!("a new session is a full fetch")
        };
        assert_ne!(id, 0);
        s.answer(id, &tp(0), &outcome(5, 0));
        s.answer(id, &tp(1), &outcome(9, 0));
        // Only partition 1 moved; 0 stays in the session at offset 5.
        let next = s.by_name(&request(id, 1, &[(1, 9)], &[]), 1);
        assert!(matches!(next, Resolved::Incremental { .. }));
        assert_eq!(offsets(&next), vec![(0, 5), (1, 9)]);
        assert!(!s.answer(id, &tp(0), &outcome(5, 0)), "nothing new");
        assert!(
            s.answer(id, &tp(1), &outcome(10, 0)),
            "the high watermark moved"
        );
        assert!(s.answer(id, &tp(0), &outcome(5, 100)), "records");
        let forgot = s.by_name(&request(id, 2, &[], &[0]), 2);
        assert_eq!(offsets(&forgot), vec![(1, 9)]);
    }

    /// A partition is quiet after an answer that found nothing past its
    /// position, not after one with records, an error, a cut read or the
    /// leader throttle's empty answer, and not once the request names it
    /// again.
    #[test]
    fn quiet_partitions_are_the_ones_that_read_as_nothing_new() {
        let mut s = FetchSessions::new(10, 1000);
        let Resolved::Full { session_id: id, .. } = s.by_name(
            &request(0, 0, &[(0, 5), (1, 5), (2, 5), (3, 5), (4, 5)], &[]),
            0,
        ) else {
            panic!("a new session is a full fetch")
        };
        let seen = Seen {
            instance: 1,
            version: 7,
        };
        let read = |hw: i64, bytes: u64, error: i16| ReadOutcome {
            error,
            seen: Some(seen),
            ..outcome(hw, bytes)
        };
        let held_back = ReadOutcome {
            held_back: true,
            ..read(9, 0, 0)
        };
        let answers = [
            read(5, 0, 0),
            read(9, 100, 0),
            read(5, 0, 6),
            read(5, 0, 0),
            held_back,
        ];
        for (p, o) in answers.iter().enumerate() {
            let cut = p == 3;
            s.mark(id, &tp(p as i32), told(o), quiet(o, cut));
        }
        let next = s.by_name(&request(id, 1, &[], &[]), 1);
        let Resolved::Incremental { partitions, .. } = &next else {
            panic!("an incremental fetch")
        };
        let quiet: Vec<Option<(Seen, Told)>> = partitions.iter().map(|(_, p)| p.quiet()).collect();
        assert_eq!(quiet, vec![Some((seen, (5, 5, 0))), None, None, None, None]);
        // Named again (its position changed), it is read again.
        let named = s.by_name(&request(id, 2, &[(0, 6)], &[]), 2);
        let Resolved::Incremental { partitions, .. } = &named else {
            panic!("an incremental fetch")
        };
        assert_eq!(partitions[0].1.quiet(), None);
    }

    /// A throttled answer tells nothing: the session keeps the partition's
    /// offset, and the next answer carries what the throttled one dropped.
    #[test]
    fn a_throttled_answer_leaves_the_session_as_it_was() {
        let mut s = FetchSessions::new(10, 1000);
        let Resolved::Full { session_id: id, .. } = s.by_name(&request(0, 0, &[(0, 5)], &[]), 0)
        else {
            panic!("a new session is a full fetch")
        };
        s.answer(id, &tp(0), &outcome(9, 0));
        let next = s.by_name(&request(id, 1, &[], &[]), 1);
        assert_eq!(offsets(&next), vec![(0, 5)]);
        // Throttled: the high watermark moved but nothing is marked sent.
        assert!(s.would_answer(id, &tp(0), &outcome(10, 0)));
        let again = s.by_name(&request(id, 2, &[], &[]), 2);
        assert_eq!(offsets(&again), vec![(0, 5)], "the offset is kept");
        assert!(s.answer(id, &tp(0), &outcome(10, 0)), "still news");
        assert!(!s.would_answer(id, &tp(0), &outcome(10, 0)));
        // A new session whose first answer was throttled is forgotten.
        s.forget(id);
        assert!(matches!(
            s.by_name(&request(id, 3, &[], &[]), 3),
            Resolved::Refused(_)
        ));
    }

    #[test]
    fn wrong_epochs_and_unknown_sessions_are_refused() {
        let mut s = FetchSessions::new(10, 1000);
        let Resolved::Full { session_id: id, .. } = s.by_name(&request(0, 0, &[(0, 0)], &[]), 0)
        else {
            panic!()
        };
        let refused = |r: Resolved| match r {
            Resolved::Refused(code) => code,
            _ => 0,
        };
        assert_eq!(
            refused(s.by_name(&request(id, 2, &[], &[]), 1)),
            ResponseError::InvalidFetchSessionEpoch.code()
        );
        assert_eq!(
            refused(s.by_name(&request(id + 1, 1, &[], &[]), 1)),
            ResponseError::FetchSessionIdNotFound.code()
        );
        // The final epoch closes it: a sessionless full fetch.
        assert!(matches!(
            s.by_name(&request(id, -1, &[(0, 0)], &[]), 1),
            Resolved::Full { session_id: 0, .. }
        ));
        assert!(s.is_empty());
    }

    #[test]
    fn sessions_are_bounded_and_idle_ones_make_room() {
        let mut s = FetchSessions::new(2, 1000);
        let new = |s: &mut FetchSessions, now| match s.by_name(&request(0, 0, &[], &[]), now) {
            Resolved::Full { session_id, .. } => session_id,
            _ => panic!(),
        };
        assert_ne!(new(&mut s, 0), 0);
        assert_ne!(new(&mut s, 10), 0);
        assert_eq!(new(&mut s, 20), 0, "full, none idle: sessionless");
        assert_ne!(new(&mut s, 1500), 0, "the idle one made room");
        assert_eq!(s.len(), 2);
    }

    /// From v13 topics are named by id: a known id fetches its topic, an
    /// unknown one keeps a place of its own, and a session made by ids
    /// refuses a request by names.
    #[test]
    fn topic_ids_resolve_and_sessions_keep_to_their_kind() {
        let meta = crate::metadata::TopicMeta {
            name: "t".into(),
            id: crate::metadata::new_topic_id(),
            partitions: 2,
            configs: Default::default(),
            parsed: Default::default(),
        };
        let known = meta.uuid();
        let mut topics = Topics::default();
        topics.topics.insert("t".into(), Arc::new(meta));
        let unknown = Uuid::from_u128(7);
        let by_id = |id: i32, epoch: i32| {
            let topic = |topic_id| {
                FetchTopic::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![FetchPartition::default().with_partition(0)])
            };
            FetchRequest::default()
                .with_session_id(id)
                .with_session_epoch(epoch)
                .with_topics(vec![topic(known), topic(unknown)])
        };
        let mut s = FetchSessions::new(10, 1000);
        let Resolved::Full {
            session_id: id,
            partitions,
        } = s.resolve(&by_id(0, 0), 13, &topics, 0)
        else {
            panic!("a new session")
        };
        let named: Vec<(&str, Uuid)> = partitions
            .iter()
            .map(|(tp, p)| (&*tp.topic, p.topic_id))
            .collect();
        assert_eq!(
            named,
            vec![("t", known), (format!("?{unknown}").as_str(), unknown)]
        );
        assert!(matches!(
            s.resolve(&by_id(id, 1), 17, &topics, 1),
            Resolved::Incremental { .. }
        ));
        assert!(matches!(
            s.by_name(&request(id, 2, &[], &[]), 2),
            Resolved::Refused(code) if code == ResponseError::FetchSessionTopicIdError.code()
        ));
    }

    /// A follower's high watermark (v18) is what it said, raised by every
    /// answer since: it does not name the partition again to say so.
    #[test]
    fn a_followers_high_watermark_is_raised_by_the_answers() {
        let mut s = FetchSessions::new(10, 1000);
        // The high watermark the session holds after a first fetch that
        // said `said` and an answer that told 7.
        let mut after_an_answer = |said: Option<i64>, now: i64| {
            let mut first = request(0, 0, &[(0, 5)], &[]);
            if let Some(hw) = said {
                first.topics[0].partitions[0].high_watermark = hw;
            }
            let Resolved::Full { session_id, .. } = s.by_name(&first, now) else {
                panic!("a new session")
            };
            s.mark(session_id, &tp(0), (7, 7, 0), None);
            let Resolved::Incremental { partitions, .. } =
                s.by_name(&request(session_id, 1, &[], &[]), now + 1)
            else {
                panic!("the session goes on")
            };
            partitions[0].1.replica_high_watermark
        };
        assert_eq!(after_an_answer(Some(3), 0), 7);
        // A consumer's (no high watermark said) stays not told.
        assert_eq!(after_an_answer(None, 2), NOT_TOLD);
    }

    /// An id unknown when the session was made gets its topic's name once
    /// the broker knows it, though no later request names it again.
    #[test]
    fn an_id_unknown_at_first_is_named_once_known() {
        let meta = crate::metadata::TopicMeta {
            name: "late".into(),
            id: crate::metadata::new_topic_id(),
            partitions: 1,
            configs: Default::default(),
            parsed: Default::default(),
        };
        let id = meta.uuid();
        let request = |session: i32, epoch: i32, named: bool| {
            let partitions = if named {
                vec![FetchPartition::default().with_partition(0)]
            } else {
                Vec::new()
            };
            FetchRequest::default()
                .with_session_id(session)
                .with_session_epoch(epoch)
                .with_topics(vec![FetchTopic::default()
                    .with_topic_id(id)
                    .with_partitions(partitions)])
        };
        let mut s = FetchSessions::new(10, 1000);
        let before = Topics::default();
        let Resolved::Full { session_id, .. } = s.resolve(&request(0, 0, true), 18, &before, 0)
        else {
            panic!("a new session")
        };
        let late = tp(0);
        let late = TopicPartition {
            topic: Arc::from("late"),
            ..late
        };
        let unknown_tp = TopicPartition {
            topic: Arc::from(format!("?{id}")),
            partition: 0,
        };
        s.mark(session_id, &unknown_tp, (0, 0, 0), None);
        let mut after = Topics::default();
        after.topics.insert("late".into(), Arc::new(meta));
        let Resolved::Incremental { partitions, .. } =
            s.resolve(&request(session_id, 1, false), 18, &after, 1)
        else {
            panic!("the session goes on")
        };
        let named: Vec<&TopicPartition> = partitions.iter().map(|(tp, _)| tp).collect();
        assert_eq!(named, vec![&late]);
        // Nothing was told under the name: its next answer shows it.
        assert!(s.would_answer(session_id, &late, &outcome(0, 0)));
    }
}
