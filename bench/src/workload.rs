//! Workload files: the OpenMessaging Benchmark fields, in TOML.
//!
//! A workload is parsed with `deny_unknown_fields` so a typo is an error, not
//! a silently ignored setting, and then checked by [`Workload::validate`],
//! which rejects rates the harness cannot generate.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::payload::HEADER_BYTES;

/// One producer thread cannot schedule more than this many messages per
/// second; above it, the rate is reported as impossible rather than silently
/// missed.
pub const PRODUCER_RATE_MAX_MSGS: u64 = 2_000_000;
/// A whole run cannot ask for more than this many bytes per second.
pub const RUN_BYTES_PER_SEC_MAX: u64 = 20 * 1024 * 1024 * 1024;
/// Bounds on the shape of a workload, to turn mistakes into errors.
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;
pub const PARTITIONS_MAX: u32 = 100_000;
pub const CLIENTS_PER_TOPIC_MAX: u32 = 256;
pub const TOPICS_MAX: u32 = 10_000;
pub const DURATION_SECS_MAX: u64 = 24 * 3600;
/// Each producer keeps the intended send times of its open transaction (8
/// bytes a message) until it commits; this bounds that memory.
pub const MESSAGES_PER_TRANSACTION_MAX: u32 = 1_000_000;
/// Replicas per partition; Kafka allows up to 32767, a benchmark cluster
/// on one machine far fewer.
pub const REPLICATION_FACTOR_MAX: u32 = 16;
/// librdkafka properties the first-class keys own: set through
/// `[producer_config]` they would change the producer mode without the
/// report showing it.
const PRODUCER_KEYS_OWNED: [(&str, &str); 2] = [
    ("enable.idempotence", "idempotence"),
    ("transactional.id", "messages_per_transaction"),
];

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("cannot read workload {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid workload {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid workload: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyDistribution {
    /// Null keys: librdkafka's sticky partitioner spreads batches.
    None,
    /// A fresh random 8-byte key per message.
    Random,
    /// Keys cycle through one per partition.
    RoundRobin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Acks {
    #[serde(rename = "0")]
    None,
    #[serde(rename = "1")]
    Leader,
    #[serde(rename = "all")]
    All,
}

impl Acks {
    pub fn as_str(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// How consumers get their partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerMode {
    /// `assign()` a disjoint share of partitions to each consumer; needs no
    /// group coordinator, so it works against brokers without groups.
    Assign,
    /// `subscribe()` in one consumer group per topic (OMB's subscription).
    Group,
    /// One share group per topic (KIP-932), its members fetching with
    /// ShareFetch and accepting every record (`share.rs`; uncompressed
    /// batches only).
    Share,
}

/// What fills a message after the timestamp header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// Incompressible pseudo-random bytes.
    Random,
    /// Log-like text, for compression workloads.
    Text,
}

/// What the producers guarantee, from `idempotence` and
/// `messages_per_transaction`; reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerMode {
    /// At-least-once: retries may duplicate.
    Plain,
    /// `enable.idempotence`: the broker drops retried duplicates.
    Idempotent,
    /// Transactions of this many messages each, read by `read_committed`
    /// consumers; idempotent too (librdkafka requires it).
    Transactional(u32),
}

impl ProducerMode {
    /// `plain`, `idempotent` or `transactional N`, as reports show it.
    pub fn label(self) -> String {
        match self {
            ProducerMode::Plain => "plain".into(),
            ProducerMode::Idempotent => "idempotent".into(),
            ProducerMode::Transactional(n) => format!("transactional {n}"),
        }
    }

    pub fn idempotent(self) -> bool {
        self != ProducerMode::Plain
    }

    pub fn messages_per_transaction(self) -> Option<u32> {
        match self {
            ProducerMode::Transactional(n) => Some(n),
            _ => None,
        }
    }
}

fn default_one() -> u32 {
    1
}
fn default_acks() -> Acks {
    Acks::All
}
fn default_batch_size() -> u32 {
    1024 * 1024
}
fn default_linger_ms() -> u32 {
    1
}
fn default_key_distribution() -> KeyDistribution {
    KeyDistribution::None
}
fn default_compression() -> Compression {
    Compression::None
}
fn default_consumer_mode() -> ConsumerMode {
    ConsumerMode::Assign
}
fn default_payload() -> PayloadKind {
    PayloadKind::Random
}

