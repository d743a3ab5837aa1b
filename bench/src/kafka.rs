//! librdkafka plumbing shared by producers, consumers and setup: client
//! configs, topic creation, and a reachability check that fails fast.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::workload::Workload;

/// How long setup waits for the broker to answer Metadata.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long CreateTopics and the partitions showing in Metadata may take:
/// a broker fsyncs a few files per new partition, and the 10,000-partition
/// workloads took over 30 s to create on a busy machine.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(180);

/// Settings every client of the run shares.
pub fn base_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("log_level", "3");
    c
}

/// librdkafka's default; named so `message.timeout.ms`, which librdkafka
/// requires to be at most this, can be checked against it.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// `transactional_id` is `Some` exactly when the workload uses transactions
/// (see [`transactional_id`]).
pub fn producer_config(
    bootstrap: &str,
    w: &Workload,
    message_timeout: Duration,
    transactional_id: Option<&str>,
) -> ClientConfig {
    let mut c = base_config(bootstrap);
    c.set("acks", w.acks.as_str())
        .set("compression.type", w.compression.as_str())
        .set("batch.size", w.batch_size.to_string())
        .set("linger.ms", w.linger_ms.to_string())
        .set(
            "enable.idempotence",
            w.producer_mode().idempotent().to_string(),
        )
        .set(
            "message.timeout.ms",
            message_timeout.as_millis().to_string(),
        );
    if let Some(id) = transactional_id {
        c.set("transactional.id", id).set(
            "transaction.timeout.ms",
            TRANSACTION_TIMEOUT
                .max(message_timeout)
                .as_millis()
                .to_string(),
        );
    }
    for (k, v) in &w.producer_config {
        c.set(k, v);
    }
    c
}

/// `group` is required by librdkafka even for `assign()`; in assign mode the
/// consumer never joins it and never commits.
pub fn consumer_config(bootstrap: &str, w: &Workload, group: &str) -> ClientConfig {
    let mut c = base_config(bootstrap);
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        .set("allow.auto.create.topics", "false")
        // librdkafka's default, set so every producer mode is read the same
        // way: consumers see committed messages only, which transactional
        // runs count.
        .set("isolation.level", "read_committed");
    for (k, v) in &w.consumer_config {
        c.set(k, v);
    }
    c
}

/// Unique per run (the run tag) and per producer, so no run fences
/// another's producers, nor one producer its neighbour.
pub fn transactional_id(run_tag: u32, producer: usize) -> String {
    format!("sluice-bench-{run_tag:08x}-{producer}")
}

/// Fails with a clear message unless the broker answers Metadata in time.
pub fn check_reachable(name: &str, bootstrap: &str) -> Result<()> {
    let consumer: BaseConsumer = base_config(bootstrap)
        .create()
        .with_context(|| format!("target {name}: bad bootstrap address {bootstrap:?}"))?;
    match consumer.fetch_metadata(None, CONNECT_TIMEOUT) {
        Ok(md) if !md.brokers().is_empty() => Ok(()),
        Ok(_) => bail!("target {name} ({bootstrap}): Metadata lists no brokers"),
        Err(e) => bail!(
            "target {name} ({bootstrap}): broker unreachable within {}s: {e}",
            CONNECT_TIMEOUT.as_secs()
        ),
    }
}

/// Creates the run's topics (the workload's partitions, replication factor
/// and `min.insync.replicas`) and waits until Metadata shows every partition
/// led, with every replica in sync.
pub fn create_topics(bootstrap: &str, topics: &[String], w: &Workload) -> Result<()> {
    let shape = TopicShape {
        partitions: w.partitions_per_topic,
        replication_factor: w.replication_factor,
        min_insync_replicas: w.min_insync_replicas,
    };
    create_topics_shaped(bootstrap, topics, &shape)
}

/// What [`create_topics_shaped`] makes each topic.
pub struct TopicShape {
    pub partitions: u32,
    pub replication_factor: u32,
    pub min_insync_replicas: Option<u32>,
}

/// Creates `topics`, each of `shape`, and waits until Metadata shows them
/// led and in sync.
pub fn create_topics_shaped(bootstrap: &str, topics: &[String], shape: &TopicShape) -> Result<()> {
    wait_for_brokers(bootstrap, shape.replication_factor)?;
    // librdkafka gives up on a request after socket.timeout.ms (60 s by
    // default), whatever the admin options say.
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap)
        .set("socket.timeout.ms", CREATE_TIMEOUT.as_millis().to_string())
        .create()?;
    let opts = AdminOptions::new()
        .operation_timeout(Some(CREATE_TIMEOUT))
        .request_timeout(Some(CREATE_TIMEOUT));
    let min_insync = shape.min_insync_replicas.map(|m| m.to_string());
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            let topic = NewTopic::new(
                t,
                shape.partitions as i32,
                TopicReplication::Fixed(shape.replication_factor as i32),
            );
            match &min_insync {
                Some(m) => topic.set("min.insync.replicas", m),
                None => topic,
            }
        })
        .collect();
    let results = block_on(admin.create_topics(&new, &opts)).context("CreateTopics failed")?;
    for r in results {
        if let Err((topic, code)) = r {
            bail!("CreateTopics {topic}: {code}");
        }
    }
    wait_for_partitions(
        bootstrap,
        topics,
        shape.partitions,
        shape.replication_factor,
        Duration::from_millis(100),
    )
}

/// Until Metadata lists at least `count` brokers: a cluster just started
/// may not have registered all of them, and CreateTopics would refuse the
/// replication factor.
fn wait_for_brokers(bootstrap: &str, count: u32) -> Result<()> {
    let consumer: BaseConsumer = base_config(bootstrap).create()?;
    let deadline = Instant::now() + CREATE_TIMEOUT;
    loop {
        let listed = consumer
            .fetch_metadata(None, CONNECT_TIMEOUT)?
            .brokers()
            .len();
        if listed >= count as usize {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "replication factor {count}: Metadata lists {listed} brokers after {}s",
                CREATE_TIMEOUT.as_secs()
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Until Metadata shows `partitions` partitions per topic, each with a
/// leader and all `replicas` replicas in its ISR (asked every `poll`): a
/// run measured while followers still join would mix two regimes.
pub fn wait_for_partitions(
    bootstrap: &str,
    topics: &[String],
    partitions: u32,
    replicas: u32,
    poll: Duration,
) -> Result<()> {
    let consumer: BaseConsumer = base_config(bootstrap).create()?;
    let deadline = Instant::now() + CREATE_TIMEOUT;
    loop {
        let md = consumer.fetch_metadata(None, CONNECT_TIMEOUT)?;
        let in_sync = |p: &rdkafka::metadata::MetadataPartition| {
            p.leader() >= 0
                && p.replicas().len() == replicas as usize
                && p.isr().len() == replicas as usize
        };
        let ready = topics.iter().all(|name| {
            md.topics().iter().any(|t| {
                t.name() == name
                    && t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions().iter().all(in_sync)
            })
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "topics did not show {partitions} partitions, each led and with \
                 {replicas} replicas in sync, in Metadata within {}s",
                CREATE_TIMEOUT.as_secs()
            );
        }
        thread::sleep(poll);
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future on this thread. rdkafka's admin futures are completed by
/// librdkafka's own thread, so parking until woken is all it takes.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park_timeout(Duration::from_millis(100));
    }
}
