//! Fetch: read plans from the owners, held to the byte limits, with long
//! polling on min_bytes / max_wait_ms.
//!
//! The owner answers with file slices (whole batches), not bytes; the
//! response goes out as framing bytes interleaved with those slices, which
//! the connection sends from the page cache (see `net::send`).
//!
//! Versions past v12: v13 names topics by id (KIP-516; an unknown id is
//! answered UNKNOWN_TOPIC_ID, see `session`), v14 may answer
//! OFFSET_MOVED_TO_TIERED_STORAGE (KIP-405; nothing is tiered here), v15
//! moves the follower's id into `replica_state` (KIP-903), v16 names the
//! current leader of a partition answered NOT_LEADER_OR_FOLLOWER or
//! FENCED_LEADER_EPOCH and lists its endpoint (KIP-951), v17 adds the
//! follower's directory id (KIP-853, a tag for controllers' fetches only),
//! v18 the high watermark the follower knows (KIP-1166): a follower behind
//! the leader's is answered within a few milliseconds
//! ([`BEHIND_FOLLOWER_WAIT`]) rather than parked, so it learns where the
//! high watermark is without waiting for the next append.

pub(super) mod encode;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchRequest, RequestHeader};

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::access::Access;
use super::leader_hint::{fetch_wants_hint, LeaderHints};
use super::{ApiSpec, Piece};
use crate::compression::{batch_codec, Codec, FETCH_ZSTD_VERSION_MIN};
use crate::config::ReplicaSelector;
use crate::record::BATCH_HEADER_LEN;
use crate::services::fetch_sessions::{
    quiet as quiet_of, told as told_of, FetchSessions, Resolved, SessionPartition, Told, NOT_TOLD,
};
use crate::shard::{
    rack_hash, AppendWait, Partition, ReadArgs, ReadOutcome, ReplicaFetch, Seen, Shard,
    TopicPartition, WaitItem, Woken,
};
use crate::storage::FileSlice;
pub(super) use encode::set_throttle;
use encode::{PartitionFrame, TopicFrame};

pub const SPEC: ApiSpec = ApiSpec {
    key: ApiKey::Fetch,
    // v0-3 (the magic 0/1 message formats) through the version bridge
    // (`handlers::legacy`), down-converted.
    min: 0,
    max: 18,
};

/// The first version whose `replica_state` carries the follower's id.
const REPLICA_STATE_SINCE: i16 = 15;
/// The first version with client metadata (rack_id), which a follower may
/// answer (KIP-392).
const FOLLOWER_READS_SINCE: i16 = 11;
/// The first version with KIP-951's leader hints.
const LEADER_HINTS_SINCE: i16 = 16;

struct Wanted {
    /// Its place among the fetch's partitions, which the answer keeps.
    place: usize,
    tp: TopicPartition,
    /// The id the request named the topic by (v13+), nil before.
    topic_id: Uuid,
    /// Answered without a read: UNKNOWN_TOPIC_ID for an id that is not (or
    /// no longer) the topic's.
    preset: Option<i16>,
    offset: i64,
    partition_max_bytes: u32,
    /// read_committed: up to the last stable offset, with aborted
    /// transactions named.
    committed: bool,
    current_leader_epoch: i32,
    /// A follower's fetch (replica_id >= 0).
    replica: Option<ReplicaFetch>,
    /// The high watermark the follower knows (v18; `NOT_TOLD` before, and
    /// always for a consumer): one below the leader's ends the wait soon.
    replica_high_watermark: i64,
    /// A consumer's fetch of v11+, which a follower may answer (KIP-392).
    any_replica: bool,
    /// The consumer's rack, hashed, when a rack-aware selector may point
    /// it at another replica.
    client_rack: Option<u64>,
    /// In an incremental session: the state under which this position last
    /// read as nothing new, and what was told then. Still so, the partition
    /// is not read again and stays out of the answer.
    quiet: Option<(Seen, Told)>,
}

