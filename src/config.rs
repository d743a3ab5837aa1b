//! Broker configuration: a TOML file overridden by command-line flags,
//! and the per-topic configs Kafka clients read and change.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::compression::{Levels, ProducePolicy, TimestampBounds, TopicCompression};
use crate::storage::{LogConfig, TimestampType};
use crate::throttle_configs::ThrottledReplicas;
use crate::topic_configs::{self, parse_bool};

/// Kafka's `group.consumer.migration.policy`: whether a consumer group
/// may move between the classic and the consumer protocol while it has
/// members (`group::migration`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MigrationPolicy {
    /// Both ways, Kafka 4's default.
    #[default]
    Bidirectional,
    /// Classic groups become consumer protocol groups, never back.
    Upgrade,
    /// Consumer protocol groups become classic groups, never the other way.
    Downgrade,
    /// Neither: a group keeps the protocol its first member chose.
    Disabled,
}

/// Kafka's `share.auto.offset.reset` (a group config there; here the
/// broker's default for every share group): where a group's share
/// partition starts when first fetched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ShareAutoOffsetReset {
    /// At the log end: only records written from then on, Kafka's default.
    #[default]
    Latest,
    /// At the log start.
    Earliest,
}

impl MigrationPolicy {
    pub fn upgrades(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Upgrade
        )
    }

    pub fn downgrades(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Bidirectional | MigrationPolicy::Downgrade
        )
    }
}

/// `append_writer`: where a produce's `pwritev` runs (see
/// `tuning/README.md` for what each costs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AppendWriter {
    /// On the shard thread, right away: the cheapest in CPU, but a write
    /// the kernel throttles holds every socket on the core.
    #[default]
    Inline,
    /// On the blocking thread, one job per request and owner shard.
    Thread,
    /// Inline until a write is slow, then on the blocking thread until
    /// none has been for a while (see `shard::append_writer`).
    Adaptive,
    /// Through the shard's io_uring, each partition's batches one write,
    /// all of a request's at once; the kernel runs what would block.
    Uring,
}

/// Kafka's `replica.selector.class` (KIP-392): which replica a consumer
/// reads a partition from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaSelector {
    /// Always the leader (Kafka's default, no selector).
    #[default]
    Leader,
    /// Kafka's RackAwareReplicaSelector: a consumer that names its rack
    /// (`client.rack`) reads from an in-sync replica in that rack when the
    /// leader is in another.
    RackAware,
}

/// The `transaction.version` feature level this broker finalizes (KIP-890):
/// 2, transactions without AddPartitionsToTxn and with an epoch bump at
/// every end, unless set lower: 0 keeps Kafka 4's clients to the older
/// protocol (while a cluster is upgraded from a Sluice without version 2,
/// or to rule a client's use of it out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TransactionVersion(i16);

impl TransactionVersion {
    /// The highest level this software runs.
    pub const LATEST: TransactionVersion = TransactionVersion(2);

    pub const fn level(self) -> i16 {
        self.0
    }

    pub fn new(level: i16) -> Result<TransactionVersion, String> {
        if (0..=Self::LATEST.0).contains(&level) {
            Ok(TransactionVersion(level))
        } else {
            Err(format!(
                "transaction version {level}: 0 to {} are known",
                Self::LATEST.0
            ))
        }
    }
}

impl std::str::FromStr for TransactionVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let level = s.parse::<i16>().map_err(|e| format!("{s:?}: {e}"))?;
        TransactionVersion::new(level)
    }
}

