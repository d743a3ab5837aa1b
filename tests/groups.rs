//! Consumer groups through librdkafka: assignment, rebalances on leave and
//! on a killed member, committed offsets across broker restarts, assignors,
//! static membership, and Kafka's error codes for invalid group requests.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::raw::{str_bytes, RawClient};
use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::ClientContext;

/// Broker flags: a short initial rebalance delay and short sessions allowed.
const GROUP_FLAGS: &[&str] = &[
    "--group-initial-rebalance-delay-ms",
    "300",
    "--group-min-session-timeout-ms",
    "1000",
    "--offsets-topic-num-partitions",
    "4",
];

fn start_broker() -> Broker {
    Broker::start_with(2, GROUP_FLAGS)
}

/// A group consumer: manual commits, earliest reset, fast heartbeats.
fn group_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = member_config(bootstrap, group);
    c.set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300");
    c
}

/// What every group consumer here sets, whichever its protocol.
fn member_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", group)
        .set("max.poll.interval.ms", "30000")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("retry.backoff.ms", "50")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .set("allow.auto.create.topics", "false")
        .set("log_level", "4");
    c
}

/// Counts the assignments a consumer gets, so a test can tell whether a
/// rebalance happened.
#[derive(Clone, Default)]
struct CountingContext {
    assigns: Arc<AtomicUsize>,
}

impl ClientContext for CountingContext {}

impl ConsumerContext for CountingContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_)) {
            self.assigns.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// What a member thread saw: its current assignment and every message.
#[derive(Default)]
struct Seen {
    assignment: Mutex<Vec<i32>>,
    /// (partition, offset, value)
    messages: Mutex<Vec<(i32, i64, String)>>,
    assigns: Arc<AtomicUsize>,
}

/// A consumer polling on its own thread until stopped.
struct Member {
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Member {
    /// Subscribes to `topic` and polls. `commit` commits each message
    /// synchronously after it is seen.
    fn spawn(config: ClientConfig, topic: &str, commit: bool) -> Member {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::default());
        let (s, sn, topic) = (stop.clone(), seen.clone(), topic.to_string());
        let thread = thread::spawn(move || {
            let ctx = CountingContext {
                assigns: sn.assigns.clone(),
            };
            let consumer: BaseConsumer<CountingContext> =
                config.create_with_context(ctx).expect("create consumer");
            consumer.subscribe(&[&topic]).expect("subscribe");
            while !s.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into();
                    if commit {
                        // A failed commit (rebalance) just means redelivery.
                        let _ = consumer.commit_message(&m, CommitMode::Sync);
                    }
                    sn.messages
                        .lock()
                        .unwrap()
                        .push((m.partition(), m.offset(), value));
                }
                let assigned: Vec<i32> = consumer
                    .assignment()
                    .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default();
                *sn.assignment.lock().unwrap() = assigned;
            }
            // Dropping the consumer closes it: LeaveGroup for dynamic members.
        });
        Member {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn assignment(&self) -> Vec<i32> {
        let mut a = self.seen.assignment.lock().unwrap().clone();
        a.sort();
        a
    }

    fn messages(&self) -> Vec<(i32, i64, String)> {
        self.seen.messages.lock().unwrap().clone()
    }

    /// Stops polling and closes the consumer cleanly.
    fn close(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("member thread");
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits (bounded) until the members' assignments are disjoint and cover
/// `0..partitions`, with every member holding at least one partition.
fn wait_for_full_assignment(members: &[&Member], partitions: i32, within: Duration) {
    let deadline = Instant::now() + within;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last = members.iter().map(|m| m.assignment()).collect::<Vec<_>>();
        let all: Vec<i32> = last.iter().flatten().copied().collect();
        let distinct: BTreeSet<i32> = all.iter().copied().collect();
        let covering = distinct == (0..partitions).collect();
        if covering && all.len() == distinct.len() && last.iter().all(|a| !a.is_empty()) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "no disjoint covering assignment of {partitions} partitions within {within:?}: {last:?}"
    );
}

/// The first answer `ask` gives within 60 s.
fn first_answer<T>(what: &str, mut ask: impl FnMut() -> Option<T>) -> T {
    let mut answer = None;
    wait_until(what, Duration::from_secs(60), || {
        answer = ask();
        answer.is_some()
    });
    answer.expect("wait_until returned")
}

/// Waits (bounded) until `done` holds.
fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

/// `n` messages `v-<i>`, spread round-robin over `partitions`.
fn produce_spread(bootstrap: &str, topic: &str, partitions: i32, n: usize) {
    let msgs: Vec<Msg> = (0..n)
        .map(|i| Msg::value(format!("v-{i}")).to(i as i32 % partitions))
        .collect();
    let mut cfg = producer_config(bootstrap);
    cfg.set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000");
    produce(&cfg, topic, &msgs);
}

/// What a sentinel's value starts with.
const SENTINEL: &str = "sentinel-";

/// One sentinel message at the end of each of `partitions`, after
/// everything produced before (`produce` waits for every delivery).
fn produce_sentinels(bootstrap: &str, topic: &str, partitions: i32) {
    let msgs: Vec<Msg> = (0..partitions)
        .map(|p| Msg::value(format!("{SENTINEL}{p}")).to(p))
        .collect();
    produce(&producer_config(bootstrap), topic, &msgs);
}

/// Waits (bounded) until the members have consumed every partition's
/// sentinel: a partition is read in order, so everything produced before
/// its sentinel has been consumed too, and a test can count what arrived
/// without sleeping in the hope that nothing more comes.
fn wait_for_sentinels(members: &[Member], partitions: i32, within: Duration) {
    wait_until("every partition's sentinel consumed", within, || {
        let seen: BTreeSet<i32> = members
            .iter()
            .flat_map(|m| m.messages())
            .filter(|(_, _, v)| v.starts_with(SENTINEL))
            .map(|(p, _, _)| p)
            .collect();
        seen.len() == partitions as usize
    });
}

/// Asserts that `members` together consumed each of the `total` messages
/// before the sentinels exactly once.
fn assert_consumed_once(members: &[Member], total: usize) {
    let mut values = BTreeSet::new();
    let mut count = 0;
    for m in members {
        for (_, _, v) in m.messages() {
            if !v.starts_with(SENTINEL) {
                values.insert(v);
                count += 1;
            }
        }
    }
    assert_eq!(values.len(), total, "every message consumed");
    assert_eq!(count, total, "no message consumed twice");
}

/// Three consumers in one group on a 12-partition topic get a disjoint
/// covering assignment and together consume 60,000 messages exactly once.
#[test]
fn three_consumers_share_twelve_partitions() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    let topic = "g-three";
    create_topic(&bs, topic, 12, &[]);
    let started = Instant::now();
    let members: Vec<Member> = (0..3)
        .map(|_| Member::spawn(group_config(&bs, "g-three"), topic, false))
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    wait_for_full_assignment(&refs, 12, Duration::from_secs(60));
    println!(
        "rebalance: 3 consumers subscribed to all assigned in {} ms",
        started.elapsed().as_millis()
    );
    for line in broker.stderr_tail(200).lines() {
        if line.contains("group is stable") {
            println!("broker: {line}");
        }
    }
    let total = 60_000;
    produce_spread(&bs, topic, 12, total);
    produce_sentinels(&bs, topic, 12);
    wait_for_sentinels(&members, 12, Duration::from_secs(120));
    let mut values = BTreeSet::new();
    let mut count = 0;
    for m in &members {
        let assigned = m.assignment();
        for (p, _, v) in m.messages() {
            assert!(
                assigned.contains(&p),
                "message from unassigned partition {p}"
            );
            if !v.starts_with(SENTINEL) {
                values.insert(v);
                count += 1;
            }
        }
    }
    assert_eq!(values.len(), total, "every message consumed");
    assert_eq!(count, total, "no message consumed twice");
    for m in members {
        m.close();
    }
}

/// Consumes exactly `n` messages in group `group`, commits them, closes.
fn consume_and_commit(bootstrap: &str, group: &str, topic: &str, n: usize) -> Vec<(i32, i64)> {
    let consumer: BaseConsumer = group_config(bootstrap, group).create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "consumed only {} of {n}",
            got.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            got.push((m.partition(), m.offset()));
            if got.len() == n {
                consumer
                    .commit_consumer_state(CommitMode::Sync)
                    .expect("commit");
            }
        }
    }
    got
}

