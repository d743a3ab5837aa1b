//! Consumer groups: the coordinator each shard runs for its share of the
//! groups, and committed offsets kept in `__consumer_offsets`.
//!
//! A group's partition of `__consumer_offsets` is Kafka's
//! `abs(hashCode(group id)) % partitions`; the group's *coordinator shard*
//! is that partition's owner shard, so the coordinator writes its records
//! to a log it owns. Only the coordinator shard touches a [`Group`]:
//! requests reaching another shard travel over the coordinators' own mesh
//! (joined by `services`) and are answered through the oneshot inside the
//! [`GroupMsg`]. The coordinator is a service above its shard: it writes
//! and replays through `Shard`, and the shard never calls it by name.
//!
//! On a shard's first group request the coordinator creates the topic if
//! missing (through the controller) and replays the partitions it owns,
//! so committed offsets and group membership survive restarts and crashes.
//! The topic is compacted (`cleanup.policy=compact`, no time or size
//! retention): the latest commit of every (group, topic, partition) and the
//! latest metadata of every group stay, so replay time is bounded by the
//! live state, not by the history.

mod admin;
mod consumer_heartbeat;
pub mod consumer_protocol;
mod gauges;
mod membership;
#[cfg(test)]
mod membership_tests;
mod migration;
mod offsets;
pub mod records;
mod share_heartbeat;
pub mod share_protocol;
mod share_record;
mod share_state;
mod state;
mod txn_offsets;
mod written;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup as ConsumerDescribedGroup;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::share_group_describe_response::DescribedGroup as ShareDescribedGroup;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse, SyncGroupRequest, SyncGroupResponse,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::ResponseError;

use crate::metadata::owner_shard;
use crate::record::{BatchHeader, Records, BATCH_HEADER_LEN};
use crate::runtime::{Mesh, MeshReceiver};
use crate::shard::{AdminOp, ProduceItem, Shard, TopicPartition};

pub use membership::{join_error, Limits};
pub use offsets::{FetchedOffsets, PartitionOffset};
pub use share_state::{ShareReset, ShareSnapshot, ShareWrite, START_UNSET as SHARE_START_UNSET};
use state::Group;

/// Kafka's internal topic for committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// How often the coordinator looks at session timeouts and deadlines.
const TICK: Duration = Duration::from_millis(50);
/// Records per batch the coordinator writes; keeps a batch well under
/// max.message.bytes even with large metadata.
const RECORDS_PER_BATCH_MAX: usize = 100;

/// Who sent a membership request (JoinGroup, ConsumerGroupHeartbeat), as
/// the member record keeps it.
pub struct Sender {
    pub version: i16,
    pub client_id: String,
    /// The connection's peer, `/IP`, for DescribeGroups.
    pub client_host: String,
}

/// A group request on its way to the group's coordinator shard.
pub enum GroupMsg {
    Join {
        sender: Sender,
        request: JoinGroupRequest,
        reply: oneshot::Sender<JoinGroupResponse>,
    },
    Sync {
        version: i16,
        request: SyncGroupRequest,
        reply: oneshot::Sender<SyncGroupResponse>,
    },
    Heartbeat {
        request: HeartbeatRequest,
        reply: oneshot::Sender<HeartbeatResponse>,
    },
    Leave {
        version: i16,
        request: LeaveGroupRequest,
        reply: oneshot::Sender<LeaveGroupResponse>,
    },
    Commit {
        version: i16,
        request: OffsetCommitRequest,
        /// OffsetCommit v1's per-partition commit times in request order
        /// (-1: now); empty for every other version, which has none.
        commit_timestamps: Vec<i64>,
        reply: oneshot::Sender<OffsetCommitResponse>,
    },
    FetchOffsets {
        group_id: String,
        /// `None`: every partition with a committed offset.
        topics: Option<Vec<(String, Vec<i32>)>>,
        /// Answer UNSTABLE_OFFSET_COMMIT where a transaction holds an offset.
        require_stable: bool,
        reply: oneshot::Sender<FetchedOffsets>,
    },
    Describe {
        group_id: String,
        reply: oneshot::Sender<DescribedGroup>,
    },
    /// Sent to every shard: the groups it coordinates.
    List {
        states: Vec<String>,
        reply: oneshot::Sender<Vec<ListedGroup>>,
    },
    Delete {
        group_id: String,
        reply: oneshot::Sender<i16>,
    },
    DeleteOffsets {
        request: OffsetDeleteRequest,
        reply: oneshot::Sender<OffsetDeleteResponse>,
    },
    TxnCommit {
        request: TxnOffsetCommitRequest,
        /// KIP-890: the offsets partition's verification point at which
        /// the transaction coordinator confirmed it is in the producer's
        /// transaction; `None` when one was open there already.
        verified: Option<i64>,
        reply: oneshot::Sender<TxnOffsetCommitResponse>,
    },
    /// ConsumerGroupDescribe of one group (KIP-848).
    ConsumerDescribe {
        group_id: String,
        reply: oneshot::Sender<ConsumerDescribedGroup>,
    },
    /// The consumer group protocol's heartbeat (KIP-848).
    ConsumerHeartbeat {
        sender: Sender,
        request: ConsumerGroupHeartbeatRequest,
        reply: oneshot::Sender<ConsumerGroupHeartbeatResponse>,
    },
    /// A share group member's heartbeat (KIP-932).
    ShareHeartbeat {
        sender: Sender,
        request: ShareGroupHeartbeatRequest,
        reply: oneshot::Sender<ShareGroupHeartbeatResponse>,
    },
    /// A share partition's state, for its leader to load (KIP-932).
    ShareStateRead {
        group_id: String,
        topic: String,
        partition: i32,
        reply: oneshot::Sender<Result<Option<ShareSnapshot>, i16>>,
    },
    /// A share partition's state, written by its leader.
    /// Share partitions' states, written in one append: the code of each.
    ShareStateWrite {
        group_id: String,
        states: Vec<share_state::ShareWrite>,
        reply: oneshot::Sender<Vec<i16>>,
    },
    /// DescribeShareGroupOffsets of one group (KIP-932): its partitions'
    /// start offsets, of the named (topic, partitions) or of all.
    ShareOffsets {
        group_id: String,
        topics: Option<Vec<(String, Vec<i32>)>>,
        reply: oneshot::Sender<
            kafka_protocol::messages::describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseGroup,
        >,
    },
    /// AlterShareGroupOffsets or DeleteShareGroupOffsets of one group.
    ShareReset {
        group_id: String,
        reset: ShareReset,
        reply: oneshot::Sender<Result<(), i16>>,
    },
    /// ShareGroupDescribe of one group (KIP-932).
    ShareDescribe {
        group_id: String,
        reply: oneshot::Sender<ShareDescribedGroup>,
    },
}

