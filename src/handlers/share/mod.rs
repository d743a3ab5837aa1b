//! ShareFetch and ShareAcknowledge (KIP-932): a share group member's reads
//! and acknowledgements, through its share session on this core
//! (`share::sessions`), served by the partitions' owners (`share`).
//!
//! A ShareFetch applies the acknowledgements it carries, then acquires
//! records of every partition of the session; when none were acquired it
//! waits (up to max_wait_ms) for one of them to move and tries once more
//! per move. The session's last request (epoch -1) acquires nothing and
//! releases what the member still holds in it.

mod encode;
pub(super) mod state;

pub use state::{READ_SHARE_GROUP_STATE, WRITE_SHARE_GROUP_STATE};

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::share_acknowledge_response::{
    PartitionData as AckPartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::access::Access;
use super::{ApiSpec, Piece};
use crate::security::acl::Operation;
use crate::shard::{AppendWait, ReadItem, Seen, TopicPartition};
use crate::share::sessions::{SessionPartition, INITIAL_EPOCH};
use crate::share::{AckBatch, Service, ShareAsk, ShareItem, ShareOutcome};
use encode::{PartitionFrame, TopicFrame};

pub const SHARE_FETCH: ApiSpec = ApiSpec {
    key: ApiKey::ShareFetch,
    min: 1,
    max: 1,
};
pub const SHARE_ACKNOWLEDGE: ApiSpec = ApiSpec {
    key: ApiKey::ShareAcknowledge,
    min: 1,
    max: 1,
};

/// Wakes of one long poll that acquired nothing, at most: each wake serves
/// the session again, and a partition that keeps moving without records
/// to acquire (all held by others) must not spin the poll.
const WAKES_MAX: usize = 16;

/// A request's topics as (topic id, [(partition, acknowledgements)]):
/// ShareFetch's and ShareAcknowledge's have the same fields, in types of
/// their own.
macro_rules! acks_by_topic {
    ($topics:expr) => {
        $topics.into_iter().map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let acks = p.acknowledgement_batches.into_iter().map(|b| AckBatch {
                        first: b.first_offset,
                        last: b.last_offset,
                        types: b.acknowledge_types,
                    });
                    (p.partition_index, acks.collect())
                })
                .collect();
            (t.topic_id, partitions)
        })
    };
}

/// A partition answered without asking its owner (unknown topic id, or
/// no Read on the topic).
struct Preset {
    id: Uuid,
    partition: i32,
    error: i16,
}

/// The request's partitions: the ones it may touch (with their
/// acknowledgements), and the ones refused.
struct Named {
    partitions: Vec<(SessionPartition, Vec<AckBatch>)>,
    presets: Vec<Preset>,
}

/// Resolves topic ids to partitions, checking Read on each topic.
fn named(
    shard: &crate::shard::Shard,
    access: &Access,
    topics: impl Iterator<Item = (Uuid, Vec<(i32, Vec<AckBatch>)>)>,
) -> Named {
    let known = shard.topics();
    let mut out = Named {
        partitions: Vec::new(),
        presets: Vec::new(),
    };
    for (id, partitions) in topics {
        let error = match known.name_of(id) {
            None => Some(ResponseError::UnknownTopicId.code()),
            Some(name) if !access.topic(Operation::Read, name) => {
                Some(ResponseError::TopicAuthorizationFailed.code())
            }
            Some(_) => None,
        };
        for (partition, acks) in partitions {
            match (error, known.name_of(id)) {
                (None, Some(name)) => {
                    let tp = TopicPartition {
                        topic: name.into(),
                        partition,
                    };
                    out.partitions.push(((id, tp), acks));
                }
                (error, _) => out.presets.push(Preset {
                    id,
                    partition,
                    error: error.unwrap_or_default(),
                }),
            }
        }
    }
    out
}

/// The group and member a request names, both required.
fn member_of(group: Option<&str>, member: Option<&str>) -> Option<(String, String)> {
    let group = group.filter(|g| !g.is_empty())?;
    let member = member.filter(|m| !m.is_empty())?;
    Some((group.to_string(), member.to_string()))
}