/// The group's committed offsets, read back through OffsetFetch.
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = group_config(bootstrap, group).create().unwrap();
    committed_offsets(&consumer, topic, partitions)
}

/// Committed offsets survive a clean restart and a kill -9, and a new
/// consumer in the group resumes from them.
#[test]
fn committed_offsets_survive_restart_and_crash() {
    let mut broker = start_broker();
    let topic = "g-restart";
    let group = "g-restart-group";
    create_topic(&broker.bootstrap(), topic, 4, &[]);
    produce_spread(&broker.bootstrap(), topic, 4, 2000);
    let mut consumed: Vec<(i32, i64)> = Vec::new();
    for (round, crash) in [(0, false), (1, true)] {
        let bs = broker.bootstrap();
        let got = consume_and_commit(&bs, group, topic, 500);
        // A new consumer resumes where the last one committed: no message
        // before that comes again.
        for (p, o) in &got {
            assert!(
                !consumed.contains(&(*p, *o)),
                "round {round}: {p}/{o} consumed again"
            );
        }
        consumed.extend(got);
        let mut expected = BTreeMap::new();
        for (p, o) in &consumed {
            let e = expected.entry(*p).or_insert(0);
            *e = (*e).max(o + 1);
        }
        assert_eq!(committed(&bs, group, topic, 4), expected, "round {round}");
        if crash {
            broker.kill9();
            broker.start_again();
        } else {
            broker.restart();
        }
        assert_eq!(
            committed(&broker.bootstrap(), group, topic, 4),
            expected,
            "round {round}: committed offsets after {}",
            if crash { "kill -9" } else { "restart" }
        );
    }
    let rest = consume_and_commit(&broker.bootstrap(), group, topic, 1000);
    consumed.extend(rest);
    let distinct: BTreeSet<(i32, i64)> = consumed.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        2000,
        "every message exactly once across restarts"
    );
}

/// A consumer that leaves cleanly makes the others rebalance at once,
/// long before its session would time out.
#[test]
fn clean_leave_triggers_rebalance() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    let topic = "g-leave";
    create_topic(&bs, topic, 4, &[]);
    let mut cfg = group_config(&bs, "g-leave");
    cfg.set("session.timeout.ms", "45000")
        .set("max.poll.interval.ms", "60000");
    let a = Member::spawn(cfg.clone(), topic, false);
    let b = Member::spawn(cfg, topic, false);
    wait_for_full_assignment(&[&a, &b], 4, Duration::from_secs(60));
    b.close();
    // Bounded well under the 45 s session timeout: only LeaveGroup can do it.
    wait_for_full_assignment(&[&a], 4, Duration::from_secs(30));
    produce_spread(&bs, topic, 4, 400);
    wait_until(
        "400 messages after the leave",
        Duration::from_secs(60),
        || a.messages().len() >= 400,
    );
}

const CHILD_ENV: &str = "SLUICE_GROUPS_CHILD";

/// The consumer the killed-consumer test runs in a child process (the same
/// test, started again with `CHILD_ENV` set) and kills. Commits every
/// message and prints it.
fn run_child_group_consumer(spec: &str) {
    let parts: Vec<&str> = spec.split('|').collect();
    let (bs, group, topic) = (parts[0], parts[1], parts[2]);
    let mut cfg = group_config(bs, group);
    cfg.set("session.timeout.ms", "2000");
    let consumer: BaseConsumer = cfg.create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            // Printed before committing: a kill between the commit reaching
            // the broker and a later print would hide a committed offset
            // from the parent. So the parent sees every offset the child
            // may have committed (a superset of the committed ones).
            println!("CONSUMED {} {}", m.partition(), m.offset() + 1);
            let _ = consumer.commit_message(&m, CommitMode::Sync);
            // Slow, so the parent can kill it mid-way.
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A consumer killed without LeaveGroup loses its partitions to the
/// others once its session times out; they resume from its committed
/// offsets and no message is lost.
#[test]
fn killed_consumer_partitions_move_within_session_timeout() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return run_child_group_consumer(&spec);
    }
    let broker = start_broker();
    let bs = broker.bootstrap();
    let topic = "g-kill";
    let group = "g-kill-group";
    create_topic(&bs, topic, 4, &[]);
    produce_spread(&bs, topic, 4, 2000);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "killed_consumer_partitions_move_within_session_timeout",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_ENV, format!("{bs}|{group}|{topic}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child consumer");
    let (tx, rx) = mpsc::channel::<(i32, i64)>();
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 3 && f[0] == "CONSUMED" {
                let _ = tx.send((f[1].parse().unwrap(), f[2].parse().unwrap()));
            }
        }
    });
    let mut child_commits: HashMap<i32, Vec<i64>> = HashMap::new();
    let drain = |commits: &mut HashMap<i32, Vec<i64>>| {
        while let Ok((p, o)) = rx.try_recv() {
            commits.entry(p).or_default().push(o);
        }
    };
    wait_until(
        "the child to consume and commit 200 messages",
        Duration::from_secs(60),
        || {
            drain(&mut child_commits);
            child_commits.values().map(Vec::len).sum::<usize>() >= 200
        },
    );
    let mut cfg = group_config(&bs, group);
    cfg.set("session.timeout.ms", "2000");
    let survivor = Member::spawn(cfg, topic, true);
    wait_until(
        "the survivor to get a share",
        Duration::from_secs(60),
        || !survivor.assignment().is_empty(),
    );
    child.kill().expect("kill child");
    let _ = child.wait();
    // The reader thread ends (and drops its sender) at the end of the dead
    // child's output: then every offset the child printed is here.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((p, o)) => child_commits.entry(p).or_default().push(o),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the killed child's output never ended"),
        }
    }
    wait_for_full_assignment(&[&survivor], 4, Duration::from_secs(30));
    let committed_by_child: BTreeSet<(i32, i64)> = child_commits
        .iter()
        .flat_map(|(p, os)| os.iter().map(move |o| (*p, o - 1)))
        .collect();
    wait_until("every message consumed", Duration::from_secs(90), || {
        let mut all = committed_by_child.clone();
        all.extend(survivor.messages().iter().map(|(p, o, _)| (*p, *o)));
        all.len() >= 2000
    });
    // Where the survivor started on each partition is an offset the child
    // committed (or 0): it resumed from committed offsets, not from scratch.
    let survivor_msgs = survivor.messages();
    for p in 0..4 {
        let Some(first) = survivor_msgs
            .iter()
            .filter(|(q, _, _)| *q == p)
            .map(|(_, o, _)| *o)
            .min()
        else {
            continue;
        };
        let commits = child_commits.get(&p).cloned().unwrap_or_default();
        assert!(
            first == 0 || commits.contains(&first),
            "partition {p}: survivor started at {first}, child committed {:?}",
            commits.iter().max()
        );
    }
}