impl GroupMsg {
    /// The group the message is about; `None` for a listing.
    fn group_id(&self) -> Option<&str> {
        Some(match self {
            GroupMsg::Join { request, .. } => &request.group_id,
            GroupMsg::Sync { request, .. } => &request.group_id,
            GroupMsg::Heartbeat { request, .. } => &request.group_id,
            GroupMsg::Leave { request, .. } => &request.group_id,
            GroupMsg::Commit { request, .. } => &request.group_id,
            GroupMsg::FetchOffsets { group_id, .. }
            | GroupMsg::Describe { group_id, .. }
            | GroupMsg::Delete { group_id, .. }
            | GroupMsg::ConsumerDescribe { group_id, .. }
            | GroupMsg::ShareDescribe { group_id, .. }
            | GroupMsg::ShareStateRead { group_id, .. }
            | GroupMsg::ShareOffsets { group_id, .. }
            | GroupMsg::ShareReset { group_id, .. }
            | GroupMsg::ShareStateWrite { group_id, .. } => group_id,
            GroupMsg::DeleteOffsets { request, .. } => &request.group_id,
            GroupMsg::TxnCommit { request, .. } => &request.group_id,
            GroupMsg::ConsumerHeartbeat { request, .. } => &request.group_id,
            GroupMsg::ShareHeartbeat { request, .. } => &request.group_id,
            GroupMsg::List { .. } => return None,
        })
    }
}

/// The groups one shard coordinates: this core's group service, above its
/// shard (whose `__consumer_offsets` partitions it writes through
/// `Shard::produce`). Owned by that core alone; the other cores reach it
/// over its own mesh of [`GroupMsg`]s.
pub struct Coordinator {
    shard: Rc<Shard>,
    mesh: Mesh<GroupMsg>,
    groups: RefCell<HashMap<String, Group>>,
    /// The offsets partitions whose groups are loaded here, with the leader
    /// epoch they were loaded at: a partition this broker leads again
    /// after a leadership move is loaded afresh from its log.
    loaded: RefCell<BTreeMap<i32, i32>>,
    /// The tick loop runs (from the first load on).
    ticking: Cell<bool>,
    /// Serializes loads (topic creation and replay).
    loading: futures::lock::Mutex<()>,
}

impl Coordinator {
    pub fn new(shard: Rc<Shard>, mesh: Mesh<GroupMsg>) -> Coordinator {
        Coordinator {
            shard,
            mesh,
            groups: RefCell::default(),
            loaded: RefCell::default(),
            ticking: Cell::default(),
            loading: futures::lock::Mutex::default(),
        }
    }

    /// The shard this coordinator writes through.
    pub fn shard(&self) -> &Rc<Shard> {
        &self.shard
    }

    /// `group`'s settings: its own group configs over the broker's.
    pub fn settings(&self, group: &str) -> crate::group_configs::GroupSettings {
        let topics = self.shard.topics();
        topics.group_configs.settings(&self.shard.config, group)
    }

    /// Serves group requests from one peer core until it goes away, each
    /// as its own task so a slow write does not hold up the queue.
    pub async fn serve_peer(self: Rc<Self>, receiver: MeshReceiver<GroupMsg>) {
        while let Some(msg) = receiver.recv().await {
            let coord = self.clone();
            let quota = Duration::from_micros(self.shard.config.task_quota_us.max(100));
            crate::runtime::spawn_serving(quota, serve(coord, msg)).detach();
        }
    }

    /// A transaction marker was written to `partition` of the offsets
    /// topic on this shard: settle the producer's pending transactional
    /// offsets there.
    pub fn txn_marker_written(&self, partition: i32, producer_id: i64, commit: bool) {
        if self.loaded.borrow().contains_key(&partition) {
            let partitions = offsets_partition_count(&self.shard);
            txn_offsets::settle(self, partition, partitions, producer_id, commit);
        }
    }
}

