//! The metadata quorum in one process: three `Controller`s on loopback
//! ports, each with its own data dir, driven through their handles.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use futures::executor::block_on;
use sluice::controller::placement::{live_candidates, place_replicas};
use sluice::controller::tls::TlsFiles;
use sluice::controller::{
    ClusterImage, ConfigChange, ConfigResource, Controller, ControllerConfig, ControllerError,
    Endpoint, MetadataRecord, RecordOutcome,
};
use uuid::Uuid;

/// Every wait in these tests gives up after this long.
const WAIT_MAX: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Loopback addresses with ports free at the time of asking.
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

fn config(id: i32, cluster: &str, addrs: &[SocketAddr], dir: &Path) -> ControllerConfig {
    let voters = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (i as i32 + 1, *a))
        .collect();
    let mut config = ControllerConfig::new(id, cluster, addrs[id as usize - 1], voters, dir);
    config.raft_heartbeat_interval_ms = 50;
    config.raft_election_timeout_ms = 500;
    config
}

/// Polls `f` until it answers, panicking after `WAIT_MAX`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < WAIT_MAX, "gave up waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// The leader all of `nodes` agree on.
fn agreed_leader(nodes: &[&Controller]) -> i32 {
    agreed_leader_other_than(nodes, None)
}

/// The leader all of `nodes` agree on, once it is not `gone`.
fn agreed_leader_other_than(nodes: &[&Controller], gone: Option<i32>) -> i32 {
    wait_for("an agreed leader", || {
        let first = nodes[0].leader().filter(|&l| Some(l) != gone)?;
        nodes
            .iter()
            .all(|n| n.leader() == Some(first))
            .then_some(first)
    })
}

fn wait_image(node: &Controller, what: &str, f: impl Fn(&ClusterImage) -> bool) {
    wait_for(what, || f(&node.image().1).then_some(()));
}

struct Cluster {
    addrs: Vec<SocketAddr>,
    /// Before `dirs`: fields drop in order, and a node still running when
    /// its directory is removed writes a file into it mid-removal, which
    /// leaves the directory behind in the system's temp dir.
    nodes: Vec<Option<Controller>>,
    dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    fn start(cluster_ids: &[&str]) -> Cluster {
        Cluster::start_tuned(cluster_ids, |_| {})
    }

    fn start_tuned(cluster_ids: &[&str], tune: impl Fn(&mut ControllerConfig)) -> Cluster {
        init_tracing();
        let addrs = free_addrs(cluster_ids.len());
        let dirs: Vec<_> = cluster_ids
            .iter()
            .map(|_| tempfile::tempdir().unwrap())
            .collect();
        let mut cluster = Cluster {
            addrs,
            nodes: Vec::new(),
            dirs,
        };
        for (i, id) in cluster_ids.iter().enumerate() {
            let node = cluster.start_node(i as i32 + 1, id, &tune);
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    fn start_node(
        &self,
        id: i32,
        cluster_id: &str,
        tune: impl Fn(&mut ControllerConfig),
    ) -> Controller {
        let mut config = config(
            id,
            cluster_id,
            &self.addrs,
            self.dirs[id as usize - 1].path(),
        );
        tune(&mut config);
        Controller::start(config).unwrap()
    }

    fn node(&self, id: i32) -> &Controller {
        self.nodes[id as usize - 1].as_ref().unwrap()
    }

    fn live(&self) -> Vec<&Controller> {
        self.nodes.iter().flatten().collect()
    }

    fn stop(&mut self, id: i32) {
        if let Some(node) = self.nodes[id as usize - 1].take() {
            node.shutdown();
        }
    }

    /// Starts stopped node `id` again on its data dir, under `cluster_id`.
    fn start_again(&mut self, id: i32, cluster_id: &str) {
        assert!(
            self.nodes[id as usize - 1].is_none(),
            "node {id} is running"
        );
        let node = self.start_node(id, cluster_id, |_| {});
        self.nodes[id as usize - 1] = Some(node);
    }

    /// Replaces stopped node `id`'s data dir with an empty one: a lost disk.
    fn wipe(&mut self, id: i32) {
        assert!(
            self.nodes[id as usize - 1].is_none(),
            "node {id} is running"
        );
        self.dirs[id as usize - 1] = tempfile::tempdir().unwrap();
    }
}

fn register(id: i32, incarnation: Uuid) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        id,
        incarnation,
        endpoints: vec![Endpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092 + id as u16,
        }],
        rack: None,
    }
}