impl<'de> Deserialize<'de> for TransactionVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TransactionVersion::new(i16::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Everything the broker needs to start. Field names match the TOML keys.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Address every shard binds with SO_REUSEPORT.
    pub listen: String,
    /// Address given to clients in Metadata; defaults to the bound address.
    pub advertise: Option<String>,
    pub data_dir: PathBuf,
    /// The cluster this node belongs to. Unset: taken from the data dir's
    /// `meta.properties`, else derived from `controller_quorum_voters`, else
    /// new at first start. Once started, the cluster id in force.
    pub cluster_id: Option<String>,
    /// Kafka's `controller.listener`: where this node's controller takes
    /// quorum traffic. A voter defaults to its entry in the voter list; a
    /// broker-only node (not in the list) to the `listen` host with a port
    /// the OS picks, which it tells the active controller at every start.
    pub controller_listen: Option<String>,
    /// Kafka's `controller.quorum.voters`: `ID@HOST:PORT,...`. A node in
    /// the list runs a controller voter and a broker; a node not in it a
    /// broker only. Unset: a one-node cluster.
    pub controller_quorum_voters: Option<String>,
    /// Kafka's `broker.rack`: replicas of a partition spread over racks.
    pub broker_rack: Option<String>,
    /// Kafka's `replica.selector.class`: where consumers that name a rack
    /// read (KIP-392).
    pub replica_selector: ReplicaSelector,
    /// The `transaction.version` feature level ApiVersions finalizes.
    pub transaction_version: TransactionVersion,
    /// Kafka's `broker.session.timeout.ms`: a broker whose heartbeats stop
    /// this long is fenced and its leaderships move.
    pub broker_session_timeout_ms: u64,
    /// Kafka's `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// How long a starting broker waits for the quorum to register and
    /// unfence it before giving up.
    pub broker_startup_timeout_ms: u64,
    /// How long a metadata change (CreateTopics, ...) may wait to be
    /// committed; past it the request gets REQUEST_TIMED_OUT.
    pub metadata_propose_timeout_ms: u64,
    /// Kafka's `controlled.shutdown.timeout`: how long a stopping broker
    /// waits for its leaderships to move away.
    pub controlled_shutdown_timeout_ms: u64,
    /// Kafka's `default.replication.factor`.
    pub default_replication_factor: i32,
    /// Kafka's `offsets.topic.replication.factor` (capped at the brokers
    /// alive when `__consumer_offsets` is created).
    pub offsets_topic_replication_factor: i32,
    /// Kafka's `auto.leader.rebalance.enable`: the active controller gives
    /// partitions back to their preferred replica (the first) when that
    /// broker leads too few of the partitions it prefers.
    pub auto_leader_rebalance_enable: bool,
    /// Kafka's `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval_seconds: u64,
    /// Kafka's `leader.imbalance.per.broker.percentage`: the share of a
    /// broker's preferred partitions led elsewhere that triggers a rebalance.
    pub leader_imbalance_per_broker_percentage: u32,
    /// Kafka's `min.insync.replicas` broker default: an acks=all produce to
    /// a partition with a smaller ISR gets NOT_ENOUGH_REPLICAS.
    pub min_insync_replicas: i32,
    /// Kafka's `replica.lag.time.max.ms`: a follower not caught up to the
    /// leader's log end for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// Kafka's `replica.fetch.max.bytes`: bytes one follower fetch asks per
    /// partition (at least one batch is always returned).
    pub replica_fetch_max_bytes: i32,
    /// Kafka's `replica.fetch.response.max.bytes`: bytes one follower fetch
    /// asks in all.
    pub replica_fetch_response_max_bytes: i32,
    /// Kafka's `replica.fetch.wait.max.ms`: how long a follower's fetch
    /// waits at the leader for new data.
    pub replica_fetch_wait_max_ms: u64,
    /// Kafka's `replica.fetch.backoff.ms`: the pause after a failed fetch.
    pub replica_fetch_backoff_ms: u64,
    /// Kafka's `replica.socket.timeout.ms`: a follower fetch not answered
    /// this long after its wait closes the connection.
    pub replica_socket_timeout_ms: u64,
    /// Kafka's `replica.high.watermark.checkpoint.interval.ms`.
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    /// acks=all produces one partition holds waiting for its followers;
    /// past it a produce is refused (REQUEST_TIMED_OUT) before it appends.
    /// Each holds its answer only, not its records.
    pub replica_acks_waiting_max: usize,
    /// Executors, one per core; `None` means `runtime::default_shards`.
    pub shards: Option<usize>,
    pub node_id: i32,
    /// Kafka's `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// Kafka's `num.partitions`: partitions of an auto-created topic.
    pub num_partitions: i32,
    /// Kafka's `socket.request.max.bytes`: larger frames close the connection.
    pub socket_request_max_bytes: u32,
    /// fdatasync before acknowledging every acks=-1 produce.
    pub fsync_on_ack: bool,
    /// Who writes produced batches into the page cache: the shard thread
    /// (`inline`), the blocking thread, one job per request (`thread`), or
    /// io_uring (`uring`); with either of the last two a write held up by
    /// dirty-page throttling stalls no other socket.
    pub append_writer: AppendWriter,
    /// Kafka's `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// Kafka's `log.cleaner.backoff.ms`: how often compacted topics are
    /// looked at when no cleaning round is under way.
    pub log_cleaner_backoff_ms: u64,
    /// Kafka's `log.flush.scheduler.interval.ms`: how often `flush.ms` is
    /// checked for partitions no append has come to, and rolled segments
    /// whose background fdatasync failed are retried. (Kafka's default
    /// never checks; a topic's `flush.ms` would then only act on appends.)
    pub log_flush_scheduler_interval_ms: u64,
    /// Kafka's `connections.max.idle.ms`: a connection with no request for
    /// this long is closed.
    pub connections_max_idle_ms: u64,
    /// How long writing one response may stall on a client that does not
    /// read before the connection is closed (and its file handles freed).
    pub socket_write_timeout_ms: u64,
    /// Kafka's `max.incremental.fetch.session.cache.slots`, per shard:
    /// incremental fetch sessions (KIP-227) one shard keeps. Past it a
    /// fetcher gets no session and sends full fetches.
    pub max_incremental_fetch_session_cache_slots: usize,
    /// Kafka's `min.incremental.fetch.session.eviction.ms`: a session idle
    /// this long may give its slot to a new one.
    pub min_incremental_fetch_session_eviction_ms: i64,
    /// Upper bound on a Fetch's max_wait_ms, whatever the client asks.
    pub fetch_max_wait_ms_max: u64,
    /// Messages in flight between two shards before senders wait.
    pub shard_channel_capacity: usize,
    /// Connections one shard serves at once; more are closed on accept.
    pub max_connections_per_shard: usize,
    /// Segment files (`.log`, `.txnindex`) the node keeps open, split
    /// evenly over the shards: each shard's logs share a cache of that many
    /// and close the least recently used, so idle partitions hold no
    /// descriptor. Lowered at start to fit the process's open-file limit.
    pub log_open_files_max: usize,
    /// A cached segment file unused for this long (up to twice this, as the
    /// sweep runs every interval) is closed even when the cache has room;
    /// 0 keeps files until the cache needs their slots.
    pub log_open_files_idle_ms: u64,
    /// While connections have work, how long a shard runs tasks before it
    /// polls for I/O again. glommio's default (100 ms) lets a busy producer
    /// delay every other socket's readiness by that much.
    pub task_quota_us: u64,
    /// Kafka's `quota.window.num`: samples a client quota's rate is
    /// measured over (at most `quota::rate::SAMPLES_MAX`).
    pub quota_window_num: u64,
    /// Kafka's `quota.window.size.seconds`: the length of one sample.
    pub quota_window_size_seconds: u64,
    /// io_uring buffer memory per shard, in bytes.
    pub io_memory_bytes: usize,
    /// How long an idle shard polls for work before it parks (0: parks at
    /// once). Parking makes the next cross-shard message cost a wake-up
    /// (an eventfd write and glommio's membarrier: inter-processor
    /// interrupts on a VM); spinning costs the CPU it spins.
    pub shard_spin_before_park_us: u64,
    /// Logs, with a backtrace, every time a shard runs one task queue this
    /// many ms past its budget (0: off). A shard thread held that long
    /// holds every socket on its core; this names the code that held it.
    /// Each run of a task queue then arms a timer, two syscalls, and a
    /// stall it reports lasts longer: glommio symbolizes the backtrace on
    /// the shard thread before it logs (reading the binary's line tables,
    /// from disk if they are not cached). It is for finding where a stall
    /// is, not for measuring latency or for every day.
    pub shard_stall_warn_ms: u64,
    /// Lock the program's and its libraries' mapped files (code, read-only
    /// data) in memory at start, so that reclaim or a host's pageout cannot
    /// evict rarely run code for a shard to fault back in from a busy disk.
    /// Needs `RLIMIT_MEMLOCK` of about the binary's size (16 MiB for a
    /// release build) or `CAP_IPC_LOCK`; the broker refuses to start without.
    pub lock_code: bool,
    /// The most bytes one compressed batch may decompress to; a larger one
    /// is refused as CORRUPT_MESSAGE (a decompression bomb).
    pub decompressed_batch_bytes_max: usize,
    /// `/metrics` endpoint address; none when unset.
    pub metrics_listen: Option<String>,
    /// How often each shard publishes its logs' and groups' gauges for
    /// `/metrics` (with an endpoint): how stale they may be.
    pub metrics_refresh_ms: u64,
    /// The most per-partition series of one kind (replica logs, groups'
    /// committed offsets) `/metrics` writes; past it, only their sums.
    pub metrics_partition_series_max: usize,
    /// Defaults for topic configs (Kafka's `log.*` broker settings).
    pub log: TopicDefaults,
    pub fetch: FetchConfig,
    /// Kafka's `group.initial.rebalance.delay.ms`: how long a new group
    /// waits for more members before its first generation.
    pub group_initial_rebalance_delay_ms: u64,
    /// Kafka's `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// Kafka's `group.max.size`: members (and members asked to rejoin) per group.
    pub group_max_size: usize,
    /// Kafka's `group.consumer.heartbeat.interval.ms`: how often consumer
    /// protocol members heartbeat (KIP-848).
    pub group_consumer_heartbeat_interval_ms: i32,
    /// Kafka's `group.consumer.session.timeout.ms`: a consumer protocol
    /// member silent this long is removed.
    pub group_consumer_session_timeout_ms: i32,
    /// Kafka's `group.consumer.migration.policy`.
    pub group_consumer_migration_policy: MigrationPolicy,
    /// Kafka's `group.share.max.size`: members per share group.
    pub group_share_max_size: usize,
    /// Kafka's `group.share.heartbeat.interval.ms`.
    pub group_share_heartbeat_interval_ms: i32,
    /// Kafka's `group.share.session.timeout.ms`: a share group member silent
    /// this long is removed.
    pub group_share_session_timeout_ms: i32,
    /// Kafka's `group.share.record.lock.duration.ms`: how long a member
    /// holds the records it acquired before they go to another.
    pub group_share_record_lock_duration_ms: i32,
    /// Kafka's `group.share.delivery.count.limit`: a record delivered this
    /// often and not accepted is archived.
    pub group_share_delivery_count_limit: i16,
    /// Kafka's `group.consumer.min.session.timeout.ms` and its kin: the
    /// range a group's own config may take (`group_configs`).
    pub group_consumer_min_session_timeout_ms: i32,
    pub group_consumer_max_session_timeout_ms: i32,
    pub group_consumer_min_heartbeat_interval_ms: i32,
    pub group_consumer_max_heartbeat_interval_ms: i32,
    pub group_share_min_session_timeout_ms: i32,
    pub group_share_max_session_timeout_ms: i32,
    pub group_share_min_heartbeat_interval_ms: i32,
    pub group_share_max_heartbeat_interval_ms: i32,
    pub group_share_min_record_lock_duration_ms: i32,
    pub group_share_max_record_lock_duration_ms: i32,
    /// Kafka's `group.share.partition.max.record.locks`: records in flight
    /// per share partition.
    pub group_share_partition_max_record_locks: i32,
    /// Kafka's `group.share.max.share.sessions`, per core here.
    pub group_share_max_share_sessions: usize,
    /// Kafka's `share.auto.offset.reset`, for every share group.
    pub share_auto_offset_reset: ShareAutoOffsetReset,
    /// Share partitions (group, partition) one shard holds; a new one past
    /// it is refused.
    pub share_partitions_per_shard_max: usize,
    /// Groups one coordinator shard holds; new groups beyond it are refused.
    pub groups_per_shard_max: usize,
    /// Kafka's `offsets.topic.num.partitions`; used only when
    /// `__consumer_offsets` is created.
    pub offsets_topic_num_partitions: i32,
    /// Kafka's `offsets.retention.minutes`: offsets of a group empty this
    /// long are expired.
    pub offsets_retention_minutes: i64,
    /// Kafka's `offsets.commit.timeout.ms`: how long an offset commit waits
    /// for the ISR of its `__consumer_offsets` partition.
    pub offsets_commit_timeout_ms: u64,
    /// Kafka's `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
    /// Kafka's `producer.id.expiration.ms`: a partition forgets an idempotent
    /// producer that has not written to it for this long.
    pub producer_id_expiration_ms: i64,
    /// Kafka's `producer.id.expiration.check.interval.ms`.
    pub producer_id_expiration_check_interval_ms: u64,
    /// Idempotent producers one partition remembers; past it the least
    /// recently seen are forgotten early, so a flood of producer ids costs
    /// bounded memory.
    pub max_producers_per_partition: usize,
    /// Kafka's `log.preallocate`: each active segment's blocks are
    /// allocated up to `segment.bytes` when it is created (and at open),
    /// and the rest given back when it rolls or closes. Appends then never
    /// wait for ext4's write-back to finish allocating (tuning/README.md);
    /// each active segment holds `segment.bytes` of disk.
    pub log_preallocate: bool,
    /// How far ahead of an active segment's appends the blocking thread
    /// fills the page cache, at most (0: off). A partition's window is four
    /// of its recent appends, so only partitions appending 16 KiB or more
    /// at a time get one (`storage::prefault`). Ignored with
    /// `log_preallocate`; set to 0 at start on a filesystem whose extending
    /// `ftruncate` waits for write-back (XFS).
    pub log_prefault_bytes: u64,
    /// Kafka's `transaction.state.log.num.partitions`; used only when
    /// `__transaction_state` is created.
    pub transaction_state_num_partitions: i32,
    /// Kafka's `transaction.max.timeout.ms`: InitProducerId with a longer
    /// `transaction.timeout.ms` gets INVALID_TRANSACTION_TIMEOUT, so no
    /// transaction can hold back a partition's last stable offset longer.
    pub transaction_max_timeout_ms: i32,
    /// Kafka's `transaction.abort.timed.out.transaction.cleanup.interval.ms`:
    /// how often a coordinator looks for transactions open past their timeout.
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    /// Kafka's `transactional.id.expiration.ms`: a transactional id with no
    /// transaction running and no change this long is forgotten.
    pub transactional_id_expiration_ms: i64,
    /// Transactional ids one shard coordinates; a new id past it gets
    /// COORDINATOR_NOT_AVAILABLE, so coordinator memory is bounded.
    pub transactional_ids_per_shard_max: usize,
    /// Partitions one transaction may hold; bounds the coordinator's state
    /// and keeps its `__transaction_state` record well under a batch limit.
    pub transaction_partitions_max: usize,
    /// Named listeners (`[listeners.NAME]`, `--listener`); empty: one
    /// PLAINTEXT listener at `listen`/`advertise`, as before.
    pub listeners: BTreeMap<String, crate::security::listeners::ListenerConfig>,
    /// Principals that bypass ACLs.
    pub super_users: Vec<String>,
    /// `none` (everything allowed) or `acl` (every request checked).
    pub authorizer: crate::security::Authorizer,
    /// With `authorizer = "acl"`: whether a resource no ACL applies to at
    /// all is open to everyone (Kafka's `allow.everyone.if.no.acl.found`).
    pub allow_everyone_if_no_acl_found: bool,
    /// The listener other brokers reach this one on (replication,
    /// forwarding); default: the default listener, else the first by name.
    pub inter_broker_listener_name: Option<String>,
    /// Kafka's `connections.max.reauth.ms` (KIP-368): a SASL session lasts
    /// this long before the client must re-authenticate; 0 = forever.
    pub connections_max_reauth_ms: u64,
    /// Longest delay before answering a failed authentication from an
    /// address that keeps failing (doubling from 100 ms).
    pub sasl_failure_delay_ms_max: u64,
    /// A file holding Kafka's `delegation.token.secret.key`, the same on
    /// every broker: without one no delegation token is issued.
    pub delegation_token_secret_key_file: Option<PathBuf>,
    /// The key the file holds, read at start (never from the TOML).
    #[serde(skip)]
    pub delegation_token_secret_key: Option<String>,
    /// Kafka's `sasl.oauthbearer.jwks.endpoint.url`, as a local file: the
    /// identity provider's public keys (a JWKS) OAUTHBEARER tokens are
    /// checked against. Needed by a listener that offers OAUTHBEARER.
    pub sasl_oauthbearer_jwks_file: Option<PathBuf>,
    /// Kafka's `sasl.oauthbearer.jwks.endpoint.url`: the identity
    /// provider's JWKS endpoint (`https:` or `http:`), fetched before the
    /// broker serves and kept fresh (security/jwks_endpoint.rs); a `file:`
    /// URL names a file, as `sasl_oauthbearer_jwks_file` does. One of the
    /// two, not both.
    pub sasl_oauthbearer_jwks_endpoint_url: Option<String>,
    /// The certificate authorities (PEM) an `https:` JWKS endpoint is
    /// checked against (none: the system's, as the JVM's trust store is
    /// Kafka's).
    pub sasl_oauthbearer_jwks_endpoint_ca_file: Option<PathBuf>,
    /// Kafka's sasl.oauthbearer.jwks.endpoint.refresh.ms: how often the
    /// endpoint's keys are fetched again.
    pub sasl_oauthbearer_jwks_endpoint_refresh_ms: u64,
    /// Kafka's sasl.oauthbearer.jwks.endpoint.retry.backoff.ms and
    /// .retry.backoff.max.ms: the wait after a failed fetch, doubling.
    pub sasl_oauthbearer_jwks_endpoint_retry_backoff_ms: u64,
    pub sasl_oauthbearer_jwks_endpoint_retry_backoff_max_ms: u64,
    /// Kafka's sasl.oauthbearer.expected.audience: a token's `aud` must
    /// name one of these (empty: not checked).
    pub sasl_oauthbearer_expected_audience: Vec<String>,
    /// Kafka's sasl.oauthbearer.expected.issuer (none: not checked).
    pub sasl_oauthbearer_expected_issuer: Option<String>,
    /// Kafka's sasl.oauthbearer.sub.claim.name: the claim naming the
    /// principal.
    pub sasl_oauthbearer_sub_claim_name: String,
    /// Kafka's sasl.oauthbearer.clock.skew.seconds.
    pub sasl_oauthbearer_clock_skew_seconds: u64,
    /// The JWKS's keys and the checks above, made at start (and again on
    /// SIGHUP, or by the endpoint's refresher).
    #[serde(skip)]
    pub oauthbearer: Option<std::sync::Arc<crate::security::oauthbearer::Keys>>,
    /// Kafka's delegation.token.max.lifetime.ms: no renewal reaches past it.
    pub delegation_token_max_lifetime_ms: i64,
    /// Kafka's delegation.token.expiry.time.ms: how long a token lasts
    /// from its creation or a renewal that names no period.
    pub delegation_token_expiry_time_ms: i64,
    /// Kafka's telemetry.max.bytes: the largest metrics payload a client
    /// may push (KIP-714), compressed; it may grow 16 times when read.
    pub telemetry_max_bytes: u32,
    /// Client metric series `/metrics` keeps for all clients' pushes
    /// together; past it a push's new series are dropped (and counted).
    pub client_telemetry_series_max: usize,
    /// Kafka's `sasl.mechanism.inter.broker.protocol`: the mechanism this
    /// broker logs in with on a SASL inter-broker listener.
    pub inter_broker_sasl_mechanism: Option<String>,
    /// The user this broker logs in to the others as (its SCRAM user).
    pub inter_broker_sasl_username: Option<String>,
    /// A file holding that user's password (never the password itself
    /// here, in clear).
    pub inter_broker_sasl_password_file: Option<PathBuf>,
    /// CA bundle other brokers' certificates are verified against
    /// (default: the inter-broker listener's `ssl_ca`).
    pub inter_broker_ssl_ca: Option<PathBuf>,
    /// Certificate chain and key this broker shows when a peer asks for one
    /// (default: the inter-broker listener's `ssl_cert`/`ssl_key`).
    pub inter_broker_ssl_cert: Option<PathBuf>,
    pub inter_broker_ssl_key: Option<PathBuf>,
    /// Mutual TLS on the metadata quorum's transport: the CA bundle peers'
    /// certificates are verified against, and this node's certificate
    /// chain and key (one certificate for both roles: server and client
    /// key usage, a SAN for the host it is dialed at). All three or none.
    pub controller_ssl_ca: Option<PathBuf>,
    pub controller_ssl_cert: Option<PathBuf>,
    pub controller_ssl_key: Option<PathBuf>,
}