/// A benchmark workload. Field names follow OpenMessaging Benchmark, in
/// snake_case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub topics: u32,
    pub partitions_per_topic: u32,
    /// Bytes per message, timestamp header included.
    pub message_size: usize,
    #[serde(default = "default_one")]
    pub producers_per_topic: u32,
    #[serde(default = "default_one")]
    pub consumers_per_topic: u32,
    /// Messages per second summed over every producer of every topic; 0 means
    /// "search the maximum sustainable rate" (see `search`).
    pub producer_rate: u64,
    #[serde(default = "default_key_distribution")]
    pub key_distribution: KeyDistribution,
    #[serde(default = "default_compression")]
    pub compression: Compression,
    #[serde(default = "default_acks")]
    pub acks: Acks,
    /// librdkafka `batch.size`, bytes.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// librdkafka `linger.ms`.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u32,
    pub warmup_secs: u64,
    pub duration_secs: u64,
    #[serde(default = "default_consumer_mode")]
    pub consumer_mode: ConsumerMode,
    #[serde(default = "default_payload")]
    pub payload: PayloadKind,
    /// librdkafka `enable.idempotence`, as a key of its own so reports name
    /// the producer mode.
    #[serde(default)]
    pub idempotence: bool,
    /// Messages per transaction; 0 = no transactions. Implies idempotence.
    #[serde(default)]
    pub messages_per_transaction: u32,
    /// Replicas per partition of the run's topics (CreateTopics'
    /// replication factor); the run starts once every replica is in sync.
    #[serde(default = "default_one")]
    pub replication_factor: u32,
    /// The topics' `min.insync.replicas` config; unset: the broker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_insync_replicas: Option<u32>,
    /// Extra librdkafka producer properties, applied last (same for every
    /// target, so comparisons stay fair).
    #[serde(default)]
    pub producer_config: BTreeMap<String, String>,
    /// Extra librdkafka consumer properties, applied last.
    #[serde(default)]
    pub consumer_config: BTreeMap<String, String>,
}