/// Kafka's `Utils.abs(groupId.hashCode()) % partitions`.
pub fn offsets_partition(group_id: &str, partitions: i32) -> i32 {
    crate::metadata::java_hash_partition(group_id, partitions)
}

/// Partitions of `__consumer_offsets`: the topic's, or the configured count
/// it will be created with.
pub fn offsets_partition_count(shard: &Shard) -> i32 {
    shard
        .topics()
        .get(OFFSETS_TOPIC)
        .map_or(shard.config.offsets_topic_num_partitions, |t| t.partitions)
}

/// The shard that coordinates `group_id`.
pub fn coordinator_shard(shard: &Shard, group_id: &str) -> usize {
    let p = offsets_partition(group_id, offsets_partition_count(shard));
    owner_shard(OFFSETS_TOPIC, p, shard.count)
}

/// Kafka refuses empty group ids; ours must also fit the i16-length
/// strings of the `__consumer_offsets` records.
pub fn valid_group_id(group_id: &str) -> bool {
    !group_id.is_empty() && fits_record(group_id)
}

/// Whether a string fits an i16-length string of the topic's records.
/// Flexible request versions can carry longer ones.
pub fn fits_record(s: &str) -> bool {
    s.len() <= i16::MAX as usize
}

/// Hands `msg` to the coordinator shard of `group_id`. If that shard is
/// gone, `msg` (and its reply sender) is dropped and the asker answers
/// COORDINATOR_NOT_AVAILABLE.
pub async fn route(coord: &Rc<Coordinator>, group_id: &str, msg: GroupMsg) {
    let shard = &coord.shard;
    if coordinated_elsewhere(shard, group_id) {
        // Another broker coordinates it: dropping `msg` answers
        // COORDINATOR_NOT_AVAILABLE, and the client finds the coordinator.
        return;
    }
    let target = coordinator_shard(shard, group_id);
    send(coord, target, msg).await;
}

/// Sends a request to `group_id`'s coordinator (this broker's) and waits
/// for its answer; `None` if the coordinator dropped it (another broker
/// coordinates the group, or it could not load).
pub async fn ask<R>(
    coord: &Rc<Coordinator>,
    group_id: &str,
    msg: impl FnOnce(oneshot::Sender<R>) -> GroupMsg,
) -> Option<R> {
    let (tx, rx) = oneshot::channel();
    route(coord, group_id, msg(tx)).await;
    rx.await.ok()
}

/// Whether another broker leads `group_id`'s partition of
/// `__consumer_offsets`, and so coordinates it.
pub fn coordinated_elsewhere(shard: &Shard, group_id: &str) -> bool {
    let partition = offsets_partition(group_id, offsets_partition_count(shard));
    shard.topics().led_elsewhere(OFFSETS_TOPIC, partition)
}

/// Hands `msg` to shard `target`'s coordinator.
pub async fn send(coord: &Rc<Coordinator>, target: usize, msg: GroupMsg) {
    if target == coord.shard.id {
        serve(coord.clone(), msg).await;
    } else {
        let _ = coord.mesh.send_to(target, msg).await;
    }
}

/// The not-available code an asker answers with when the coordinator
/// dropped its request.
pub fn not_available() -> i16 {
    ResponseError::CoordinatorNotAvailable.code()
}

fn limits(shard: &Shard) -> Limits {
    let c = &shard.config;
    Limits {
        initial_delay_ms: c.group_initial_rebalance_delay_ms as i64,
        min_session_timeout_ms: c.group_min_session_timeout_ms,
        max_session_timeout_ms: c.group_max_session_timeout_ms,
        max_size: c.group_max_size,
    }
}

