//! A share group member (KIP-932) that speaks the protocol itself, for
//! `consumer_mode = "share"`: librdkafka has no share consumer yet.
//!
//! Each consumer thread joins the topic's share group (ShareGroupHeartbeat
//! at the group's coordinator, again every heartbeat interval), and
//! fetches from the leaders of the partitions it is assigned with
//! ShareFetch, one share session per leader. Every record it acquires is
//! accepted in its next fetch; its end-to-end latency is taken from the
//! payload as the other consumers take it. The group starts at the
//! earliest record (its `share.auto.offset.reset` group config), so records
//! written before the first fetch are read too. Batches must be
//! uncompressed (the workload is checked for it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic, ForgottenTopic,
};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, MetadataRequest, MetadataResponse, ResponseHeader,
    ShareFetchRequest, ShareFetchResponse, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;

use crate::clients::{Shared, CONSUMER_POLL};
use crate::payload;
use crate::raw::request_frame;
use crate::stats::Latency;

/// The versions sent: the ones Kafka 4.1 and Sluice serve.
const METADATA_VERSION: i16 = 12;
const FIND_COORDINATOR_VERSION: i16 = 4;
const HEARTBEAT_VERSION: i16 = 1;
const SHARE_FETCH_VERSION: i16 = 1;
const ALTER_CONFIGS_VERSION: i16 = 1;
/// Kafka's GROUP config resource.
const RESOURCE_GROUP: i8 = 32;
/// Kafka's AcknowledgeType ACCEPT.
const ACCEPT: i8 = 1;
/// The most one ShareFetch asks for.
const MAX_RECORDS: i32 = 2_000;
const MAX_BYTES: i32 = 8 << 20;
/// A larger answer is not one of ours.
const RESPONSE_BYTES_MAX: usize = 64 << 20;
/// How long joining may take before the run fails.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Kafka's retriable errors a member waits out while the group settles.
const RETRIABLE: &[i16] = &[
    14, // COORDINATOR_LOAD_IN_PROGRESS
    15, // COORDINATOR_NOT_AVAILABLE
    16, // NOT_COORDINATOR
];

/// One blocking connection, one request at a time.
struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    fn open(addr: &str) -> Result<Conn> {
        let stream = crate::raw::connect(addr)?;
        Ok(Conn {
            stream,
            correlation: 0,
        })
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp> {
        self.correlation = self.correlation.wrapping_add(1);
        let frame = request_frame(
            key,
            version,
            "sluice-bench-share",
            self.correlation,
            request,
        )?;
        self.stream.write_all(&frame)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > RESPONSE_BYTES_MAX {
            bail!("{key:?} answer of {size} bytes");
        }
        let mut answer = vec![0u8; size as usize];
        self.stream.read_exact(&mut answer)?;
        let mut answer = Bytes::from(answer);
        let header = ResponseHeader::decode(&mut answer, key.response_header_version(version))?;
        if header.correlation_id != self.correlation {
            bail!("{key:?} answered out of order");
        }
        Resp::decode(&mut answer, version)
    }
}

/// What Metadata says of the topic: its id, each partition's leader, and
/// each broker's address.
struct TopicLayout {
    name: TopicName,
    topic_id: uuid::Uuid,
    leaders: HashMap<i32, i32>,
    brokers: HashMap<i32, String>,
}

fn layout(conn: &mut Conn, topic: &str) -> Result<TopicLayout> {
    let name = TopicName(StrBytes::from_string(topic.to_string()));
    let request = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(name.clone())),
    ]));
    let md: MetadataResponse = conn.call(ApiKey::Metadata, METADATA_VERSION, &request)?;
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref() == Some(&name))
        .context("the topic is not in Metadata")?;
    if t.error_code != 0 {
        bail!("Metadata of {topic}: error {}", t.error_code);
    }
    Ok(TopicLayout {
        name,
        topic_id: t.topic_id,
        leaders: t
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.leader_id.0))
            .collect(),
        brokers: md
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect(),
    })
}

/// The group's coordinator's address, once one answers.
fn coordinator(conn: &mut Conn, group: &str, brokers: &HashMap<i32, String>) -> Result<String> {
    let deadline = Instant::now() + JOIN_TIMEOUT;
    loop {
        let request = FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]);
        let r: FindCoordinatorResponse =
            conn.call(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION, &request)?;
        let c = r.coordinators.first().context("no coordinator answer")?;
        if c.error_code == 0 {
            return brokers
                .get(&c.node_id.0)
                .cloned()
                .or_else(|| Some(format!("{}:{}", c.host, c.port)))
                .context("coordinator address");
        }
        if !RETRIABLE.contains(&c.error_code) || Instant::now() > deadline {
            bail!("FindCoordinator {group}: error {}", c.error_code);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sets the group to start at the earliest record (a group config).
fn start_at_earliest(conn: &mut Conn, group: &str) -> Result<()> {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_GROUP)
            .with_resource_name(StrBytes::from_string(group.to_string()))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("share.auto.offset.reset"))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_static_str("earliest")))]),
    ]);
    let r: IncrementalAlterConfigsResponse = conn.call(
        ApiKey::IncrementalAlterConfigs,
        ALTER_CONFIGS_VERSION,
        &request,
    )?;
    match r.responses.first() {
        Some(c) if c.error_code == 0 => Ok(()),
        Some(c) => bail!(
            "share.auto.offset.reset of {group}: error {} {:?}",
            c.error_code,
            c.error_message
        ),
        None => bail!("IncrementalAlterConfigs: no answer"),
    }
}