/// How long a follower's fetch waits for records once the follower's high
/// watermark is behind the leader's (KIP-1166). Kafka answers it at once,
/// and so every fetch that moves the high watermark (each one after an
/// append, under acks=all) is answered again with nothing but the new one:
/// on three nodes at 20k msg/s that was 46% more requests and 58% more
/// broker CPU than before v18. Waiting this long lets the next records
/// ride in the same answer (8% more requests, 6-12% more CPU), and an idle
/// partition's follower still learns the high watermark within it rather
/// than after `replica.fetch.wait.max.ms`.
const BEHIND_FOLLOWER_WAIT: Duration = Duration::from_millis(5);

/// Kafka's IsolationLevel.READ_COMMITTED.
const READ_COMMITTED: i8 = 1;

/// The response body as pieces (framing and file slices). `charge`, when
/// a client quota may apply, is given the size of the answer and returns
/// the throttle it earned; a throttled answer goes out without partitions,
/// as Kafka's `FetchContext.getThrottledResponse` (the client asks for the
/// same offsets again after the throttle, so nothing is lost or repeated).
pub async fn handle(
    shard: &Rc<Shard>,
    access: &Access,
    sessions: &RefCell<FetchSessions>,
    header: &RequestHeader,
    request: FetchRequest,
    charge: Option<impl FnOnce(u64) -> u64>,
) -> Vec<Piece> {
    let max_wait = Duration::from_millis(
        (request.max_wait_ms.max(0) as u64).min(shard.config.fetch_max_wait_ms_max),
    );
    let started = Instant::now();
    let mut deadline = started + max_wait;
    let min_bytes = request.min_bytes.max(0) as u64;
    let response_max = request.max_bytes.max(0) as u64;
    let version = header.request_api_version;
    // Before v7 the session fields are absent and decode as a sessionless
    // (final epoch) fetch.
    let resolved =
        sessions
            .borrow_mut()
            .resolve(&request, version, &shard.topics(), crate::runtime::now_ms());
    let (session_id, incremental, partitions) = match resolved {
        Resolved::Refused(code) => return encode::encode(version, code, 0, Vec::new(), Vec::new()),
        Resolved::Full {
            session_id,
            partitions,
        } => (session_id, false, partitions),
        Resolved::Incremental {
            session_id,
            partitions,
        } => (session_id, true, partitions),
    };
    let (mut wanted, mut resting) = wanted(shard, access, &request, version, partitions);
    let readable = wanted.iter().filter(|w| w.preset.is_none()).count() + resting.len();
    // After a wake, only the partitions that moved are read again (a
    // follower's fetch names every partition it follows, and one append
    // wakes it), by the owner that saw the move, as it wakes us; the
    // others keep what the last read gave, unless that read was cut to the
    // response budget. One on another owner that moved meanwhile is in
    // the next answer (its wait then ends at once), as if read a moment
    // earlier: an answer is not one instant across partitions in Kafka
    // either.
    let mut earlier: Option<Vec<ReadOutcome>> = None;
    let mut reread = Reread::All;
    let (outcomes, cut) = loop {
        let (outcomes, cut) =
            read_within(shard, &wanted, response_max, earlier.take(), reread).await;
        if !resting.is_empty() {
            crate::stats::FETCH_PARTITIONS_KEPT.add(resting.len() as u64);
        }
        let bytes: u64 = outcomes.iter().map(|o| o.bytes).sum();
        // An id answered UNKNOWN_TOPIC_ID does not end a long poll on the
        // others, as in Kafka, where such partitions never reach the read.
        let any_error = outcomes.iter().zip(&wanted).any(|(o, w)| {
            w.preset.is_none()
                && (o.error != 0 || o.diverging.is_some() || o.preferred_read_replica >= 0)
        });
        let follower_behind = outcomes.iter().zip(&wanted).any(|(o, w)| {
            w.preset.is_none() && !o.unchanged && o.high_watermark > w.replica_high_watermark
        });
        if follower_behind {
            deadline = deadline.min(started + BEHIND_FOLLOWER_WAIT);
        }
        let now = Instant::now();
        if bytes >= min_bytes
            || any_error
            || readable == 0
            || now >= deadline
            || shard.is_stopping()
        {
            break (outcomes, cut);
        }
        // Wake once any requested partition is no longer as just read.
        let waits: Vec<WaitFor<'_>> = outcomes
            .iter()
            .zip(&wanted)
            .enumerate()
            .filter(|(_, (_, w))| w.preset.is_none())
            .filter_map(|(place, (o, w))| {
                debug_assert!(o.seen.is_some(), "read without an error");
                Some(WaitFor {
                    place,
                    wanted: w,
                    seen: o.seen?,
                    response_max,
                })
            })
            .collect();
        let held = resting
            .iter()
            .map(|r| (r.partition.clone(), r.seen()))
            .collect();
        let wait = shard.wait_for_append(waits, held);
        let woken = crate::runtime::timeout(deadline - now, wait).await;
        let timed_out = woken.is_none();
        earlier = (!cut).then_some(outcomes);
        // The owner that woke us read its partitions then: those outcomes
        // stand, and only what no outcome covers is read below.
        reread = Reread::All;
        if let (Some(Some(woken)), Some(earlier)) = (woken, earlier.as_mut()) {
            reread = Reread::Unseen {
                woken: keep_woken(earlier, woken),
            };
        }
        wake_resting(&mut resting, &mut wanted, &mut earlier);
        if timed_out {
            break read_within(shard, &wanted, response_max, earlier.take(), Reread::All).await;
        }
    };
    let mut outcomes = outcomes;
    if version < FETCH_ZSTD_VERSION_MIN {
        refuse_zstd(shard, &wanted, &mut outcomes);
    }
    let session = Session {
        sessions,
        id: session_id,
        incremental,
        cut,
    };
    answer(shard, version, session, wanted, outcomes, charge)
}