/// Runs one group request on this (the coordinator) shard.
pub async fn serve(coord: Rc<Coordinator>, msg: GroupMsg) {
    if !ensure_loaded(&coord).await {
        return; // dropping `msg` answers COORDINATOR_NOT_AVAILABLE
    }
    if msg
        .group_id()
        .is_some_and(|id| coordinated_elsewhere(&coord.shard, id))
    {
        // Sent here before `__consumer_offsets` existed (every broker then
        // answers for itself), and another broker leads the group's
        // partition of it now: not a group of this one.
        return;
    }
    let now = crate::runtime::now_ms();
    match msg {
        GroupMsg::Join {
            sender,
            request,
            reply,
        } => join(&coord, sender, request, reply, now).await,
        GroupMsg::Sync {
            version,
            request,
            reply,
        } => {
            let group_id = request.group_id.to_string();
            let sync = membership::Sync { version, request };
            let persist = with_group(&coord, &group_id, |g| match g {
                Some(g) if g.has_consumer_members() => {
                    let response = migration::sync(&coord, g, version, &sync.request, now);
                    let _ = reply.send(response);
                    false
                }
                Some(g) => membership::sync(g, sync, reply, now),
                None => {
                    let code = ResponseError::UnknownMemberId.code();
                    let _ = reply.send(membership::sync_error(code));
                    false
                }
            });
            if persist {
                persist_group(&coord, &group_id).await;
            }
        }
        GroupMsg::Heartbeat { request, reply } => {
            let group_id = request.group_id.to_string();
            let response = with_group(&coord, &group_id, |g| match g {
                Some(g) if g.has_consumer_members() => migration::heartbeat(g, &request, now),
                Some(g) => membership::heartbeat(g, &request, now),
                None => {
                    let mut r = HeartbeatResponse::default();
                    r.error_code = ResponseError::UnknownMemberId.code();
                    r
                }
            });
            let _ = reply.send(response);
        }
        GroupMsg::Leave {
            version,
            request,
            reply,
        } => {
            let group_id = request.group_id.to_string();
            let limits = limits(&coord.shard);
            let (mut response, persist, changed) = with_group(&coord, &group_id, |g| match g {
                Some(g) if g.has_consumer_members() => {
                    let (r, changed) = migration::leave(g, version, &request);
                    (r, false, changed)
                }
                Some(g) => {
                    let r = membership::leave(g, &limits, version, &request, now);
                    let persist = g.state == state::GroupState::Empty;
                    (r, persist, migration::Changed::Nothing)
                }
                None => (
                    unknown_leave(version, &request),
                    false,
                    migration::Changed::Nothing,
                ),
            });
            if persist {
                persist_group(&coord, &group_id).await;
            }
            if let Err(code) = persist_changed(&coord, &group_id, changed).await {
                response.error_code = code;
            }
            let _ = reply.send(response);
        }
        GroupMsg::Commit {
            version,
            request,
            commit_timestamps,
            reply,
        } => {
            let times = offsets::CommitTimes {
                now,
                given: commit_timestamps,
            };
            let _ = reply.send(offsets::commit(&coord, version, request, times).await);
        }
        GroupMsg::TxnCommit {
            request,
            verified,
            reply,
        } => {
            let _ = reply.send(txn_offsets::commit(&coord, request, verified, now).await);
        }
        GroupMsg::FetchOffsets {
            group_id,
            topics,
            require_stable,
            reply,
        } => {
            let _ = reply.send(offsets::fetch(&coord, &group_id, topics, require_stable));
        }
        GroupMsg::Describe { group_id, reply } => {
            let _ = reply.send(admin::describe(&coord, &group_id));
        }
        GroupMsg::List { states, reply } => {
            let _ = reply.send(admin::list(&coord, &states));
        }
        GroupMsg::Delete { group_id, reply } => {
            let _ = reply.send(admin::delete(&coord, &group_id).await);
        }
        GroupMsg::DeleteOffsets { request, reply } => {
            let _ = reply.send(offsets::delete(&coord, request).await);
        }
        GroupMsg::ConsumerDescribe { group_id, reply } => {
            let _ = reply.send(admin::consumer_describe(&coord, &group_id));
        }
        GroupMsg::ConsumerHeartbeat {
            sender,
            request,
            reply,
        } => {
            let group_id = request.group_id.to_string();
            let (mut response, changed) =
                consumer_heartbeat::heartbeat(&coord, sender, request, now);
            // Answered once a coordinator taking the group over would know
            // it too: else two members could come to own one partition.
            if let Err(code) = persist_changed(&coord, &group_id, changed).await {
                response.error_code = code;
                response.assignment = None;
            }
            let _ = reply.send(response);
        }
        GroupMsg::ShareHeartbeat {
            sender,
            request,
            reply,
        } => {
            let group_id = request.group_id.to_string();
            let (mut response, changed) = share_heartbeat::heartbeat(&coord, sender, request, now);
            // Answered once a coordinator taking the group over would
            // know it too, as a consumer protocol heartbeat is.
            if changed {
                if let Err(code) = persist_membership(&coord, &group_id).await {
                    response.error_code = code;
                    response.assignment = None;
                }
            }
            let _ = reply.send(response);
        }
        GroupMsg::ShareStateRead {
            group_id,
            topic,
            partition,
            reply,
        } => {
            let _ = reply.send(share_state::read(&coord, &group_id, &topic, partition));
        }
        GroupMsg::ShareStateWrite {
            group_id,
            states,
            reply,
        } => {
            let written = share_state::write(&coord, &group_id, states);
            let _ = reply.send(written.await);
        }
        GroupMsg::ShareOffsets {
            group_id,
            topics,
            reply,
        } => {
            let _ = reply.send(share_state::describe_offsets(&coord, &group_id, topics));
        }
        GroupMsg::ShareDescribe { group_id, reply } => {
            let _ = reply.send(share_heartbeat::describe(&coord, &group_id));
        }
        GroupMsg::ShareReset {
            group_id,
            reset,
            reply,
        } => {
            let _ = reply.send(share_state::reset(&coord, &group_id, reset).await);
        }
    }
}

fn unknown_leave(version: i16, request: &LeaveGroupRequest) -> LeaveGroupResponse {
    let members = membership::leave_identities(version, request)
        .into_iter()
        .map(|(member_id, instance_id)| {
            let mut m = kafka_protocol::messages::leave_group_response::MemberResponse::default();
            m.member_id = member_id.into();
            m.group_instance_id = instance_id.map(Into::into);
            m.error_code = ResponseError::UnknownMemberId.code();
            m
        })
        .collect();
    membership::leave_response(version, members)
}

