//! What one core serves, above its shard (Redpanda's sharded services):
//! the [`Shard`] with its partitions, and the services that use it, each
//! wired to the others here at start.
//!
//! [`Services`] owns its core's `Rc<Shard>` and everything per core that
//! is not a partition's log: the group and transaction coordinators, the
//! replica fetchers
//! (`fetcher.rs`) and the incremental fetch sessions of the connections
//! this core serves (`fetch_sessions.rs`). Services call down into the
//! shard (produce, read, follower appends); the shard calls up only through
//! the [`ShardObserver`] registered here, so it names nothing of this
//! layer. Each service that crosses cores has its own mesh (the shard's
//! carries `ShardMsg`, the group coordinators' `GroupMsg`, the transaction
//! coordinators' `TxnMsg`, the share partitions' `ShareMsg`), joined here.

pub mod fetch_sessions;
mod fetcher;

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use crate::group::{self, GroupMsg};
use crate::metadata::Topics;
use crate::runtime::{Mesh, MeshReceiver, ShardSeat};
use crate::shard::{Shard, ShardMsg, ShardObserver, TopicPartition};
use crate::share::{self, ShareMsg};
use crate::txn::{self, TxnMsg};
use fetch_sessions::FetchSessions;

/// One core's seats in every mesh, handed to it at start.
pub struct Seats {
    shard: ShardSeat<ShardMsg>,
    groups: ShardSeat<GroupMsg>,
    txns: ShardSeat<TxnMsg>,
    shares: ShardSeat<ShareMsg>,
}

impl Seats {
    pub fn id(&self) -> usize {
        self.shard.id
    }

    pub fn count(&self) -> usize {
        self.shard.count
    }
}

/// Every core's seats: one mesh per kind of cross-core message, each
/// channel bounded by `capacity`.
pub fn seats(count: usize, capacity: usize) -> Vec<Seats> {
    let shards = crate::runtime::mesh::<ShardMsg>(count, capacity);
    let groups = crate::runtime::mesh::<GroupMsg>(count, capacity);
    let txns = crate::runtime::mesh::<TxnMsg>(count, capacity);
    let shares = crate::runtime::mesh::<ShareMsg>(count, capacity);
    shards
        .into_iter()
        .zip(groups)
        .zip(txns)
        .zip(shares)
        .map(|(((shard, groups), txns), shares)| Seats {
            shard,
            groups,
            txns,
            shares,
        })
        .collect()
}

/// One core's services. Lives on that core alone; connections (`net`)
/// hold it and hand it to `handlers`.
pub struct Services {
    pub shard: Rc<Shard>,
    /// The consumer groups this core coordinates.
    pub groups: Rc<group::Coordinator>,
    /// The transactional ids this core coordinates.
    pub txns: Rc<txn::Coordinator>,
    /// The share partitions of this core's partitions, and the share
    /// sessions of the connections it serves (KIP-932).
    pub shares: Rc<share::Service>,
    /// Incremental fetch sessions of the connections this core serves.
    pub fetch_sessions: RefCell<FetchSessions>,
    /// Replica fetchers, one per broker this shard follows partitions from.
    fetchers: fetcher::Fetchers,
    /// The client instances pushing metrics to this broker (KIP-714),
    /// shared by every core.
    pub telemetry: Arc<crate::client_metrics::ClientTelemetry>,
}

impl Services {
    /// Joins every mesh, makes the shard (`new_shard` gets its end of the
    /// shard mesh) and the services around it, applies the first topics
    /// snapshot with the observer in place, then serves the other cores.
    pub async fn start(
        seats: Seats,
        topics: Arc<Topics>,
        dialer: Arc<crate::net::client::Security>,
        telemetry: Arc<crate::client_metrics::ClientTelemetry>,
        new_shard: impl FnOnce(Mesh<ShardMsg>) -> Shard,
    ) -> Rc<Services> {
        let id = seats.id();
        tracing::debug!(shard = id, "joining the meshes");
        let ((shard_mesh, shard_peers), (group_mesh, group_peers), (txn_mesh, txn_peers)) =
            futures::future::join3(seats.shard.join(), seats.groups.join(), seats.txns.join())
                .await;
        let (share_mesh, share_peers) = seats.shares.join().await;
        tracing::debug!(shard = id, "joined the meshes");
        let shard = Rc::new(new_shard(shard_mesh));
        let fetch_sessions = FetchSessions::new(
            shard.config.max_incremental_fetch_session_cache_slots,
            shard.config.min_incremental_fetch_session_eviction_ms,
        );
        let groups = Rc::new(group::Coordinator::new(shard.clone(), group_mesh));
        let services = Rc::new(Services {
            shares: Rc::new(share::Service::new(
                shard.clone(),
                share_mesh,
                groups.clone(),
                dialer.clone(),
            )),
            groups,
            txns: Rc::new(txn::Coordinator::new(
                shard.clone(),
                txn_mesh,
                dialer.clone(),
            )),
            shard,
            fetch_sessions: RefCell::new(fetch_sessions),
            fetchers: fetcher::Fetchers::new(dialer),
            telemetry,
        });
        let observer: Weak<dyn ShardObserver> = Rc::downgrade(&services) as Weak<Services>;
        services.shard.set_observer(observer);
        services.shard.apply_topics(topics).await;
        serve_peers(shard_peers, |r| services.shard.clone().serve_peer(r));
        serve_peers(group_peers, |r| services.groups.clone().serve_peer(r));
        serve_peers(txn_peers, |r| services.txns.clone().serve_peer(r));
        serve_peers(share_peers, |r| services.shares.clone().serve_peer(r));
        // Transactions the last run left open or prepared are finished
        // without waiting for a request.
        crate::runtime::spawn_local(txn::load_at_start(services.txns.clone())).detach();
        services
    }
}

/// One task per peer core, serving what it sends until it goes away.
fn serve_peers<M: Send, F: std::future::Future<Output = ()> + 'static>(
    peers: Vec<(usize, MeshReceiver<M>)>,
    serve: impl Fn(MeshReceiver<M>) -> F,
) {
    for (_, receiver) in peers {
        crate::runtime::spawn_local(serve(receiver)).detach();
    }
}

impl ShardObserver for Services {
    /// Kafka's onLeadershipChange for the coordinators: partitions of
    /// `__consumer_offsets` or `__transaction_state` this broker now leads
    /// are loaded at once, so their groups and transactions carry on; the
    /// fetchers follow the new roles.
    fn topics_applied(&self, now_led: &[TopicPartition]) {
        self.fetchers.reconcile(&self.shard);
        let leads = |topic: &str| now_led.iter().any(|tp| &*tp.topic == topic);
        if leads(group::OFFSETS_TOPIC) {
            crate::runtime::spawn_local(group::load_led(self.groups.clone())).detach();
        }
        if leads(txn::TXN_TOPIC) {
            crate::runtime::spawn_local(txn::load_led(self.txns.clone())).detach();
        }
    }

    fn txn_marker_written(&self, tp: &TopicPartition, producer_id: i64, commit: bool) {
        if &*tp.topic == group::OFFSETS_TOPIC {
            self.groups
                .txn_marker_written(tp.partition, producer_id, commit);
        }
    }
}