/// The fetch session an answer is for (`id` 0: none).
struct Session<'a> {
    sessions: &'a RefCell<FetchSessions>,
    id: i32,
    incremental: bool,
    /// Some partition's records were held to the response budget.
    cut: bool,
}

/// Encodes the answer to what was read, charges it when a quota may apply,
/// and records in the session what an answer that goes out told.
fn answer(
    shard: &Shard,
    version: i16,
    session: Session<'_>,
    wanted: Vec<Wanted>,
    mut outcomes: Vec<ReadOutcome>,
    charge: Option<impl FnOnce(u64) -> u64>,
) -> Vec<Piece> {
    let Session {
        sessions,
        id: session_id,
        incremental,
        cut,
    } = session;
    let shown: Vec<bool> = if session_id == 0 {
        vec![true; wanted.len()]
    } else {
        let sessions = sessions.borrow();
        wanted
            .iter()
            .zip(&outcomes)
            .map(|(w, o)| sessions.would_answer(session_id, &w.tp, o) || !incremental)
            .collect()
    };
    // What the session records as told once the answer goes out: at once
    // when no quota can throttle it (no copy), else after the charge.
    let mut told: Vec<(TopicPartition, Told, Option<Seen>)> = Vec::new();
    if session_id != 0 {
        let mut sessions = sessions.borrow_mut();
        for (w, o) in wanted.iter().zip(&outcomes) {
            let quiet = quiet_of(o, cut);
            match charge {
                None => sessions.mark(session_id, &w.tp, told_of(o), quiet),
                Some(_) => told.push((w.tp.clone(), told_of(o), quiet)),
            }
        }
    }
    let topics = shard.topics();
    let mut hints = (version >= LEADER_HINTS_SINCE).then(|| LeaderHints::new(&topics));
    let frames = frames(&wanted, &mut outcomes, &shown, hints.as_mut());
    let nodes = hints.map(LeaderHints::nodes).unwrap_or_default();
    let body = encode::encode(version, 0, session_id, frames, nodes);
    let Some(charge) = charge else {
        return body;
    };
    let throttle_ms = charge(body.iter().map(|p| p.len() as u64).sum());
    if throttle_ms > 0 {
        return throttled(sessions, version, session_id, incremental, throttle_ms);
    }
    let mut sessions = sessions.borrow_mut();
    for (tp, told, quiet) in told {
        sessions.mark(session_id, &tp, told, quiet);
    }
    body
}

/// Kafka's throttled fetch answer: no partitions, the throttle, and the
/// session id of an incremental fetch (its partitions not marked as sent);
/// a session this full fetch just made is dropped and answered as 0, since
/// Kafka makes one only with an answer that carries partitions.
fn throttled(
    sessions: &RefCell<FetchSessions>,
    version: i16,
    session_id: i32,
    incremental: bool,
    throttle_ms: u64,
) -> Vec<Piece> {
    let session_id = if incremental {
        session_id
    } else {
        if session_id != 0 {
            sessions.borrow_mut().forget(session_id);
        }
        0
    };
    let mut body = encode::encode(version, 0, session_id, Vec::new(), Vec::new());
    set_throttle(&mut body, i32::try_from(throttle_ms).unwrap_or(i32::MAX));
    body
}