/// cooperative-sticky and range assignors both give disjoint covering
/// assignments as members come and go.
#[test]
fn cooperative_sticky_and_range_assignors() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    for strategy in ["cooperative-sticky", "range", "roundrobin"] {
        let topic = format!("g-assign-{strategy}");
        create_topic(&bs, &topic, 6, &[]);
        let mut cfg = group_config(&bs, &format!("g-{strategy}"));
        cfg.set("partition.assignment.strategy", strategy);
        let a = Member::spawn(cfg.clone(), &topic, false);
        let b = Member::spawn(cfg.clone(), &topic, false);
        wait_for_full_assignment(&[&a, &b], 6, Duration::from_secs(60));
        let c = Member::spawn(cfg, &topic, false);
        wait_for_full_assignment(&[&a, &b, &c], 6, Duration::from_secs(60));
        c.close();
        wait_for_full_assignment(&[&a, &b], 6, Duration::from_secs(60));
        produce_spread(&bs, &topic, 6, 600);
        wait_until(
            &format!("{strategy}: 600 messages"),
            Duration::from_secs(60),
            || {
                let all: BTreeSet<String> = a
                    .messages()
                    .into_iter()
                    .chain(b.messages())
                    .map(|(_, _, v)| v)
                    .collect();
                all.len() >= 600
            },
        );
        println!("{strategy}: ok");
    }
}

/// A static member (group.instance.id) that restarts within its session
/// timeout gets its old partitions back without a rebalance of the others.
#[test]
fn static_member_rejoins_without_rebalance() {
    let broker = start_broker();
    let bs = broker.bootstrap();
    let topic = "g-static";
    create_topic(&bs, topic, 4, &[]);
    let config = |instance: &str| {
        let mut c = group_config(&bs, "g-static");
        c.set("group.instance.id", instance)
            .set("session.timeout.ms", "30000");
        c
    };
    let a = Member::spawn(config("instance-a"), topic, false);
    let b = Member::spawn(config("instance-b"), topic, false);
    wait_for_full_assignment(&[&a, &b], 4, Duration::from_secs(60));
    let mut raw = RawClient::connect(&bs);
    wait_until("the group to be stable", Duration::from_secs(30), || {
        group_state(&mut raw, "g-static") == "Stable"
    });
    wait_for_full_assignment(&[&a, &b], 4, Duration::from_secs(30));
    let (a_assigned, b_assigned) = (a.assignment(), b.assignment());
    let generations = join_phases(&broker, "g-static");
    assert!(generations >= 1, "the broker logs completed join phases");
    b.close(); // static: no LeaveGroup
    let b2 = Member::spawn(config("instance-b"), topic, false);
    wait_for_full_assignment(&[&a, &b2], 4, Duration::from_secs(30));
    // Had b2's join started a rebalance, b2 could only have its assignment
    // after that join phase completed: the broker logs every completed one.
    assert_eq!(
        join_phases(&broker, "g-static"),
        generations,
        "the static member's return started no rebalance"
    );
    assert_eq!(group_state(&mut raw, "g-static"), "Stable");
    assert_eq!(b2.assignment(), b_assigned, "same partitions back");
    assert_eq!(a.assignment(), a_assigned);
}

/// The group's state as DescribeGroups reports it.
fn group_state(client: &mut RawClient, group: &str) -> String {
    let described = client.call(
        5,
        &kafka_protocol::messages::DescribeGroupsRequest::default()
            .with_groups(vec![str_bytes(group).into()]),
    );
    described.groups[0].group_state.to_string()
}

/// How many join phases of `group` the broker has completed (its log).
fn join_phases(broker: &Broker, group: &str) -> usize {
    let needle = format!("group={group} ");
    broker
        .stderr_tail(100_000)
        .lines()
        .map(without_ansi)
        .filter(|l| l.contains("join phase complete") && l.contains(&needle))
        .count()
}

/// The line without terminal colour codes (`ESC [ ... m`).
fn without_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

mod raw_group {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const FENCED_INSTANCE_ID: i16 = 82;

    pub fn join(group: &str, member: &str, session_ms: i32) -> JoinGroupRequest {
        let mut p = join_group_request::JoinGroupRequestProtocol::default();
        p.name = str_bytes("range");
        p.metadata = bytes::Bytes::from_static(b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00");
        JoinGroupRequest::default()
            .with_group_id(str_bytes(group).into())
            .with_session_timeout_ms(session_ms)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(str_bytes(member))
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(vec![p])
    }

    pub fn heartbeat(group: &str, member: &str, generation: i32) -> HeartbeatRequest {
        HeartbeatRequest::default()
            .with_group_id(str_bytes(group).into())
            .with_member_id(str_bytes(member))
            .with_generation_id(generation)
    }

    pub fn sync(group: &str, member: &str, generation: i32) -> SyncGroupRequest {
        let mut a = sync_group_request::SyncGroupRequestAssignment::default();
        a.member_id = str_bytes(member);
        a.assignment = bytes::Bytes::from_static(b"assigned");
        SyncGroupRequest::default()
            .with_group_id(str_bytes(group).into())
            .with_member_id(str_bytes(member))
            .with_generation_id(generation)
            .with_assignments(vec![a])
    }

    pub fn commit(group: &str, member: &str, generation: i32, topic: &str) -> OffsetCommitRequest {
        let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = 7;
        p.committed_metadata = Some(StrBytes::from_static_str("meta"));
        let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = common::raw::topic_name(topic);
        t.partitions = vec![p];
        OffsetCommitRequest::default()
            .with_group_id(str_bytes(group).into())
            .with_member_id(str_bytes(member))
            .with_generation_id_or_member_epoch(generation)
            .with_topics(vec![t])
    }

    pub fn commit_error(r: &OffsetCommitResponse) -> i16 {
        r.topics[0].partitions[0].error_code
    }
}

/// Invalid group requests get Kafka's error codes, and the coordinator
/// keeps serving the valid ones.
#[test]
fn invalid_group_requests_get_kafka_error_codes() {
    use kafka_protocol::messages::*;
    use raw_group::*;
    let broker = start_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "g-raw", 1, &[]);
    let mut c = RawClient::connect(&bs);