/// Registers brokers 1-3 through `via` and unfences them by heartbeat.
fn register_brokers(via: &Controller) -> Vec<Uuid> {
    let incarnations: Vec<Uuid> = (1..=3).map(|i| Uuid::from_u128(1000 + i)).collect();
    for (i, incarnation) in incarnations.iter().enumerate() {
        block_on(via.propose(register(i as i32 + 1, *incarnation))).unwrap();
    }
    for (i, incarnation) in incarnations.iter().enumerate() {
        let id = i as i32 + 1;
        wait_for("a heartbeat that unfences", || {
            let index = via.image().0;
            let reply = block_on(via.heartbeat(id, *incarnation, index)).unwrap();
            (!reply.fenced).then_some(())
        });
    }
    // The reply comes from the active controller; `via` may apply it later.
    wait_image(via, "unfenced brokers", |i| i.live_brokers().count() == 3);
    incarnations
}

fn create_topic(via: &Controller, name: &str, partitions: i32, factor: i32) -> u64 {
    let image = via.image().1;
    let assignments = place_replicas(&live_candidates(&image), partitions, factor, 0).unwrap();
    let record = MetadataRecord::CreateTopic {
        name: name.into(),
        id: Uuid::from_u128(u128::from_le_bytes(*b"topic-id-0123456") ^ name.len() as u128),
        configs: [("retention.ms".to_string(), "1000".to_string())].into(),
        assignments,
    };
    let (index, outcome) = block_on(via.propose(record)).unwrap();
    assert_eq!(outcome, RecordOutcome::Applied);
    index
}

/// A leader is elected, and a proposal made through a follower commits and shows on every node.
#[test]
fn a_follower_proposal_reaches_every_node() {
    let cluster = Cluster::start(&["c1", "c1", "c1"]);
    let leader = agreed_leader(&cluster.live());
    let follower = (1..=3).find(|&id| id != leader).unwrap();
    let via = cluster.node(follower);
    register_brokers(via);
    let index = create_topic(via, "orders", 6, 3);
    // Answered once applied on the proposing node itself.
    assert!(via.image().0 >= index);
    assert_eq!(via.image().1.topics["orders"].partitions.len(), 6);
    for node in cluster.live() {
        wait_image(node, "the topic on every node", |i| {
            i.topics.contains_key("orders")
        });
    }
    let leaders: std::collections::BTreeSet<i32> = via.image().1.topics["orders"]
        .partitions
        .iter()
        .map(|p| p.leader)
        .collect();
    assert_eq!(leaders.len(), 3, "leaders spread over the brokers");
}

/// Stopping the active controller elects another, and proposals go on.
#[test]
fn stopping_the_leader_elects_another() {
    let mut cluster = Cluster::start(&["c2", "c2", "c2"]);
    let old = agreed_leader(&cluster.live());
    register_brokers(cluster.node(old));
    cluster.stop(old);
    agreed_leader_other_than(&cluster.live(), Some(old));
    let survivor = cluster.live()[0];
    create_topic(survivor, "after-failover", 2, 2);
    for node in cluster.live() {
        wait_image(node, "the topic on both survivors", |i| {
            i.topics.contains_key("after-failover")
        });
    }
}

/// Restarting every node keeps topics, configs and assignments.
#[test]
fn a_full_restart_keeps_the_image() {
    let mut cluster = Cluster::start(&["c3", "c3", "c3"]);
    let leader = agreed_leader(&cluster.live());
    let via = cluster.node(leader);
    register_brokers(via);
    create_topic(via, "kept", 4, 3);
    let alter = MetadataRecord::AlterConfigs {
        resource: ConfigResource::Topic("kept".into()),
        changes: vec![ConfigChange {
            name: "cleanup.policy".into(),
            value: Some("compact".into()),
        }],
    };
    block_on(via.propose(alter)).unwrap();
    let before = via.image().1;
    for node in cluster.live() {
        wait_image(node, "the configs everywhere", |i| {
            i.topics == before.topics
        });
    }
    for id in 1..=3 {
        cluster.stop(id);
    }
    for id in 1..=3 {
        cluster.nodes[id as usize - 1] = Some(cluster.start_node(id, "c3", |_| {}));
    }
    for node in cluster.live() {
        wait_image(node, "the image back after a restart", |i| {
            i.topics == before.topics && i.brokers == before.brokers
        });
    }
    // And the restarted quorum still takes changes.
    let leader = agreed_leader(&cluster.live());
    create_topic(cluster.node(leader), "after-restart", 1, 1);
}