/// Fetch before v10 cannot carry zstd (KIP-110): such a partition answers
/// UNSUPPORTED_COMPRESSION_TYPE, as Kafka does, when its topic stores zstd
/// or the planned batches include one.
fn refuse_zstd(shard: &Shard, wanted: &[Wanted], outcomes: &mut [ReadOutcome]) {
    let topics = shard.topics();
    for (w, outcome) in wanted.iter().zip(outcomes.iter_mut()) {
        if outcome.slices.is_empty() {
            continue;
        }
        let topic_zstd = topics
            .get(&w.tp.topic)
            .and_then(|t| t.configs.get("compression.type"))
            .is_some_and(|c| c == "zstd");
        let has_zstd = topic_zstd
            || outcome.slices.iter().any(|s| match slice_has_zstd(s) {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(topic = %w.tp.topic, partition = w.tp.partition, error = %e, "reading batch headers");
                    true
                }
            });
        if has_zstd {
            outcome.error = ResponseError::UnsupportedCompressionType.code();
            outcome.slices.clear();
            outcome.bytes = 0;
        }
    }
}

/// Reads the header of every batch in `slice` (headers only, never records).
fn slice_has_zstd(slice: &FileSlice) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut header = [0u8; BATCH_HEADER_LEN];
    let mut at = 0u64;
    while at < u64::from(slice.len) {
        slice.file.read_exact_at(&mut header, slice.position + at)?;
        if batch_codec(&header).is_ok_and(|c| c == Codec::Zstd) {
            return Ok(true);
        }
        let batch_length = i32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
        assert!(
            batch_length > 0,
            "a planned slice holds whole, valid batches"
        );
        at += 12 + batch_length as u64;
    }
    Ok(false)
}