/// The default [`BrokerConfig::log_open_files_max`]: far below the 65536
/// descriptors a broker host is usually given, leaving room for
/// connections, and plenty for the partitions actually in use.
pub const LOG_OPEN_FILES_MAX_DEFAULT: usize = 16_384;

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: "127.0.0.1:9092".into(),
            advertise: None,
            data_dir: PathBuf::from("./data"),
            cluster_id: None,
            controller_listen: None,
            controller_quorum_voters: None,
            broker_rack: None,
            replica_selector: ReplicaSelector::Leader,
            transaction_version: TransactionVersion::LATEST,
            broker_session_timeout_ms: 9_000,
            broker_heartbeat_interval_ms: 2_000,
            broker_startup_timeout_ms: 120_000,
            metadata_propose_timeout_ms: 10_000,
            controlled_shutdown_timeout_ms: 30_000,
            default_replication_factor: 1,
            offsets_topic_replication_factor: 3,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            leader_imbalance_per_broker_percentage: 10,
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_max_bytes: 1024 * 1024,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_backoff_ms: 1_000,
            replica_socket_timeout_ms: 30_000,
            replica_high_watermark_checkpoint_interval_ms: 5_000,
            replica_acks_waiting_max: 10_000,
            shards: None,
            node_id: 0,
            auto_create_topics_enable: true,
            num_partitions: 1,
            socket_request_max_bytes: 100 * 1024 * 1024,
            fsync_on_ack: false,
            append_writer: AppendWriter::default(),
            retention_check_interval_ms: 300_000,
            fetch_max_wait_ms_max: 30_000,
            max_incremental_fetch_session_cache_slots: 1000,
            min_incremental_fetch_session_eviction_ms: 120_000,
            connections_max_idle_ms: 600_000,
            log_cleaner_backoff_ms: 15_000,
            log_flush_scheduler_interval_ms: 1_000,
            socket_write_timeout_ms: 60_000,
            shard_channel_capacity: 1024,
            max_connections_per_shard: 10_000,
            log_open_files_max: LOG_OPEN_FILES_MAX_DEFAULT,
            log_open_files_idle_ms: 600_000,
            io_memory_bytes: 1 << 20,
            shard_spin_before_park_us: 0,
            shard_stall_warn_ms: 0,
            lock_code: false,
            task_quota_us: 1000,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            metrics_listen: None,
            metrics_refresh_ms: 10_000,
            metrics_partition_series_max: 10_000,
            decompressed_batch_bytes_max: crate::compression::DECOMPRESSED_BATCH_BYTES_MAX_DEFAULT,
            log: TopicDefaults::default(),
            fetch: FetchConfig::default(),
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: 1000,
            group_consumer_heartbeat_interval_ms: 5_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_migration_policy: MigrationPolicy::default(),
            group_share_max_size: 200,
            group_share_heartbeat_interval_ms: 5_000,
            group_share_session_timeout_ms: 45_000,
            group_share_record_lock_duration_ms: 30_000,
            group_consumer_min_session_timeout_ms: 45_000,
            group_consumer_max_session_timeout_ms: 60_000,
            group_consumer_min_heartbeat_interval_ms: 5_000,
            group_consumer_max_heartbeat_interval_ms: 15_000,
            group_share_min_session_timeout_ms: 45_000,
            group_share_max_session_timeout_ms: 60_000,
            group_share_min_heartbeat_interval_ms: 5_000,
            group_share_max_heartbeat_interval_ms: 15_000,
            group_share_min_record_lock_duration_ms: 15_000,
            group_share_max_record_lock_duration_ms: 60_000,
            group_share_delivery_count_limit: 5,
            group_share_partition_max_record_locks: 2_000,
            group_share_max_share_sessions: 2_000,
            share_auto_offset_reset: ShareAutoOffsetReset::default(),
            share_partitions_per_shard_max: 100_000,
            groups_per_shard_max: 100_000,
            offsets_topic_num_partitions: 16,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_commit_timeout_ms: 5_000,
            offset_metadata_max_bytes: 4096,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            max_producers_per_partition: crate::storage::DEFAULT_PRODUCERS_MAX,
            log_preallocate: false,
            log_prefault_bytes: 1 << 20,
            transaction_state_num_partitions: 50,
            transaction_max_timeout_ms: 900_000,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transactional_id_expiration_ms: 604_800_000,
            transactional_ids_per_shard_max: 100_000,
            transaction_partitions_max: 1000,
            listeners: BTreeMap::new(),
            super_users: Vec::new(),
            authorizer: crate::security::Authorizer::None,
            allow_everyone_if_no_acl_found: false,
            inter_broker_listener_name: None,
            connections_max_reauth_ms: 0,
            sasl_failure_delay_ms_max: 5_000,
            sasl_oauthbearer_jwks_file: None,
            sasl_oauthbearer_jwks_endpoint_url: None,
            sasl_oauthbearer_jwks_endpoint_ca_file: None,
            sasl_oauthbearer_jwks_endpoint_refresh_ms: 3_600_000,
            sasl_oauthbearer_jwks_endpoint_retry_backoff_ms: 100,
            sasl_oauthbearer_jwks_endpoint_retry_backoff_max_ms: 10_000,
            sasl_oauthbearer_expected_audience: Vec::new(),
            sasl_oauthbearer_expected_issuer: None,
            sasl_oauthbearer_sub_claim_name: "sub".into(),
            sasl_oauthbearer_clock_skew_seconds: 30,
            oauthbearer: None,
            delegation_token_secret_key_file: None,
            delegation_token_secret_key: None,
            delegation_token_max_lifetime_ms: 7 * 24 * 3_600_000,
            delegation_token_expiry_time_ms: 24 * 3_600_000,
            telemetry_max_bytes: 1 << 20,
            client_telemetry_series_max: 100_000,
            inter_broker_sasl_mechanism: None,
            inter_broker_sasl_username: None,
            inter_broker_sasl_password_file: None,
            inter_broker_ssl_ca: None,
            controller_ssl_ca: None,
            controller_ssl_cert: None,
            controller_ssl_key: None,
            inter_broker_ssl_cert: None,
            inter_broker_ssl_key: None,
        }
    }
}