/// A voter configured with another cluster id is refused by its peers.
#[test]
fn a_node_of_another_cluster_is_refused() {
    let cluster = Cluster::start(&["c4", "c4", "other"]);
    let leader = agreed_leader(&cluster.live()[..2]);
    register_brokers(cluster.node(leader));
    wait_for("connections refused both ways", || {
        let by_members = cluster.node(1).peers_refused() + cluster.node(2).peers_refused();
        (by_members > 0 && cluster.node(3).peers_refused() > 0).then_some(())
    });
    for id in 1..=2 {
        wait_image(cluster.node(id), "the brokers on the members", |i| {
            i.brokers.len() == 3
        });
    }
    assert!(cluster.node(3).image().1.brokers.is_empty());
    assert_ne!(cluster.node(3).leader(), Some(leader));
}

/// With only one of three voters left, a proposal times out.
#[test]
fn a_proposal_without_a_majority_times_out() {
    let mut cluster = Cluster::start(&["c5", "c5", "c5"]);
    let leader = agreed_leader(&cluster.live());
    let keep = leader;
    // Restart the survivor with a short propose timeout, so the test is quick.
    cluster.stop(keep);
    let node = cluster.start_node(keep, "c5", |c| c.metadata_propose_timeout_ms = 1500);
    cluster.nodes[keep as usize - 1] = Some(node);
    agreed_leader_other_than(&cluster.live(), None);
    for id in (1..=3).filter(|&id| id != keep) {
        cluster.stop(id);
    }
    let result = block_on(cluster.node(keep).propose(register(1, Uuid::from_u128(1))));
    assert!(
        matches!(result, Err(ControllerError::Timeout(_))),
        "{result:?}"
    );
}