    // FindCoordinator: groups here (transactions: tests/transactions.rs),
    // v4 batched.
    let r = c.call(
        3,
        &FindCoordinatorRequest::default().with_key(str_bytes("g-raw")),
    );
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.port,
        bs.rsplit(':').next().unwrap().parse::<i32>().unwrap()
    );
    let r = c.call(
        4,
        &FindCoordinatorRequest::default()
            .with_coordinator_keys(vec![str_bytes("a"), str_bytes("b")]),
    );
    assert_eq!(r.coordinators.len(), 2);
    assert!(r.coordinators.iter().all(|c| c.error_code == 0));

    // JoinGroup: bad group id, bad session timeout, member id required.
    assert_eq!(
        c.call(5, &join("", "", 10_000)).error_code,
        INVALID_GROUP_ID
    );
    assert_eq!(
        c.call(5, &join("g", "", 10)).error_code,
        INVALID_SESSION_TIMEOUT
    );
    assert_eq!(
        c.call(5, &join("g-raw", "nobody", 10_000)).error_code,
        UNKNOWN_MEMBER_ID
    );
    let first = c.call(5, &join("g-raw", "", 10_000));
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let member = first.member_id.to_string();
    assert!(!member.is_empty());
    let joined = c.call(5, &join("g-raw", &member, 10_000));
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader.as_str(), member);
    assert_eq!(joined.members.len(), 1);
    let generation = joined.generation_id;
    assert!(generation >= 1);

    // Wrong protocol type for an existing group.
    let other = join("g-raw", "", 10_000).with_protocol_type(str_bytes("connect"));
    assert_eq!(c.call(5, &other).error_code, INCONSISTENT_GROUP_PROTOCOL);

    // Sync and heartbeat: stale generation, unknown member.
    assert_eq!(
        c.call(3, &sync("g-raw", &member, generation + 5))
            .error_code,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        c.call(3, &sync("g-raw", "nobody", generation)).error_code,
        UNKNOWN_MEMBER_ID
    );
    let synced = c.call(3, &sync("g-raw", &member, generation));
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"assigned");
    assert_eq!(
        c.call(3, &heartbeat("g-raw", &member, generation - 1))
            .error_code,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        c.call(3, &heartbeat("g-raw", "nobody", generation))
            .error_code,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        c.call(3, &heartbeat("nogroup", &member, generation))
            .error_code,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        c.call(3, &heartbeat("g-raw", &member, generation))
            .error_code,
        0
    );

    // OffsetCommit: member checks; a simple consumer on a fresh group.
    assert_eq!(
        commit_error(&c.call(8, &commit("g-raw", "nobody", generation, "g-raw"))),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        commit_error(&c.call(8, &commit("g-raw", &member, generation + 1, "g-raw"))),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        commit_error(&c.call(8, &commit("g-raw", &member, generation, "g-raw"))),
        0
    );
    assert_eq!(
        commit_error(&c.call(2, &commit("g-simple", "", -1, "g-raw"))),
        0
    );
    assert_eq!(
        commit_error(&c.call(8, &commit("g-fresh", "m", 3, "g-raw"))),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        commit_error(&c.call(8, &commit("", "", -1, "g-raw"))),
        INVALID_GROUP_ID
    );

    // OffsetFetch v8: several groups, all partitions when topics is null.
    let mut g1 = offset_fetch_request::OffsetFetchRequestGroup::default();
    g1.group_id = str_bytes("g-simple").into();
    g1.topics = None;
    let mut g2 = g1.clone();
    g2.group_id = str_bytes("g-raw").into();
    let fetched = c.call(8, &OffsetFetchRequest::default().with_groups(vec![g1, g2]));
    assert_eq!(fetched.groups.len(), 2);
    for g in &fetched.groups {
        assert_eq!(g.error_code, 0);
        assert_eq!(g.topics.len(), 1, "{:?}", g.group_id);
        assert_eq!(g.topics[0].partitions[0].committed_offset, 7);
        assert_eq!(g.topics[0].partitions[0].metadata.as_deref(), Some("meta"));
    }

    // ListGroups with a states filter; DescribeGroups.
    let listed = c.call(
        4,
        &ListGroupsRequest::default().with_states_filter(vec![str_bytes("Stable")]),
    );
    let names: Vec<&str> = listed.groups.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(names, ["g-raw"]);
    let described = c.call(
        5,
        &DescribeGroupsRequest::default()
            .with_groups(vec![str_bytes("g-raw").into(), str_bytes("none").into()]),
    );
    assert_eq!(described.groups[0].group_state.as_str(), "Stable");
    assert_eq!(described.groups[0].members.len(), 1);
    let described_member = &described.groups[0].members[0];
    assert_eq!(described_member.client_id.as_str(), "sluice-raw-test");
    assert_eq!(
        described_member.client_host.as_str(),
        "/127.0.0.1",
        "the joining connection's address, as Kafka formats it"
    );
    assert_eq!(described.groups[1].group_state.as_str(), "Dead");
    assert_eq!(described.groups[1].error_code, 0, "before v6, no error");
    // v6 (KIP-1043): an unknown group is also GROUP_ID_NOT_FOUND.
    let described = c.call(
        6,
        &DescribeGroupsRequest::default()
            .with_groups(vec![str_bytes("g-raw").into(), str_bytes("none").into()]),
    );
    assert_eq!(described.groups[0].error_code, 0);
    assert_eq!(described.groups[0].error_message, None);
    assert_eq!(described.groups[1].error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(described.groups[1].group_state.as_str(), "Dead");
    assert!(described.groups[1].error_message.is_some());

    // DeleteGroups: not while it has members; unknown groups.
    let deleted = c.call(
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![
            str_bytes("g-raw").into(),
            str_bytes("none").into(),
            str_bytes("g-simple").into(),
        ]),
    );
    let codes: Vec<i16> = deleted.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND, 0]);

    // LeaveGroup v3 batch: fenced instance, unknown member, the real one.
    let mut leaving = Vec::new();
    for (m, instance) in [
        ("x", Some("no-such")),
        ("nobody", None),
        (member.as_str(), None),
    ] {
        let mut id = leave_group_request::MemberIdentity::default();
        id.member_id = str_bytes(m);
        id.group_instance_id = instance.map(str_bytes);
        leaving.push(id);
    }
    let left = c.call(
        3,
        &LeaveGroupRequest::default()
            .with_group_id(str_bytes("g-raw").into())
            .with_members(leaving),
    );
    let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, [UNKNOWN_MEMBER_ID, UNKNOWN_MEMBER_ID, 0]);
    assert_eq!(
        c.call(3, &heartbeat("g-raw", &member, generation))
            .error_code,
        UNKNOWN_MEMBER_ID
    );

    // Static membership: a second holder of an instance id fences the first.
    let static_join =
        |m: &str| join("g-static-raw", m, 10_000).with_group_instance_id(Some(str_bytes("inst")));
    let s1 = c.call(5, &static_join(""));
    assert_eq!(s1.error_code, 0, "static members need no second join");
    let s2 = c.call(5, &static_join(""));
    assert_eq!(s2.error_code, 0);
    assert_ne!(s1.member_id, s2.member_id);
    let fenced = HeartbeatRequest::default()
        .with_group_id(str_bytes("g-static-raw").into())
        .with_member_id(s1.member_id.clone())
        .with_generation_id(s1.generation_id)
        .with_group_instance_id(Some(str_bytes("inst")));
    assert_eq!(c.call(4, &fenced).error_code, FENCED_INSTANCE_ID);

    // The group is empty now and can go; the coordinator is still healthy.
    let deleted = c.call(
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![str_bytes("g-raw").into()]),
    );
    assert_eq!(deleted.results[0].error_code, 0);
}