async fn join(
    coord: &Rc<Coordinator>,
    who: Sender,
    request: JoinGroupRequest,
    reply: oneshot::Sender<JoinGroupResponse>,
    now: i64,
) {
    let group_id = request.group_id.to_string();
    let member_id = request.member_id.to_string();
    let limits = limits(&coord.shard);
    let refuse = |reply: oneshot::Sender<JoinGroupResponse>, e: ResponseError| {
        let _ = reply.send(membership::join_error(e.code(), &member_id));
    };
    if !valid_group_id(&group_id) {
        return refuse(reply, ResponseError::InvalidGroupId);
    }
    let strings_fit = fits_record(&member_id)
        && request.group_instance_id.as_deref().is_none_or(fits_record)
        && fits_record(&request.protocol_type)
        && request.protocols.iter().all(|p| fits_record(&p.name));
    if !strings_fit {
        return refuse(reply, ResponseError::InvalidRequest);
    }
    let session = request.session_timeout_ms;
    if session < limits.min_session_timeout_ms || session > limits.max_session_timeout_ms {
        return refuse(reply, ResponseError::InvalidSessionTimeout);
    }
    if !forget_empty_share_group(coord, &group_id) {
        return refuse(reply, ResponseError::InconsistentGroupProtocol);
    }
    let consumer_held = coord
        .groups
        .borrow()
        .get(&group_id)
        .is_some_and(Group::has_consumer_members);
    if consumer_held {
        // A classic member of a consumer protocol group (a group moving
        // between protocols): the group assigns its partitions.
        let (response, changed) = with_group(coord, &group_id, |g| {
            let g = g.expect("held above");
            migration::join(coord, g, who, request, now)
        });
        let response = match persist_changed(coord, &group_id, changed).await {
            Ok(()) => response,
            Err(code) => membership::join_error(code, &member_id),
        };
        let _ = reply.send(response);
        return;
    }
    if forget_empty_consumer_group(coord, &group_id).await.is_err() {
        return refuse(reply, ResponseError::CoordinatorNotAvailable);
    }
    let exists = coord.groups.borrow().contains_key(&group_id);
    if !exists {
        if !member_id.is_empty() {
            return refuse(reply, ResponseError::UnknownMemberId);
        }
        if coord.groups.borrow().len() >= coord.shard.config.groups_per_shard_max {
            return refuse(reply, ResponseError::CoordinatorNotAvailable);
        }
    }
    let join = membership::Join {
        version: who.version,
        client_id: who.client_id,
        client_host: who.client_host,
        request,
    };
    let persist = {
        let mut groups = coord.groups.borrow_mut();
        let group = groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(group_id.clone(), now));
        membership::join(group, &limits, join, reply, now)
    };
    if persist {
        persist_group(coord, &group_id).await;
    }
}

/// A classic member joining a group whose consumer protocol members all
/// left: the group is a classic group from now on, so the empty consumer
/// protocol membership goes (and its record, or a coordinator taking the
/// group over would check this group's commits against it).
async fn forget_empty_consumer_group(coord: &Rc<Coordinator>, group_id: &str) -> Result<(), i16> {
    with_group(coord, group_id, |g| {
        if let Some(g) = g.filter(|g| g.consumer.as_ref().is_some_and(|c| c.is_empty())) {
            g.consumer = None;
        }
    });
    // Also the tombstones of an empty share group given up just before.
    persist_membership(coord, group_id).await
}

/// [`Group::forget_empty_share`] of `group_id`, if held here.
fn forget_empty_share_group(coord: &Coordinator, group_id: &str) -> bool {
    with_group(coord, group_id, |g| g.is_none_or(Group::forget_empty_share))
}

/// Runs `f` on the group if this shard holds it.
fn with_group<R>(
    coord: &Coordinator,
    group_id: &str,
    f: impl FnOnce(Option<&mut Group>) -> R,
) -> R {
    let mut groups = coord.groups.borrow_mut();
    f(groups.get_mut(group_id))
}

/// Creates `__consumer_offsets` if needed, drops the groups of partitions
/// this broker no longer leads (at the epoch they were loaded at), and
/// replays the partitions of it this shard now leads and has not loaded.
/// False if that failed (the asker retries).
async fn ensure_loaded(coord: &Rc<Coordinator>) -> bool {
    if loads_current(coord) {
        return true;
    }
    let _loading = coord.loading.lock().await;
    let shard = &coord.shard;
    if shard.topics().get(OFFSETS_TOPIC).is_none() && !create_offsets_topic(shard).await {
        return false;
    }
    let Some(topic) = shard.topics().get(OFFSETS_TOPIC).cloned() else {
        return false;
    };
    unload_moved(coord);
    let started = std::time::Instant::now();
    let mut records = 0usize;
    for partition in 0..topic.partitions {
        let Some(epoch) = shard.led_epoch(OFFSETS_TOPIC, partition) else {
            continue;
        };
        if coord.loaded.borrow().get(&partition) == Some(&epoch) {
            continue;
        }
        match replay(coord, partition).await {
            Ok(n) => records += n,
            Err(e) => {
                tracing::error!(partition, error = %e, "replaying {OFFSETS_TOPIC}");
                return false;
            }
        }
        coord.loaded.borrow_mut().insert(partition, epoch);
        tracing::info!(
            shard = shard.id,
            partition,
            leader_epoch = epoch,
            "coordinating the groups of {OFFSETS_TOPIC} partition"
        );
    }
    tracing::info!(
        shard = shard.id,
        groups = coord.groups.borrow().len(),
        records,
        ms = started.elapsed().as_millis() as u64,
        "group coordinator loaded"
    );
    if !coord.ticking.replace(true) {
        crate::runtime::spawn_local(tick_loop(coord.clone())).detach();
    }
    true
}