/// A broker that stops heartbeating is fenced and the partitions it led move to an ISR member.
#[test]
fn a_silent_broker_is_fenced_and_loses_its_leaderships() {
    let mut cluster = Cluster::start(&["c6", "c6", "c6"]);
    // Every node with a short session, restarted one by one.
    for id in 1..=3 {
        cluster.stop(id);
        let node = cluster.start_node(id, "c6", |c| c.broker_session_timeout_ms = 3000);
        cluster.nodes[id as usize - 1] = Some(node);
    }
    let leader = agreed_leader(&cluster.live());
    let via = cluster.node(leader);
    let incarnations = register_brokers(via);
    let record = MetadataRecord::CreateTopic {
        name: "fenced".into(),
        id: Uuid::from_u128(77),
        configs: Default::default(),
        assignments: vec![vec![1, 2, 3], vec![2, 3, 1]],
    };
    block_on(via.propose(record)).unwrap();

    // Brokers 2 and 3 keep heartbeating; broker 1 has gone quiet.
    let stop = Arc::new(AtomicBool::new(false));
    let incarnations = &incarnations;
    std::thread::scope(|s| {
        let stop_beats = stop.clone();
        s.spawn(move || {
            while !stop_beats.load(Ordering::SeqCst) {
                for id in [2, 3] {
                    let index = via.image().0;
                    let _ = block_on(via.heartbeat(id, incarnations[id as usize - 1], index));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        wait_image(via, "broker 1 fenced and replaced", |i| {
            let p = &i.topics["fenced"].partitions[0];
            i.brokers[&1].fenced && p.leader == 2 && p.leader_epoch == 1 && p.isr == vec![2, 3]
        });
        stop.store(true, Ordering::SeqCst);
    });
    let p1 = &via.image().1.topics["fenced"].partitions[1];
    assert_eq!(
        (p1.leader, p1.leader_epoch, p1.isr.clone()),
        (2, 0, vec![2, 3])
    );

    // Its heartbeat, caught up, unfences it again.
    let index = via.image().0;
    let reply = block_on(via.heartbeat(1, incarnations[0], index)).unwrap();
    assert!(!reply.fenced);
    cluster.stop(leader);
}

/// Snapshots bound the log: past the snapshot policy the log is purged, a
/// voter that was down catches up from a snapshot, and a restart restores it.
#[test]
fn snapshots_bound_the_log_and_catch_up_a_lagging_voter() {
    let mut cluster = Cluster::start(&["c8", "c8", "c8"]);
    let leader = agreed_leader(&cluster.live());
    let lagging = (1..=3).find(|&id| id != leader).unwrap();
    cluster.stop(lagging);
    let via = cluster.node(leader);
    register_brokers(via);
    // More entries than `SnapshotPolicy::LogsSinceLast` (1000), in
    // batches below the handle's queue bound.
    for batch in 0..12 {
        let proposals: Vec<_> = (0..100)
            .map(|i| {
                via.propose(MetadataRecord::AlterConfigs {
                    resource: ConfigResource::ClusterDefault,
                    changes: vec![ConfigChange {
                        name: format!("key.{}", batch * 100 + i),
                        value: Some("v".into()),
                    }],
                })
            })
            .collect();
        for result in block_on(futures::future::join_all(proposals)) {
            result.unwrap();
        }
    }
    let dir = cluster.dirs[leader as usize - 1]
        .path()
        .join("__cluster_metadata");
    wait_for("a snapshot and a purged log", || {
        (dir.join("snapshot").exists() && dir.join("purged").exists()).then_some(())
    });
    let before = via.image().1;
    assert_eq!(before.broker_configs[&None].len(), 1200);

    let node = cluster.start_node(lagging, "c8", |_| {});
    cluster.nodes[lagging as usize - 1] = Some(node);
    wait_image(cluster.node(lagging), "the lagging voter caught up", |i| {
        i.broker_configs == before.broker_configs
    });
    for id in 1..=3 {
        cluster.stop(id);
    }
    for id in 1..=3 {
        cluster.nodes[id as usize - 1] = Some(cluster.start_node(id, "c8", |_| {}));
    }
    for node in cluster.live() {
        wait_image(node, "the image after a restart", |i| {
            i.broker_configs == before.broker_configs && i.brokers == before.brokers
        });
    }
}

/// A malformed or oversized quorum frame closes that connection only.
#[test]
fn a_bad_frame_closes_only_its_connection() {
    use std::io::{Read, Write};
    let cluster = Cluster::start(&["c9", "c9", "c9"]);
    let leader = agreed_leader(&cluster.live());
    let addr = cluster.node(leader).listen_addr();
    let closed = |mut stream: std::net::TcpStream| {
        stream.set_read_timeout(Some(WAIT_MAX)).unwrap();
        let mut rest = Vec::new();
        // The server may answer a hello first; then it must hang up.
        let _ = stream.read_to_end(&mut rest);
    };
    let frame = |body: &[u8]| {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    // A hello that does not decode.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(&frame(&[0xff, 0xff, 0xff])).unwrap();
    closed(s);
    // A good hello (postcard of version, node id, cluster id), then junk.
    let hello = postcard::to_allocvec(&(1u16, 2i32, "c9".to_string())).unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(&frame(&hello)).unwrap();
    s.write_all(&frame(&[0xee; 7])).unwrap();
    closed(s);
    // A length over the frame bound.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(&frame(&hello)).unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    closed(s);
    // The quorum is untouched.
    register_brokers(cluster.node(leader));
    assert_eq!(agreed_leader(&cluster.live()), leader);
}

/// A single voter elects itself and serves proposals and watchers.
#[test]
fn a_single_voter_is_its_own_quorum() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addrs(1);
    let node = Controller::start(config(1, "solo", &addr, dir.path())).unwrap();
    let mut watch = node.watch();
    block_on(node.propose(register(1, Uuid::from_u128(5)))).unwrap();
    let (index, image) = wait_for("a watched image with the broker", || {
        let (index, image) = block_on(watch.changed())?;
        image.brokers.contains_key(&1).then_some((index, image))
    });
    assert_eq!(node.leader(), Some(1));
    assert_eq!(node.image().0, index);
    assert!(image.brokers[&1].fenced, "a new incarnation starts fenced");
    let refused = block_on(node.propose(MetadataRecord::DeleteTopic { name: "x".into() }));
    assert_eq!(
        refused.unwrap_err().error_code(),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    // Restarted, it leads again at once and keeps what it applied.
    node.shutdown();
    let node = Controller::start(config(1, "solo", &addr, dir.path())).unwrap();
    wait_image(&node, "the broker after a restart", |i| {
        i.brokers.contains_key(&1)
    });
    let (_, outcome) = block_on(node.propose(register(2, Uuid::from_u128(6)))).unwrap();
    assert_eq!(outcome, RecordOutcome::Applied);
    assert_eq!(node.leader(), Some(1));
}

/// Controlled shutdown moves a broker's leaderships to other in-sync
/// replicas, keeping those no other replica can take.
#[test]
fn controlled_shutdown_moves_leaderships_first() {
    // Sessions longer than any wait here: only the shutdown moves things.
    let cluster = Cluster::start_tuned(&["c10", "c10", "c10"], |c| {
        c.broker_session_timeout_ms = 10 * WAIT_MAX.as_millis() as u64
    });
    let leader = agreed_leader(&cluster.live());
    let via = cluster.node((leader % 3) + 1);
    let incarnations = register_brokers(via);
    for (name, assignments) in [
        ("moving", vec![vec![1, 2, 3], vec![2, 1, 3]]),
        ("single", vec![vec![1]]),
    ] {
        let record = MetadataRecord::CreateTopic {
            name: name.into(),
            id: Uuid::from_u128(u128::from(name.as_bytes()[0]) + 500),
            configs: Default::default(),
            assignments,
        };
        block_on(via.propose(record)).unwrap();
    }
    wait_for("the leader to let broker 1 go", || {
        let index = via.image().0;
        let reply = block_on(via.request_shutdown(1, incarnations[0], index)).unwrap();
        reply.should_shutdown.then_some(())
    });
    // Leaderships move first; the ISRs lose broker 1 in the same pass or
    // the next, so wait for both.
    wait_image(via, "the moves applied here", |i| {
        i.topics["moving"]
            .partitions
            .iter()
            .all(|p| p.leader != 1 && !p.isr.contains(&1))
    });
    let image = via.image().1;
    for p in &image.topics["moving"].partitions {
        assert!(p.leader == 2 || p.leader == 3, "{p:?}");
        assert!(!p.isr.contains(&1), "{p:?}");
    }
    assert_eq!(
        image.topics["single"].partitions[0].leader, 1,
        "nobody else could lead it"
    );
}

/// Five voters commit with two of them down.
#[test]
fn five_voters_survive_two_losses() {
    let mut cluster = Cluster::start(&["c11"; 5]);
    let leader = agreed_leader(&cluster.live());
    let down: Vec<i32> = (1..=5).filter(|&id| id != leader).take(2).collect();
    for id in &down {
        cluster.stop(*id);
    }
    let via = cluster.live()[0];
    let (index, _) = block_on(via.propose(register(1, Uuid::from_u128(11)))).unwrap();
    for node in cluster.live() {
        wait_image(node, "the broker on the three left", |i| {
            i.brokers.contains_key(&1)
        });
        assert!(node.image().0 >= index);
    }
}

/// Node 4, outside the voter list: a learner of `cluster`, listening at
/// `listen`.
fn start_learner(
    cluster: &Cluster,
    cluster_id: &str,
    listen: SocketAddr,
    dir: &Path,
) -> Controller {
    let voters = (1..).zip(cluster.addrs.iter().copied()).collect();
    let mut config = ControllerConfig::new(4, cluster_id, listen, voters, dir);
    config.raft_heartbeat_interval_ms = 50;
    config.raft_election_timeout_ms = 500;
    let learner = Controller::start(config).unwrap();
    assert!(!learner.is_voter());
    wait_for("the learner to join", || learner.joined().then_some(()));
    learner
}

/// A node outside the voter list joins as a learner: it gets the log by
/// replication, its proposals and heartbeats commit through the leader,
/// it is never a voter nor the leader, a restart at the same address
/// changes no membership unless it fell behind, the voters commit and
/// elect without it, and it catches up at a new address.
#[test]
fn a_learner_follows_the_log_and_never_votes() {
    // Sessions longer than any wait here: no broker is fenced while the
    // learner restarts (a fence is an entry it would be behind on, and
    // then its membership entry is rightly written again), however slow
    // a loaded machine makes the test.
    let mut cluster = Cluster::start_tuned(&["c12", "c12", "c12"], |c| {
        c.broker_session_timeout_ms = 10 * WAIT_MAX.as_millis() as u64
    });
    let leader = agreed_leader(&cluster.live());
    register_brokers(cluster.node(leader));
    create_topic(cluster.node(leader), "before", 2, 3);
    let dir = tempfile::tempdir().unwrap();
    let first_addr = free_addrs(1)[0];
    let learner = start_learner(&cluster, "c12", first_addr, dir.path());
    wait_image(&learner, "the log on the learner", |i| {
        i.topics.contains_key("before") && i.live_brokers().count() == 3
    });
    for node in cluster.live().into_iter().chain([&learner]) {
        wait_for("the learner in every membership", || {
            let q = node.quorum();
            let voters_only = q.voters == (1..=3).collect();
            (voters_only && q.learners.get(&4) == Some(&first_addr.to_string())).then_some(())
        });
    }
    // Its broker registers and is unfenced through it; placement uses it.
    let incarnation = Uuid::from_u128(4004);
    block_on(learner.propose(register(4, incarnation))).unwrap();
    wait_for("broker 4 unfenced", || {
        let reply = block_on(learner.heartbeat(4, incarnation, learner.image().0)).ok()?;
        (!reply.fenced).then_some(())
    });
    wait_image(&learner, "four live brokers", |i| {
        i.live_brokers().count() == 4
    });
    let index = create_topic(&learner, "via-learner", 4, 4);
    for node in cluster.live() {
        wait_image(node, "the learner's topic", |i| {
            i.topics
                .get("via-learner")
                .is_some_and(|t| t.partitions.iter().all(|p| p.replicas.contains(&4)))
        });
        assert!(node.image().0 >= index);
    }
    assert_eq!(learner.leader(), Some(leader));

    // A restart at the same address: no new membership, once the leader
    // saw it hold every entry (stopped behind, it would rightly be
    // written again; below). The voters' directory ids are written once
    // every member, the learner too, said it reads them, at the leader's
    // next pass: on a loaded machine that can be after the learner first
    // caught up, leaving it behind at the restart (a `make test` run
    // caught it). Nothing else writes while the test waits.
    let directories: BTreeMap<i32, Uuid> = (1..=3)
        .map(|id| (id, cluster.node(id).directory_id()))
        .collect();
    wait_image(&learner, "every voter's directory id", |i| {
        i.voter_directories == directories
    });
    wait_for("the learner caught up", || {
        let status = block_on(cluster.node(leader).describe_quorum()).ok()?;
        let progress = status.observers.iter().find(|o| o.id == 4)?;
        progress.caught_up.then_some(())
    });
    let membership = cluster.node(leader).quorum().membership_index;
    learner.shutdown();
    drop(learner);
    let learner = start_learner(&cluster, "c12", first_addr, dir.path());
    assert_eq!(cluster.node(leader).quorum().membership_index, membership);

    // Gone: the voters commit without it. Back at the same address but
    // behind, its entry is written again (its stream rebuilt), and it
    // catches up.
    learner.shutdown();
    drop(learner);
    create_topic(cluster.node(leader), "without-learner", 1, 3);
    let learner = start_learner(&cluster, "c12", first_addr, dir.path());
    assert!(cluster.node(leader).quorum().membership_index > membership);
    wait_image(&learner, "what the learner missed", |i| {
        i.topics.contains_key("without-learner")
    });

    // Gone again: the voters elect among themselves.
    learner.shutdown();
    drop(learner);
    cluster.stop(leader);
    let next = agreed_leader_other_than(&cluster.live(), Some(leader));
    assert_ne!(next, 4);
    create_topic(cluster.node(next), "after-election", 1, 2);

    // Back at another address: moved, and caught up.
    let second_addr = free_addrs(1)[0];
    let learner = start_learner(&cluster, "c12", second_addr, dir.path());
    wait_image(&learner, "what the learner missed again", |i| {
        i.topics.contains_key("after-election")
    });
    assert_eq!(
        cluster.node(next).quorum().learners.get(&4),
        Some(&second_addr.to_string())
    );
    assert_eq!(learner.leader(), Some(next));
}

/// A learner whose data dir was wiped joins again and gets the whole log,
/// whether the log moved on while it was away or not: the leader finds it
/// shorter than what it had matched there and starts over, and keeps
/// leading.
#[test]
fn a_learner_with_a_wiped_data_dir_catches_up() {
    let cluster = Cluster::start(&["c13", "c13", "c13"]);
    let leader = agreed_leader(&cluster.live());
    register_brokers(cluster.node(leader));
    let addr = free_addrs(1)[0];
    let first = tempfile::tempdir().unwrap();
    let learner = start_learner(&cluster, "c13", addr, first.path());
    create_topic(cluster.node(leader), "one", 1, 3);
    wait_image(&learner, "the first topic", |i| {
        i.topics.contains_key("one")
    });
    learner.shutdown();
    drop(learner);
    create_topic(cluster.node(leader), "second", 1, 3);
    let wiped = tempfile::tempdir().unwrap();
    let learner = start_learner(&cluster, "c13", addr, wiped.path());
    wait_image(&learner, "the whole log again", |i| {
        i.topics.contains_key("one") && i.topics.contains_key("second")
    });

    // Wiped again, and nothing written meanwhile: its membership entry
    // stands as it is, and the leader's replication finds the log gone.
    learner.shutdown();
    drop(learner);
    let wiped = tempfile::tempdir().unwrap();
    let learner = start_learner(&cluster, "c13", addr, wiped.path());
    wait_image(&learner, "the whole log a third time", |i| {
        i.topics.contains_key("one") && i.topics.contains_key("second")
    });
    create_topic(cluster.node(leader), "third", 1, 3);
    wait_image(&learner, "what came after", |i| {
        i.topics.contains_key("third")
    });
    for node in cluster.live() {
        assert_eq!(node.leader(), Some(leader));
    }
}

/// Vote requests from a node that is no voter (neither in the voter list
/// nor made one since) are refused: a node that wrongly calls itself a
/// voter cannot disturb the quorum.
#[test]
fn votes_asked_by_a_non_voter_are_refused() {
    let cluster = Cluster::start(&["c14", "c14", "c14"]);
    let leader = agreed_leader(&cluster.live());
    let refused = |c: &Cluster| -> u64 { c.live().iter().map(|n| n.peers_refused()).sum() };
    let before = refused(&cluster);
    let dir = tempfile::tempdir().unwrap();
    let own = free_addrs(1)[0];
    let voters = vec![(1, cluster.addrs[0]), (2, cluster.addrs[1]), (4, own)];
    let mut config = ControllerConfig::new(4, "c14", own, voters, dir.path());
    config.raft_heartbeat_interval_ms = 50;
    config.raft_election_timeout_ms = 500;
    let rogue = Controller::start(config).unwrap();
    wait_for("the rogue's vote requests refused", || {
        (refused(&cluster) > before).then_some(())
    });
    assert_eq!(agreed_leader(&cluster.live()), leader);
    block_on(
        cluster
            .node(leader)
            .propose(register(1, Uuid::from_u128(14))),
    )
    .unwrap();
    assert!(rogue.image().1.brokers.is_empty());
    assert_ne!(rogue.leader(), Some(leader));
}

/// A voter whose metadata log was lost (a replaced disk) comes back under
/// its node id with a new directory id, and refuses the votes asked of its
/// old one: with the leader down, it cannot help a voter that missed a
/// committed entry win an election and lose that entry. Once the leader is
/// back and the wiped voter has caught up, its new directory id is written
/// and it votes again.
#[test]
fn a_voter_that_lost_its_log_cannot_elect_a_leader_missing_entries() {
    let mut cluster = Cluster::start(&["c16", "c16", "c16"]);
    let leader = agreed_leader(&cluster.live());
    register_brokers(cluster.node(leader));
    let directories: BTreeMap<i32, Uuid> = (1..=3)
        .map(|id| (id, cluster.node(id).directory_id()))
        .collect();
    for node in cluster.live() {
        wait_image(node, "every voter's directory id", |i| {
            i.voter_directories == directories
        });
    }
    let followers: Vec<i32> = (1..=3).filter(|&id| id != leader).collect();
    let (stale, wiped) = (followers[0], followers[1]);

    // Committed by the leader and `wiped` while `stale` is down.
    cluster.stop(stale);
    create_topic(cluster.node(leader), "committed-without-stale", 1, 1);
    cluster.stop(leader);
    cluster.stop(wiped);
    cluster.wipe(wiped);
    cluster.start_again(wiped, "c16");
    cluster.start_again(stale, "c16");
    assert_ne!(cluster.node(wiped).directory_id(), directories[&wiped]);

    // `stale` campaigns; `wiped` refuses the votes asked of its old log.
    wait_for("the wiped voter refusing a vote", || {
        (cluster.node(wiped).peers_refused() > 0).then_some(())
    });
    for id in [stale, wiped] {
        let leader = cluster.node(id).leader();
        assert!(
            leader != Some(stale) && leader != Some(wiped),
            "node {id}: {leader:?}"
        );
    }

    cluster.start_again(leader, "c16");
    agreed_leader(&cluster.live());
    for node in cluster.live() {
        wait_image(node, "the committed topic", |i| {
            i.topics.contains_key("committed-without-stale")
        });
    }
    let renewed = cluster.node(wiped).directory_id();
    for node in cluster.live() {
        wait_image(node, "the wiped voter's new directory id", |i| {
            i.voter_directories.get(&wiped) == Some(&renewed)
        });
    }
    // A quorum of three again: without its leader, the other two elect
    // one of them.
    let old_leader = agreed_leader(&cluster.live());
    cluster.stop(old_leader);
    let next = agreed_leader_other_than(&cluster.live(), Some(old_leader));
    assert!(cluster.live().iter().all(|n| n.leader() == Some(next)));
}

/// `write_quorum_certificates`'s files as the quorum's TLS config.
fn quorum_certificates(dir: &Path, name: &str) -> TlsFiles {
    let (ca, cert, key) = common::write_quorum_certificates(dir, name);
    TlsFiles { ca, cert, key }
}

/// With mutual TLS between controllers the quorum elects a leader and
/// commits as before. A node whose certificate another CA signed is
/// refused at the handshake, both ways: started as voter 3 (node 3 down,
/// the right cluster id, at node 3's address) it gets no entry of the log
/// and cannot campaign, while voters 1 and 2 go on committing.
#[test]
fn a_tls_quorum_refuses_a_node_without_its_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let files = quorum_certificates(certs.path(), "quorum");
    let mut cluster = Cluster::start_tuned(&["c17", "c17", "c17"], |c| {
        c.tls = Some(files.clone());
    });
    let leader = agreed_leader(&cluster.live());
    let imposter_id = if leader == 3 { 2 } else { 3 };
    block_on(
        cluster
            .node(leader)
            .propose(register(1, Uuid::from_u128(17))),
    )
    .unwrap();
    for node in cluster.live() {
        wait_image(node, "the proposal over TLS", |i| {
            i.brokers.contains_key(&1)
        });
    }

    cluster.stop(imposter_id);
    let stranger = quorum_certificates(certs.path(), "stranger");
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(imposter_id, "c17", &cluster.addrs, dir.path());
    config.tls = Some(stranger);
    let imposter = Controller::start(config).unwrap();
    wait_for("the imposter refusing the leader's certificate", || {
        (imposter.peers_refused() > 0).then_some(())
    });
    let before = cluster.node(leader).peers_refused();
    wait_for("the leader refusing the imposter's certificate", || {
        (cluster.node(leader).peers_refused() > before).then_some(())
    });
    block_on(
        cluster
            .node(leader)
            .propose(register(2, Uuid::from_u128(18))),
    )
    .unwrap();
    assert_eq!(agreed_leader(&cluster.live()), leader);
    assert!(imposter.image().1.brokers.is_empty());
    assert_ne!(imposter.leader(), Some(imposter_id));
    imposter.shutdown();
}