/// A consumer of the consumer group protocol (KIP-848,
/// `group.protocol=consumer`): the coordinator assigns, so no assignor,
/// session or heartbeat settings of the classic protocol.
fn consumer_protocol_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = member_config(bootstrap, group);
    c.set("group.protocol", "consumer");
    c
}

/// The broker for consumer protocol groups: heartbeats every 200 ms, so a
/// reconciliation's steps follow each other quickly.
fn start_consumer_protocol_broker() -> Broker {
    let mut flags = GROUP_FLAGS.to_vec();
    flags.extend(["--group-consumer-heartbeat-interval-ms", "200"]);
    Broker::start_with(2, &flags)
}

/// ListGroups v5 of the broker, of the group `types` (all: none named):
/// (group id, group type, state).
fn listed_groups(bootstrap: &str, types: &[&str]) -> Vec<(String, String, String)> {
    let request = kafka_protocol::messages::ListGroupsRequest::default()
        .with_types_filter(types.iter().map(|t| str_bytes(t)).collect());
    let response = RawClient::connect(bootstrap).call(5, &request);
    response
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.to_string(),
                g.group_type.to_string(),
                g.group_state.to_string(),
            )
        })
        .collect()
}

/// ConsumerGroupDescribe v0 of one group.
fn describe_consumer_group(
    bootstrap: &str,
    group: &str,
) -> kafka_protocol::messages::consumer_group_describe_response::DescribedGroup {
    let mut request = kafka_protocol::messages::ConsumerGroupDescribeRequest::default();
    request.group_ids = vec![str_bytes(group).into()];
    let mut response = RawClient::connect(bootstrap).call(0, &request);
    response.groups.remove(0)
}

/// Two consumer protocol members share six partitions without overlap and
/// consume everything exactly once; the group lists as a consumer group;
/// when one leaves, the other is given every partition.
#[test]
fn consumer_protocol_members_share_partitions_and_take_over() {
    let broker = start_consumer_protocol_broker();
    let bs = broker.bootstrap();
    let (topic, group) = ("kip848-share", "kip848-share");
    create_topic(&bs, topic, 6, &[]);
    let first = Member::spawn(consumer_protocol_config(&bs, group), topic, false);
    let second = Member::spawn(consumer_protocol_config(&bs, group), topic, false);
    wait_for_full_assignment(&[&first, &second], 6, Duration::from_secs(60));

    let total = 600;
    produce_spread(&bs, topic, 6, total);
    produce_sentinels(&bs, topic, 6);
    let members = [first, second];
    wait_for_sentinels(&members, 6, Duration::from_secs(60));
    assert_consumed_once(&members, total);
    let listed = listed_groups(&bs, &["Consumer"]);
    assert!(
        listed.contains(&(group.into(), "consumer".into(), "Stable".into())),
        "{listed:?}"
    );
    let classic = listed_groups(&bs, &["classic"]);
    assert!(classic.iter().all(|(id, _, _)| id != group), "{classic:?}");

    let described = describe_consumer_group(&bs, group);
    assert_eq!(described.error_code, 0, "{:?}", described.error_message);
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.assignor_name.as_str(), "uniform");
    assert_eq!(described.members.len(), 2);
    for member in &described.members {
        let owned: Vec<(String, usize)> = member
            .assignment
            .topic_partitions
            .iter()
            .map(|tp| (tp.topic_name.to_string(), tp.partitions.len()))
            .collect();
        assert_eq!(owned, [(topic.to_string(), 3)], "{member:?}");
        assert_eq!(member.member_epoch, described.assignment_epoch);
    }

    let [first, second] = members;
    first.close();
    wait_until(
        "the remaining member given every partition",
        Duration::from_secs(60),
        || second.assignment() == (0..6).collect::<Vec<_>>(),
    );
    second.close();
}

/// The members of a consumer protocol group (ConsumerGroupDescribe v1):
/// (member id, type: 0 classic, 1 consumer protocol), sorted; `None` while
/// the coordinator does not answer for it (loading after a restart).
fn members_by_type(bootstrap: &str, group: &str) -> Option<Vec<(String, i8)>> {
    let mut request = kafka_protocol::messages::ConsumerGroupDescribeRequest::default();
    request.group_ids = vec![str_bytes(group).into()];
    let response = RawClient::connect(bootstrap).call(1, &request);
    let described = response.groups.first()?;
    if described.error_code != 0 {
        return None;
    }
    let mut members: Vec<(String, i8)> = described
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.member_type))
        .collect();
    members.sort();
    Some(members)
}

/// The group types ListGroups gives `group` (none while it is unknown).
fn group_type(bootstrap: &str, group: &str) -> Option<String> {
    listed_groups(bootstrap, &[])
        .into_iter()
        .find(|(id, _, _)| id == group)
        .map(|(_, kind, _)| kind)
}