/// How fetch responses leave the broker.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// Send record bytes with sendfile from the page cache; `false` copies
    /// them through a buffer (for comparison, and for TLS later).
    pub zero_copy: bool,
    /// Most bytes one Fetch v0-3 response (the old message formats) reads
    /// into memory to down-convert: such a fetch cannot go zero-copy, so
    /// its byte limits are lowered to this.
    pub down_conversion_max_bytes: usize,
}

/// A default for [`FetchConfig::down_conversion_max_bytes`]: room for a
/// few of the 1 MB batches old clients fetch per partition.
pub const FETCH_DOWN_CONVERSION_MAX_BYTES_DEFAULT: usize = 16 * 1024 * 1024;

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            zero_copy: true,
            down_conversion_max_bytes: FETCH_DOWN_CONVERSION_MAX_BYTES_DEFAULT,
        }
    }
}

/// Broker-wide defaults that a topic's own configs override.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicDefaults {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub index_interval_bytes: u32,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub max_message_bytes: u32,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub segment_jitter_ms: i64,
    pub segment_index_bytes: u32,
    pub file_delete_delay_ms: i64,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        let log = LogConfig::default();
        TopicDefaults {
            segment_bytes: log.segment_bytes,
            segment_ms: log.segment_ms,
            index_interval_bytes: log.index_interval_bytes,
            retention_ms: log.retention_ms,
            retention_bytes: log.retention_bytes,
            max_message_bytes: log.max_message_bytes,
            flush_messages: log.flush_messages,
            flush_ms: log.flush_ms,
            delete_retention_ms: log.delete_retention_ms,
            min_cleanable_dirty_ratio: log.min_cleanable_dirty_ratio,
            min_compaction_lag_ms: log.min_compaction_lag_ms,
            max_compaction_lag_ms: log.max_compaction_lag_ms,
            segment_jitter_ms: log.segment_jitter_ms,
            segment_index_bytes: log.segment_index_bytes,
            file_delete_delay_ms: log.file_delete_delay_ms,
            message_timestamp_before_max_ms: MESSAGE_TIMESTAMP_BEFORE_MAX_MS_DEFAULT,
            message_timestamp_after_max_ms: MESSAGE_TIMESTAMP_AFTER_MAX_MS_DEFAULT,
        }
    }
}