/// What to read for each partition the fetch covers (the request's, or
/// its session's). A follower needs ClusterAction on the cluster, a
/// consumer Read on each topic; a partition refused answers
/// TOPIC_AUTHORIZATION_FAILED and is not read (Kafka's KafkaApis).
/// Quiet session partitions of this shard that are still as they were
/// come back apart, as resting: nothing to read, nothing to answer.
fn wanted(
    shard: &Shard,
    access: &Access,
    request: &FetchRequest,
    version: i16,
    partitions: Vec<(TopicPartition, SessionPartition)>,
) -> (Vec<Wanted>, Vec<Resting>) {
    let committed = request.isolation_level == READ_COMMITTED;
    let replica_id = if version >= REPLICA_STATE_SINCE {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    let topics = shard.topics();
    // Whether each topic's id is still the one the request named: a topic
    // deleted (and maybe created again) since is UNKNOWN_TOPIC_ID.
    let mut checked: Option<(Arc<str>, bool)> = None;
    let mut id_holds = |tp: &TopicPartition, id: Uuid| -> bool {
        if id.is_nil() {
            return true;
        }
        match &checked {
            Some((topic, holds)) if *topic == tp.topic => *holds,
            _ => {
                let holds = topics.get(&tp.topic).is_some_and(|m| m.uuid() == id);
                checked = Some((tp.topic.clone(), holds));
                holds
            }
        }
    };
    // KIP-392: from v11 a consumer's fetch carries client metadata, and
    // then a follower may answer it; its rack, if it names one, lets the
    // leader point it at a replica in that rack.
    let any_replica = version >= FOLLOWER_READS_SINCE && replica_id < 0;
    let client_rack = (any_replica
        && shard.config.replica_selector == ReplicaSelector::RackAware
        && !request.rack_id.is_empty())
    .then(|| rack_hash(&request.rack_id));
    use crate::security::acl::Operation;
    let follower_allowed = replica_id < 0 || access.cluster(Operation::ClusterAction);
    let mut readable: Option<(Arc<str>, bool)> = None;
    let mut may_read = |tp: &TopicPartition| -> bool {
        if replica_id >= 0 {
            return follower_allowed;
        }
        match &readable {
            Some((topic, allowed)) if *topic == tp.topic => *allowed,
            _ => {
                let allowed = access.topic(Operation::Read, &tp.topic);
                readable = Some((tp.topic.clone(), allowed));
                allowed
            }
        }
    };
    let mut wanted = Vec::with_capacity(partitions.len());
    let mut resting = Vec::new();
    for (place, (tp, p)) in partitions.into_iter().enumerate() {
        let w = Wanted {
            place,
            preset: if !may_read(&tp) {
                Some(ResponseError::TopicAuthorizationFailed.code())
            } else {
                (!id_holds(&tp, p.topic_id)).then_some(ResponseError::UnknownTopicId.code())
            },
            topic_id: p.topic_id,
            tp,
            offset: p.fetch_offset,
            partition_max_bytes: p.partition_max_bytes.max(0) as u32,
            committed,
            current_leader_epoch: p.current_leader_epoch,
            replica: (replica_id >= 0).then_some(ReplicaFetch {
                node_id: replica_id,
                log_start_offset: p.log_start_offset,
                last_fetched_epoch: p.last_fetched_epoch,
            }),
            replica_high_watermark: if replica_id >= 0 {
                p.replica_high_watermark
            } else {
                NOT_TOLD
            },
            any_replica,
            client_rack,
            quiet: p.quiet(),
        };
        let still = match w.quiet {
            Some((seen, _)) if w.preset.is_none() => still(shard, &w.tp, seen),
            _ => None,
        };
        match still {
            Some(partition) => resting.push(Resting {
                wanted: w,
                partition,
            }),
            None => wanted.push(w),
        }
    }
    (wanted, resting)
}

/// A quiet session partition still as it read last (see
/// [`Wanted::quiet`]): it is neither read nor answered (an incremental
/// answer leaves it out), only waited on, until it moves. Checked here
/// only for the partitions this shard owns; another shard's are read as
/// `unless_unchanged` on their owner.
struct Resting {
    wanted: Wanted,
    /// Held so that the wait and the wake use it without a lookup: one
    /// taken away (deleted) is notified first, so it reads as moved.
    partition: Rc<Partition>,
}

impl Resting {
    /// The state its quiet read saw.
    fn seen(&self) -> Seen {
        self.wanted.quiet.expect("resting partitions are quiet").0
    }

    fn moved(&self) -> bool {
        self.partition.seen() != self.seen()
    }
}

/// `tp` if this shard owns it and it is still as `seen`.
fn still(shard: &Shard, tp: &TopicPartition, seen: Seen) -> Option<Rc<Partition>> {
    if shard.owner_of(tp) != shard.id {
        return None;
    }
    shard.partition(tp).filter(|p| p.seen() == seen)
}

/// After a wake: resting partitions that moved are read from now on, in
/// their places among the others (an answer lists a topic's partitions
/// together). A moved one has no earlier outcome to keep: it gets one
/// without a seen, which is never kept, so it is read.
fn wake_resting(
    resting: &mut Vec<Resting>,
    wanted: &mut Vec<Wanted>,
    earlier: &mut Option<Vec<ReadOutcome>>,
) {
    // In place: a wake moves one partition of hundreds, and the others
    // stay where they are.
    let woken: Vec<Resting> = resting.extract_if(.., |r| r.moved()).collect();
    if woken.is_empty() {
        return;
    }
    let keeping = earlier.is_some();
    let mut outcomes = earlier.take().unwrap_or_default();
    outcomes.resize_with(wanted.len(), || ReadOutcome::unread(0));
    let mut all: Vec<(Wanted, ReadOutcome)> = std::mem::take(wanted)
        .into_iter()
        .zip(outcomes)
        .chain(
            woken
                .into_iter()
                .map(|r| (r.wanted, ReadOutcome::unread(0))),
        )
        .collect();
    all.sort_by_key(|(w, _)| w.place);
    let (w, o) = all.into_iter().unzip();
    *wanted = w;
    *earlier = keeping.then_some(o);
}

/// What a read after a wake reads (with earlier outcomes to keep).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reread {
    /// Every partition, each answered `unchanged` by its owner if still as
    /// its earlier outcome saw it.
    All,
    /// Only the partitions without an earlier outcome's state (woken
    /// resting ones): the rest stand as the wake left them, `woken` of
    /// them read again by the wake itself (not kept).
    Unseen { woken: u64 },
}