/// A rolling upgrade and back, as Kafka's online migration allows it
/// (`group.consumer.migration.policy`, bidirectional by default): two
/// classic members consume; a consumer protocol member joins them, the
/// group becomes a consumer protocol group, the classic members stay in
/// it (rejoining when the coordinator asks) and the three share the
/// partitions without overlap, consuming and committing everything once;
/// when the consumer protocol member leaves, the group is a classic group
/// again and its classic members take every partition back.
#[test]
fn a_group_moves_between_protocols_while_it_consumes() {
    moves_between_protocols("range,roundrobin");
}

/// The same with cooperative classic members, which keep their partitions
/// across a join and give up only what they are told to.
#[test]
fn a_cooperative_group_moves_between_protocols_while_it_consumes() {
    moves_between_protocols("cooperative-sticky");
}

/// A group in the middle of a rolling upgrade comes back from its
/// coordinator's kill -9 as it was: the same members, the classic one
/// still a classic member (it goes on heartbeating under its id rather
/// than being refused and joining anew).
#[test]
fn a_mixed_group_comes_back_mixed_after_a_crash() {
    let mut broker = start_consumer_protocol_broker();
    broker.keep_port();
    let bs = broker.bootstrap();
    let (topic, group) = ("mixed-crash", "mixed-crash");
    create_topic(&bs, topic, 4, &[]);
    let classic = Member::spawn(group_config(&bs, group), topic, false);
    wait_for_full_assignment(&[&classic], 4, Duration::from_secs(60));
    let modern = Member::spawn(consumer_protocol_config(&bs, group), topic, false);
    wait_for_full_assignment(&[&classic, &modern], 4, Duration::from_secs(60));
    let before = members_by_type(&bs, group).expect("described");
    let types: Vec<i8> = before.iter().map(|(_, t)| *t).collect();
    assert!(types.contains(&0) && types.contains(&1), "{before:?}");

    broker.kill9();
    broker.start_again();
    let after = first_answer("the group described again", || members_by_type(&bs, group));
    assert_eq!(after, before);
    wait_for_full_assignment(&[&classic, &modern], 4, Duration::from_secs(60));
    assert_eq!(members_by_type(&bs, group).unwrap(), before);
    modern.close();
    classic.close();
}

/// A consumer protocol group, as ConsumerGroupDescribe gives it: the group
/// epoch, the assignment epoch, and each member's (id, epoch, partitions
/// owned, partitions targeted), by id; `None` while the coordinator does
/// not answer for it.
type Described = (i32, i32, Vec<(String, i32, Vec<i32>, Vec<i32>)>);

fn described(bootstrap: &str, group: &str) -> Option<Described> {
    let d = describe_consumer_group(bootstrap, group);
    if d.error_code != 0 {
        return None;
    }
    let partitions =
        |a: &kafka_protocol::messages::consumer_group_describe_response::Assignment| {
            let mut all: Vec<i32> = a
                .topic_partitions
                .iter()
                .flat_map(|tp| tp.partitions.iter().copied())
                .collect();
            all.sort();
            all
        };
    let mut members: Vec<_> = d
        .members
        .iter()
        .map(|m| {
            let id = m.member_id.to_string();
            (
                id,
                m.member_epoch,
                partitions(&m.assignment),
                partitions(&m.target_assignment),
            )
        })
        .collect();
    members.sort();
    Some((d.group_epoch, d.assignment_epoch, members))
}

/// A consumer protocol group whose members came and went comes back from
/// its coordinator's kill -9 as it was: the members that stayed, at their
/// epochs with their partitions and targets, and not the one that left.
#[test]
fn a_consumer_protocol_group_comes_back_as_it_was_after_a_crash() {
    let mut broker = start_consumer_protocol_broker();
    broker.keep_port();
    let bs = broker.bootstrap();
    let (topic, group) = ("kip848-crash", "kip848-crash");
    create_topic(&bs, topic, 6, &[]);
    let first = Member::spawn(consumer_protocol_config(&bs, group), topic, false);
    let second = Member::spawn(consumer_protocol_config(&bs, group), topic, false);
    let third = Member::spawn(consumer_protocol_config(&bs, group), topic, false);
    wait_for_full_assignment(&[&first, &second, &third], 6, Duration::from_secs(60));
    let left = described(&bs, group).expect("described").2;
    assert_eq!(left.len(), 3, "{left:?}");
    second.close();
    wait_for_full_assignment(&[&first, &third], 6, Duration::from_secs(60));
    let before = first_answer("the group stable again", || {
        described(&bs, group).filter(|(epoch, assigned, members)| {
            let settled = members.iter().all(|m| m.1 == *epoch && m.2 == m.3);
            members.len() == 2 && assigned == epoch && settled
        })
    });

    broker.kill9();
    broker.start_again();
    let after = first_answer("the group described again", || described(&bs, group));
    assert_eq!(after, before);
    wait_for_full_assignment(&[&first, &third], 6, Duration::from_secs(60));
    assert_eq!(described(&bs, group).unwrap(), before);
    first.close();
    third.close();
}

/// The offline way back: once a consumer protocol group's members have
/// all left, classic members may take the group, and their commits (under
/// classic generations) are taken.
#[test]
fn classic_members_take_a_group_its_consumer_members_left() {
    let broker = start_consumer_protocol_broker();
    let bs = broker.bootstrap();
    let (topic, group) = ("left-behind", "left-behind");
    create_topic(&bs, topic, 2, &[]);
    produce_spread(&bs, topic, 2, 20);
    let modern = Member::spawn(consumer_protocol_config(&bs, group), topic, true);
    wait_until("the first 20 consumed", Duration::from_secs(60), || {
        modern.messages().len() == 20
    });
    modern.close();
    assert_eq!(group_type(&bs, group).as_deref(), Some("consumer"));

    produce_spread(&bs, topic, 2, 20);
    let got = consume_and_commit(&bs, group, topic, 20);
    assert!(got.iter().all(|(_, offset)| *offset >= 10), "{got:?}");
    let expected: BTreeMap<i32, i64> = (0..2).map(|p| (p, 20)).collect();
    assert_eq!(committed(&bs, group, topic, 2), expected);
    assert_eq!(group_type(&bs, group).as_deref(), Some("classic"));
}