/// Kafka's `message.timestamp.before.max.ms` default: any time behind.
pub const MESSAGE_TIMESTAMP_BEFORE_MAX_MS_DEFAULT: i64 = i64::MAX;
/// Kafka 4's `message.timestamp.after.max.ms` default (KIP-1030): an hour
/// ahead of the broker's clock.
pub const MESSAGE_TIMESTAMP_AFTER_MAX_MS_DEFAULT: i64 = 3_600_000;

/// The items of a list config value, parsed as Kafka's ConfigDef parses a
/// LIST: a blank value is the empty list, anything else splits at every
/// comma with the items trimmed (so "a,,b" has an empty item, which no
/// validator accepts).
pub fn list_items(value: &str) -> Vec<&str> {
    let value = value.trim();
    if value.is_empty() {
        return Vec::new();
    }
    value.split(',').map(str::trim).collect()
}

/// List value `current` with `items` appended (those not in it yet) or
/// subtracted, as Kafka's controller computes APPEND and SUBTRACT.
pub fn edited_list(current: &str, items: &str, append: bool) -> String {
    let mut list = list_items(current);
    for item in list_items(items) {
        if !append {
            list.retain(|&have| have != item);
        } else if !list.contains(&item) {
            list.push(item);
        }
    }
    list.join(",")
}

/// One change to a topic config, as IncrementalAlterConfigs' operations
/// name them (AlterConfigs' whole-set form is sets only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    Set(String),
    /// Back to the broker default.
    Delete,
    /// Adds the listed items not already in the current list.
    Append(String),
    /// Removes the listed items from the current list.
    Subtract(String),
}

/// Why a topic config was refused (answered as INVALID_CONFIG).
#[derive(Debug, thiserror::Error)]
#[error("invalid value {value:?} for topic config {key}: {reason}")]
pub struct InvalidConfig {
    pub key: String,
    pub value: String,
    pub reason: &'static str,
}

/// A topic's configs: only the keys set explicitly, as Kafka stores them.
pub type TopicConfigs = BTreeMap<String, String>;

/// Which time a topic's records keep (`message.timestamp.type`).
fn timestamp_type(configs: &TopicConfigs) -> TimestampType {
    match configs
        .get(topic_configs::MESSAGE_TIMESTAMP_TYPE)
        .map(String::as_str)
    {
        Some("LogAppendTime") => TimestampType::LogAppendTime,
        _ => TimestampType::CreateTime,
    }
}

/// Checks one topic config, so nothing invalid is ever stored.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), InvalidConfig> {
    let bad = |reason| InvalidConfig {
        key: key.into(),
        value: value.into(),
        reason,
    };
    match topic_configs::get(key) {
        Some(config) => config.valid.check(value).map_err(bad),
        None => Err(bad("unknown topic config")),
    }
}

impl BrokerConfig {
    /// Each shard's share of [`Self::log_open_files_max`], at least one.
    pub fn log_open_files_per_shard(&self, shards: usize) -> usize {
        assert!(shards >= 1, "a broker has shards");
        (self.log_open_files_max / shards).max(1)
    }