/// The wake's outcomes in their places among `earlier` (one per wanted
/// partition); a partition the wake left out keeps its earlier outcome.
/// Returns how many of them stand as read (with a state; an error is read
/// again).
fn keep_woken(earlier: &mut [ReadOutcome], woken: Woken) -> u64 {
    let mut standing = 0;
    for (place, outcome) in woken.outcomes {
        debug_assert!(!outcome.unchanged, "a wake answers only what moved");
        standing += u64::from(outcome.stands().is_some());
        earlier[place] = outcome;
    }
    standing
}

/// A wanted partition the long poll waits on, borrowed: its topic name is
/// cloned only to wait on another shard.
struct WaitFor<'a> {
    place: usize,
    wanted: &'a Wanted,
    seen: Seen,
    response_max: u64,
}

impl WaitItem for WaitFor<'_> {
    fn place(&self) -> usize {
        self.place
    }

    fn tp(&self) -> &TopicPartition {
        &self.wanted.tp
    }

    fn seen(&self) -> Seen {
        self.seen
    }

    fn read(&self) -> ReadArgs<'_> {
        read_args(self.wanted, self.response_max, Some(self.seen))
    }

    fn into_wait(self) -> AppendWait {
        AppendWait::new(self.place, self.read().to_item())
    }
}

/// The read of one wanted partition, at most `response_max` of it.
fn read_args(w: &Wanted, response_max: u64, unless_unchanged: Option<Seen>) -> ReadArgs<'_> {
    ReadArgs {
        tp: &w.tp,
        offset: w.offset,
        max_bytes: (w.partition_max_bytes as u64).min(response_max) as u32,
        min_one_batch: true,
        committed: w.committed,
        current_leader_epoch: w.current_leader_epoch,
        replica: w.replica,
        to_log_end: false,
        unless_unchanged,
        any_replica: w.any_replica,
        client_rack: w.client_rack,
    }
}

/// Reads every partition, then holds the total to `response_max`: the first
/// partition with data is taken whole (Kafka's rule: at least one batch,
/// even past the limits); a later one that would overflow is read again
/// with what is left, or answered without records once not even a batch
/// header is left. Returns whether any partition was cut so.
///
/// With `earlier` outcomes (one per wanted partition, none cut), a
/// partition still as it was read then keeps its earlier outcome, and
/// under [`Reread::Unseen`] only those without one are read at all.
async fn read_within(
    shard: &Rc<Shard>,
    wanted: &[Wanted],
    response_max: u64,
    mut earlier: Option<Vec<ReadOutcome>>,
    reread: Reread,
) -> (Vec<ReadOutcome>, bool) {
    if let Some(earlier) = &earlier {
        assert_eq!(earlier.len(), wanted.len());
    }
    let standing = |i: usize| {
        matches!(reread, Reread::Unseen { .. })
            && earlier.as_ref().is_some_and(|e| e[i].stands().is_some())
    };
    let to_read = |(i, w): &(usize, &Wanted)| w.preset.is_none() && !standing(*i);
    let items = wanted.iter().enumerate().filter(to_read).map(|(i, w)| {
        let unless_unchanged = match &earlier {
            Some(earlier) => earlier[i].stands(),
            None => w.quiet.map(|(seen, _)| seen),
        };
        read_args(w, response_max, unless_unchanged)
    });
    // Standing outcomes the wake read again are not kept ones.
    let woken = match reread {
        Reread::Unseen { woken } => woken,
        Reread::All => 0,
    };
    let none_to_read = !wanted.iter().enumerate().any(|w| to_read(&w));
    if none_to_read && reread != Reread::All {
        if let Some(earlier) = earlier {
            // After a wake that left nothing unread (the usual case): the
            // earlier outcomes, the wake's in their places, are the
            // answer, without a vector of markers to take them through.
            let standing = wanted.iter().filter(|w| w.preset.is_none()).count() as u64;
            crate::stats::FETCH_PARTITIONS_KEPT.add(standing - woken);
            return hold_to_budget(shard, wanted, response_max, earlier).await;
        }
    }
    let mut outcomes = if none_to_read {
        Vec::new()
    } else {
        shard.read(items).await
    };
    if outcomes.len() < wanted.len() {
        outcomes = with_presets(wanted, outcomes, standing);
    }
    let mut kept = 0;
    for (i, (w, outcome)) in wanted.iter().zip(outcomes.iter_mut()).enumerate() {
        if !outcome.unchanged {
            continue;
        }
        kept += 1;
        *outcome = match earlier.as_mut() {
            Some(earlier) => std::mem::replace(&mut earlier[i], ReadOutcome::unread(0)),
            None => quiet_outcome(w.quiet.expect("asked as quiet")),
        };
    }
    if kept > woken {
        crate::stats::FETCH_PARTITIONS_KEPT.add(kept - woken);
    }
    hold_to_budget(shard, wanted, response_max, outcomes).await
}