fn moves_between_protocols(classic_assignors: &str) {
    let broker = start_consumer_protocol_broker();
    let bs = broker.bootstrap();
    let (topic, group) = ("migrating", "migrating");
    create_topic(&bs, topic, 6, &[]);
    let mut classic = group_config(&bs, group);
    classic.set("partition.assignment.strategy", classic_assignors);
    let classic_a = Member::spawn(classic.clone(), topic, true);
    let classic_b = Member::spawn(classic, topic, true);
    wait_for_full_assignment(&[&classic_a, &classic_b], 6, Duration::from_secs(60));
    assert_eq!(group_type(&bs, group).as_deref(), Some("classic"));

    let modern = Member::spawn(consumer_protocol_config(&bs, group), topic, true);
    wait_for_full_assignment(
        &[&classic_a, &classic_b, &modern],
        6,
        Duration::from_secs(60),
    );
    assert_eq!(group_type(&bs, group).as_deref(), Some("consumer"));
    let types: Vec<i8> = members_by_type(&bs, group)
        .expect("described")
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(types.iter().filter(|t| **t == 0).count(), 2, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == 1).count(), 1, "{types:?}");

    let total = 600;
    produce_spread(&bs, topic, 6, total);
    produce_sentinels(&bs, topic, 6);
    let members = [classic_a, classic_b, modern];
    wait_for_sentinels(&members, 6, Duration::from_secs(60));
    assert_consumed_once(&members, total);
    assert!(
        members.iter().all(|m| !m.messages().is_empty()),
        "each member consumed its share"
    );
    // Every member's commits were taken: classic ones under their
    // generation, which is their member epoch.
    let per_partition = (total / 6 + 1) as i64;
    let expected: BTreeMap<i32, i64> = (0..6).map(|p| (p, per_partition)).collect();
    assert_eq!(committed(&bs, group, topic, 6), expected);

    let [classic_a, classic_b, modern] = members;
    modern.close();
    wait_until("the group classic again", Duration::from_secs(60), || {
        group_type(&bs, group).as_deref() == Some("classic")
    });
    wait_for_full_assignment(&[&classic_a, &classic_b], 6, Duration::from_secs(60));
    let more = 60;
    let msgs: Vec<Msg> = (0..more)
        .map(|i| Msg::value(format!("w-{i}")).to(i as i32 % 6))
        .collect();
    produce(&producer_config(&bs), topic, &msgs);
    wait_until(
        "the classic group consuming again",
        Duration::from_secs(60),
        || {
            let seen: BTreeSet<String> = [&classic_a, &classic_b]
                .iter()
                .flat_map(|m| m.messages())
                .map(|(_, _, v)| v)
                .filter(|v| v.starts_with("w-"))
                .collect();
            seen.len() == more
        },
    );
    classic_a.close();
    classic_b.close();
}

/// Offsets committed by a consumer protocol member (with its member epoch)
/// are where the next member of the group starts: it reads only what came
/// after them.
#[test]
fn consumer_protocol_commits_are_where_the_next_member_starts() {
    let broker = start_consumer_protocol_broker();
    let bs = broker.bootstrap();
    let (topic, group) = ("kip848-commit", "kip848-commit");
    create_topic(&bs, topic, 2, &[]);
    produce_spread(&bs, topic, 2, 100);
    produce_sentinels(&bs, topic, 2);
    let first = Member::spawn(consumer_protocol_config(&bs, group), topic, true);
    let first = [first];
    wait_for_sentinels(&first, 2, Duration::from_secs(60));
    let [first] = first;
    assert_eq!(first.messages().len(), 102);
    first.close();

    let later: Vec<Msg> = (0..20)
        .map(|i| Msg::value(format!("later-{i}")).to(i % 2))
        .collect();
    produce(&producer_config(&bs), topic, &later);
    let next = [Member::spawn(
        consumer_protocol_config(&bs, group),
        topic,
        false,
    )];
    wait_until(
        "the later messages consumed",
        Duration::from_secs(60),
        || next[0].messages().len() >= 20,
    );
    let read: Vec<String> = next[0].messages().into_iter().map(|(_, _, v)| v).collect();
    assert!(
        read.iter().all(|v| v.starts_with("later-")),
        "read again what was committed: {read:?}"
    );
    assert_eq!(read.len(), 20);
}

/// A consumer protocol member subscribed by regex (`^kip848-re-.*`, which
/// librdkafka sends as the subscription's regex) is given the matching
/// topics' partitions only, and a matching topic created later too.
#[test]
fn consumer_protocol_regex_subscriptions_follow_new_topics() {
    let broker = start_consumer_protocol_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "kip848-re-a", 2, &[]);
    create_topic(&bs, "kip848-other", 3, &[]);
    let member = Member::spawn(
        consumer_protocol_config(&bs, "kip848-re"),
        "^kip848-re-.*",
        false,
    );
    wait_until(
        "the matching topic's two partitions",
        Duration::from_secs(60),
        || member.assignment() == [0, 1],
    );
    create_topic(&bs, "kip848-re-b", 1, &[]);
    wait_until(
        "the new matching topic's partition too",
        Duration::from_secs(60),
        || member.assignment() == [0, 0, 1],
    );
    member.close();
}

/// A static member of a consumer protocol group (`group.instance.id`)
/// that closes and comes back under its instance id gets its partitions
/// again, and the other member is never given them meanwhile.
#[test]
fn consumer_protocol_static_member_comes_back_to_its_partitions() {
    let broker = start_consumer_protocol_broker();
    let bs = broker.bootstrap();
    let (topic, group) = ("kip848-static", "kip848-static");
    create_topic(&bs, topic, 4, &[]);
    let static_config = || {
        let mut c = consumer_protocol_config(&bs, group);
        c.set("group.instance.id", "kip848-static-1");
        c
    };
    let fixed = Member::spawn(static_config(), topic, false);
    let other = Member::spawn(consumer_protocol_config(&bs, group), topic, false);
    wait_for_full_assignment(&[&fixed, &other], 4, Duration::from_secs(60));
    let before = fixed.assignment();
    let others = other.assignment();
    let assigns = other.seen.assigns.load(Ordering::SeqCst);

    fixed.close();
    // Away for several of the other member's heartbeats (every 200 ms):
    // were its partitions freed, the other would be given them now.
    thread::sleep(Duration::from_secs(1));
    let back = Member::spawn(static_config(), topic, false);
    wait_until(
        "the static member's partitions back",
        Duration::from_secs(60),
        || back.assignment() == before,
    );
    assert_eq!(other.assignment(), others);
    assert_eq!(
        other.seen.assigns.load(Ordering::SeqCst),
        assigns,
        "the other member was given nothing while the static one was away"
    );
    back.close();
    other.close();
}

const KIP848_CHILD_ENV: &str = "SLUICE_GROUPS_KIP848_CHILD";