/// The member's standing in its group.
struct Member {
    group: String,
    id: String,
    epoch: i32,
    interval: Duration,
    next_beat: Instant,
    /// Assigned partitions of the topic.
    assigned: Vec<i32>,
}

impl Member {
    /// One heartbeat (a join with epoch 0, a leave with -1).
    fn beat(&mut self, conn: &mut Conn, topic: &TopicName) -> Result<()> {
        let request = ShareGroupHeartbeatRequest::default()
            .with_group_id(StrBytes::from_string(self.group.clone()).into())
            .with_member_id(StrBytes::from_string(self.id.clone()))
            .with_member_epoch(self.epoch)
            .with_subscribed_topic_names((self.epoch == 0).then(|| vec![topic.clone()]));
        let r: ShareGroupHeartbeatResponse =
            conn.call(ApiKey::ShareGroupHeartbeat, HEARTBEAT_VERSION, &request)?;
        if self.epoch < 0 {
            return Ok(());
        }
        if r.error_code != 0 {
            bail!(
                "ShareGroupHeartbeat {}: error {} {:?}",
                self.group,
                r.error_code,
                r.error_message
            );
        }
        self.epoch = r.member_epoch;
        self.interval = Duration::from_millis(r.heartbeat_interval_ms.max(100) as u64);
        self.next_beat = Instant::now() + self.interval;
        if let Some(a) = r.assignment {
            self.assigned = a
                .topic_partitions
                .iter()
                .flat_map(|t| t.partitions.iter().copied())
                .collect();
        }
        Ok(())
    }
}

/// One leader's share session: its connection, epoch, the partitions in
/// it, and the acquired ranges to accept in the next fetch, by partition.
struct Session {
    conn: Conn,
    epoch: i32,
    partitions: BTreeSet<i32>,
    acks: BTreeMap<i32, Vec<(i64, i64)>>,
}

/// Consumes `topic` in share group `group` until told to stop; the
/// end-to-end latency histogram.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    group: &str,
    index: u32,
    s: &Shared,
) -> Result<Latency> {
    let first = bootstrap.split(',').next().context("no bootstrap server")?;
    let mut conn = Conn::open(first)?;
    let layout = layout(&mut conn, topic)?;
    let coordinator_addr = coordinator(&mut conn, group, &layout.brokers)?;
    let mut coordinator = Conn::open(&coordinator_addr)?;
    start_at_earliest(&mut coordinator, group)?;
    let mut member = Member {
        group: group.to_string(),
        id: format!(
            "sluice-bench-{}-{index}-{:x}",
            std::process::id(),
            s.clock.now_ns()
        ),
        epoch: 0,
        interval: Duration::from_secs(5),
        next_beat: Instant::now(),
        assigned: Vec::new(),
    };
    let deadline = Instant::now() + JOIN_TIMEOUT;
    member.beat(&mut coordinator, &layout.name)?;
    while member.assigned.is_empty() && !s.stop_consuming.load(Relaxed) {
        if Instant::now() > deadline {
            bail!("{group}: no partition assigned in {JOIN_TIMEOUT:?}");
        }
        std::thread::sleep(CONSUMER_POLL);
        member.beat(&mut coordinator, &layout.name)?;
    }
    let mut sessions: HashMap<i32, Session> = HashMap::new();
    let mut e2e = Latency::new();
    while !s.stop_consuming.load(Relaxed) {
        if Instant::now() >= member.next_beat {
            member.beat(&mut coordinator, &layout.name)?;
        }
        let mut by_leader: HashMap<i32, Vec<i32>> = HashMap::new();
        for p in &member.assigned {
            let leader = *layout
                .leaders
                .get(p)
                .context("an assigned partition has no leader")?;
            by_leader.entry(leader).or_default().push(*p);
        }
        for (leader, partitions) in by_leader {
            let session = match sessions.entry(leader) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let addr = layout.brokers.get(&leader).context("leader address")?;
                    v.insert(Session {
                        conn: Conn::open(addr)?,
                        epoch: 0,
                        partitions: BTreeSet::new(),
                        acks: BTreeMap::new(),
                    })
                }
            };
            fetch(session, &member, &layout, &partitions, s, &mut e2e)?;
        }
    }
    // Accepts the last records and closes each session (epoch -1), then
    // leaves the group.
    for session in sessions.values_mut() {
        session.epoch = -1;
        let partitions: Vec<i32> = session.acks.keys().copied().collect();
        let _ = fetch(session, &member, &layout, &partitions, s, &mut e2e);
    }
    member.epoch = -1;
    let _ = member.beat(&mut coordinator, &layout.name);
    Ok(e2e)
}