    /// The value of a topic config: the topic's own, else the broker default.
    pub fn topic_config_value(&self, configs: &TopicConfigs, key: &str) -> Option<String> {
        if let Some(v) = configs.get(key) {
            return Some(v.clone());
        }
        topic_configs::get(key).map(|c| (c.default)(self))
    }

    /// A topic's own configs after `changes`, applied in order to `current`
    /// or, with `replace` (AlterConfigs' whole-set form), to none: every key
    /// the changes do not set goes back to its default. Every value set,
    /// appended to or subtracted from is validated, so nothing invalid is
    /// stored.
    pub fn altered_topic_configs(
        &self,
        current: &TopicConfigs,
        changes: Vec<(String, ConfigChange)>,
        replace: bool,
    ) -> Result<TopicConfigs, InvalidConfig> {
        let mut next = if replace {
            TopicConfigs::new()
        } else {
            current.clone()
        };
        for (key, change) in changes {
            let value = match change {
                ConfigChange::Set(value) => value,
                ConfigChange::Delete => {
                    if topic_configs::get(&key).is_none() {
                        return Err(InvalidConfig {
                            key,
                            value: String::new(),
                            reason: "unknown topic config",
                        });
                    }
                    next.remove(&key);
                    continue;
                }
                ConfigChange::Append(items) => self.edited_list(&next, &key, &items, true)?,
                ConfigChange::Subtract(items) => self.edited_list(&next, &key, &items, false)?,
            };
            validate_topic_config(&key, &value)?;
            next.insert(key, value);
        }
        Ok(next)
    }

    /// List config `key` with `items` appended (those not present yet) or
    /// subtracted, starting from the topic's value or else the default, as
    /// Kafka's controller computes APPEND and SUBTRACT.
    fn edited_list(
        &self,
        configs: &TopicConfigs,
        key: &str,
        items: &str,
        append: bool,
    ) -> Result<String, InvalidConfig> {
        if !topic_configs::is_list(key) {
            return Err(InvalidConfig {
                key: key.into(),
                value: items.into(),
                reason: "APPEND and SUBTRACT apply only to list configs",
            });
        }
        let current = self.topic_config_value(configs, key).unwrap_or_default();
        Ok(edited_list(&current, items, append))
    }

    /// The storage settings of a topic: broker defaults with the topic's overrides.
    /// Hot paths take it from [`crate::metadata::TopicMeta::parsed`].
    /// Configs were validated when stored, so parse failures fall back to defaults.
    pub fn log_config(&self, configs: &TopicConfigs) -> LogConfig {
        let d = &self.log;
        let get = |key: &str| configs.get(key).and_then(|v| v.trim().parse::<i64>().ok());
        let policy = configs
            .get(topic_configs::CLEANUP_POLICY)
            .map_or("delete", String::as_str);
        LogConfig {
            segment_bytes: get("segment.bytes").map_or(d.segment_bytes, |v| v as u64),
            segment_ms: get("segment.ms").unwrap_or(d.segment_ms),
            segment_jitter_ms: get("segment.jitter.ms").unwrap_or(d.segment_jitter_ms),
            segment_index_bytes: get("segment.index.bytes")
                .map_or(d.segment_index_bytes, |v| v as u32),
            index_interval_bytes: get("index.interval.bytes")
                .map_or(d.index_interval_bytes, |v| v as u32),
            retention_ms: get("retention.ms").unwrap_or(d.retention_ms),
            retention_bytes: get("retention.bytes").unwrap_or(d.retention_bytes),
            max_message_bytes: get("max.message.bytes").map_or(d.max_message_bytes, |v| v as u32),
            timestamp_type: timestamp_type(configs),
            flush_messages: get("flush.messages").unwrap_or(d.flush_messages),
            flush_ms: get("flush.ms").unwrap_or(d.flush_ms),
            cleanup_delete: list_items(policy).contains(&"delete"),
            cleanup_compact: list_items(policy).contains(&"compact"),
            delete_retention_ms: get("delete.retention.ms").unwrap_or(d.delete_retention_ms),
            min_cleanable_dirty_ratio: configs
                .get(topic_configs::MIN_CLEANABLE_DIRTY_RATIO)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(d.min_cleanable_dirty_ratio),
            min_compaction_lag_ms: get("min.compaction.lag.ms").unwrap_or(d.min_compaction_lag_ms),
            max_compaction_lag_ms: get("max.compaction.lag.ms").unwrap_or(d.max_compaction_lag_ms),
            file_delete_delay_ms: get("file.delete.delay.ms").unwrap_or(d.file_delete_delay_ms),
            producers_max: self.max_producers_per_partition.max(1),
            preallocate: configs
                .get(topic_configs::PREALLOCATE)
                .and_then(|v| parse_bool(v))
                .unwrap_or(self.log_preallocate),
            prefault_bytes: self.log_prefault_bytes,
        }
    }

    /// How the produce path treats a topic's batches (codec, levels, bounds).
    /// Hot paths take it from [`crate::metadata::TopicMeta::parsed`].
    pub fn produce_policy(&self, configs: &TopicConfigs, api_version: i16) -> ProducePolicy {
        let level = |key: &str| configs.get(key).and_then(|v| v.parse::<i32>().ok());
        ProducePolicy {
            topic: configs
                .get("compression.type")
                .and_then(|v| TopicCompression::parse(v))
                .unwrap_or_default(),
            levels: Levels {
                gzip: level("compression.gzip.level"),
                lz4: level("compression.lz4.level"),
                zstd: level("compression.zstd.level"),
            },
            decompressed_bytes_max: self.decompressed_batch_bytes_max,
            api_version,
            timestamps: self.timestamp_bounds(configs),
            now_ms: 0,
        }
    }

    /// How far from the broker's clock a produced record's timestamp may
    /// be (`message.timestamp.before.max.ms` and `.after.max.ms`); none
    /// for a `LogAppendTime` topic, whose records take the broker's time.
    fn timestamp_bounds(&self, configs: &TopicConfigs) -> Option<TimestampBounds> {
        if timestamp_type(configs) == TimestampType::LogAppendTime {
            return None;
        }
        let get = |key: &str, default: i64| {
            configs
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(default)
        };
        Some(TimestampBounds {
            before_ms: get(
                topic_configs::MESSAGE_TIMESTAMP_BEFORE_MAX_MS,
                self.log.message_timestamp_before_max_ms,
            ),
            after_ms: get(
                topic_configs::MESSAGE_TIMESTAMP_AFTER_MAX_MS,
                self.log.message_timestamp_after_max_ms,
            ),
        })
    }

    /// The topic's `min.insync.replicas`, else the broker's; at least 1.
    pub fn topic_min_insync_replicas(&self, configs: &TopicConfigs) -> usize {
        let value = configs
            .get("min.insync.replicas")
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(self.min_insync_replicas);
        usize::try_from(value.max(1)).unwrap_or(1)
    }

