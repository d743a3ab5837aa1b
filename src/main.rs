//! The `sluice` command line.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use sluice::config::BrokerConfig;

/// See `sluice::alloc`: a bad frame must not abort the broker.
#[global_allocator]
static ALLOCATOR: sluice::alloc::Allocator = sluice::alloc::Allocator;

#[derive(Parser)]
#[command(name = "sluice", version, about = "A Kafka-compatible message broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a broker.
    Serve(ServeArgs),
}

/// Flags override the config file, which overrides the defaults.
#[derive(Args)]
struct ServeArgs {
    /// TOML config file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// HOST:PORT to listen on (port 0 picks a free one).
    #[arg(long)]
    listen: Option<String>,
    /// HOST:PORT given to clients in Metadata.
    #[arg(long)]
    advertise: Option<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Executors, one per core (default: one per allowed core, or one on a
    /// machine of two cores or fewer).
    #[arg(long)]
    shards: Option<usize>,
    #[arg(long)]
    node_id: Option<i32>,
    /// The cluster id (default: the data dir's, or derived from the voters).
    #[arg(long)]
    cluster_id: Option<String>,
    /// HOST:PORT of this node's controller (quorum traffic); a voter's
    /// defaults to its voter list entry, a broker-only node's to the listen
    /// host with a port the OS picks.
    #[arg(long)]
    controller_listen: Option<String>,
    /// ID@HOST:PORT,... of the controller voters (a node not listed runs a
    /// broker only); unset: a one-node cluster.
    #[arg(long)]
    controller_quorum_voters: Option<String>,
    /// Kafka's broker.rack.
    #[arg(long)]
    broker_rack: Option<String>,
    /// Kafka's replica.selector.class: `rack-aware` lets consumers read
    /// from a replica in their own rack (KIP-392).
    #[arg(long, value_enum)]
    replica_selector: Option<sluice::config::ReplicaSelector>,
    /// The transaction.version feature level finalized (KIP-890): 2, or 0
    /// to keep Kafka 4's clients to the older transaction protocol.
    #[arg(long)]
    transaction_version: Option<sluice::config::TransactionVersion>,
    /// A broker silent this long is fenced (Kafka's broker.session.timeout.ms).
    #[arg(long)]
    broker_session_timeout_ms: Option<u64>,
    #[arg(long)]
    broker_heartbeat_interval_ms: Option<u64>,
    /// How long a stopping cluster node waits for the controller to move
    /// its leaderships away before it stops anyway.
    #[arg(long)]
    controlled_shutdown_timeout_ms: Option<u64>,
    /// Replicas of a topic created without a replication factor.
    #[arg(long)]
    default_replication_factor: Option<i32>,
    /// Replicas of each __consumer_offsets partition when it is created.
    #[arg(long)]
    offsets_topic_replication_factor: Option<i32>,
    /// Give partitions back to their preferred replica (Kafka's auto.leader.rebalance.enable).
    #[arg(long)]
    auto_leader_rebalance_enable: Option<bool>,
    #[arg(long)]
    leader_imbalance_check_interval_seconds: Option<u64>,
    /// Kafka's min.insync.replicas broker default.
    #[arg(long)]
    min_insync_replicas: Option<i32>,
    /// A follower not caught up this long leaves the ISR.
    #[arg(long)]
    replica_lag_time_max_ms: Option<u64>,
    /// How long a follower's fetch waits at the leader for data.
    #[arg(long)]
    replica_fetch_wait_max_ms: Option<u64>,
    #[arg(long)]
    replica_fetch_max_bytes: Option<i32>,
    /// How often each shard writes its replicas' high watermarks (Kafka's
    /// replica.high.watermark.checkpoint.interval.ms).
    #[arg(long)]
    replica_high_watermark_checkpoint_interval_ms: Option<u64>,
    #[arg(long)]
    replica_fetch_response_max_bytes: Option<i32>,
    /// acks=all produces one partition holds waiting for its followers;
    /// past it a produce is refused (REQUEST_TIMED_OUT) before it appends.
    #[arg(long)]
    replica_acks_waiting_max: Option<usize>,
    /// fdatasync before acknowledging every acks=all produce.
    #[arg(long)]
    fsync_on_ack: bool,
    /// Serve fetches with sendfile (true) or through a buffer (false).
    #[arg(long)]
    fetch_zero_copy: Option<bool>,
    /// Most bytes a Fetch v0-3 response reads into memory to down-convert.
    #[arg(long)]
    fetch_down_conversion_max_bytes: Option<usize>,
    /// HOST:PORT for the Prometheus `/metrics` endpoint.
    #[arg(long)]
    metrics_listen: Option<String>,
    #[arg(long)]
    retention_check_interval_ms: Option<u64>,
    /// How often compacted topics are looked at (Kafka's log.cleaner.backoff.ms).
    #[arg(long)]
    log_cleaner_backoff_ms: Option<u64>,
    /// How often flush.ms is checked without appends (Kafka's log.flush.scheduler.interval.ms).
    #[arg(long)]
    log_flush_scheduler_interval_ms: Option<u64>,
    #[arg(long)]
    auto_create_topics_enable: Option<bool>,
    #[arg(long)]
    num_partitions: Option<i32>,
    #[arg(long)]
    socket_request_max_bytes: Option<u32>,
    /// Segment files the node keeps open, split over the shards; the least
    /// recently used close past it.
    #[arg(long)]
    log_open_files_max: Option<usize>,
    /// Close a cached segment file after this long without use (0: never).
    #[arg(long)]
    log_open_files_idle_ms: Option<u64>,
    /// How long an idle shard polls before it parks, in µs (0: at once).
    #[arg(long)]
    shard_spin_before_park_us: Option<u64>,
    /// Log a backtrace when a shard runs this many ms over its budget
    /// without yielding (0: off; costs two syscalls per task queue run, and
    /// symbolizing the backtrace holds the shard longer when one fires).
    #[arg(long)]
    shard_stall_warn_ms: Option<u64>,
    /// Lock the program's code in memory at start (needs RLIMIT_MEMLOCK of
    /// its size or CAP_IPC_LOCK), so that it is never read back from disk.
    #[arg(long)]
    lock_code: bool,
    /// Where produced batches are written: the shard thread (inline), the
    /// blocking thread (thread), the one then the other after a slow write
    /// (adaptive), or the shard's io_uring (uring).
    #[arg(long, value_enum)]
    append_writer: Option<sluice::config::AppendWriter>,
    /// Allocate each active segment's disk blocks up to segment.bytes
    /// ahead of its appends (Kafka's log.preallocate).
    #[arg(long)]
    log_preallocate: bool,
    /// How far ahead of an active segment's appends the page cache is
    /// filled off the shard thread, at most (0: off).
    #[arg(long)]
    log_prefault_bytes: Option<u64>,
    /// Default segment.bytes for topics.
    #[arg(long)]
    log_segment_bytes: Option<u64>,
    /// Default retention.ms for topics.
    #[arg(long)]
    log_retention_ms: Option<i64>,
    /// Default retention.bytes for topics.
    #[arg(long)]
    log_retention_bytes: Option<i64>,
    /// Kafka's group.initial.rebalance.delay.ms.
    #[arg(long)]
    group_initial_rebalance_delay_ms: Option<u64>,
    #[arg(long)]
    group_min_session_timeout_ms: Option<i32>,
    #[arg(long)]
    group_max_session_timeout_ms: Option<i32>,
    /// Kafka's group.consumer.heartbeat.interval.ms (KIP-848 members).
    #[arg(long)]
    group_consumer_heartbeat_interval_ms: Option<i32>,
    /// Kafka's group.consumer.session.timeout.ms (KIP-848 members).
    #[arg(long)]
    group_consumer_session_timeout_ms: Option<i32>,
    /// Kafka's group.consumer.migration.policy: whether a group with
    /// members may move between the classic and the consumer protocol.
    #[arg(long, value_enum)]
    group_consumer_migration_policy: Option<sluice::config::MigrationPolicy>,
    /// Kafka's group.share.heartbeat.interval.ms (share group members).
    #[arg(long)]
    group_share_heartbeat_interval_ms: Option<i32>,
    /// Kafka's group.share.session.timeout.ms (share group members).
    #[arg(long)]
    group_share_session_timeout_ms: Option<i32>,
    /// Kafka's group.share.record.lock.duration.ms: how long a share group
    /// member holds the records it acquired.
    #[arg(long)]
    group_share_record_lock_duration_ms: Option<i32>,
    /// Kafka's group.share.delivery.count.limit.
    #[arg(long)]
    group_share_delivery_count_limit: Option<i16>,
    /// Kafka's share.auto.offset.reset, for every share group: where a
    /// share partition starts when first fetched.
    #[arg(long, value_enum)]
    share_auto_offset_reset: Option<sluice::config::ShareAutoOffsetReset>,
    /// Partitions of __consumer_offsets when it is created.
    #[arg(long)]
    offsets_topic_num_partitions: Option<i32>,
    #[arg(long)]
    offsets_retention_minutes: Option<i64>,
    /// Partitions of __transaction_state when it is created.
    #[arg(long)]
    transaction_state_num_partitions: Option<i32>,
    /// Kafka's transaction.max.timeout.ms.
    #[arg(long)]
    transaction_max_timeout_ms: Option<i32>,
    /// How often timed-out transactions are looked for and aborted.
    #[arg(long)]
    transaction_abort_timed_out_transaction_cleanup_interval_ms: Option<u64>,
    /// NAME=PROTOCOL://HOST:PORT (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL),
    /// repeatable; adds to (or replaces by name) the file's listeners.
    /// TLS files and SASL mechanisms come from the `[listeners.NAME]` table.
    #[arg(long = "listener")]
    listeners: Vec<String>,
    /// The listener other brokers use.
    #[arg(long)]
    inter_broker_listener_name: Option<String>,
    /// KIP-368: SASL sessions last this long (0: no re-authentication).
    #[arg(long)]
    connections_max_reauth_ms: Option<u64>,
    /// The SASL mechanism this broker logs in to the others with, on a SASL
    /// inter-broker listener (Kafka's sasl.mechanism.inter.broker.protocol).
    #[arg(long)]
    inter_broker_sasl_mechanism: Option<String>,
    /// The user this broker logs in to the others as.
    #[arg(long)]
    inter_broker_sasl_username: Option<String>,
    /// A file holding that user's password.
    #[arg(long)]
    inter_broker_sasl_password_file: Option<PathBuf>,
    /// A file holding the delegation token secret key (Kafka's
    /// delegation.token.secret.key), the same on every broker: delegation
    /// tokens are issued only with one.
    #[arg(long)]
    delegation_token_secret_key_file: Option<PathBuf>,
    /// The identity provider's public keys (a JWKS file) OAUTHBEARER
    /// tokens are checked against (Kafka's sasl.oauthbearer.jwks.endpoint.url).
    #[arg(long)]
    sasl_oauthbearer_jwks_file: Option<PathBuf>,
    /// The identity provider's JWKS endpoint (https:, http: or file:),
    /// fetched at start and kept fresh (Kafka's
    /// sasl.oauthbearer.jwks.endpoint.url).
    #[arg(long)]
    sasl_oauthbearer_jwks_endpoint_url: Option<String>,
    /// Kafka's delegation.token.max.lifetime.ms.
    #[arg(long)]
    delegation_token_max_lifetime_ms: Option<i64>,
    /// Kafka's delegation.token.expiry.time.ms.
    #[arg(long)]
    delegation_token_expiry_time_ms: Option<i64>,
    /// Kafka's telemetry.max.bytes: the largest metrics push a client may
    /// send (KIP-714).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    telemetry_max_bytes: Option<u32>,
    /// How often the logs' and groups' gauges at `/metrics` are
    /// refreshed.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    metrics_refresh_ms: Option<u64>,
    /// The most per-partition series of one kind `/metrics` writes.
    #[arg(long)]
    metrics_partition_series_max: Option<usize>,
    /// Mutual TLS between controllers: the CA bundle peers' certificates
    /// are verified against, and this node's certificate chain and key.
    #[arg(long)]
    controller_ssl_ca: Option<PathBuf>,
    #[arg(long)]
    controller_ssl_cert: Option<PathBuf>,
    #[arg(long)]
    controller_ssl_key: Option<PathBuf>,
}

impl ServeArgs {
    fn apply(self, c: &mut BrokerConfig) {
        macro_rules! set {
            ($($flag:ident => $field:expr),* $(,)?) => { $(if let Some(v) = self.$flag { $field = v; })* };
        }
        set! {
            listen => c.listen,
            data_dir => c.data_dir,
            node_id => c.node_id,
            retention_check_interval_ms => c.retention_check_interval_ms,
            log_cleaner_backoff_ms => c.log_cleaner_backoff_ms,
            log_flush_scheduler_interval_ms => c.log_flush_scheduler_interval_ms,
            auto_create_topics_enable => c.auto_create_topics_enable,
            num_partitions => c.num_partitions,
            socket_request_max_bytes => c.socket_request_max_bytes,
            log_open_files_max => c.log_open_files_max,
            log_open_files_idle_ms => c.log_open_files_idle_ms,
            append_writer => c.append_writer,
            shard_spin_before_park_us => c.shard_spin_before_park_us,
            shard_stall_warn_ms => c.shard_stall_warn_ms,
            log_segment_bytes => c.log.segment_bytes,
            log_retention_ms => c.log.retention_ms,
            log_retention_bytes => c.log.retention_bytes,
            group_initial_rebalance_delay_ms => c.group_initial_rebalance_delay_ms,
            group_min_session_timeout_ms => c.group_min_session_timeout_ms,
            group_max_session_timeout_ms => c.group_max_session_timeout_ms,
            group_consumer_heartbeat_interval_ms => c.group_consumer_heartbeat_interval_ms,
            group_consumer_session_timeout_ms => c.group_consumer_session_timeout_ms,
            group_consumer_migration_policy => c.group_consumer_migration_policy,
            group_share_heartbeat_interval_ms => c.group_share_heartbeat_interval_ms,
            group_share_session_timeout_ms => c.group_share_session_timeout_ms,
            group_share_record_lock_duration_ms => c.group_share_record_lock_duration_ms,
            group_share_delivery_count_limit => c.group_share_delivery_count_limit,
            share_auto_offset_reset => c.share_auto_offset_reset,
            offsets_topic_num_partitions => c.offsets_topic_num_partitions,
            offsets_retention_minutes => c.offsets_retention_minutes,
            broker_session_timeout_ms => c.broker_session_timeout_ms,
            broker_heartbeat_interval_ms => c.broker_heartbeat_interval_ms,
            controlled_shutdown_timeout_ms => c.controlled_shutdown_timeout_ms,
            default_replication_factor => c.default_replication_factor,
            offsets_topic_replication_factor => c.offsets_topic_replication_factor,
            min_insync_replicas => c.min_insync_replicas,
            auto_leader_rebalance_enable => c.auto_leader_rebalance_enable,
            leader_imbalance_check_interval_seconds => c.leader_imbalance_check_interval_seconds,
            replica_lag_time_max_ms => c.replica_lag_time_max_ms,
            replica_fetch_wait_max_ms => c.replica_fetch_wait_max_ms,
            replica_fetch_max_bytes => c.replica_fetch_max_bytes,
            replica_high_watermark_checkpoint_interval_ms =>
                c.replica_high_watermark_checkpoint_interval_ms,
            replica_fetch_response_max_bytes => c.replica_fetch_response_max_bytes,
            replica_acks_waiting_max => c.replica_acks_waiting_max,
            transaction_state_num_partitions => c.transaction_state_num_partitions,
            transaction_max_timeout_ms => c.transaction_max_timeout_ms,
            transaction_abort_timed_out_transaction_cleanup_interval_ms =>
                c.transaction_abort_timed_out_transaction_cleanup_interval_ms,
            connections_max_reauth_ms => c.connections_max_reauth_ms,
            delegation_token_max_lifetime_ms => c.delegation_token_max_lifetime_ms,
            delegation_token_expiry_time_ms => c.delegation_token_expiry_time_ms,
            telemetry_max_bytes => c.telemetry_max_bytes,
            metrics_refresh_ms => c.metrics_refresh_ms,
            metrics_partition_series_max => c.metrics_partition_series_max,
        }
        if self.delegation_token_secret_key_file.is_some() {
            c.delegation_token_secret_key_file = self.delegation_token_secret_key_file;
        }
        if self.sasl_oauthbearer_jwks_file.is_some() {
            c.sasl_oauthbearer_jwks_file = self.sasl_oauthbearer_jwks_file;
        }
        if self.sasl_oauthbearer_jwks_endpoint_url.is_some() {
            c.sasl_oauthbearer_jwks_endpoint_url = self.sasl_oauthbearer_jwks_endpoint_url;
        }
        if self.inter_broker_listener_name.is_some() {
            c.inter_broker_listener_name = self.inter_broker_listener_name;
        }
        if self.inter_broker_sasl_mechanism.is_some() {
            c.inter_broker_sasl_mechanism = self.inter_broker_sasl_mechanism;
        }
        if self.inter_broker_sasl_username.is_some() {
            c.inter_broker_sasl_username = self.inter_broker_sasl_username;
        }
        if self.inter_broker_sasl_password_file.is_some() {
            c.inter_broker_sasl_password_file = self.inter_broker_sasl_password_file;
        }
        if self.advertise.is_some() {
            c.advertise = self.advertise;
        }
        if self.broker_rack.is_some() {
            c.broker_rack = self.broker_rack;
        }
        if let Some(selector) = self.replica_selector {
            c.replica_selector = selector;
        }
        if let Some(version) = self.transaction_version {
            c.transaction_version = version;
        }
        if self.cluster_id.is_some() {
            c.cluster_id = self.cluster_id;
        }
        if self.controller_listen.is_some() {
            c.controller_listen = self.controller_listen;
        }
        for (flag, field) in [
            (self.controller_ssl_ca, &mut c.controller_ssl_ca),
            (self.controller_ssl_cert, &mut c.controller_ssl_cert),
            (self.controller_ssl_key, &mut c.controller_ssl_key),
        ] {
            if flag.is_some() {
                *field = flag;
            }
        }
        if self.controller_quorum_voters.is_some() {
            c.controller_quorum_voters = self.controller_quorum_voters;
        }
        if let Some(z) = self.fetch_zero_copy {
            c.fetch.zero_copy = z;
        }
        if let Some(max) = self.fetch_down_conversion_max_bytes {
            c.fetch.down_conversion_max_bytes = max;
        }
        if self.metrics_listen.is_some() {
            c.metrics_listen = self.metrics_listen;
        }
        if self.shards.is_some() {
            c.shards = self.shards;
        }
        c.fsync_on_ack |= self.fsync_on_ack;
        c.lock_code |= self.lock_code;
        c.log_preallocate |= self.log_preallocate;
        if let Some(bytes) = self.log_prefault_bytes {
            c.log_prefault_bytes = bytes;
        }
    }
}

fn main() -> std::process::ExitCode {
    sluice::log_levels::init("info,openraft=warn");
    if !sluice::alloc::keep_freed_memory() {
        tracing::warn!("mallopt refused the heap thresholds: freed memory goes back to the kernel");
    }
    let Command::Serve(args) = Cli::parse().command;
    match serve(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = BrokerConfig::load(args.config.as_deref())?;
    for flag in &args.listeners {
        let (name, flagged) = sluice::security::listeners::parse_flag(flag)?;
        // A flag keeps the file's TLS and SASL settings for that name and
        // changes its protocol and address.
        match config.listeners.get_mut(&name) {
            Some(l) => {
                l.protocol = flagged.protocol;
                l.listen = flagged.listen;
            }
            None => {
                config.listeners.insert(name, flagged);
            }
        }
    }
    args.apply(&mut config);
    config.read_delegation_token_secret()?;
    config.read_oauthbearer_jwks()?;
    if config.lock_code {
        let locked = sluice::code_lock::lock_code()?;
        tracing::info!(
            "locked {} MiB of code in memory ({} mappings)",
            locked.bytes >> 20,
            locked.mappings
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    sluice::broker::run(config, stop, |ready| {
        if let Some(metrics) = ready.metrics {
            println!("sluice metrics on {metrics}");
        }
        // Scripts and tests wait for this exact line, printed last.
        for (name, addr) in &ready.listeners {
            println!("sluice listener {name} on {addr}");
        }
        println!("sluice listening on {}", ready.addr);
    })?;
    Ok(())
}