/// Holds `outcomes` (one per wanted partition) to `response_max`, as
/// [`read_within`] says; returns them and whether any was cut.
async fn hold_to_budget(
    shard: &Rc<Shard>,
    wanted: &[Wanted],
    response_max: u64,
    mut outcomes: Vec<ReadOutcome>,
) -> (Vec<ReadOutcome>, bool) {
    assert_eq!(outcomes.len(), wanted.len());
    let mut cut = false;
    let mut used = 0u64;
    for (w, outcome) in wanted.iter().zip(outcomes.iter_mut()) {
        if outcome.bytes == 0 {
            continue;
        }
        // Only the first partition with data may exceed a limit (with one
        // whole batch); a later one is held to what is left of both.
        let limit = response_max
            .saturating_sub(used)
            .min(w.partition_max_bytes as u64);
        if used > 0 && outcome.bytes > limit && limit < crate::record::BATCH_HEADER_LEN as u64 {
            // Not even a batch header fits: no read could return a batch,
            // so drop this one's records here instead of asking its owner
            // again (a round trip per partition once the response is full).
            outcome.slices.clear();
            outcome.bytes = 0;
            if let Some(aborted) = outcome.aborted.as_mut() {
                aborted.clear();
            }
            cut = true;
            continue;
        }
        if used > 0 && outcome.bytes > limit {
            let left = limit;
            let again = ReadArgs {
                max_bytes: left as u32,
                min_one_batch: false,
                ..read_args(w, response_max, None)
            };
            let mut reread = shard.read(std::iter::once(again)).await;
            *outcome = reread.pop().expect("one outcome per item");
            assert!(outcome.bytes <= left || outcome.error != 0);
            cut = true;
        }
        used += outcome.bytes;
    }
    (outcomes, cut)
}

/// The read's outcomes in their places among the partitions answered
/// without a read (see [`Wanted::preset`], rare) and those whose earlier
/// outcome stands after a wake (answered `unchanged` here, so the caller
/// keeps it): the read's own vector is the answer's whenever there are
/// none, as on a first read.
fn with_presets(
    wanted: &[Wanted],
    read: Vec<ReadOutcome>,
    standing: impl Fn(usize) -> bool,
) -> Vec<ReadOutcome> {
    let mut read = read.into_iter();
    let outcomes: Vec<ReadOutcome> = wanted
        .iter()
        .enumerate()
        .map(|(i, w)| match w.preset {
            Some(error) => ReadOutcome::unread(error),
            None if standing(i) => ReadOutcome {
                unchanged: true,
                ..ReadOutcome::unread(0)
            },
            None => read.next().expect("one outcome per item"),
        })
        .collect();
    assert!(read.next().is_none(), "one outcome per item");
    outcomes
}

/// The outcome a quiet partition (see [`Wanted::quiet`]) would read
/// again: nothing, under the same state, telling what it told.
fn quiet_outcome((seen, told): (Seen, Told)) -> ReadOutcome {
    let (high_watermark, last_stable_offset, log_start_offset) = told;
    ReadOutcome {
        high_watermark,
        last_stable_offset,
        log_start_offset,
        seen: Some(seen),
        ..ReadOutcome::unread(0)
    }
}

