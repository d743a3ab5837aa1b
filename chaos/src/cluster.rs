//! The nodes of one run, and what Metadata says about them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    describe_quorum_request, incremental_alter_configs_request, AddRaftVoterRequest,
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, DescribeQuorumRequest,
    FindCoordinatorRequest, IncrementalAlterConfigsRequest, MetadataRequest, MetadataResponse,
    RemoveRaftVoterRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use crate::disk::Disk;
use crate::net::{self, Net};
use crate::procs::{free_port, Node};
use crate::scenario::Scenario;

/// One Metadata poll of one node (a paused node must not stall a loop).
const POLL_TIMEOUT: Duration = Duration::from_secs(3);
const METADATA_VERSION: i16 = 12;
/// Ports inside a node's own namespace (nothing else listens there).
const NETNS_CLIENT_PORT: u16 = 9092;
const NETNS_QUORUM_PORT: u16 = 9093;

/// One partition as one node's Metadata shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub leader: i32,
    pub replicas: Vec<i32>,
    /// Sorted.
    pub isr: Vec<i32>,
}

pub struct Cluster {
    pub nodes: BTreeMap<i32, Node>,
    pub topic: String,
    pub partitions: i32,
}

impl Cluster {
    /// Starts every node at once and waits for each listening line. With
    /// `net`, each node runs in its own namespace at its own address.
    pub fn start(s: &Scenario, binary: &Path, root: &Path, net: Option<&Net>) -> Result<Cluster> {
        let mut taken = BTreeSet::new();
        // Per node: (host, client port, quorum port).
        let mut addrs = BTreeMap::new();
        for id in 1..=s.nodes as i32 {
            if net.is_some() {
                addrs.insert(
                    id,
                    (net::node_host(id), NETNS_CLIENT_PORT, NETNS_QUORUM_PORT),
                );
                continue;
            }
            let client = free_port(&taken)?;
            taken.insert(client);
            let quorum = free_port(&taken)?;
            taken.insert(quorum);
            addrs.insert(id, ("127.0.0.1".to_string(), client, quorum));
        }
        let voter_count = s.voters.unwrap_or(s.nodes) as i32;
        let voters = addrs
            .iter()
            .filter(|(&id, _)| id <= voter_count)
            .map(|(id, (host, _, q))| format!("{id}@{host}:{q}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = BTreeMap::new();
        for (&id, (host, client, quorum)) in &addrs {
            let mut args: Vec<String> = vec!["--shards".into(), "1".into()];
            if s.nodes > 1 {
                args.extend([
                    "--node-id".into(),
                    id.to_string(),
                    "--controller-quorum-voters".into(),
                    voters.clone(),
                ]);
            }
            if id > voter_count {
                // A broker-only node's controller (a learner) listens at a
                // port kept across its restarts.
                args.extend(["--controller-listen".into(), format!("{host}:{quorum}")]);
            }
            args.extend(s.broker_args.iter().cloned());
            let netns = net.map(|n| n.node_netns(id)).transpose()?;
            let disk = s
                .tmpfs_mib
                .map(|mib| Disk::mount(&root.join(format!("node-{id}-disk")), mib))
                .transpose()?;
            let addr = (host.clone(), *client);
            let node = Node::new(id, addr, netns, disk, root, binary, args)?;
            nodes.insert(id, node);
        }
        let mut cluster = Cluster {
            nodes,
            topic: format!("chaos-{}", s.name),
            partitions: s.partitions,
        };
        for n in cluster.nodes.values_mut() {
            n.spawn()?;
        }
        for n in cluster.nodes.values_mut() {
            n.wait_ready()?;
        }
        Ok(cluster)
    }

    pub fn node(&mut self, id: i32) -> Result<&mut Node> {
        self.nodes
            .get_mut(&id)
            .ok_or_else(|| anyhow!("no node {id}"))
    }

    pub fn live(&self) -> Vec<i32> {
        self.nodes
            .values()
            .filter(|n| n.is_live())
            .map(|n| n.id)
            .collect()
    }

    pub fn all_up(&self) -> bool {
        self.nodes.values().all(|n| n.is_live())
    }

    /// Every node's address, live or not: librdkafka retries the dead ones.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .values()
            .map(|n| n.addr())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Metadata (all topics) from node `id`.
    pub fn metadata(&self, id: i32) -> Result<MetadataResponse> {
        let n = self.nodes.get(&id).ok_or_else(|| anyhow!("no node {id}"))?;
        if !n.is_live() {
            bail!("node {id} is not live");
        }
        metadata_call(&n.addr())
    }

    /// Metadata from the first live node that answers.
    pub fn any_metadata(&self) -> Result<MetadataResponse> {
        let mut last = anyhow!("no live node");
        for id in self.live() {
            match self.metadata(id) {
                Ok(m) => return Ok(m),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn view(&self, m: &MetadataResponse, partition: i32) -> Option<View> {
        let t = m
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == self.topic))?;
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)?;
        let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
        isr.sort_unstable();
        Some(View {
            leader: p.leader_id.0,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr,
        })
    }

    /// Every partition's view as every live node shows it, if they agree,
    /// every partition has a leader and `done` holds for each.
    pub fn agreed(&self, mut done: impl FnMut(&View) -> bool) -> Result<Vec<View>> {
        let mut first: Option<Vec<View>> = None;
        for id in self.live() {
            let m = self.metadata(id)?;
            let views: Vec<View> = (0..self.partitions)
                .map(|p| {
                    self.view(&m, p)
                        .ok_or_else(|| anyhow!("node {id}: partition {p} not in Metadata"))
                })
                .collect::<Result<_>>()?;
            for (p, v) in views.iter().enumerate() {
                if v.leader < 0 || !done(v) {
                    bail!("node {id}: partition {p}: {v:?}");
                }
            }
            match &first {
                None => first = Some(views),
                Some(f) if *f != views => bail!("nodes disagree: {f:?} vs node {id}: {views:?}"),
                Some(_) => {}
            }
        }
        first.ok_or_else(|| anyhow!("no live node"))
    }

    /// Waits (bounded) until every node is live and every partition's ISR
    /// holds all its replicas on every node.
    pub fn wait_isr_full(&self, timeout: Duration) -> Result<()> {
        wait_for("every ISR full", timeout, || {
            if !self.all_up() {
                bail!("a node is down");
            }
            self.agreed(|v| {
                let mut r = v.replicas.clone();
                r.sort_unstable();
                r == v.isr
            })
            .map(|_| ())
        })
    }

    /// Waits until every live node shows every partition with a leader.
    pub fn wait_leaders(&self, timeout: Duration) -> Result<()> {
        wait_for("every partition to have a leader", timeout, || {
            self.agreed(|_| true).map(|_| ())
        })
    }

    /// Waits until every replica of every partition holds byte-identical
    /// `.log` data (segment boundaries may differ; bytes may not).
    pub fn wait_logs_identical(&self, timeout: Duration) -> Result<()> {
        let views = self.agreed(|_| true)?;
        wait_for("replica logs byte-identical", timeout, || {
            for (p, v) in views.iter().enumerate() {
                let logs: Vec<(i32, Vec<u8>)> = v
                    .replicas
                    .iter()
                    .map(|id| (*id, self.nodes[id].log_bytes(&self.topic, p as i32)))
                    .collect();
                let first = &logs[0].1;
                if let Some((id, l)) = logs.iter().find(|(_, l)| l != first) {
                    let at = l.iter().zip(first).position(|(a, b)| a != b);
                    bail!(
                        "partition {p}: node {id} has {} bytes, node {} has {} (first difference at {at:?})",
                        l.len(),
                        logs[0].0,
                        first.len()
                    );
                }
            }
            Ok(())
        })
    }

    /// Every node's stderr tail.
    pub fn tails(&self, lines: usize) -> String {
        self.nodes
            .values()
            .map(|n| n.stderr_tail(lines))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Polls `attempt` every 200 ms until Ok; Err with the last state after `timeout`.
pub fn wait_for<T>(
    desc: &str,
    timeout: Duration,
    mut attempt: impl FnMut() -> Result<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                bail!("waited {timeout:?} for {desc}; last state: {e:#}")
            }
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// One Metadata request (all topics) over a fresh blocking connection.
pub fn metadata_call(addr: &str) -> Result<MetadataResponse> {
    let req = MetadataRequest::default().with_topics(None);
    call(addr, METADATA_VERSION, &req)
}

/// Moves `topic`'s `partition` to the `target` replicas
/// (AlterPartitionReassignments v0, which any node takes to the quorum):
/// the partition's error code.
pub fn reassign_call(addr: &str, topic: &str, partition: i32, target: &[i32]) -> Result<i16> {
    let p = ReassignablePartition::default()
        .with_partition_index(partition)
        .with_replicas(Some(target.iter().map(|&b| BrokerId(b)).collect()));
    let t = ReassignableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![p]);
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![t]);
    let resp = call(addr, 0, &req)?;
    if resp.error_code != 0 {
        bail!("AlterPartitionReassignments: error {}", resp.error_code);
    }
    let answer = resp
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| anyhow!("AlterPartitionReassignments answered no partition"))?;
    Ok(answer.error_code)
}

/// Sets configs (IncrementalAlterConfigs v0 SETs) on one resource: a
/// topic (`resource_type` 2) or a broker (4; name "" for the cluster-wide
/// default). Any error fails.
pub fn set_configs_call(
    addr: &str,
    resource_type: i8,
    name: &str,
    configs: &[(&str, &str)],
) -> Result<()> {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    const OP_SET: i8 = 0;
    let configs = configs
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let resource = AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_configs(configs);
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    let resp = call(addr, 0, &req)?;
    match resp.responses.first() {
        Some(r) if r.error_code == 0 => Ok(()),
        Some(r) => bail!("IncrementalAlterConfigs {name:?}: error {}", r.error_code),
        None => bail!("IncrementalAlterConfigs answered no resource"),
    }
}

/// The node coordinating consumer group `group` (FindCoordinator v3).
pub fn coordinator_call(addr: &str, group: &str) -> Result<i32> {
    find_coordinator(addr, group, 0)
}

/// The node that coordinates transactional id `id`, asked of `addr`.
pub fn txn_coordinator_call(addr: &str, id: &str) -> Result<i32> {
    find_coordinator(addr, id, 1)
}

/// FindCoordinator v3 for `key` of `key_type` (0 group, 1 transactional id).
fn find_coordinator(addr: &str, key: &str, key_type: i8) -> Result<i32> {
    let req = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(key.to_string()))
        .with_key_type(key_type);
    let resp = call(addr, 3, &req)?;
    if resp.error_code != 0 {
        bail!("FindCoordinator {key:?}: error {}", resp.error_code);
    }
    Ok(resp.node_id.0)
}