    /// Loads a TOML file; a missing `--config` means all defaults.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(BrokerConfig::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let parse_error = |source| ConfigError::Parse {
            path: path.into(),
            source,
        };
        let mut config: BrokerConfig = if path.extension().is_some_and(|e| e == "properties") {
            Self::from_kafka_properties(path, &text)?
                .try_into()
                .map_err(parse_error)?
        } else {
            toml::from_str(&text).map_err(parse_error)?
        };
        // TLS files named relative to the config file, as one would write
        // them next to it.
        if let Some(dir) = path.parent() {
            for l in config.listeners.values_mut() {
                for p in [&mut l.ssl_cert, &mut l.ssl_key, &mut l.ssl_ca]
                    .into_iter()
                    .flatten()
                {
                    if p.is_relative() {
                        *p = dir.join(&*p);
                    }
                }
            }
            let c = &mut config;
            for p in [
                &mut c.inter_broker_sasl_password_file,
                &mut c.delegation_token_secret_key_file,
                &mut c.sasl_oauthbearer_jwks_file,
                &mut c.sasl_oauthbearer_jwks_endpoint_ca_file,
                &mut c.inter_broker_ssl_ca,
                &mut c.inter_broker_ssl_cert,
                &mut c.inter_broker_ssl_key,
                &mut c.controller_ssl_ca,
                &mut c.controller_ssl_cert,
                &mut c.controller_ssl_key,
            ]
            .into_iter()
            .flatten()
            {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(config)
    }

    /// A Kafka broker's server.properties as a config table
    /// (`kafka_properties`); what it does not use is logged.
    fn from_kafka_properties(
        path: &std::path::Path,
        text: &str,
    ) -> Result<toml::Value, ConfigError> {
        let translated =
            crate::kafka_properties::translate(text).map_err(|source| ConfigError::Properties {
                path: path.into(),
                source,
            })?;
        if !translated.unused.is_empty() {
            tracing::warn!(
                path = %path.display(),
                "Kafka settings Sluice has no use for, ignored: {}",
                translated.unused.join(", ")
            );
        }
        if !translated.dynamic_only.is_empty() {
            tracing::warn!(
                path = %path.display(),
                "topic defaults Sluice takes only at run time (kafka-configs.sh --alter --entity-type brokers --entity-default --add-config ...), ignored here: {}",
                translated.dynamic_only.join(", ")
            );
        }
        for note in &translated.notes {
            tracing::info!(path = %path.display(), "{note}");
        }
        Ok(toml::Value::Table(translated.table))
    }

    /// The quorum transport's TLS files: `None` without any; an error
    /// naming the missing ones when only some are set.
    pub fn controller_tls(&self) -> Result<Option<crate::controller::tls::TlsFiles>, String> {
        match (
            &self.controller_ssl_ca,
            &self.controller_ssl_cert,
            &self.controller_ssl_key,
        ) {
            (None, None, None) => Ok(None),
            (Some(ca), Some(cert), Some(key)) => Ok(Some(crate::controller::tls::TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            })),
            _ => Err(
                "controller_ssl_ca, controller_ssl_cert and controller_ssl_key go together: set all three or none"
                    .into(),
            ),
        }
    }

    /// Reads `delegation_token_secret_key_file`, if set, into
    /// `delegation_token_secret_key` (its first line; an empty one is an
    /// error, not tokens quietly off).
    pub fn read_delegation_token_secret(&mut self) -> Result<(), ConfigError> {
        let Some(path) = &self.delegation_token_secret_key_file else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let key = text.lines().next().unwrap_or_default().trim();
        if key.is_empty() {
            return Err(ConfigError::EmptySecret(path.clone()));
        }
        self.delegation_token_secret_key = Some(key.to_string());
        Ok(())
    }

    /// Loads the keys of `sasl_oauthbearer_jwks_file` or
    /// `sasl_oauthbearer_jwks_endpoint_url`, if set, into `oauthbearer`; a
    /// listener offering OAUTHBEARER without either is an error.
    pub fn read_oauthbearer_jwks(&mut self) -> Result<(), ConfigError> {
        use crate::security::jwks_endpoint::Refresh;
        use crate::security::oauthbearer::{Checks, Keys, MECHANISM};
        let (file, url) = (
            &self.sasl_oauthbearer_jwks_file,
            &self.sasl_oauthbearer_jwks_endpoint_url,
        );
        // Kafka's file URLs: `file:///path`.
        let url_file = url
            .as_deref()
            .and_then(|u| u.strip_prefix("file:"))
            .map(|rest| PathBuf::from(rest.strip_prefix("//").unwrap_or(rest)));
        let checks = Checks {
            audience: self.sasl_oauthbearer_expected_audience.clone(),
            issuer: self.sasl_oauthbearer_expected_issuer.clone(),
            sub_claim: self.sasl_oauthbearer_sub_claim_name.clone(),
            clock_skew_s: self.sasl_oauthbearer_clock_skew_seconds,
        };
        let keys = match (file, url) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoJwks),
            (Some(path), None) => std::sync::Arc::new(Keys::load(path, checks)?),
            (None, Some(url)) => match url_file {
                Some(path) => std::sync::Arc::new(Keys::load(&path, checks)?),
                None => {
                    let ms = std::time::Duration::from_millis;
                    let refresh = Refresh {
                        interval: ms(self.sasl_oauthbearer_jwks_endpoint_refresh_ms),
                        backoff: ms(self.sasl_oauthbearer_jwks_endpoint_retry_backoff_ms),
                        backoff_max: ms(self.sasl_oauthbearer_jwks_endpoint_retry_backoff_max_ms),
                    };
                    let ca = self.sasl_oauthbearer_jwks_endpoint_ca_file.as_deref();
                    Keys::fetched(url, ca, checks, refresh)?
                }
            },
            (None, None) => {
                let offering = self.listeners.iter().find(|(_, l)| {
                    l.sasl_mechanisms
                        .as_ref()
                        .is_some_and(|ms| ms.iter().any(|m| m == MECHANISM))
                });
                return match offering {
                    Some((name, _)) => Err(ConfigError::NoJwks(name.clone())),
                    None => Ok(()),
                };
            }
        };
        self.oauthbearer = Some(keys);
        Ok(())
    }

    /// How this broker logs in to the others' inter-broker listener.
    pub fn inter_broker_login(&self) -> crate::security::listeners::InterBrokerLogin {
        crate::security::listeners::InterBrokerLogin {
            sasl_mechanism: self.inter_broker_sasl_mechanism.clone(),
            sasl_username: self.inter_broker_sasl_username.clone(),
            sasl_password_file: self.inter_broker_sasl_password_file.clone(),
            ssl_ca: self.inter_broker_ssl_ca.clone(),
            ssl_cert: self.inter_broker_ssl_cert.clone(),
            ssl_key: self.inter_broker_ssl_key.clone(),
        }
    }
}

