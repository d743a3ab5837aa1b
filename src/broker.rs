//! Starting and stopping the broker: the data dir, the shards, the
//! listener address, and the clean-shutdown marker.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::config::BrokerConfig;
use crate::metadata::{write_atomically, Topics};
use crate::runtime;
use crate::runtime::writable::WritablePoller;
use crate::services::{Seats, Services};
use crate::shard::Shard;

/// Written at the end of a clean shutdown, removed at start. Without it,
/// the logs' unflushed tails are rescanned on open.
const CLEAN_SHUTDOWN_MARKER: &str = ".clean-shutdown";
const LOCK_FILE: &str = ".lock";
/// How often shards look at the process-wide stop flag set by signals.
const STOP_POLL: Duration = Duration::from_millis(50);
/// How long shutdown waits for in-flight requests before closing logs anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long start-up waits for every shard to open its logs and listen.
const START_TIMEOUT: Duration = Duration::from_secs(600);
/// Descriptors left out of the segment files' share of the open-file
/// limit: sockets, io_uring rings, the metadata log, files written whole
/// (indexes, checkpoints) and fetches holding files the cache closed.
const OPEN_FILES_RESERVED: u64 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data dir {0} is in use by another broker")]
    Locked(PathBuf),
    #[error("listen address {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("advertise address {0} must be HOST:PORT")]
    Advertise(String),
    #[error(transparent)]
    Listeners(#[from] crate::security::listeners::ListenerError),
    #[error(transparent)]
    Tls(#[from] crate::net::tls::TlsError),
    #[error("inter-broker client: {0}")]
    Dialer(#[from] crate::net::client::SecurityError),
    #[error("shards: {0}")]
    Shards(std::io::Error),
    #[error("a shard failed to start")]
    Start,
    #[error("controller_quorum_voters: {0}")]
    Voters(#[from] crate::cluster::voters::VotersError),
    #[error(transparent)]
    Identity(#[from] crate::cluster::identity::IdentityError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::node::NodeError),
}

/// Raises the soft open-file limit to the hard one (as the JVM and Go do
/// for servers), then fits `wanted` segment files under it with
/// [`OPEN_FILES_RESERVED`] to spare: the bound the shards' file caches get.
fn fit_open_files(wanted: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid, exclusive pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
        return wanted;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one initialized rlimit; it changes this
        // process's limit only (an infinite hard limit fails, harmlessly).
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    let room = limit.rlim_cur.saturating_sub(OPEN_FILES_RESERVED).max(1);
    let fitted = wanted.min(usize::try_from(room).unwrap_or(usize::MAX));
    if fitted < wanted {
        tracing::warn!(
            log_open_files_max = wanted,
            open_file_limit = limit.rlim_cur,
            fitted,
            "log_open_files_max lowered to fit the open-file limit (raise `ulimit -n`)"
        );
    }
    tracing::info!(
        log_open_files_max = fitted,
        open_file_limit = limit.rlim_cur,
        "segment file handle cache"
    );
    fitted
}

/// `wanted` (`log_prefault_bytes`), or 0 where extending a segment for a
/// fill would hold the shard on write-back (XFS; see
/// `storage::extension_writes_back`).
fn fit_prefault(data_dir: &Path, wanted: u64) -> u64 {
    if wanted == 0 {
        return 0;
    }
    match crate::storage::extension_writes_back(data_dir) {
        Ok(None) => wanted,
        Ok(Some(fs)) => {
            tracing::info!(
                filesystem = fs,
                "log_prefault_bytes off: this filesystem writes back a segment's new pages whenever it is extended"
            );
            0
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell the data dir's filesystem: log_prefault_bytes off");
            0
        }
    }
}

/// Where a started broker can be reached.
#[derive(Clone, Debug)]
pub struct Ready {
    /// The inter-broker listener's address (the only one without `listeners`).
    pub addr: SocketAddr,
    pub metrics: Option<SocketAddr>,
    /// Every listener by name, with its bound address.
    pub listeners: Vec<(String, SocketAddr)>,
}

/// Runs the broker until `stop` is set, then shuts down cleanly.
/// `on_ready` is called once every shard is listening.
pub fn run(
    mut config: BrokerConfig,
    stop: Arc<AtomicBool>,
    on_ready: impl FnOnce(Ready),
) -> Result<(), BrokerError> {
    let data_dir = config.data_dir.clone();
    let dir_err = |source| BrokerError::DataDir {
        path: data_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&data_dir).map_err(dir_err)?;
    let _lock = lock_data_dir(&data_dir)?;
    let (identity, data_dir_state) = resolve_identity(&config)?;
    config.cluster_id = Some(identity.cluster_id);
    let marker = data_dir.join(CLEAN_SHUTDOWN_MARKER);
    let clean_start = marker.exists();
    if clean_start {
        // Durably gone before any log changes: a power failure must not
        // bring the marker back over logs this run wrote (or half wrote at
        // its stop: a group close writes indexes in place).
        std::fs::remove_file(&marker)
            .and_then(|()| std::fs::File::open(&data_dir)?.sync_all())
            .map_err(dir_err)?;
    } else {
        tracing::info!("no clean-shutdown marker: logs will be recovered");
    }
    let log_state = crate::cluster::log_state::assess(
        &data_dir,
        data_dir_state,
        clean_start,
        config.fsync_on_ack,
    )
    .map_err(dir_err)?;

    let listen_err = |addr: &str| {
        let addr = addr.to_string();
        move |source| BrokerError::Listen { addr, source }
    };
    let mut reserved = Vec::new();
    let mut listeners = Vec::new();
    let configs = listener_configs(&config)?;
    for (name, l) in &configs {
        let (socket, addr) =
            crate::net::listen::reserve(&l.listen).map_err(listen_err(&l.listen))?;
        let info = listener_info(name, l, addr)?;
        reserved.push(socket);
        listeners.push((addr, Arc::new(info)));
    }
    // The first is the inter-broker listener (see `listener_configs`).
    let dialer = Arc::new(inter_broker_dialer(&config, &configs[0])?);
    for warning in crate::security::authorizer_warnings(
        config.authorizer,
        &config.super_users,
        &inter_broker_principal(&configs[0].1, &listeners[0].1, &dialer),
        config.controller_quorum_voters.is_some(),
    ) {
        tracing::warn!("{warning}");
    }
    let addr = listeners[0].0;
    let advertised = listeners[0].1.advertised.clone();
    let endpoints = listeners
        .iter()
        .map(|(_, info)| crate::controller::image::Endpoint {
            name: info.name.clone(),
            host: info.advertised.0.clone(),
            port: u16::try_from(info.advertised.1).unwrap_or(0),
        })
        .collect();
    // In a cluster the metadata log is the truth: register, wait to be
    // unfenced, and start from its image; alone, from topics.toml.
    let cluster = start_cluster(&config, &advertised, endpoints, log_state)?;
    crate::cluster::log_state::settled(&data_dir).map_err(dir_err)?;
    let topics = match &cluster {
        Some(node) => {
            let (index, image) = node.controller.image();
            Arc::new(crate::metadata::topics_from_image(
                index,
                image,
                config.node_id,
            ))
        }
        None => Arc::new(Topics::load(&data_dir).map_err(dir_err)?),
    };
    let shard_count = config.shards.unwrap_or_else(runtime::default_shards).max(1);
    let high_watermarks =
        crate::storage::load_high_watermarks(&data_dir, shard_count, |topic, partition| {
            crate::metadata::owner_shard(topic, partition, shard_count)
        })
        .map_err(dir_err)?;
    // Before any log opens, with the image this node caught up to. Only
    // in a cluster: there the quorum's image is the truth, while a lone
    // broker's topics.toml, if lost, must not take the logs with it.
    if cluster.is_some() {
        crate::shard::bury_stray_partitions(&data_dir, &topics);
    }
    crate::shard::remove_leftover_graveyards(&data_dir);
    let data_dir_at_start = crate::shard::DataDirAtStart {
        clean: clean_start,
        high_watermarks: Arc::new(high_watermarks),
    };
    let metrics = match &config.metrics_listen {
        Some(listen) => Some(crate::net::listen::bind_metrics(listen).map_err(listen_err(listen))?),
        None => None,
    };
    let writable = WritablePoller::start(shard_count, config.max_connections_per_shard)
        .map_err(BrokerError::Shards)?;
    config.log_open_files_max = fit_open_files(config.log_open_files_max);
    config.log_prefault_bytes = fit_prefault(&data_dir, config.log_prefault_bytes);
    let config = Arc::new(config);
    let (ready_tx, ready_rx) = mpsc::channel::<bool>();
    let drained = Arc::new(AtomicUsize::new(0));
    let unclean_close = Arc::new(AtomicBool::new(false));
    // Shards stop on this, set after a cluster node's controlled shutdown.
    let shard_stop = Arc::new(AtomicBool::new(false));

    let body = {
        let config = config.clone();
        let stop = shard_stop.clone();
        let unclean_close = unclean_close.clone();
        let cluster = cluster.clone();
        let listeners = listeners.clone();
        let dialer = dialer.clone();
        let telemetry = Arc::new(crate::client_metrics::ClientTelemetry::new(
            config.telemetry_max_bytes as usize,
            config.client_telemetry_series_max,
        ));
        move |seats: Seats| {
            let ctx = ShardStart {
                config: config.clone(),
                topics: topics.clone(),
                advertised: advertised.clone(),
                listeners: listeners.clone(),
                data_dir_at_start: data_dir_at_start.clone(),
                stop: stop.clone(),
                drained: drained.clone(),
                unclean_close: unclean_close.clone(),
                ready: ready_tx.clone(),
                writable: writable.clone(),
                metrics_fd: metrics.map(|(_, fd)| fd),
                cluster: cluster.clone(),
                dialer: dialer.clone(),
                telemetry: telemetry.clone(),
            };
            async move { run_shard(seats, ctx).await }
        }
    };
    let seats = crate::services::seats(shard_count, config.shard_channel_capacity);
    let executors = runtime::ExecutorSettings {
        io_memory_bytes: config.io_memory_bytes,
        spin_before_park: Duration::from_micros(config.shard_spin_before_park_us),
        stall_warning: Duration::from_millis(config.shard_stall_warn_ms),
    };
    let shards = runtime::start_shards(seats, &executors, body).map_err(BrokerError::Shards)?;
    for _ in 0..shard_count {
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(true) => {}
            _ => {
                shard_stop.store(true, Ordering::SeqCst);
                let _ = shards.join();
                return Err(BrokerError::Start);
            }
        }
    }
    drop(reserved);
    tracing::info!(%addr, shards = shard_count, data_dir = %data_dir.display(), "serving");
    let tls: Vec<_> = listeners
        .iter()
        .filter_map(|(_, i)| i.tls.clone())
        .collect();
    on_ready(Ready {
        addr,
        metrics: metrics.map(|(addr, _)| addr),
        listeners: listeners
            .iter()
            .map(|(addr, info)| (info.name.clone(), *addr))
            .collect(),
    });
    // SIGHUP reloads the TLS certificates: the listeners', the inter-broker
    // client's and the quorum's, and the OAUTHBEARER keys (only when there
    // are some: a broker without them keeps SIGHUP's default meaning).
    let reload = Arc::new(AtomicBool::new(false));
    let quorum_tls = cluster.as_ref().is_some_and(|n| n.controller.has_tls());
    let oauth_keys = config.oauthbearer.clone();
    if !tls.is_empty() || dialer.has_tls() || quorum_tls || oauth_keys.is_some() {
        signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
            .map_err(BrokerError::Shards)?;
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(STOP_POLL);
        if reload.swap(false, Ordering::SeqCst) {
            tls.iter().for_each(|t| t.reload());
            dialer.reload_tls();
            if let Some(keys) = &oauth_keys {
                keys.reload();
            }
            if let Some(node) = &cluster {
                node.controller.reload_tls();
            }
        }
    }
    if let Some(node) = &cluster {
        // Leaderships move away while this broker still serves.
        node.controlled_shutdown(Duration::from_millis(config.controlled_shutdown_timeout_ms));
    }
    shard_stop.store(true, Ordering::SeqCst);
    shards.join().map_err(BrokerError::Shards)?;
    if let Some(node) = cluster {
        node.stop();
    }
    if unclean_close.load(Ordering::SeqCst) {
        tracing::warn!("a log did not close cleanly: the next start recovers the logs");
        return Ok(());
    }
    write_atomically(&marker, b"").map_err(dir_err)?;
    tracing::info!("clean shutdown");
    Ok(())
}

struct ShardStart {
    config: Arc<BrokerConfig>,
    topics: Arc<Topics>,
    advertised: (String, i32),
    /// Every listener: the address every shard binds, and what its
    /// connections share.
    listeners: Vec<(SocketAddr, Arc<crate::net::sasl::ListenerInfo>)>,
    data_dir_at_start: crate::shard::DataDirAtStart,
    stop: Arc<AtomicBool>,
    /// Shards done with their own requests; logs close only when all are,
    /// since a draining shard may still need its peers' partitions.
    drained: Arc<AtomicUsize>,
    /// Set by a shard whose logs did not all close (a full disk): no
    /// clean-shutdown marker then, so the next start recovers them.
    unclean_close: Arc<AtomicBool>,
    ready: mpsc::Sender<bool>,
    writable: Arc<WritablePoller>,
    /// The metrics listener's fd; shard 0 takes ownership of it.
    metrics_fd: Option<RawFd>,
    cluster: Option<Arc<crate::cluster::node::ClusterNode>>,
    /// How this broker dials the others (the inter-broker listener's TLS
    /// and SASL), loaded once.
    dialer: Arc<crate::net::client::Security>,
    /// The client instances pushing metrics (KIP-714), one for all shards.
    telemetry: Arc<crate::client_metrics::ClientTelemetry>,
}

async fn run_shard(seats: Seats, ctx: ShardStart) {
    let (id, count) = (seats.id(), seats.count());
    crate::stats::shard_thread_started(id);
    let controller = ctx.cluster.as_ref().map(|node| node.controller.clone());
    let (config, advertised, start) = (ctx.config.clone(), ctx.advertised, ctx.data_dir_at_start);
    let services = Services::start(
        seats,
        ctx.topics,
        ctx.dialer,
        ctx.telemetry.clone(),
        |mesh| Shard::new(id, count, config, advertised, mesh, start, controller),
    )
    .await;
    let shard = services.shard.clone();
    let mut listeners = Vec::with_capacity(ctx.listeners.len());
    for (addr, info) in &ctx.listeners {
        match crate::net::listen::bind_shard(*addr) {
            Ok(l) => listeners.push((l, info.clone())),
            Err(e) => {
                tracing::error!(shard = id, %addr, error = %e, "cannot listen");
                let _ = ctx.ready.send(false);
                return;
            }
        }
    }
    if let Some(fd) = ctx.metrics_fd.filter(|_| id == 0) {
        // SAFETY: main bound it with `bind_metrics` and hands it to shard 0 alone.
        let listener = unsafe { crate::net::listen::adopt_metrics(fd) };
        runtime::spawn_local(crate::net::metrics::serve(
            shard.clone(),
            listener,
            ctx.telemetry.clone(),
        ))
        .detach();
    }
    runtime::spawn_local(watch_stop(shard.clone(), ctx.stop)).detach();
    if let Some(node) = ctx.cluster.as_ref().filter(|_| id == 0) {
        runtime::spawn_local(image_loop(shard.clone(), node.controller.watch())).detach();
    }
    runtime::spawn_local(retention_loop(shard.clone())).detach();
    runtime::spawn_local(compaction_loop(shard.clone())).detach();
    runtime::spawn_local(flush_loop(shard.clone())).detach();
    runtime::spawn_local(idle_files_loop(shard.clone())).detach();
    runtime::spawn_local(producer_expiry_loop(shard.clone())).detach();
    if ctx.cluster.is_some() {
        runtime::spawn_local(isr_loop(shard.clone())).detach();
    }
    runtime::spawn_local(high_watermark_loop(shard.clone())).detach();
    if ctx.metrics_fd.is_some() {
        runtime::spawn_local(gauges_loop(services.clone())).detach();
    }
    let _ = ctx.ready.send(true);
    let writable = Rc::new(ctx.writable.for_shard(id));
    crate::net::accept_all(services.clone(), listeners, writable).await;
    drain(&shard, &ctx.drained).await;
    if !shard.close_all() {
        ctx.unclean_close.store(true, Ordering::SeqCst);
    }
    // Held to here: the shard's observer is weak, and peers' markers and
    // snapshots keep coming while the shards drain.
    drop(services);
}

/// With a voter list: this node's controller voter, registered and
/// unfenced. Without: none (a one-node broker).
fn start_cluster(
    config: &BrokerConfig,
    advertised: &(String, i32),
    endpoints: Vec<crate::controller::image::Endpoint>,
    log_state: crate::cluster::log_state::LogState,
) -> Result<Option<Arc<crate::cluster::node::ClusterNode>>, BrokerError> {
    let Some(list) = &config.controller_quorum_voters else {
        return Ok(None);
    };
    let voters = crate::cluster::voters::parse(list)?;
    let cluster_id = config.cluster_id.clone().unwrap_or_default();
    let node = crate::cluster::node::ClusterNode::start(
        config,
        &cluster_id,
        &voters,
        advertised,
        endpoints,
        log_state,
    )?;
    Ok(Some(Arc::new(node)))
}

/// Checks the voter list and the data dir's identity against this node's
/// flags; the data dir gets its identity on a first start.
fn resolve_identity(
    config: &BrokerConfig,
) -> Result<
    (
        crate::cluster::MetaProperties,
        crate::cluster::identity::DataDir,
    ),
    BrokerError,
> {
    use crate::cluster::{identity, voters};
    let mut expected = config.cluster_id.clone();
    if let Some(list) = &config.controller_quorum_voters {
        let voters = voters::parse(list)?;
        voters::this_node(&voters, config.node_id, config.controller_listen.as_deref())?;
        // The voters of one cluster all derive the same id, so a data dir
        // from another cluster (another voter list) is refused.
        if expected.is_none() {
            expected = Some(identity::cluster_id_for_voters(list));
        }
    }
    Ok(identity::ensure(
        &config.data_dir,
        config.node_id,
        expected.as_deref(),
    )?)
}

/// Waits for this shard's requests to finish, then for every other shard.
async fn drain(shard: &Shard, drained: &AtomicUsize) {
    let waited = runtime::timeout(DRAIN_TIMEOUT, async {
        while shard.in_flight.get() > 0 {
            runtime::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    if waited.is_none() {
        tracing::warn!(
            shard = shard.id,
            in_flight = shard.in_flight.get(),
            "requests still running at shutdown"
        );
    }
    drained.fetch_add(1, Ordering::SeqCst);
    let _ = runtime::timeout(DRAIN_TIMEOUT, async {
        while drained.load(Ordering::SeqCst) < shard.count {
            runtime::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Shard 0 in a cluster: every newly applied metadata image becomes the
/// topics snapshot of every shard, in order.
async fn image_loop(shard: Rc<Shard>, mut watch: crate::controller::ImageWatch) {
    loop {
        let changed = {
            let next = std::pin::pin!(watch.changed());
            let stop = std::pin::pin!(shard.stopping.changed_since(0));
            match futures::future::select(next, stop).await {
                futures::future::Either::Left((next, _)) => next,
                futures::future::Either::Right(_) => return,
            }
        };
        let Some((index, image)) = changed else {
            return;
        };
        let topics = crate::metadata::topics_from_image(index, image, shard.config.node_id);
        shard.broadcast_topics(Arc::new(topics)).await;
    }
}

async fn watch_stop(shard: Rc<Shard>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        runtime::sleep(STOP_POLL).await;
    }
    shard.stopping.notify();
}

/// Compaction in bounded steps: again at once (after other tasks) while a
/// round has work left, else every `log_cleaner_backoff_ms`.
async fn compaction_loop(shard: Rc<Shard>) {
    let backoff = Duration::from_millis(shard.config.log_cleaner_backoff_ms.max(1));
    let mut more = false;
    loop {
        let wait = if more { Duration::ZERO } else { backoff };
        if runtime::timeout(wait, shard.stopping.changed_since(0))
            .await
            .is_some()
        {
            return;
        }
        runtime::yield_now().await;
        more = shard.compact_step().await;
    }
}

async fn flush_loop(shard: Rc<Shard>) {
    let every = Duration::from_millis(shard.config.log_flush_scheduler_interval_ms.max(1));
    while runtime::timeout(every, shard.stopping.changed_since(0))
        .await
        .is_none()
    {
        shard.flush_pass().await;
    }
}

/// Closes the segment files nobody used for `log_open_files_idle_ms`.
async fn idle_files_loop(shard: Rc<Shard>) {
    if shard.config.log_open_files_idle_ms == 0 {
        return;
    }
    let every = Duration::from_millis(shard.config.log_open_files_idle_ms);
    while runtime::timeout(every, shard.stopping.changed_since(0))
        .await
        .is_none()
    {
        let closed = shard.file_handles.close_idle();
        tracing::debug!(shard = shard.id, closed, "idle segment files closed");
    }
}

async fn retention_loop(shard: Rc<Shard>) {
    let every = Duration::from_millis(shard.config.retention_check_interval_ms.max(1));
    while runtime::timeout(every, shard.stopping.changed_since(0))
        .await
        .is_none()
    {
        shard.apply_retention();
    }
}

async fn producer_expiry_loop(shard: Rc<Shard>) {
    let every = Duration::from_millis(shard.config.producer_id_expiration_check_interval_ms.max(1));
    while runtime::timeout(every, shard.stopping.changed_since(0))
        .await
        .is_none()
    {
        shard.expire_producers();
    }
}

/// Kafka's ISR expiration check: every half `replica_lag_time_max_ms`.
async fn isr_loop(shard: Rc<Shard>) {
    let every = Duration::from_millis((shard.config.replica_lag_time_max_ms / 2).max(1));
    while runtime::timeout(every, shard.stopping.changed_since(0))
        .await
        .is_none()
    {
        shard.shrink_isrs();
    }
}

async fn high_watermark_loop(shard: Rc<Shard>) {
    let every = Duration::from_millis(
        shard
            .config
            .replica_high_watermark_checkpoint_interval_ms
            .max(1),
    );
    while runtime::timeout(every, shard.stopping.changed_since(0))
        .await
        .is_none()
    {
        shard.checkpoint_high_watermarks().await;
    }
}

/// Publishes the logs' and groups' gauges for `/metrics` every
/// `metrics_refresh_ms`, the first at once.
async fn gauges_loop(services: Rc<Services>) {
    let every = Duration::from_millis(services.shard.config.metrics_refresh_ms.max(1));
    loop {
        services.shard.publish_log_gauges().await;
        services.groups.publish_group_gauges();
        if runtime::timeout(every, services.shard.stopping.changed_since(0))
            .await
            .is_some()
        {
            return;
        }
    }
}

/// The listeners to bind, the inter-broker one first: the configured ones,
/// or today's single PLAINTEXT listener at `listen`/`advertise`.
fn listener_configs(
    config: &BrokerConfig,
) -> Result<Vec<(String, crate::security::listeners::ListenerConfig)>, BrokerError> {
    use crate::security::listeners::{self, ListenerConfig, SecurityProtocol};
    listeners::validate(
        &config.listeners,
        config.inter_broker_listener_name.as_deref(),
    )?;
    if config.listeners.is_empty() {
        let plaintext = ListenerConfig::bare(
            SecurityProtocol::Plaintext,
            &config.listen,
            config.advertise.clone(),
        );
        return Ok(vec![(listeners::DEFAULT_LISTENER.to_string(), plaintext)]);
    }
    let first = config
        .inter_broker_listener_name
        .clone()
        .filter(|n| config.listeners.contains_key(n))
        .or_else(|| {
            config
                .listeners
                .contains_key(listeners::DEFAULT_LISTENER)
                .then(|| listeners::DEFAULT_LISTENER.to_string())
        })
        .or_else(|| config.listeners.keys().next().cloned())
        .expect("listeners is not empty");
    let mut out = vec![(first.clone(), config.listeners[&first].clone())];
    out.extend(
        config
            .listeners
            .iter()
            .filter(|(n, _)| **n != first)
            .map(|(n, l)| (n.clone(), l.clone())),
    );
    Ok(out)
}

/// The client side of the inter-broker listener `(name, config)`: what the
/// fetchers and marker writers dial the other brokers with.
fn inter_broker_dialer(
    config: &BrokerConfig,
    (name, listener): &(String, crate::security::listeners::ListenerConfig),
) -> Result<crate::net::client::Security, BrokerError> {
    let client = crate::security::listeners::inter_broker_client(
        name,
        listener,
        &config.inter_broker_login(),
    )?;
    Ok(crate::net::client::Security::load(&client)?)
}

/// Who this broker is to the others, for the super-user check: its SASL
/// user on a SASL inter-broker listener; on an SSL one that asks for
/// client certificates, its certificate's principal; else the listener's
/// principal for unauthenticated connections.
fn inter_broker_principal(
    listener: &crate::security::listeners::ListenerConfig,
    info: &crate::net::sasl::ListenerInfo,
    dialer: &crate::net::client::Security,
) -> String {
    use crate::security::listeners::ClientAuth;
    if let Some(user) = dialer.sasl_user() {
        return format!("User:{user}");
    }
    if listener.ssl_client_auth != ClientAuth::None {
        if let Some(der) = dialer.certificate() {
            match crate::security::principal::ssl_principal(der) {
                Ok(p) => return p,
                Err(e) => {
                    tracing::warn!(error = %e, "the inter-broker certificate has no readable subject")
                }
            }
        }
    }
    info.principal.clone()
}

/// What every connection of a listener shares; TLS files are read here.
fn listener_info(
    name: &str,
    l: &crate::security::listeners::ListenerConfig,
    bound: SocketAddr,
) -> Result<crate::net::sasl::ListenerInfo, BrokerError> {
    let tls = if l.protocol.tls() {
        Some(Arc::new(crate::net::tls::TlsListener::load(name, l)?))
    } else {
        None
    };
    Ok(crate::net::sasl::ListenerInfo {
        name: name.to_string(),
        protocol: l.protocol,
        advertised: advertised(l.advertise.as_ref(), bound)?,
        principal: l
            .principal
            .clone()
            .unwrap_or_else(|| crate::security::listeners::ANONYMOUS.to_string()),
        mechanisms: if l.protocol.sasl() {
            crate::net::sasl::mechanisms(l.sasl_mechanisms.as_ref())
        } else {
            Vec::new()
        },
        tls,
        stats: crate::stats::listener_stats(name),
    })
}

fn advertised(advertise: Option<&String>, bound: SocketAddr) -> Result<(String, i32), BrokerError> {
    match advertise {
        Some(a) => {
            let (host, port) = a
                .rsplit_once(':')
                .ok_or_else(|| BrokerError::Advertise(a.clone()))?;
            let port = port
                .parse()
                .map_err(|_| BrokerError::Advertise(a.clone()))?;
            Ok((host.trim_matches(['[', ']']).to_string(), port))
        }
        None => Ok((bound.ip().to_string(), i32::from(bound.port()))),
    }
}

/// An exclusive flock on the data dir, held for the broker's lifetime.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, BrokerError> {
    use std::os::fd::AsRawFd;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| BrokerError::DataDir { path, source })?;
    // SAFETY: the fd is valid for the life of `file`; flock has no memory effects.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(BrokerError::Locked(dir.to_path_buf()));
    }
    Ok(file)
}