/// Loads the partitions this shard has just come to lead (the topic
/// exists: a partition of it changed hands).
pub async fn load_led(coord: Rc<Coordinator>) {
    if !ensure_loaded(&coord).await {
        tracing::warn!(
            shard = coord.shard.id,
            "{OFFSETS_TOPIC} not loaded after a leadership change; the next request retries"
        );
    }
}

async fn create_offsets_topic(shard: &Rc<Shard>) -> bool {
    let outcome = shard
        .admin(AdminOp::CreateTopic {
            name: OFFSETS_TOPIC.to_string(),
            assignments: None,
            replication_factor: crate::cluster::internal_replication_factor(
                &shard.topics(),
                &shard.config,
            ),
            partitions: shard.config.offsets_topic_num_partitions,
            configs: offsets_topic_configs(),
            validate_only: false,
        })
        .await;
    let exists = ResponseError::TopicAlreadyExists.code();
    if outcome.error != 0 && outcome.error != exists {
        tracing::warn!(error = outcome.error, message = ?outcome.message, "cannot create {OFFSETS_TOPIC}");
        return false;
    }
    true
}

/// Whether what is loaded is exactly what this shard leads now.
fn loads_current(coord: &Coordinator) -> bool {
    let shard = &coord.shard;
    shard.topics().get(OFFSETS_TOPIC).is_some()
        && *coord.loaded.borrow() == shard.led_partitions(OFFSETS_TOPIC)
}

/// Forgets the groups of partitions this broker no longer leads at the
/// epoch they were loaded at: their new coordinator has them, and if this
/// broker leads them again it reloads them from the log.
fn unload_moved(coord: &Coordinator) {
    let shard = &coord.shard;
    let partitions = offsets_partition_count(shard);
    let moved: Vec<i32> = coord
        .loaded
        .borrow()
        .iter()
        .filter(|(&p, &epoch)| shard.led_epoch(OFFSETS_TOPIC, p) != Some(epoch))
        .map(|(&p, _)| p)
        .collect();
    if moved.is_empty() {
        return;
    }
    let mut groups = coord.groups.borrow_mut();
    let before = groups.len();
    groups.retain(|id, _| !moved.contains(&offsets_partition(id, partitions)));
    let mut loaded = coord.loaded.borrow_mut();
    for p in &moved {
        loaded.remove(p);
    }
    tracing::info!(shard = shard.id, partitions = ?moved, groups = before - groups.len(), "no longer coordinating the groups of moved {OFFSETS_TOPIC} partitions");
}