/// A topic's configs parsed against the broker's defaults.
#[derive(Clone, Debug)]
pub struct ParsedTopicConfigs {
    pub log: LogConfig,
    /// With `api_version` 0: the request's version is set per request.
    pub produce: ProducePolicy,
    /// `min.insync.replicas`, else the broker's; at least 1.
    pub min_insync_replicas: usize,
    /// `leader.replication.throttled.replicas`.
    pub leader_throttled: ThrottledReplicas,
    /// `follower.replication.throttled.replicas`.
    pub follower_throttled: ThrottledReplicas,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("reading {path} as a Kafka server.properties: {source}")]
    Properties {
        path: PathBuf,
        source: crate::kafka_properties::PropertiesError,
    },
    #[error("{0}: the delegation token secret key is empty")]
    EmptySecret(PathBuf),
    #[error(transparent)]
    Jwks(#[from] crate::security::oauthbearer::JwksError),
    #[error("listener {0} offers OAUTHBEARER: set sasl_oauthbearer_jwks_file or sasl_oauthbearer_jwks_endpoint_url")]
    NoJwks(String),
    #[error("set sasl_oauthbearer_jwks_file or sasl_oauthbearer_jwks_endpoint_url, not both")]
    TwoJwks,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_offering_oauthbearer_needs_a_jwks_file() {
        let mut c: BrokerConfig = toml::from_str(
            r#"
[listeners.OAUTH]
protocol = "SASL_PLAINTEXT"
listen = "127.0.0.1:0"
sasl_mechanisms = ["OAUTHBEARER"]
"#,
        )
        .unwrap();
        assert!(matches!(c.read_oauthbearer_jwks(), Err(ConfigError::NoJwks(l)) if l == "OAUTH"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, r#"{"keys": []}"#).unwrap();
        c.sasl_oauthbearer_jwks_file = Some(path.clone());
        assert!(
            matches!(c.read_oauthbearer_jwks(), Err(ConfigError::Jwks(_))),
            "a JWKS without keys"
        );
        c.sasl_oauthbearer_jwks_endpoint_url = Some("https://idp.test/keys".into());
        assert!(matches!(
            c.read_oauthbearer_jwks(),
            Err(ConfigError::TwoJwks)
        ));
        // Kafka's `file:` URLs name a file.
        c.sasl_oauthbearer_jwks_file = None;
        let key = r#"{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
            "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}"#;
        std::fs::write(&path, format!(r#"{{"keys": [{key}]}}"#)).unwrap();
        c.sasl_oauthbearer_jwks_endpoint_url = Some(format!("file://{}", path.display()));
        c.read_oauthbearer_jwks().unwrap();
        assert!(c.oauthbearer.is_some());
    }

    #[test]
    fn transaction_version_is_a_known_level() {
        let parsed: BrokerConfig = toml::from_str("transaction_version = 0").unwrap();
        assert_eq!(parsed.transaction_version.level(), 0);
        assert_eq!(BrokerConfig::default().transaction_version.level(), 2);
        assert!(toml::from_str::<BrokerConfig>("transaction_version = 3").is_err());
        assert!("-1".parse::<TransactionVersion>().is_err());
        assert_eq!("2".parse::<TransactionVersion>().unwrap().level(), 2);
    }

    #[test]
    fn topic_overrides_win_over_defaults() {
        let broker = BrokerConfig::default();
        let mut configs = TopicConfigs::new();
        configs.insert("segment.bytes".into(), "1000".into());
        configs.insert("message.timestamp.type".into(), "LogAppendTime".into());
        let log = broker.log_config(&configs);
        assert_eq!(log.segment_bytes, 1000);
        assert_eq!(log.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(log.retention_ms, broker.log.retention_ms);
        assert!(log.cleanup_delete && !log.cleanup_compact);
        configs.insert("cleanup.policy".into(), "compact".into());
        configs.insert("delete.retention.ms".into(), "5".into());
        let log = broker.log_config(&configs);
        assert!(log.cleanup_compact && !log.cleanup_delete);
        assert_eq!(log.delete_retention_ms, 5);
        configs.insert("cleanup.policy".into(), "compact,delete".into());
        let log = broker.log_config(&configs);
        assert!(log.cleanup_compact && log.cleanup_delete);
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(validate_topic_config("retention.ms", "abc").is_err());
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("compression.type", "brotli").is_err());
        assert!(validate_topic_config("no.such.key", "1").is_err());
        for config in topic_configs::TOPIC_CONFIGS {
            let value = BrokerConfig::default()
                .topic_config_value(&TopicConfigs::new(), config.name)
                .unwrap();
            validate_topic_config(config.name, &value).unwrap();
        }
    }

    #[test]
    fn cleanup_policy_is_a_list_of_delete_and_compact() {
        for ok in ["delete", "compact", "compact,delete", "delete, compact", ""] {
            assert!(
                validate_topic_config("cleanup.policy", ok).is_ok(),
                "{ok:?}"
            );
        }
        for bad in ["Delete", "compact,", ",delete", "compact,,delete", "none"] {
            assert!(
                validate_topic_config("cleanup.policy", bad).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(list_items(" a , b "), ["a", "b"]);
        assert!(list_items("  ").is_empty());
    }

    fn alter(
        current: &[(&str, &str)],
        changes: &[(&str, ConfigChange)],
        replace: bool,
    ) -> Result<TopicConfigs, InvalidConfig> {
        let current = current
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let changes = changes
            .iter()
            .map(|(k, c)| (k.to_string(), c.clone()))
            .collect();
        BrokerConfig::default().altered_topic_configs(&current, changes, replace)
    }

    fn policy(configs: &TopicConfigs) -> Option<&str> {
        configs.get("cleanup.policy").map(String::as_str)
    }

    #[test]
    fn append_and_subtract_edit_the_current_list_or_the_default() {
        use ConfigChange::{Append, Subtract};
        let append = |v: &str| Append(v.into());
        let subtract = |v: &str| Subtract(v.into());
        let key = "cleanup.policy";
        // From the default ("delete").
        let next = alter(&[], &[(key, append("compact"))], false).unwrap();
        assert_eq!(policy(&next), Some("delete,compact"));
        // Items already present are not added twice.
        let next = alter(
            &[(key, "compact")],
            &[(key, append("compact,delete"))],
            false,
        );
        assert_eq!(policy(&next.unwrap()), Some("compact,delete"));
        let next = alter(
            &[(key, "compact, delete")],
            &[(key, subtract("compact"))],
            false,
        );
        assert_eq!(policy(&next.unwrap()), Some("delete"));
        // Subtracting what is not there changes nothing.
        let next = alter(&[(key, "compact")], &[(key, subtract("delete"))], false);
        assert_eq!(policy(&next.unwrap()), Some("compact"));
        // The last policy out leaves the empty list: no cleanup at all.
        let next = alter(&[], &[(key, subtract("delete"))], false).unwrap();
        assert_eq!(policy(&next), Some(""));
        let log = BrokerConfig::default().log_config(&next);
        assert!(!log.cleanup_delete && !log.cleanup_compact);
        // Only list configs take APPEND and SUBTRACT; results are validated.
        assert!(alter(&[], &[("retention.ms", append("5"))], false).is_err());
        assert!(alter(&[], &[("no.such.key", subtract("5"))], false).is_err());
        assert!(alter(&[], &[(key, append("archive"))], false).is_err());
    }

    #[test]
    fn replace_drops_every_key_not_set() {
        use ConfigChange::Set;
        let current = [("retention.ms", "1000"), ("cleanup.policy", "compact")];
        let next = alter(&current, &[("segment.ms", Set("5".into()))], true).unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next.get("segment.ms").map(String::as_str), Some("5"));
        assert!(alter(&current, &[], true).unwrap().is_empty());
        assert!(alter(&current, &[("segment.ms", Set("x".into()))], true).is_err());
        // Without replace, the other keys stay.
        let next = alter(&current, &[("segment.ms", Set("5".into()))], false).unwrap();
        assert_eq!(next.len(), 3);
    }

    #[test]
    fn toml_file_parses() {
        let cfg: BrokerConfig =
            toml::from_str("listen = \"0.0.0.0:9093\"\n[log]\nsegment_bytes = 4096\n").unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9093");
        assert_eq!(cfg.log.segment_bytes, 4096);
    }
}