/// A consumer protocol member killed without leaving (in a child process,
/// this test started again with `KIP848_CHILD_ENV` set) is removed once its
/// session times out, and the other member is given its partitions.
#[test]
fn consumer_protocol_killed_member_partitions_move_after_its_session() {
    if let Ok(spec) = std::env::var(KIP848_CHILD_ENV) {
        let (bs, group, topic) = spec
            .split_once('|')
            .and_then(|(bs, rest)| rest.split_once('|').map(|(g, t)| (bs, g, t)))
            .expect("child spec");
        let member = Member::spawn(consumer_protocol_config(bs, group), topic, false);
        thread::sleep(Duration::from_secs(120));
        drop(member);
        return;
    }
    let mut flags = GROUP_FLAGS.to_vec();
    flags.extend([
        "--group-consumer-heartbeat-interval-ms",
        "200",
        "--group-consumer-session-timeout-ms",
        "2000",
    ]);
    let broker = Broker::start_with(2, &flags);
    let bs = broker.bootstrap();
    let (topic, group) = ("kip848-killed", "kip848-killed");
    create_topic(&bs, topic, 4, &[]);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "consumer_protocol_killed_member_partitions_move_after_its_session",
            "--exact",
        ])
        .env(KIP848_CHILD_ENV, format!("{bs}|{group}|{topic}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child consumer");
    let survivor = Member::spawn(consumer_protocol_config(&bs, group), topic, false);
    wait_until(
        "the two members sharing the topic",
        Duration::from_secs(60),
        || {
            let mut request = kafka_protocol::messages::ConsumerGroupDescribeRequest::default();
            request.group_ids = vec![str_bytes(group).into()];
            let response = RawClient::connect(&bs).call(0, &request);
            let g = &response.groups[0];
            g.members.len() == 2 && survivor.assignment().len() == 2
        },
    );
    child.kill().expect("kill child");
    let _ = child.wait();
    wait_until(
        "the survivor given every partition",
        Duration::from_secs(60),
        || survivor.assignment() == [0, 1, 2, 3],
    );
    survivor.close();
}

/// Strings a group's record could not hold (over 32 KiB: a member id, an
/// instance id, a subscribed topic name from a ConsumerGroupHeartbeat, a
/// member id a classic member brings to a consumer protocol group) are
/// refused with INVALID_REQUEST, and the coordinator keeps serving.
#[test]
fn group_strings_too_long_for_the_record_are_refused() {
    use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
    const INVALID_REQUEST: i16 = 42;
    let broker = start_consumer_protocol_broker();
    let bs = broker.bootstrap();
    create_topic(&bs, "long", 1, &[]);
    let huge = "x".repeat(40_000);
    let beat = |member: &str, instance: Option<&str>, topic: &str| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(str_bytes("long-strings").into())
            .with_member_id(str_bytes(member))
            .with_instance_id(instance.map(str_bytes))
            .with_rack_id(None)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![str_bytes(topic).into()]))
            .with_subscribed_topic_regex(None)
            .with_server_assignor(None)
            .with_topic_partitions(Some(Vec::new()))
    };
    let mut c = RawClient::connect(&bs);
    for request in [
        beat(&huge, None, "long"),
        beat("m-1", Some(&huge), "long"),
        beat("m-1", None, &huge),
    ] {
        let r: ConsumerGroupHeartbeatResponse = c.call(1, &request);
        assert_eq!(r.error_code, INVALID_REQUEST, "{:?}", r.error_message);
    }
    let r: ConsumerGroupHeartbeatResponse = c.call(1, &beat("m-1", None, "long"));
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);

    // A classic member joining the consumer protocol group under its own id.
    // (v6: flexible, a member id over 32 KiB encodes.)
    let join = raw_group::join("long-strings", &huge, 10_000).with_group_instance_id(None);
    let r = c.call(6, &join);
    assert_eq!(r.error_code, INVALID_REQUEST);
    let r: ConsumerGroupHeartbeatResponse = c.call(1, &beat("m-1", None, "long"));
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
}

/// Consumer lag at `/metrics` (what kafka_exporter exports): per group
/// and partition the committed offset and how far behind the high
/// watermark it is, the sum and most per group, and the members; a group
/// id is escaped as a Prometheus label.
#[test]
fn consumer_group_lag_is_gauged_at_metrics() {
    let mut flags = GROUP_FLAGS.to_vec();
    flags.extend([
        "--metrics-listen",
        "127.0.0.1:0",
        "--metrics-refresh-ms",
        "50",
    ]);
    let broker = Broker::start_with(2, &flags);
    let bs = broker.bootstrap();
    create_topic(&bs, "lagged", 2, &[]);
    let values: Vec<String> = (0..15).map(|i| format!("v{i}")).collect();
    for partition in 0..2 {
        produce_values(&bs, "lagged", Some(partition), &values);
    }

    // 10 of partition 0's 15 records committed, all of partition 1's.
    let committer: BaseConsumer = group_config(&bs, "lag\"ged\\group").create().unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (partition, offset) in [(0, 10), (1, 15)] {
        tpl.add_partition_offset("lagged", partition, rdkafka::Offset::Offset(offset))
            .unwrap();
    }
    committer.commit(&tpl, CommitMode::Sync).expect("commit");
    let label = r#"group="lag\"ged\\group""#;
    let of_group = |name: &str| format!("{name}{{{label}}}");
    assert_eq!(
        broker.wait_series(&of_group("sluice_consumer_group_lag_sum"), |v| v == Some(5)),
        Some(5)
    );
    let body = broker.metrics_text();
    let at = |name: &str, partition: i32| {
        series_value(
            &body,
            &format!("{name}{{{label},topic=\"lagged\",partition=\"{partition}\"}}"),
        )
    };
    assert_eq!(at("sluice_consumer_group_lag", 0), Some(5));
    assert_eq!(at("sluice_consumer_group_lag", 1), Some(0));
    assert_eq!(at("sluice_consumer_group_committed_offset", 0), Some(10));
    assert_eq!(at("sluice_consumer_group_committed_offset", 1), Some(15));
    assert_eq!(
        series_value(&body, &of_group("sluice_consumer_group_lag_max")),
        Some(5)
    );
    assert_eq!(
        series_value(&body, &of_group("sluice_consumer_group_members")),
        Some(0)
    );

    // New records behind nobody's commit: the lag grows with them.
    produce_values(&bs, "lagged", Some(1), &values[..4]);
    assert_eq!(
        broker.wait_series(&of_group("sluice_consumer_group_lag_sum"), |v| v == Some(9)),
        Some(9)
    );

    // A member that commits what it reads: there while it is, caught up.
    let member = Member::spawn(group_config(&bs, "reading"), "lagged", true);
    let reading = |name: &str| format!("{name}{{group=\"reading\"}}");
    assert_eq!(
        broker.wait_series(&reading("sluice_consumer_group_members"), |v| v == Some(1)),
        Some(1)
    );
    for (partition, end) in [(0, 15), (1, 19)] {
        let committed = format!(
            "sluice_consumer_group_committed_offset{{group=\"reading\",topic=\"lagged\",partition=\"{partition}\"}}"
        );
        assert_eq!(
            broker.wait_series(&committed, |v| v == Some(end)),
            Some(end)
        );
    }
    let body = broker.metrics_text();
    assert_eq!(
        series_value(&body, &reading("sluice_consumer_group_lag_sum")),
        Some(0)
    );
    member.close();
    assert_eq!(
        broker.wait_series(&reading("sluice_consumer_group_members"), |v| v == Some(0)),
        Some(0)
    );
}