impl Workload {
    pub fn load(path: &Path) -> Result<Workload, WorkloadError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorkloadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Workload::parse(&text).map_err(|e| match e {
            WorkloadError::Parse { message, .. } => WorkloadError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Workload, WorkloadError> {
        let w: Workload = toml::from_str(text).map_err(|e| WorkloadError::Parse {
            path: "<text>".into(),
            message: e.to_string(),
        })?;
        w.validate()?;
        Ok(w)
    }

    pub fn producers(&self) -> u32 {
        self.topics * self.producers_per_topic
    }

    pub fn producer_mode(&self) -> ProducerMode {
        match (self.messages_per_transaction, self.idempotence) {
            (0, false) => ProducerMode::Plain,
            (0, true) => ProducerMode::Idempotent,
            (n, _) => ProducerMode::Transactional(n),
        }
    }

    /// Bytes the producers hand the brokers over warm-up and measurement,
    /// every replica counted (before compression and batch headers); `None`
    /// at max rate.
    pub fn planned_bytes(&self) -> Option<u64> {
        (self.producer_rate > 0).then(|| {
            self.producer_rate
                * self.message_size as u64
                * (self.warmup_secs + self.duration_secs)
                * u64::from(self.replication_factor)
        })
    }

    /// Messages per second for one producer thread; `None` at max rate.
    pub fn rate_per_producer(&self) -> Option<f64> {
        (self.producer_rate > 0).then(|| self.producer_rate as f64 / self.producers() as f64)
    }

    pub fn validate(&self) -> Result<(), WorkloadError> {
        let bad = |m: String| Err(WorkloadError::Invalid(m));
        if self.name.trim().is_empty() {
            return bad("name is empty".into());
        }
        if !(1..=TOPICS_MAX).contains(&self.topics) {
            return bad(format!("topics must be 1..={TOPICS_MAX}"));
        }
        if !(1..=PARTITIONS_MAX).contains(&self.partitions_per_topic) {
            return bad(format!("partitions_per_topic must be 1..={PARTITIONS_MAX}"));
        }
        if !(HEADER_BYTES..=MESSAGE_BYTES_MAX).contains(&self.message_size) {
            return bad(format!(
                "message_size must be {HEADER_BYTES}..={MESSAGE_BYTES_MAX} bytes \
                 (each message carries a {HEADER_BYTES}-byte timestamp header)"
            ));
        }
        if !(1..=CLIENTS_PER_TOPIC_MAX).contains(&self.producers_per_topic) {
            return bad(format!(
                "producers_per_topic must be 1..={CLIENTS_PER_TOPIC_MAX}"
            ));
        }
        if self.consumers_per_topic > CLIENTS_PER_TOPIC_MAX {
            return bad(format!(
                "consumers_per_topic must be 0..={CLIENTS_PER_TOPIC_MAX}"
            ));
        }
        if self.consumer_mode == ConsumerMode::Assign
            && self.consumers_per_topic > self.partitions_per_topic
        {
            return bad(format!(
                "consumers_per_topic ({}) exceeds partitions_per_topic ({}): with \
                 consumer_mode = \"assign\" some consumers would have nothing to read",
                self.consumers_per_topic, self.partitions_per_topic
            ));
        }
        if self.consumer_mode == ConsumerMode::Share && self.compression != Compression::None {
            return bad(
                "consumer_mode = \"share\" reads uncompressed batches only: compression = \"none\""
                    .into(),
            );
        }
        if self.duration_secs == 0 || self.duration_secs > DURATION_SECS_MAX {
            return bad(format!("duration_secs must be 1..={DURATION_SECS_MAX}"));
        }
        if self.warmup_secs > DURATION_SECS_MAX {
            return bad(format!("warmup_secs must be at most {DURATION_SECS_MAX}"));
        }
        self.validate_replication()?;
        self.validate_producer_mode()?;
        self.validate_rate()
    }

    fn validate_replication(&self) -> Result<(), WorkloadError> {
        let rf = self.replication_factor;
        if !(1..=REPLICATION_FACTOR_MAX).contains(&rf) {
            return Err(WorkloadError::Invalid(format!(
                "replication_factor must be 1..={REPLICATION_FACTOR_MAX}"
            )));
        }
        match self.min_insync_replicas {
            Some(m) if !(1..=rf).contains(&m) => Err(WorkloadError::Invalid(format!(
                "min_insync_replicas ({m}) must be 1..=replication_factor ({rf}): with more, \
                 no acks=all write could ever succeed"
            ))),
            _ => Ok(()),
        }
    }

    /// The mode's keys are consistent with the rest, so librdkafka does not
    /// refuse the config mid-run and the report's mode is the real one.
    fn validate_producer_mode(&self) -> Result<(), WorkloadError> {
        let bad = |m: String| Err(WorkloadError::Invalid(m));
        if self.messages_per_transaction > MESSAGES_PER_TRANSACTION_MAX {
            return bad(format!(
                "messages_per_transaction must be 0..={MESSAGES_PER_TRANSACTION_MAX}"
            ));
        }
        let mode = self.producer_mode();
        if mode.idempotent() && self.acks != Acks::All {
            return bad(format!(
                "acks = \"{}\" with a {} producer: idempotence needs acks = \"all\"",
                self.acks.as_str(),
                mode.label()
            ));
        }
        for (property, key) in PRODUCER_KEYS_OWNED {
            if self.producer_config.contains_key(property) {
                return bad(format!(
                    "[producer_config] sets {property:?}: use the workload key `{key}` \
                     so the report shows the producer mode"
                ));
            }
        }
        let isolation = self.consumer_config.get("isolation.level");
        if mode.messages_per_transaction().is_some()
            && isolation.is_some_and(|v| v != "read_committed")
        {
            return bad(
                "[consumer_config] isolation.level must stay read_committed with \
                 transactions: consumers count committed messages only"
                    .into(),
            );
        }
        Ok(())
    }

    fn validate_rate(&self) -> Result<(), WorkloadError> {
        let Some(per_producer) = self.rate_per_producer() else {
            return Ok(());
        };
        if per_producer > PRODUCER_RATE_MAX_MSGS as f64 {
            return Err(WorkloadError::Invalid(format!(
                "impossible rate: producer_rate {} msg/s over {} producer(s) is {:.0} msg/s \
                 per producer, above the {} msg/s one producer thread can schedule; add \
                 producers or set producer_rate = 0 for max rate",
                self.producer_rate,
                self.producers(),
                per_producer,
                PRODUCER_RATE_MAX_MSGS
            )));
        }
        let bytes_per_sec = self.producer_rate as u128 * self.message_size as u128;
        if bytes_per_sec > RUN_BYTES_PER_SEC_MAX as u128 {
            return Err(WorkloadError::Invalid(format!(
                "impossible rate: {} msg/s x {} B = {:.1} GiB/s, above the {} GiB/s limit",
                self.producer_rate,
                self.message_size,
                bytes_per_sec as f64 / (1u64 << 30) as f64,
                RUN_BYTES_PER_SEC_MAX >> 30
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        name = "t"
        topics = 1
        partitions_per_topic = 4
        message_size = 1024
        producer_rate = 1000
        warmup_secs = 1
        duration_secs = 2
    "#;

    #[test]
    fn minimal_workload_gets_defaults() {
        let w = Workload::parse(MINIMAL).unwrap();
        assert_eq!(w.producers_per_topic, 1);
        assert_eq!(w.consumers_per_topic, 1);
        assert_eq!(w.acks, Acks::All);
        assert_eq!(w.compression, Compression::None);
        assert_eq!(w.key_distribution, KeyDistribution::None);
        assert_eq!(w.consumer_mode, ConsumerMode::Assign);
        assert_eq!(w.rate_per_producer(), Some(1000.0));
        assert_eq!(w.producer_mode(), ProducerMode::Plain);
        assert_eq!(w.replication_factor, 1);
        assert_eq!(w.min_insync_replicas, None);
    }

    #[test]
    fn planned_bytes_count_every_second_and_replica() {
        let mut w = Workload::parse(MINIMAL).unwrap();
        assert_eq!(w.planned_bytes(), Some(1000 * 1024 * 3));
        w.replication_factor = 3;
        assert_eq!(w.planned_bytes(), Some(1000 * 1024 * 3 * 3));
        w.producer_rate = 0;
        assert_eq!(w.planned_bytes(), None, "a max-rate run has no plan");
    }

    #[test]
    fn replication_fields_parse_and_are_checked() {
        let w = Workload::parse(&format!(
            "{MINIMAL}\nreplication_factor = 3\nmin_insync_replicas = 2\n"
        ))
        .unwrap();
        assert_eq!((w.replication_factor, w.min_insync_replicas), (3, Some(2)));
        for bad in [
            "replication_factor = 0",
            "replication_factor = 17",
            "replication_factor = 3\nmin_insync_replicas = 4",
            "min_insync_replicas = 0",
        ] {
            let e = Workload::parse(&format!("{MINIMAL}\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("replica"), "{bad}: {e}");
        }
    }

    #[test]
    fn producer_mode_comes_from_its_keys() {
        let mode = |extra: &str| {
            Workload::parse(&format!("{MINIMAL}\n{extra}\n"))
                .unwrap()
                .producer_mode()
        };
        assert_eq!(mode("idempotence = false"), ProducerMode::Plain);
        assert_eq!(mode("idempotence = true"), ProducerMode::Idempotent);
        let txn = mode("messages_per_transaction = 100");
        assert_eq!(txn, ProducerMode::Transactional(100));
        assert!(txn.idempotent(), "transactions imply idempotence");
        assert_eq!(txn.label(), "transactional 100");
        assert_eq!(
            mode("idempotence = true\nmessages_per_transaction = 7"),
            ProducerMode::Transactional(7)
        );
        assert_eq!(ProducerMode::Idempotent.label(), "idempotent");
        assert_eq!(ProducerMode::Plain.messages_per_transaction(), None);
    }

    #[test]
    fn producer_mode_mistakes_are_rejected() {
        let err = |extra: &str| {
            Workload::parse(&format!("{MINIMAL}\n{extra}\n"))
                .unwrap_err()
                .to_string()
        };
        let e = err("idempotence = true\nacks = \"1\"");
        assert!(e.contains("needs acks = \"all\""), "{e}");
        let e = err("messages_per_transaction = 10\nacks = \"0\"");
        assert!(e.contains("transactional 10"), "{e}");
        let e = err("messages_per_transaction = 1000001");
        assert!(e.contains("messages_per_transaction must be"), "{e}");
        let e = err("[producer_config]\n\"enable.idempotence\" = \"true\"");
        assert!(e.contains("use the workload key `idempotence`"), "{e}");
        let e = err("[producer_config]\n\"transactional.id\" = \"x\"");
        assert!(e.contains("`messages_per_transaction`"), "{e}");
        let e = err("messages_per_transaction = 10\n[consumer_config]\n\
             \"isolation.level\" = \"read_uncommitted\"");
        assert!(e.contains("read_committed"), "{e}");
        // Without transactions a consumer may read uncommitted data.
        let ok =
            format!("{MINIMAL}\n[consumer_config]\n\"isolation.level\" = \"read_uncommitted\"\n");
        assert!(Workload::parse(&ok).is_ok());
    }

    #[test]
    fn all_fields_parse() {
        let text = r#"
            name = "full"
            topics = 2
            partitions_per_topic = 8
            message_size = 100
            producers_per_topic = 2
            consumers_per_topic = 4
            producer_rate = 0
            key_distribution = "round_robin"
            compression = "zstd"
            acks = "1"
            batch_size = 65536
            linger_ms = 5
            warmup_secs = 0
            duration_secs = 10
            consumer_mode = "group"
            payload = "text"
            [producer_config]
            "queue.buffering.max.messages" = "50000"
        "#;
        let w = Workload::parse(text).unwrap();
        assert_eq!(w.producers(), 4);
        assert_eq!(w.rate_per_producer(), None);
        assert_eq!(w.acks, Acks::Leader);
        assert_eq!(w.compression.as_str(), "zstd");
        assert_eq!(w.producer_config["queue.buffering.max.messages"], "50000");
    }

    #[test]
    fn unknown_field_is_an_error_naming_it() {
        let text = format!("{MINIMAL}\nmesage_size_typo = 3\n");
        let err = Workload::parse(&text).unwrap_err().to_string();
        assert!(err.contains("mesage_size_typo"), "{err}");
    }

    #[test]
    fn a_share_group_reads_uncompressed_batches_only() {
        let share = format!("{MINIMAL}\nconsumer_mode = \"share\"\n");
        assert!(Workload::parse(&share).is_ok());
        let zstd = format!("{share}compression = \"zstd\"\n");
        let err = Workload::parse(&zstd).unwrap_err().to_string();
        assert!(err.contains("uncompressed"), "{err}");
    }

    #[test]
    fn impossible_rates_are_rejected() {
        let too_fast = MINIMAL.replace("producer_rate = 1000", "producer_rate = 50000000");
        let err = Workload::parse(&too_fast).unwrap_err().to_string();
        assert!(err.contains("impossible rate"), "{err}");

        let too_many_bytes = MINIMAL
            .replace("message_size = 1024", "message_size = 16000000")
            .replace("producer_rate = 1000", "producer_rate = 100000");
        let err = Workload::parse(&too_many_bytes).unwrap_err().to_string();
        assert!(err.contains("impossible rate"), "{err}");
    }

    #[test]
    fn shape_mistakes_are_rejected() {
        for (from, to) in [
            ("message_size = 1024", "message_size = 4"),
            ("partitions_per_topic = 4", "partitions_per_topic = 0"),
            ("duration_secs = 2", "duration_secs = 0"),
            ("topics = 1", "topics = 0"),
        ] {
            assert!(Workload::parse(&MINIMAL.replace(from, to)).is_err(), "{to}");
        }
        let more_consumers = format!("{MINIMAL}\nconsumers_per_topic = 5\n");
        assert!(Workload::parse(&more_consumers).is_err());
    }

    #[test]
    fn shipped_workloads_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Workload::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                count += 1;
            }
        }
        assert!(
            count >= 10,
            "expected the standard workloads, found {count}"
        );
    }

    /// The exactly-once workloads differ from the plain max-rate one in
    /// their name and producer mode only, so their ratios measure the mode.
    #[test]
    fn exactly_once_workloads_match_the_plain_one() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let load = |name: &str| Workload::load(&dir.join(format!("{name}.toml"))).unwrap();
        let plain = load("1-topic-100-partitions-1kb-max");
        assert_eq!(plain.producer_mode(), ProducerMode::Plain);
        for (name, mode) in [
            (
                "1-topic-100-partitions-1kb-idempotent-max",
                ProducerMode::Idempotent,
            ),
            (
                "1-topic-100-partitions-1kb-txn100-max",
                ProducerMode::Transactional(100),
            ),
            (
                "1-topic-100-partitions-1kb-txn1000-max",
                ProducerMode::Transactional(1000),
            ),
        ] {
            let mut w = load(name);
            assert_eq!(w.name, name);
            assert_eq!(w.producer_mode(), mode, "{name}");
            w.name = plain.name.clone();
            w.idempotence = false;
            w.messages_per_transaction = 0;
            assert_eq!(w, plain, "{name} differs from the plain workload");
        }
    }
}