/// The answer's topics: consecutive partitions of one topic share a frame;
/// partitions not `shown` (unchanged, in an incremental session) are left out.
/// With `hints` (v16+), a partition that lost its leader names the new one.
fn frames(
    wanted: &[Wanted],
    outcomes: &mut [ReadOutcome],
    shown: &[bool],
    mut hints: Option<&mut LeaderHints>,
) -> Vec<TopicFrame> {
    // By reference, taking only each outcome's vectors: moving a thousand
    // partitions' (wanted, outcome) pairs through an iterator chain copied
    // both whole at every step, which cost more than the framing.
    let mut answered = wanted
        .iter()
        .zip(outcomes.iter_mut())
        .zip(shown)
        .filter_map(|(answer, &shown)| shown.then_some(answer));
    topic_runs(wanted, shown)
        .into_iter()
        .map(|run| {
            // Each topic's frames allocated once: a wide fetch answers a
            // thousand partitions of one topic.
            let mut partitions = Vec::with_capacity(run);
            let mut topic = None;
            for (w, o) in answered.by_ref().take(run) {
                partitions.push(frame(w, o, hints.as_deref_mut()));
                topic.get_or_insert((&w.tp.topic, w.topic_id));
            }
            let (name, id) = topic.expect("a run is never empty");
            TopicFrame {
                name: Bytes::copy_from_slice(name.as_bytes()),
                id,
                partitions,
            }
        })
        .collect()
}

/// One partition's answer; with `hints` (v16+), one that lost its leader
/// names the new one.
fn frame(w: &Wanted, o: &mut ReadOutcome, hints: Option<&mut LeaderHints>) -> PartitionFrame {
    let current_leader = match hints {
        Some(hints) if fetch_wants_hint(o.error) => Some(hints.leader(&w.tp.topic, w.tp.partition)),
        _ => None,
    };
    PartitionFrame {
        partition: w.tp.partition,
        error: o.error,
        high_watermark: o.high_watermark,
        last_stable_offset: o.last_stable_offset,
        log_start_offset: o.log_start_offset,
        aborted: o.aborted.take(),
        diverging: o.diverging,
        current_leader,
        preferred_read_replica: o.preferred_read_replica,
        records: o.slices.drain(..).map(Piece::File).collect(),
    }
}

/// The answer's topics, as how many partitions each holds: consecutive
/// shown partitions of one topic (name and id) share a topic.
fn topic_runs(wanted: &[Wanted], shown: &[bool]) -> Vec<usize> {
    let mut runs: Vec<usize> = Vec::new();
    // The topic of the last run (`None` until there is one).
    let mut last: Option<(&Arc<str>, Uuid)> = None;
    for (w, _) in wanted.iter().zip(shown).filter(|(_, &shown)| shown) {
        let topic = Some((&w.tp.topic, w.topic_id));
        match runs.last_mut() {
            Some(run) if topic == last => *run += 1,
            _ => runs.push(1),
        }
        last = topic;
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(topic: &Arc<str>, id: u128, partition: i32) -> Wanted {
        Wanted {
            place: 0,
            tp: TopicPartition {
                topic: topic.clone(),
                partition,
            },
            topic_id: Uuid::from_u128(id),
            preset: None,
            offset: 0,
            partition_max_bytes: 0,
            committed: false,
            current_leader_epoch: -1,
            replica: None,
            replica_high_watermark: NOT_TOLD,
            any_replica: false,
            client_rack: None,
            quiet: None,
        }
    }

    #[test]
    fn topic_runs_group_consecutive_shown_partitions_of_one_topic() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let all = [
            wanted(&a, 0, 0),
            wanted(&a, 0, 1),
            wanted(&b, 0, 0),
            wanted(&b, 0, 1),
            wanted(&b, 0, 2),
            // The same name under another id (deleted and made again) is
            // another topic; so is a topic named again after another.
            wanted(&b, 7, 3),
            wanted(&a, 0, 2),
        ];
        assert_eq!(topic_runs(&all, &[true; 7]), vec![2, 3, 1, 1]);
        // A topic none of whose partitions is shown has no run, and its
        // neighbours stay apart only if they are different topics.
        let shown = [true, true, false, false, false, true, true];
        assert_eq!(topic_runs(&all, &shown), vec![2, 1, 1]);
        let shown = [false, true, false, true, false, false, false];
        assert_eq!(topic_runs(&all, &shown), vec![1, 1]);
        assert_eq!(topic_runs(&all, &[false; 7]), Vec::<usize>::new());
    }
}