/// The metadata quorum's (voters, observers), from the active controller
/// through any node (DescribeQuorum v0).
pub fn quorum_call(addr: &str) -> Result<(Vec<i32>, Vec<i32>)> {
    let partition = describe_quorum_request::PartitionData::default().with_partition_index(0);
    let topic = describe_quorum_request::TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![partition]);
    let resp = call(
        addr,
        0,
        &DescribeQuorumRequest::default().with_topics(vec![topic]),
    )?;
    let p = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or_else(|| anyhow!("DescribeQuorum answered no partition"))?;
    if resp.error_code != 0 || p.error_code != 0 {
        bail!(
            "DescribeQuorum: error {} / {}",
            resp.error_code,
            p.error_code
        );
    }
    let ids = |r: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
        r.iter().map(|s| s.replica_id.0).collect()
    };
    Ok((ids(&p.current_voters), ids(&p.observers)))
}

/// AddRaftVoter (`add`) or RemoveRaftVoter of node `id`: the error code.
/// An add waits at most `wait_ms` for the node to catch up.
pub fn change_voter_call(addr: &str, id: i32, add: bool, wait_ms: i32) -> Result<i16> {
    Ok(if add {
        // Kafka's default is a null cluster id (not checked).
        let req = AddRaftVoterRequest::default()
            .with_cluster_id(None)
            .with_voter_id(id)
            .with_timeout_ms(wait_ms);
        call(addr, 0, &req)?.error_code
    } else {
        let req = RemoveRaftVoterRequest::default()
            .with_cluster_id(None)
            .with_voter_id(id);
        call(addr, 0, &req)?.error_code
    })
}

/// One request of `version` over a fresh blocking connection.
fn call<R: Request>(addr: &str, version: i16, req: &R) -> Result<R::Response> {
    let sock: std::net::SocketAddr = addr.parse().context("address")?;
    let mut stream = TcpStream::connect_timeout(&sock, POLL_TIMEOUT)?;
    stream.set_read_timeout(Some(POLL_TIMEOUT))?;
    stream.set_write_timeout(Some(POLL_TIMEOUT))?;
    let api_key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("api key {}", R::KEY))?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("sluice-chaos")));
    let mut body = BytesMut::new();
    header.encode(&mut body, api_key.request_header_version(version))?;
    req.encode(&mut body, version)?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    stream.write_all(&frame)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if !(0..=64 << 20).contains(&size) {
        bail!("bad response size {size}");
    }
    let mut buf = vec![0u8; size as usize];
    stream.read_exact(&mut buf)?;
    let mut frame = Bytes::from(buf);
    let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))?;
    if header.correlation_id != 1 {
        bail!("correlation id {}", header.correlation_id);
    }
    let resp = R::Response::decode(&mut frame, version)?;
    if frame.has_remaining() {
        bail!("{} trailing bytes after {api_key:?}", frame.remaining());
    }
    Ok(resp)
}