fn offsets_topic_configs() -> crate::config::TopicConfigs {
    [
        // Compacted, never deleted by time or size: the latest commit of
        // every (group, topic, partition) stays.
        ("cleanup.policy", "compact"),
        // Kafka's offsets.topic.segment.bytes: segments small enough to roll
        // (only closed segments are compacted).
        ("segment.bytes", "104857600"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Applies every record of one owned partition of the topic, in order.
async fn replay(coord: &Rc<Coordinator>, partition: i32) -> std::io::Result<usize> {
    let tp = TopicPartition {
        topic: Arc::from(OFFSETS_TOPIC),
        partition,
    };
    coord
        .shard
        .replay_partition(tp, |bytes| apply_batches(coord, partition, bytes))
        .await
}

/// Applies the records of whole batches in `bytes`; returns the offset
/// after the last batch and how many records were applied.
fn apply_batches(coord: &Coordinator, partition: i32, mut bytes: &[u8]) -> (i64, usize) {
    let now = crate::runtime::now_ms();
    let mut next = -1;
    let mut applied = 0;
    while let Ok(header) = BatchHeader::parse(bytes) {
        let len = header.total_len();
        if len > bytes.len() {
            break;
        }
        next = header.last_offset() + 1;
        if header.is_control() {
            if let Some(marker) = crate::record::parse_marker(&bytes[..len]) {
                let partitions = offsets_partition_count(&coord.shard);
                txn_offsets::settle(
                    coord,
                    partition,
                    partitions,
                    header.producer_id,
                    marker.commit,
                );
            }
        } else if header.is_compressed() {
            tracing::warn!(
                offset = header.base_offset,
                "skipping a batch {OFFSETS_TOPIC} cannot hold"
            );
        } else {
            let section = &bytes[BATCH_HEADER_LEN..len];
            for record in Records::new(section, header.records_count) {
                let Ok(record) = record else { break };
                let log_offset = header.base_offset + i64::from(record.offset_delta);
                let producer = header.is_transactional().then_some(header.producer_id);
                match records::decode(record.key, record.value) {
                    Ok(r) => {
                        apply_record(coord, r, producer, log_offset, now);
                        applied += 1;
                    }
                    Err(e) => {
                        tracing::warn!(log_offset, error = %e, "unreadable {OFFSETS_TOPIC} record")
                    }
                }
            }
        }
        bytes = &bytes[len..];
    }
    (next, applied)
}

/// The group `group` of a replayed record, made empty if new.
fn held_or_new(groups: &mut HashMap<String, Group>, group: String, now: i64) -> &mut Group {
    groups
        .entry(group.clone())
        .or_insert_with(|| Group::new(group, now))
}

/// Applies one record of the topic to this shard's groups; a record of a
/// transaction (`producer`) waits for that transaction's marker.
fn apply_record(
    coord: &Coordinator,
    record: records::OffsetsRecord,
    producer: Option<i64>,
    log_offset: i64,
    now: i64,
) {
    let mut groups = coord.groups.borrow_mut();
    match record {
        records::OffsetsRecord::Offset {
            group,
            topic,
            partition,
            value,
        } => {
            let g = held_or_new(&mut groups, group, now);
            match (producer, value) {
                (Some(producer_id), Some(value)) => {
                    txn_offsets::hold(g, producer_id, topic, partition, value, log_offset)
                }
                (_, value) => offsets::apply(g, topic, partition, value, log_offset),
            }
        }
        records::OffsetsRecord::Group { group, value: None } => {
            groups.remove(&group);
        }
        records::OffsetsRecord::Membership {
            protocol,
            group,
            part,
            value,
        } => {
            if value.is_none() && !groups.contains_key(&group) {
                return;
            }
            let g = held_or_new(&mut groups, group, now);
            let value = value.as_deref();
            let replayed = match protocol {
                records::Protocol::Consumer => {
                    let (consumer, noted) = (&mut g.consumer, &mut g.consumer_written);
                    written::replay(consumer, noted, part, value, now)
                }
                records::Protocol::Share => {
                    let (share, noted) = (&mut g.share, &mut g.share_written);
                    written::replay(share, noted, part, value, now)
                }
            };
            if let Err(e) = replayed {
                tracing::warn!(group = %g.id, log_offset, ?protocol, error = %e, "unreadable group membership record");
            }
        }
        records::OffsetsRecord::ShareState {
            group,
            topic,
            partition,
            value,
        } => {
            let g = held_or_new(&mut groups, group, now);
            share_state::apply(g, (topic, partition), value);
        }
        records::OffsetsRecord::Group {
            group,
            value: Some(value),
        } => {
            let g = held_or_new(&mut groups, group, now);
            if log_offset > g.metadata_log_offset {
                g.metadata_log_offset = log_offset;
                g.restore(value, now);
            }
        }
    }
}

/// A record to write: key and value (`None` = tombstone).
type KeyValue = (Vec<u8>, Option<Vec<u8>>);

/// Appends records to the group's partition of the topic, which this
/// shard owns. Returns the log offset of the first record, or the Kafka
/// error code of the failure.
async fn append(coord: &Rc<Coordinator>, group_id: &str, records: &[KeyValue]) -> Result<i64, i16> {
    append_as(coord, group_id, records, None, None).await
}

/// [`append`], as `producer`'s (id, epoch) transactional batches when given
/// (TxnOffsetCommit, with the verification point the commit was verified
/// at), else as plain batches.
async fn append_as(
    coord: &Rc<Coordinator>,
    group_id: &str,
    records: &[KeyValue],
    producer: Option<(i64, i16)>,
    txn_verified: Option<i64>,
) -> Result<i64, i16> {
    let shard = &coord.shard;
    let partition = offsets_partition(group_id, offsets_partition_count(shard));
    let tp = TopicPartition {
        topic: Arc::from(OFFSETS_TOPIC),
        partition,
    };
    if records.is_empty() {
        return Ok(-1);
    }
    let now = crate::runtime::now_ms();
    // Every batch in one produce: one append, all or nothing, at
    // consecutive offsets (what callers number the records by).
    let mut all = bytes::BytesMut::new();
    for chunk in records.chunks(RECORDS_PER_BATCH_MAX) {
        let specs: Vec<crate::record::build::RecordSpec<'_>> = chunk
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), v.as_deref(), now, &[][..]))
            .collect();
        let mut batch: Bytes = crate::record::build::build_batch(0, &specs);
        if let Some((producer_id, epoch)) = producer {
            batch = crate::record::build::with_producer(&batch, producer_id, epoch, -1, true);
        }
        all.extend_from_slice(&batch);
    }
    let item = ProduceItem {
        tp: tp.clone(),
        records: crate::record::Validated::check(all.freeze(), u32::MAX)
            .expect("batches this coordinator built are valid"),
        acks: -1,
        origin: crate::storage::AppendOrigin::Coordinator,
        timeout_ms: shard.config.offsets_commit_timeout_ms,
        txn_verified,
    };
    let outcome = shard.produce(vec![item]).await.remove(0);
    if outcome.error != 0 {
        tracing::warn!(
            group = group_id,
            error = outcome.error,
            "writing to {OFFSETS_TOPIC}"
        );
        return Err(outcome.error);
    }
    Ok(outcome.base_offset)
}