pub async fn fetch(
    shares: &Rc<Service>,
    access: &Access,
    request: ShareFetchRequest,
) -> Vec<Piece> {
    let shard = shares.shard().clone();
    let lock_ms = shard.config.group_share_record_lock_duration_ms;
    let refuse = |code: i16| encode::encode(code, lock_ms, Vec::new());
    let group = request.group_id.as_ref().map(|g| g.as_str());
    let Some(key) = member_of(group, request.member_id.as_deref()) else {
        return refuse(ResponseError::InvalidRequest.code());
    };
    if !access.group(Operation::Read, &key.0) {
        return refuse(ResponseError::GroupAuthorizationFailed.code());
    }
    // The group's own lock duration, told to its members.
    let lock_ms = shard
        .topics()
        .group_configs
        .settings(&shard.config, &key.0)
        .share_record_lock_duration_ms;
    let epoch = request.share_session_epoch;
    let topics = acks_by_topic!(request.topics);
    let named = named(&shard, access, topics);
    let acked = named.partitions.iter().any(|(_, acks)| !acks.is_empty());
    if epoch == INITIAL_EPOCH && acked {
        // Nothing was delivered in a session that only opens now.
        return refuse(ResponseError::InvalidRequest.code());
    }
    let forgotten: Vec<(Uuid, i32)> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let now_ms = crate::runtime::now_ms();
    let added = named.partitions.iter().map(|(p, _)| p.clone()).collect();
    // Each partition's acknowledgements, taken (not copied) into its item.
    let mut acks: HashMap<TopicPartition, Vec<AckBatch>> = named
        .partitions
        .into_iter()
        .filter(|(_, acks)| !acks.is_empty())
        .map(|((_, tp), acks)| (tp, acks))
        .collect();
    let idle_ms = i64::from(shard.config.group_share_session_timeout_ms);
    let step =
        shares
            .sessions
            .borrow_mut()
            .fetch(key.clone(), epoch, added, &forgotten, now_ms, idle_ms);
    let step = match step {
        Ok(step) => step,
        Err(code) => return refuse(code),
    };
    let mut session: Vec<SessionPartition> = step.partitions.clone();
    if step.closed {
        // Only the acknowledgements of the session's last request count.
        session.retain(|(_, tp)| acks.contains_key(tp));
    }
    let fetching = !step.closed;
    let ask = ShareAsk {
        group: key.0.clone(),
        member: key.1.clone(),
        opening: epoch == INITIAL_EPOCH,
        items: session
            .iter()
            .map(|(_, tp)| ShareItem {
                tp: tp.clone(),
                acks: acks.remove(tp).unwrap_or_default(),
                fetch: fetching,
            })
            .collect(),
        max_records: usize::try_from(request.max_records.max(1)).unwrap_or(1),
        partition_max_bytes: partition_max_bytes(request.max_bytes, session.len()),
    };
    let max_wait = Duration::from_millis(
        (request.max_wait_ms.max(0) as u64).min(shard.config.fetch_max_wait_ms_max),
    );
    let mut outcomes = shares.serve(&ask).await;
    if fetching {
        outcomes = wait_for_records(shares, &session, ask, outcomes, max_wait).await;
    }
    if step.closed {
        let tps = step.partitions.into_iter().map(|(_, tp)| tp).collect();
        shares.release(&key.0, &key.1, tps).await;
    }
    let full = epoch == INITIAL_EPOCH;
    encode::encode(0, lock_ms, frames(&session, outcomes, named.presets, full))
}

/// Each partition's share of the response's bytes (Kafka's uniform
/// strategy); a partition's read returns at least a batch.
fn partition_max_bytes(max_bytes: i32, partitions: usize) -> u32 {
    let max = u32::try_from(max_bytes.max(1)).unwrap_or(1);
    (max / u32::try_from(partitions.max(1)).unwrap_or(u32::MAX)).max(1)
}