/// One ShareFetch from this session's leader of the session's partitions,
/// now `partitions`, accepting what the last one acquired; records the
/// acquired records' latencies. As Kafka's share session handler, it names
/// only partitions that join the session or have records to accept, and
/// forgets those no longer assigned once nothing of them is held.
fn fetch(
    session: &mut Session,
    member: &Member,
    layout: &TopicLayout,
    partitions: &[i32],
    s: &Shared,
    e2e: &mut Latency,
) -> Result<()> {
    let closing = session.epoch < 0;
    // Partitions no longer assigned stay until what was acquired of them
    // is accepted: left unaccepted, it would wait out its lock.
    let mut named: BTreeSet<i32> = partitions
        .iter()
        .filter(|p| !session.partitions.contains(p))
        .copied()
        .collect();
    named.extend(session.acks.keys());
    let forgotten: Vec<i32> = session
        .partitions
        .iter()
        .filter(|p| !partitions.contains(p) && !session.acks.contains_key(p))
        .copied()
        .collect();
    session.partitions.extend(named.iter().copied());
    for p in &forgotten {
        session.partitions.remove(p);
    }
    let fetch_partitions: Vec<FetchPartition> = named
        .iter()
        .map(|p| {
            let acks = session.acks.remove(p).unwrap_or_default();
            FetchPartition::default()
                .with_partition_index(*p)
                .with_acknowledgement_batches(
                    acks.into_iter()
                        .map(|(first, last)| {
                            AcknowledgementBatch::default()
                                .with_first_offset(first)
                                .with_last_offset(last)
                                .with_acknowledge_types(vec![ACCEPT])
                        })
                        .collect(),
                )
        })
        .collect();
    let request = ShareFetchRequest::default()
        .with_group_id(Some(StrBytes::from_string(member.group.clone()).into()))
        .with_member_id(Some(StrBytes::from_string(member.id.clone())))
        .with_share_session_epoch(session.epoch)
        .with_max_wait_ms(if closing {
            0
        } else {
            CONSUMER_POLL.as_millis() as i32
        })
        .with_min_bytes(1)
        .with_max_bytes(MAX_BYTES)
        .with_max_records(MAX_RECORDS)
        .with_batch_size(MAX_RECORDS)
        .with_topics(if fetch_partitions.is_empty() {
            Vec::new()
        } else {
            vec![FetchTopic::default()
                .with_topic_id(layout.topic_id)
                .with_partitions(fetch_partitions)]
        })
        .with_forgotten_topics_data(if forgotten.is_empty() || closing {
            Vec::new()
        } else {
            vec![ForgottenTopic::default()
                .with_topic_id(layout.topic_id)
                .with_partitions(forgotten)]
        });
    let r: ShareFetchResponse =
        session
            .conn
            .call(ApiKey::ShareFetch, SHARE_FETCH_VERSION, &request)?;
    if r.error_code != 0 {
        bail!("ShareFetch: error {} {:?}", r.error_code, r.error_message);
    }
    if closing {
        return Ok(());
    }
    session.epoch = session.epoch.wrapping_add(1).max(1);
    let now = s.clock.now_ns();
    for p in r.responses.iter().flat_map(|t| &t.partitions) {
        if p.error_code != 0 {
            s.note_error(format!(
                "ShareFetch partition {}: error {}",
                p.partition_index, p.error_code
            ));
            continue;
        }
        if p.acquired_records.is_empty() {
            continue;
        }
        let acquired: Vec<(i64, i64)> = p
            .acquired_records
            .iter()
            .map(|a| (a.first_offset, a.last_offset))
            .collect();
        let mut records = p.records.clone().unwrap_or_default();
        while !records.is_empty() {
            let set = RecordBatchDecoder::decode(&mut records)?;
            for record in set.records.iter().filter(|r| {
                acquired
                    .iter()
                    .any(|(first, last)| (*first..=*last).contains(&r.offset))
            }) {
                let Some(intended) = record
                    .value
                    .as_deref()
                    .and_then(|v| payload::decode(v, s.run_tag))
                else {
                    continue;
                };
                s.received.fetch_add(1, Relaxed);
                if s.in_window(intended) {
                    e2e.record(now.saturating_sub(intended) / 1000);
                }
            }
        }
        session
            .acks
            .entry(p.partition_index)
            .or_default()
            .extend(acquired);
    }
    Ok(())
}