/// Writes what changed of a group's consumer protocol or share group
/// membership (tombstones of one that is gone); the Kafka error code of a
/// failure.
async fn persist_membership(coord: &Rc<Coordinator>, group_id: &str) -> Result<(), i16> {
    let (records, parts) = membership_records(group_id, membership_changes(coord, group_id));
    match append(coord, group_id, &records).await {
        Ok(_) => Ok(()),
        Err(code) => {
            tracing::debug!(group = group_id, code, "group membership not written");
            membership_failed(coord, group_id, &parts);
            Err(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}

/// [`Group::membership_changes`] of `group_id`, if held here.
fn membership_changes(coord: &Coordinator, group_id: &str) -> Vec<written::Change> {
    with_group(coord, group_id, |g| {
        g.map(Group::membership_changes).unwrap_or_default()
    })
}

/// The records of `changes`, keyed, and which each is (for
/// [`membership_failed`]).
fn membership_records(
    group_id: &str,
    changes: Vec<written::Change>,
) -> (Vec<KeyValue>, Vec<(records::Protocol, records::Part)>) {
    changes
        .into_iter()
        .map(|c| {
            let key = records::membership_key(c.protocol, group_id, &c.part);
            ((key, c.value), (c.protocol, c.part))
        })
        .unzip()
}

/// [`Group::membership_failed`] of `group_id`, if held here.
fn membership_failed(
    coord: &Coordinator,
    group_id: &str,
    parts: &[(records::Protocol, records::Part)],
) {
    with_group(coord, group_id, |g| {
        if let Some(g) = g {
            g.membership_failed(parts);
        }
    });
}

/// Writes what a request changed before it is answered.
async fn persist_changed(
    coord: &Rc<Coordinator>,
    group_id: &str,
    changed: migration::Changed,
) -> Result<(), i16> {
    match changed {
        migration::Changed::Nothing => Ok(()),
        migration::Changed::Membership => persist_membership(coord, group_id).await,
        migration::Changed::Protocol => persist_both(coord, group_id).await,
    }
}

/// Writes a group that changed protocol: its classic record and its
/// consumer protocol record in one batch, so that a coordinator taking it
/// over never finds it in both shapes or in neither.
async fn persist_both(coord: &Rc<Coordinator>, group_id: &str) -> Result<(), i16> {
    let now = crate::runtime::now_ms();
    let classic = {
        let groups = coord.groups.borrow();
        let value = groups
            .get(group_id)
            .map(|g| records::group_value(&g.to_value(now)));
        (records::group_key(group_id), value)
    };
    let (membership, parts) = membership_records(group_id, membership_changes(coord, group_id));
    let records: Vec<KeyValue> = std::iter::once(classic).chain(membership).collect();
    match append(coord, group_id, &records).await {
        Ok(at) => {
            if let Some(g) = coord.groups.borrow_mut().get_mut(group_id) {
                g.metadata_log_offset = g.metadata_log_offset.max(at);
            }
            Ok(())
        }
        Err(code) => {
            tracing::warn!(
                group = group_id,
                code,
                "group changing protocol not written"
            );
            membership_failed(coord, group_id, &parts);
            Err(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}

/// Writes the group's current metadata record (or a tombstone if the
/// group is gone).
async fn persist_group(coord: &Rc<Coordinator>, group_id: &str) {
    let now = crate::runtime::now_ms();
    let value = coord
        .groups
        .borrow()
        .get(group_id)
        .map(|g| records::group_value(&g.to_value(now)));
    let record = (records::group_key(group_id), value);
    if let Ok(at) = append(coord, group_id, &[record]).await {
        if let Some(g) = coord.groups.borrow_mut().get_mut(group_id) {
            g.metadata_log_offset = g.metadata_log_offset.max(at);
        }
    }
}

/// Session timeouts, join and sync deadlines, offset expiry; until the
/// shard stops. Each pass is bounded by the groups this shard holds.
async fn tick_loop(coord: Rc<Coordinator>) {
    let shard = &coord.shard;
    let limits = limits(shard);
    let retention_ms = shard
        .config
        .offsets_retention_minutes
        .saturating_mul(60_000);
    while crate::runtime::timeout(TICK, shard.stopping.changed_since(0))
        .await
        .is_none()
    {
        unload_moved(&coord);
        let now = crate::runtime::now_ms();
        let mut to_persist = Vec::new();
        let mut to_expire = Vec::new();
        let mut memberships_to_persist = Vec::new();
        // One snapshot of the group configs for the whole pass.
        let topics = shard.topics();
        let settings = |id: &str| topics.group_configs.settings(&shard.config, id);
        for (id, g) in coord.groups.borrow_mut().iter_mut() {
            if membership::tick(g, &limits, now) {
                to_persist.push(id.clone());
            }
            if let Some(consumer) = &mut g.consumer {
                if consumer.expire(&consumer_heartbeat::limits(&coord, &settings(id)), now) {
                    // The last consumer protocol member may have gone.
                    let changed = if migration::maybe_downgrade(&coord, g, &limits, now) {
                        migration::Changed::Protocol
                    } else {
                        migration::Changed::Membership
                    };
                    memberships_to_persist.push((id.clone(), changed));
                }
            }
            if let Some(share) = &mut g.share {
                if share.expire(&share_heartbeat::limits(&coord, &settings(id)), now) {
                    memberships_to_persist.push((id.clone(), migration::Changed::Membership));
                }
            }
            if offsets::expired(g, retention_ms, now) {
                to_expire.push(id.clone());
            }
        }
        for id in to_persist {
            persist_group(&coord, &id).await;
        }
        for (id, changed) in memberships_to_persist {
            let _ = persist_changed(&coord, &id, changed).await;
        }
        for id in to_expire {
            offsets::expire(&coord, &id, retention_ms).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_string_hash_code() {
        // "hello".hashCode() == 99162322 in Java.
        assert_eq!(offsets_partition("hello", 50), 99_162_322 % 50);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE in Java.
        assert_eq!(offsets_partition("polygenelubricants", 50), 0);
        assert!((0..16).contains(&offsets_partition("some-group", 16)));
    }
}