/// While nothing was acquired: waits for a partition of the session to
/// move, then serves the session again (its acknowledgements were applied
/// already), until records are acquired, `max_wait` is over, or the wakes
/// run out. The first outcomes' acknowledgement errors stand.
async fn wait_for_records(
    shares: &Rc<Service>,
    session: &[SessionPartition],
    mut ask: ShareAsk,
    mut outcomes: Vec<ShareOutcome>,
    max_wait: Duration,
) -> Vec<ShareOutcome> {
    let deadline = Instant::now() + max_wait;
    for item in &mut ask.items {
        item.acks.clear();
    }
    // Checked against the coordinator's state once is enough.
    ask.opening = false;
    for _ in 0..WAKES_MAX {
        if outcomes
            .iter()
            .any(|o| !o.acquired.is_empty() || o.error != 0)
        {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let waits: Vec<AppendWait> = session
            .iter()
            .zip(&outcomes)
            .enumerate()
            .filter_map(|(place, ((_, tp), o))| Some(AppendWait::new(place, still(tp, o.seen?))))
            .collect();
        if waits.is_empty() {
            crate::runtime::sleep(left).await;
            break;
        }
        let shard = shares.shard().clone();
        let waited = crate::runtime::timeout(left, shard.wait_for_append(waits, Vec::new())).await;
        let Some(Some(woken)) = waited else {
            // Out of time (records released by a lock that ran out do not
            // move the partition), or nothing to wait on: a last try of
            // every partition finds them.
            let places: Vec<usize> = (0..ask.items.len()).collect();
            serve_again(shares, &ask, &places, &mut outcomes).await;
            break;
        };
        // Only the partitions that moved: the others acquired nothing a
        // moment ago, and one that moved meanwhile ends the next wait at
        // once (its outcome's state is the old one).
        let places: Vec<usize> = woken.outcomes.iter().map(|(place, _)| *place).collect();
        serve_again(shares, &ask, &places, &mut outcomes).await;
    }
    outcomes
}

/// Serves the items of `ask` at `places` again, their outcomes replacing
/// those there but for the first acknowledgement errors, which stand.
async fn serve_again(
    shares: &Rc<Service>,
    ask: &ShareAsk,
    places: &[usize],
    outcomes: &mut [ShareOutcome],
) {
    if places.is_empty() {
        return;
    }
    let again = if places.len() == ask.items.len() {
        shares.serve(ask).await
    } else {
        shares.serve(&ask.only(places)).await
    };
    for (&place, mut outcome) in places.iter().zip(again) {
        outcome.ack_error = outcomes[place].ack_error;
        outcomes[place] = outcome;
    }
}

/// A wait on `tp` until it is no longer as `seen`; the read made on the
/// wake reads nothing (the session is served again instead).
fn still(tp: &TopicPartition, seen: Seen) -> ReadItem {
    ReadItem {
        tp: tp.clone(),
        offset: 0,
        max_bytes: 0,
        min_one_batch: false,
        committed: false,
        current_leader_epoch: -1,
        replica: None,
        to_log_end: true,
        unless_unchanged: Some(seen),
        any_replica: false,
        client_rack: None,
    }
}

/// The response's topics: the refused partitions, then the session's
/// partitions with something to tell (records, an error, acknowledgements
/// answered), or all of them for a session that just opened.
fn frames(
    session: &[SessionPartition],
    outcomes: Vec<ShareOutcome>,
    presets: Vec<Preset>,
    full: bool,
) -> Vec<TopicFrame> {
    let mut topics: Vec<TopicFrame> = Vec::new();
    let mut push = |id: Uuid, frame: PartitionFrame| match topics.last_mut() {
        Some(t) if t.id == id => t.partitions.push(frame),
        _ => topics.push(TopicFrame {
            id,
            partitions: vec![frame],
        }),
    };
    for p in presets {
        let frame = PartitionFrame {
            partition: p.partition,
            error: p.error,
            ack_error: p.error,
            records: Vec::new(),
            acquired: Vec::new(),
        };
        push(p.id, frame);
    }
    for ((id, tp), o) in session.iter().zip(outcomes) {
        let told = full || o.error != 0 || o.ack_error != 0 || !o.acquired.is_empty();
        if !told {
            continue;
        }
        let frame = PartitionFrame {
            partition: tp.partition,
            error: o.error,
            ack_error: o.ack_error,
            records: o.slices.into_iter().map(Piece::File).collect(),
            acquired: o.acquired,
        };
        push(*id, frame);
    }
    topics
}

/// ShareAcknowledge: the acknowledgements applied on the partitions'
/// owners, each partition answered with its first error.
pub async fn acknowledge(
    shares: &Rc<Service>,
    access: &Access,
    request: ShareAcknowledgeRequest,
) -> ShareAcknowledgeResponse {
    let mut response = ShareAcknowledgeResponse::default();
    let group = request.group_id.as_ref().map(|g| g.as_str());
    let Some(key) = member_of(group, request.member_id.as_deref()) else {
        response.error_code = ResponseError::InvalidRequest.code();
        return response;
    };
    if !access.group(Operation::Read, &key.0) {
        response.error_code = ResponseError::GroupAuthorizationFailed.code();
        return response;
    }
    let shard = shares.shard().clone();
    let now_ms = crate::runtime::now_ms();
    let step =
        shares
            .sessions
            .borrow_mut()
            .acknowledge(key.clone(), request.share_session_epoch, now_ms);
    let step = match step {
        Ok(step) => step,
        Err(code) => {
            response.error_code = code;
            return response;
        }
    };
    let topics = acks_by_topic!(request.topics);
    let named = named(&shard, access, topics);
    let ids: Vec<Uuid> = named.partitions.iter().map(|((id, _), _)| *id).collect();
    let ask = ShareAsk {
        group: key.0.clone(),
        member: key.1.clone(),
        opening: false,
        items: named
            .partitions
            .into_iter()
            .map(|((_, tp), acks)| ShareItem {
                tp,
                acks,
                fetch: false,
            })
            .collect(),
        max_records: 0,
        partition_max_bytes: 0,
    };
    let outcomes = shares.serve(&ask).await;
    if step.closed {
        let tps = step.partitions.into_iter().map(|(_, tp)| tp).collect();
        shares.release(&key.0, &key.1, tps).await;
    }
    let answered = named
        .presets
        .iter()
        .map(|p| (p.id, p.partition, p.error))
        .chain(
            ids.iter()
                .zip(&ask.items)
                .zip(&outcomes)
                .map(|((id, item), o)| {
                    let error = if o.error != 0 { o.error } else { o.ack_error };
                    (*id, item.tp.partition, error)
                }),
        );
    for (id, partition, error) in answered {
        let mut p = AckPartitionData::default();
        p.partition_index = partition;
        p.error_code = error;
        p.current_leader.leader_id = -1;
        p.current_leader.leader_epoch = -1;
        match response.responses.last_mut() {
            Some(t) if t.topic_id == id => t.partitions.push(p),
            _ => {
                let mut t = ShareAcknowledgeTopicResponse::default();
                t.topic_id = id;
                t.partitions.push(p);
                response.responses.push(t);
            }
        }
    }
    response
}
